//go:build linux || darwin || freebsd

// Package native runs the shared objects that llmc compile --backend llvm
// builds: it loads one into the process with github.com/ebitengine/purego
// (dlopen and plain C calls, no cgo) and implements runtime.Runner over
// its entry points. The ABI it expects is described in package artifact
// (abi.go there), with the layout.json it reads.
//
// # Threads
//
// A step is one call into the shared object (llmc_step_<entry>), which runs
// every kernel itself on a team of native threads that llmc_threads_start
// made when the Program was opened: as many as the runtime.Parallel's
// Threads(), the caller's thread included. Nothing inside a step crosses
// back into Go, so the Go scheduler and purego's call transitions cost once
// per step, not once per kernel. Shared objects of native ABI version 1,
// which have no step function, are still run phase by phase from Go on the
// runtime.Parallel, so that a benchmark can set them beside current ones.
//
// # Memory
//
// The kernels keep raw pointers to the weights, the activation arena,
// scratch memory, the token buffer and the KV cache states for as long as
// the Program lives, and read and write them from C while Go code runs
// concurrently. None of that memory may be moved or freed by the Go
// runtime, so none of it is Go-allocated. A weight that is one checkpoint
// tensor stored as the kernels read it (F32, or BF16 for a weight kept in
// bfloat16) is read in place from the WeightSource's memory when it is a
// runtime.ViewSource: the memory-mapped safetensors file, which the page
// cache backs, so that it is neither copied nor resident twice. The rest
// is in two anonymous regions a Program maps with syscall.Mmap, which the
// garbage collector neither scans, moves nor frees,
//
//   - weights: every other weight the kernels read (stacked derived
//     weights, tensors converted or misaligned in the file), copied in
//     and made read-only once filled; the checkpoint tensors copied are
//     released from the process's resident memory (runtime.FillWeight);
//   - work: the context block the kernels receive, the arrays of weight
//     and state pointers it points to, the plan buffer, the tokens, the
//     arena, scratch and every KV cache state,
//
// and keeps them mapped until Close, which unmaps them after closing the
// shared object. The only values passed to C are uintptrs into these
// regions and the source's mapping, and integers; Go slices over the
// regions are used only by Go code (to write tokens and read the output).
// The WeightSource must stay open until Close when it is a ViewSource;
// other sources may be closed once Open returns.
//
// Run and Close must not overlap: like the Go backend's programs, a
// Program runs one step at a time. Close stops the team's threads.
package native

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/runtime"
)

// ParallelMinWork is the fewest multiply-adds worth splitting a parallel
// phase across threads; kir.ParallelMinWork, which the Go backend and the
// step functions use too. Only the phase-by-phase path (ABI 1) reads it.
const ParallelMinWork = 1 << 15

// Artifact says where an LLVM-backend artifact's code is and what CPU it
// was compiled for (from its manifest).
type Artifact struct {
	Dir      string   // the artifact folder, holding artifact.LayoutName
	Library  string   // the shared object, relative to Dir
	BuildID  string   // the manifest's build ID, which the layout and library must carry
	CPU      string   // the CPU it was compiled for, for messages
	Features []string // CPU features its code may use
}

// Program is a loaded shared object: a runtime.Runner.
type Program struct {
	lay     *artifact.Layout
	par     runtime.Parallel
	lib     uintptr
	weights []byte    // mapping: the weights not used in place (read-only once filled)
	inPlace []bool    // by weight: read in place from the WeightSource's memory
	wptrs   []uintptr // by weight: where the kernels read it
	work    []byte    // mapping: ctx, pointer arrays, plan, tokens, arena, scratch, states
	ctx     uintptr
	words   []int64 // the context block
	plan    []int64
	planPtr uintptr
	tokens  []int32
	arena   []float32
	entries map[string]*entry
	threads int     // the team's threads, the caller's included
	team    uintptr // from llmc_threads_start, 0 for one thread
	stop    uintptr // llmc_threads_stop
	mode    string  // TeamEnv's value: TeamAdapt, TeamAlways or TeamNever
}

// TeamEnv chooses how steps use the thread team: TeamAdapt (the default)
// lets each entry point run its steps on the calling thread alone while
// that is clearly faster (another process busy on the CPUs: see chooser),
// TeamAlways keeps every step on the team, TeamNever on the caller.
const (
	TeamEnv    = "LLMC_TEAM"
	TeamAdapt  = "adapt"
	TeamAlways = "always"
	TeamNever  = "never"
)

type entry struct {
	e      *artifact.LayoutEntry
	plan   uintptr
	step   uintptr // llmc_step_<entry>; 0 in ABI 1, which runs phases
	phases []phase
	size   int     // output elements
	team   chooser // whether its steps run on the team (see chooser)
}

type phase struct {
	fn       uintptr
	parallel bool
	chunk    func(lo, hi int) // calls fn on [lo, hi); made once, so ParallelFor does not allocate
}

// Open loads an artifact's shared object with weights from ws, after
// checking that this machine has the CPU features it was compiled for.
func Open(a Artifact, ws runtime.WeightSource, par runtime.Parallel) (*Program, error) {
	if err := CheckCPU(a.CPU, a.Features); err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Dir, err)
	}
	lay, err := artifact.ReadLayout(filepath.Join(a.Dir, artifact.LayoutName))
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Dir, err)
	}
	if lay.BuildID != a.BuildID {
		return nil, fmt.Errorf("artifact %s: %s is from build %s, the manifest from build %s: compile the artifact again", a.Dir, artifact.LayoutName, lay.BuildID, a.BuildID)
	}
	if a.Library == "" {
		return nil, fmt.Errorf("artifact %s: the manifest names no shared object (backend_info.library)", a.Dir)
	}
	f32, bf16, in := runtime.InPlace(lay.Weights, ws, pad*4)
	p, err := load(filepath.Join(a.Dir, a.Library), lay, par, func(i int) uintptr {
		w := &lay.Weights[i]
		switch {
		case !in[i] || w.Rows*w.Cols == 0:
			return 0
		case w.BF16:
			return uintptr(unsafe.Pointer(unsafe.SliceData(bf16[i])))
		}
		return uintptr(unsafe.Pointer(unsafe.SliceData(f32[i])))
	}, func(i int, dst []float32) error {
		w := &lay.Weights[i]
		if w.Stored() {
			return runtime.FillBlocks(w, ws, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(dst))), 4*len(dst)))
		}
		if w.BF16 {
			return runtime.FillWeight(w, ws, nil, unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(dst))), w.Rows*w.Cols))
		}
		return runtime.FillWeight(w, ws, dst, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", a.Dir, err)
	}
	runtime.PopulateInPlace(lay.Weights, p.inPlace, func(i int) unsafe.Pointer {
		return *(*unsafe.Pointer)(unsafe.Pointer(&p.wptrs[i]))
	})
	return p, nil
}

// New loads the shared object lib described by lay, with weights given in
// lay.Weights' order (stacked already), which it copies.
func New(lib string, lay *artifact.Layout, weights [][]float32, par runtime.Parallel) (*Program, error) {
	if len(weights) != len(lay.Weights) {
		return nil, fmt.Errorf("%d weights given, the program takes %d", len(weights), len(lay.Weights))
	}
	return load(lib, lay, par, nil, func(i int, dst []float32) error {
		if len(weights[i]) != len(dst) {
			w := lay.Weights[i]
			return fmt.Errorf("weight %s has %d elements, want [%d, %d]", w.Name, len(weights[i]), w.Rows, w.Cols)
		}
		copy(dst, weights[i])
		return nil
	})
}

// align is the alignment of every buffer in the mappings (a cache line,
// and more than a vector load needs); pad is the slack after each, in
// elements, so an 8-lane access at a buffer's end stays inside the mapping.
const (
	align = 64
	pad   = 16
)

// region lays buffers out in one mapping.
type region struct{ size int }

func (r *region) take(bytes int) int {
	off := (r.size + align - 1) / align * align
	r.size = off + bytes
	return off
}

func mapAnon(size int) ([]byte, error) {
	size = max(size, 1)
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("mapping %d bytes: %w", size, err)
	}
	return mem, nil
}

func floats(mem []byte, off, n int) []float32 {
	return unsafe.Slice((*float32)(unsafe.Pointer(&mem[off])), n)
}

func addr(mem []byte, off int) uintptr { return uintptr(unsafe.Pointer(&mem[off])) }

// ptrAt converts an address the dynamic loader returned (memory of the
// shared object, not of the Go heap).
func ptrAt[T any](a uintptr) *T { return (*T)(*(*unsafe.Pointer)(unsafe.Pointer(&a))) }

// load loads lib with weight i in place at view(i), when view is not nil
// and that is not 0, or else copied by fill into the program's weight
// mapping.
func load(lib string, lay *artifact.Layout, par runtime.Parallel, view func(i int) uintptr, fill func(i int, dst []float32) error) (p *Program, err error) {
	if lay.ABI < artifact.MinABIVersion || lay.ABI > artifact.ABIVersion {
		return nil, fmt.Errorf("native ABI version %d, this llmrun loads versions %d to %d: compile the artifact again", lay.ABI, artifact.MinABIVersion, artifact.ABIVersion)
	}
	if err := lay.CheckStates(); err != nil {
		return nil, err
	}
	threads, err := teamSize(par)
	if err != nil {
		return nil, err
	}
	if lay.GOARCH != "" && lay.GOARCH != goruntime.GOARCH {
		return nil, fmt.Errorf("the native code is for %s (%s), this machine is %s", lay.GOARCH, lay.Triple, goruntime.GOARCH)
	}
	mode := os.Getenv(TeamEnv)
	switch mode {
	case "":
		mode = TeamAdapt
	case TeamAdapt, TeamAlways, TeamNever:
	default:
		return nil, fmt.Errorf("%s=%q: want %s, %s or %s", TeamEnv, mode, TeamAdapt, TeamAlways, TeamNever)
	}
	p = &Program{lay: lay, par: par, entries: map[string]*entry{}, threads: threads, mode: mode}
	prog := p // the returns below set p to nil
	defer func() {
		if err != nil {
			prog.Close()
		}
	}()

	// Weights: in place where they can be, the rest copied into a
	// mapping that is read-only once filled.
	var wr region
	woff := make([]int, len(lay.Weights))
	wptr := make([]uintptr, len(lay.Weights))
	p.wptrs = wptr
	p.inPlace = make([]bool, len(lay.Weights))
	for i, w := range lay.Weights {
		if w.Rows < 0 || w.Cols < 0 {
			return nil, fmt.Errorf("weight %s has shape [%d, %d]", w.Name, w.Rows, w.Cols)
		}
		if view != nil {
			if wptr[i] = view(i); wptr[i] != 0 {
				p.inPlace[i] = true
				continue
			}
		}
		if w.Stored() {
			woff[i] = wr.take(w.Bytes() + 4*pad)
			continue
		}
		woff[i] = wr.take(w.ElemBytes() * (w.Rows*w.Cols + pad))
	}
	if p.weights, err = mapAnon(wr.size); err != nil {
		return nil, err
	}
	adviseHugePages(p.weights)
	if err := runtime.FillAll(lay.Weights, p.inPlace, func(i int) error {
		w := &lay.Weights[i]
		n := w.Rows * w.Cols
		if w.BF16 {
			n = (n + 1) / 2 // the fill function sees the bytes as float32 words
		}
		if w.Stored() {
			n = (w.Bytes() + 3) / 4
		}
		return fill(i, floats(p.weights, woff[i], n))
	}); err != nil {
		return nil, err
	}
	for i := range lay.Weights {
		if !p.inPlace[i] {
			wptr[i] = addr(p.weights, woff[i])
		}
	}
	if err := syscall.Mprotect(p.weights, syscall.PROT_READ); err != nil {
		return nil, fmt.Errorf("protecting the weights: %w", err)
	}

	// Everything else the kernels touch.
	nplan := 1
	for _, e := range lay.Entries {
		nplan = max(nplan, 2*len(e.Phases)+1)
	}
	var r region
	ctxOff := r.take(8 * artifact.CtxWords)
	wptrOff := r.take(8 * len(lay.Weights))
	sptrOff := r.take(8 * len(lay.States))
	planOff := r.take(8 * nplan)
	tokOff := r.take(4 * (lay.Tokens + pad))
	arenaOff := r.take(4 * (lay.Arena + pad))
	scratchOff := r.take(4 * (lay.Scratch + pad))
	soff := make([]int, len(lay.States))
	for i, s := range lay.States {
		soff[i] = r.take(s.ElemBytes() * (s.Elems() + pad)) // 2 bytes an element for an f16 or bf16 cache
	}
	if p.work, err = mapAnon(r.size); err != nil {
		return nil, err
	}
	w := p.work
	p.words = unsafe.Slice((*int64)(unsafe.Pointer(&w[ctxOff])), artifact.CtxWords)
	p.plan = unsafe.Slice((*int64)(unsafe.Pointer(&w[planOff])), nplan)
	p.planPtr = addr(w, planOff)
	p.tokens = unsafe.Slice((*int32)(unsafe.Pointer(&w[tokOff])), lay.Tokens)
	p.arena = floats(w, arenaOff, lay.Arena)
	p.ctx = addr(w, ctxOff)
	p.words[artifact.CtxArena] = int64(addr(w, arenaOff))
	p.words[artifact.CtxScratch] = int64(addr(w, scratchOff))
	p.words[artifact.CtxTokens] = int64(addr(w, tokOff))
	p.words[artifact.CtxWeights] = int64(addr(w, wptrOff))
	p.words[artifact.CtxStates] = int64(addr(w, sptrOff))
	wptrs := unsafe.Slice((*int64)(unsafe.Pointer(&w[wptrOff])), len(lay.Weights))
	for i := range lay.Weights {
		wptrs[i] = int64(wptr[i])
	}
	sptrs := unsafe.Slice((*int64)(unsafe.Pointer(&w[sptrOff])), len(lay.States))
	for i := range lay.States {
		sptrs[i] = int64(addr(w, soff[i]))
	}

	// The code.
	abs, err := filepath.Abs(lib)
	if err != nil {
		return nil, err
	}
	if p.lib, err = purego.Dlopen(abs, purego.RTLD_NOW|purego.RTLD_LOCAL); err != nil {
		return nil, fmt.Errorf("loading %s: %w", abs, err)
	}
	sym := func(name string) (uintptr, error) {
		a, err := purego.Dlsym(p.lib, name)
		if err != nil || a == 0 {
			return 0, fmt.Errorf("%s has no symbol %s (%v): it is not the shared object of this artifact; compile the artifact again", abs, name, err)
		}
		return a, nil
	}
	a, err := sym(artifact.SymABI)
	if err != nil {
		return nil, err
	}
	if v := *ptrAt[int64](a); v != int64(lay.ABI) {
		return nil, fmt.Errorf("%s has native ABI version %d, its %s version %d: compile the artifact again", abs, v, artifact.LayoutName, lay.ABI)
	}
	if a, err = sym(artifact.SymBuildID); err != nil {
		return nil, err
	}
	if id := cString(a, len(lay.BuildID)+1); id != lay.BuildID {
		return nil, fmt.Errorf("%s is from build %q, the artifact from build %q: compile the artifact again", abs, id, lay.BuildID)
	}
	for i := range lay.Entries {
		e := &lay.Entries[i]
		pe := &entry{e: e, size: 1}
		for _, d := range e.OutShape {
			pe.size *= d
		}
		if pe.plan, err = sym(e.Plan); err != nil {
			return nil, err
		}
		if lay.ABI >= 2 {
			if e.Step == "" {
				return nil, fmt.Errorf("%s names no step function for entry point %s", artifact.LayoutName, e.Name)
			}
			if pe.step, err = sym(e.Step); err != nil {
				return nil, err
			}
		}
		for _, ph := range e.Phases {
			fn, err := sym(ph.Symbol)
			if err != nil {
				return nil, err
			}
			ctx := p.ctx
			pe.phases = append(pe.phases, phase{fn: fn, parallel: ph.Parallel, chunk: func(lo, hi int) {
				purego.SyscallN(fn, ctx, uintptr(lo), uintptr(hi))
			}})
		}
		p.entries[e.Name] = pe
	}
	if lay.ABI >= 2 {
		start, err := sym(artifact.SymThreadsStart)
		if err != nil {
			return nil, err
		}
		if p.stop, err = sym(artifact.SymThreadsStop); err != nil {
			return nil, err
		}
		if threads > 1 {
			team, _, _ := purego.SyscallN(start, uintptr(threads))
			if team == 0 {
				return nil, fmt.Errorf("%s could not start %d threads (out of memory or threads)", abs, threads)
			}
			p.team = team
			p.words[artifact.CtxTeam] = int64(team)
		}
	}
	return p, nil
}

// teamSize is how many threads a step runs on: par's Threads(), or 1
// without a par.
func teamSize(par runtime.Parallel) (int, error) {
	if par == nil {
		return 1, nil
	}
	t, ok := par.(interface{ Threads() int })
	if !ok {
		return 0, fmt.Errorf("native code starts its own threads, as many as the runtime.Parallel's Threads(), which %T does not have", par)
	}
	return max(1, t.Threads()), nil
}

// Threads is how many threads a step runs on, the caller's included.
func (p *Program) Threads() int { return p.threads }

// States are the KV cache states the program allocated, as its layout
// describes them (Dtype: the format of their elements).
func (p *Program) States() []artifact.State { return p.lay.States }

// cString reads a NUL-terminated string of at most limit bytes at a.
func cString(a uintptr, limit int) string {
	var b []byte
	for i := 0; i < limit; i++ {
		c := *ptrAt[byte](a + uintptr(i))
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// Run executes entry point name on tokens at positions pos, pos+1, ...
// of slot 0.
func (p *Program) Run(name string, tokens []int32, pos int) ([]float32, []int, error) {
	return p.RunRows(name, tokens, artifact.Consecutive(pos, len(tokens)), nil)
}

// Slots is how many sequences the program's KV cache holds.
func (p *Program) Slots() int { return max(1, p.lay.Slots) }

// RunRows executes entry point name on tokens, token i at positions[i] in
// slot slots[i] (nil: every row in slot 0).
func (p *Program) RunRows(name string, tokens, positions, slots []int32) ([]float32, []int, error) {
	if p.lib == 0 {
		return nil, nil, fmt.Errorf("native program is closed")
	}
	e, ok := p.entries[name]
	if !ok {
		return nil, nil, fmt.Errorf("no entry point %q", name)
	}
	n := len(tokens)
	if n == 0 || n > e.e.Seq {
		return nil, nil, fmt.Errorf("entry point %s takes 1 to %d tokens, got %d", name, e.e.Seq, n)
	}
	if len(positions) != n || (slots != nil && len(slots) != n) {
		return nil, nil, fmt.Errorf("entry point %s: %d tokens, %d positions, %d slots", name, n, len(positions), len(slots))
	}
	// The kernels index the cache and the embeddings unchecked.
	for i, t := range tokens {
		if t < 0 || (p.lay.Vocab > 0 && int(t) >= p.lay.Vocab) {
			return nil, nil, fmt.Errorf("token %d (at %d) is outside the vocabulary of %d", t, i, p.lay.Vocab)
		}
		if pos := positions[i]; pos < 0 || (p.lay.MaxSeq > 0 && int(pos) >= p.lay.MaxSeq) {
			return nil, nil, fmt.Errorf("position %d (at %d) is outside the KV cache's %d", pos, i, p.lay.MaxSeq)
		}
		if slots != nil && (slots[i] < 0 || int(slots[i]) >= p.Slots()) {
			return nil, nil, fmt.Errorf("slot %d (at %d) is outside the program's %d", slots[i], i, p.Slots())
		}
	}
	if p.lay.ABI < 3 {
		// Token ids only, at consecutive positions of slot 0.
		for i := range positions {
			if positions[i] != positions[0]+int32(i) || (slots != nil && slots[i] != 0) {
				return nil, nil, fmt.Errorf("native ABI version %d runs one sequence at consecutive positions: compile the artifact again", p.lay.ABI)
			}
		}
		copy(p.tokens, tokens)
		clear(p.tokens[n:])
		p.words[artifact.CtxPos], p.words[artifact.CtxLen] = int64(positions[0]), int64(n)
	} else {
		if rows := artifact.RowFields * e.e.Seq; len(p.tokens) < rows {
			// Before the outputs field (a layout of ABI 3 has no room
			// for it; none of its entry points reads it).
			buf := make([]int32, rows)
			artifact.FillRows(buf, e.e.Seq, tokens, positions, slots)
			copy(p.tokens, buf[:artifact.RowOutputs*e.e.Seq])
		} else {
			artifact.FillRows(p.tokens, e.e.Seq, tokens, positions, slots)
		}
		p.words[artifact.CtxPos], p.words[artifact.CtxLen] = int64(slices.Max(positions)), int64(n)
	}
	if e.step != 0 {
		p.step(e, n)
	} else {
		p.runPhases(e)
	}
	off := int(p.plan[2*len(e.phases)])
	if off < 0 || off+e.size > len(p.arena) {
		return nil, nil, fmt.Errorf("entry point %s: output at %d+%d is outside the arena of %d", name, off, e.size, len(p.arena))
	}
	out := make([]float32, e.size)
	copy(out, p.arena[off:off+e.size])
	return out, slices.Clone(e.e.OutShape), nil
}

// step calls e's step function, on the team or on this thread alone as
// p.mode and e's chooser say.
func (p *Program) step(e *entry, rows int) {
	alone := false
	switch {
	case p.team == 0:
	case p.mode == TeamNever:
		alone = true
	case p.mode != TeamAlways:
		alone = e.team.nextAlone()
	}
	if alone {
		p.words[artifact.CtxTeam] = 0
	}
	start := time.Now()
	purego.SyscallN(e.step, p.ctx, p.planPtr)
	d := time.Since(start)
	if alone {
		p.words[artifact.CtxTeam] = int64(p.team)
	}
	if p.team != 0 && p.mode == TeamAdapt {
		e.team.observe(alone, d, rows)
	}
}

// runPhases runs a step of ABI 1: the plan, then each phase, the parallel
// ones split across the runtime.Parallel.
func (p *Program) runPhases(e *entry) {
	purego.SyscallN(e.plan, p.ctx, p.planPtr)
	for i, ph := range e.phases {
		if !ph.parallel {
			purego.SyscallN(ph.fn, p.ctx, 0, 1)
			continue
		}
		cnt, work := int(p.plan[2*i]), int(p.plan[2*i+1])
		if cnt < 2 || work < ParallelMinWork || p.par == nil {
			if cnt > 0 {
				purego.SyscallN(ph.fn, p.ctx, 0, uintptr(cnt))
			}
			continue
		}
		p.par.ParallelFor(cnt, ph.chunk)
	}
}

// Close unloads the shared object and unmaps the program's memory. The
// Program must not be running.
func (p *Program) Close() error {
	var first error
	if p.team != 0 {
		purego.SyscallN(p.stop, p.team)
		p.team = 0
		p.words[artifact.CtxTeam] = 0
	}
	if p.lib != 0 {
		if err := purego.Dlclose(p.lib); err != nil {
			first = err
		}
		p.lib = 0
	}
	for _, m := range []*[]byte{&p.work, &p.weights} {
		if *m != nil {
			if err := syscall.Munmap(*m); err != nil && first == nil {
				first = err
			}
			*m = nil
		}
	}
	p.words, p.plan, p.tokens, p.arena = nil, nil, nil, nil
	return first
}
