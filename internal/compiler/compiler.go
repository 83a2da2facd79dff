// Package compiler drives llmc compile: it builds a model's entry points,
// runs the pass pipeline on each and writes the artifact.
package compiler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/sysmem"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/wformat"
)

// DefaultPrefillChunk is the prefill entry point's token count when not set.
// A prefill chunk reads every weight once, so a long prompt in short chunks
// streams the weights from memory once per chunk; 128 rows keep the matmuls
// compute-bound (AMD EPYC Zen 4, 2 threads, stories110M shape F32, a
// 256-token prompt: 16 rows 400, 64 rows 691, 128 rows 745, 256 rows 659
// tok/s). The kernels compute only a chunk's real rows, so short prompts do
// not pay for the padding.
const DefaultPrefillChunk = 128

// InterpPrefillChunk is the interp backend's default chunk: the
// interpreter computes every row of a chunk, padding included, so a long
// chunk would make short prompts slow.
const InterpPrefillChunk = 16

// PrefillChunkHelp says what --prefill-chunk defaults to.
func PrefillChunkHelp() string {
	return fmt.Sprintf("tokens per call of the prefill entry point (default %d, or %d for the interp backend, which computes a chunk's padding too)", DefaultPrefillChunk, InterpPrefillChunk)
}

// DefaultMaxSeq caps the static KV cache when --max-seq is not given. A
// static cache is allocated in full when the artifact loads, and models
// allow far more positions than a session on a CPU uses (Llama 3.1 allows
// 131072); 4096 is llama.cpp's default context too.
const DefaultMaxSeq = 4096

// MaxSlots bounds --slots: the batched entry point's rows.
const MaxSlots = 256

// Options configure a compilation.
type Options struct {
	MaxSeq       int // 0: the model's max_position_embeddings, at most DefaultMaxSeq
	KV           passes.KVMode
	PrefillChunk int // 0: DefaultPrefillChunk, InterpPrefillChunk for interp (capped at MaxSeq)
	// Slots is how many sequences the static KV cache holds, each with
	// MaxSeq positions (0 means 1); with more than one, the program gets
	// an entry point that steps them all at once (a server's slots).
	Slots int
	// Backend names the target (see Targets); "" takes the fastest this
	// machine can build (DefaultTarget with Tools).
	Backend string
	// Tools tells which targets this machine can build, for Backend "":
	// nil is HostTools.
	Tools  Availability
	Passes passes.Options
	// PrintAfter names graph passes (passed on to Passes.PrintAfter) and
	// printing stages (see Stages) after which to print to Passes.Log.
	// Passes.PrintAfterAll prints after every pass and after lower.
	PrintAfter []string
	EmitDot    bool
	EmitKIR    bool // write the kernel IR as program.kir
	// EmitLLVM writes the kernels as an LLVM module, model.ll, whatever
	// the backend (the llvm backend always does).
	EmitLLVM bool
	// Progress, when not nil, receives progress lines.
	Progress io.Writer
	// Source is the llmc module's own sources (llmc.Source), which the go
	// backend builds generated code against when neither $LLMC_SOURCE nor
	// the checkout this binary was built from is there. Nil: no fallback.
	Source fs.FS
	// Weights choose the format weights are stored in (--weights).
	Weights WeightOptions
	// KVDtype is the format the static KV cache stores its elements in
	// (--kv-dtype): f32, f16 or bf16, or "" for the default, f16 beside
	// block-format weights where the backend stores it and f32 otherwise
	// (see kvFormat). Compute stays float32: the kernels round keys and
	// values as they write them and widen them as they read them.
	KVDtype string
}

// Result is what Compile did.
type Result struct {
	// KV describes the KV cache the artifact allocates, for --stats:
	// after the graph passes, the bytes the states take as compiled.
	KV string
	// KVBytes is the bytes of that cache (all slots), 0 for a dynamic one.
	KVBytes int64
	// Backend is the target compiled for and why it was chosen, for
	// --stats: "backend llvm (the fastest backend this machine can
	// build)", "backend go (--backend)".
	Backend  string
	Manifest *artifact.Manifest
	Reports  []*passes.Report
	Graphs   []*ir.Graph
	// Stages are the compile stages in order, with their times.
	Stages []StageStat
	// Quant is what the quantize stage did per tensor class (--stats).
	Quant []QuantStat
}

// Compile compiles the model in modelDir into an artifact folder outDir.
func Compile(modelDir, outDir string, o Options) (*Result, error) {
	return CompileContext(context.Background(), modelDir, outDir, o)
}

// CompileContext is Compile stopped when ctx is done: between its stages
// and steps, and by killing the tools a backend runs (go build, opt, llc,
// cc). It then leaves outDir as it was, removes its temporary folder and
// returns an error wrapping context.Cause(ctx).
func CompileContext(ctx context.Context, modelDir, outDir string, o Options) (*Result, error) {
	res, err := compile(ctx, modelDir, outDir, o)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("compiling %s into %s: %w", modelDir, outDir, context.Cause(ctx))
	}
	return res, err
}

func compile(ctx context.Context, modelDir, outDir string, o Options) (*Result, error) {
	m, err := hf.Open(modelDir)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	c, err := setup(m, modelDir, outDir, o)
	if err != nil {
		return nil, err
	}
	if err := c.run(ctx); err != nil {
		return nil, err
	}
	c.res.Manifest = c.man
	return c.res, nil
}

// setup checks o against the model and the target and returns the
// compilation the stages run.
func setup(m *hf.Model, modelDir, outDir string, o Options) (*compilation, error) {
	cfg := m.Config
	if o.KV == "" {
		o.KV = passes.Static
	}
	var t *Target
	var err error
	why := "--backend"
	if o.Backend == "" {
		tools := o.Tools
		if tools == nil {
			tools = HostTools
		}
		t, why, err = DefaultTarget(o.KV, tools)
	} else {
		t, err = LookupTarget(o.Backend)
	}
	if err != nil {
		return nil, err
	}
	o.Backend = t.Name
	backend := fmt.Sprintf("backend %s (%s)", t.Name, why)
	progress(o.Progress, "%s", backend)
	defaulted := o.MaxSeq == 0
	if defaulted {
		o.MaxSeq = min(cfg.MaxPositions, DefaultMaxSeq)
	}
	if o.MaxSeq < 0 || o.MaxSeq > cfg.MaxPositions {
		return nil, passes.OptionErrorf("--max-seq %d is outside 1..%d (the model's max_position_embeddings in %s)", o.MaxSeq, cfg.MaxPositions, cfg.Path)
	}
	if o.Slots < 0 || o.Slots > MaxSlots {
		return nil, passes.OptionErrorf("--slots %d is outside 1..%d", o.Slots, MaxSlots)
	}
	o.Slots = max(o.Slots, 1)
	if o.Slots > 1 && (o.KV != passes.Static || !t.Lowers) {
		return nil, passes.OptionErrorf("--slots %d needs a static KV cache and a backend that compiles kernels (go or llvm): backend %s with a %s cache runs one sequence per program", o.Slots, t.Name, o.KV)
	}
	if o.PrefillChunk < 0 {
		return nil, passes.OptionErrorf("--prefill-chunk %d must be positive", o.PrefillChunk)
	}
	if o.PrefillChunk == 0 {
		o.PrefillChunk = DefaultPrefillChunk
		if !t.Lowers {
			o.PrefillChunk = InterpPrefillChunk
		}
	}
	o.PrefillChunk = min(o.PrefillChunk, o.MaxSeq)
	wf, err := weightFormat(o.Weights.Format, t)
	if err != nil {
		return nil, err
	}
	if err := blockOnly(o.Weights, wf, o.Weights.Format == ""); err != nil {
		return nil, err
	}
	kvf, err := kvFormat(o.KVDtype, o.KV, t, wf)
	if err != nil {
		return nil, err
	}
	kv, kvBytes, err := planKV(cfg, &o, kvf, defaulted)
	if err != nil {
		return nil, err
	}
	progress(o.Progress, "%s", kv)
	o.Passes.KV, o.Passes.MaxSeq, o.Passes.MaxTokens, o.Passes.KVFormat = o.KV, o.MaxSeq, o.PrefillChunk, kvf
	printStages, err := splitPrintAfter(&o)
	if err != nil {
		return nil, err
	}
	lower := t.Lowers || o.EmitKIR || o.EmitLLVM || printStages[StageLower] || printStages[StageKIRPasses]
	for _, n := range t.RequiredPasses() {
		o.Passes.Needs = append(o.Passes.Needs, passes.Need{Pass: n.Pass, By: "--backend " + t.Name, Why: n.Why})
	}
	if by := lowerFor(&o, printStages); !t.Lowers && by != "" {
		for _, n := range loweringNeeds() {
			o.Passes.Needs = append(o.Passes.Needs, passes.Need{Pass: n.Pass, By: by, Why: n.Why})
		}
	}
	if err := passes.CheckOptions(&o.Passes); err != nil {
		return nil, err
	}
	c := &compilation{o: o, target: t, model: m, modelDir: modelDir, outDir: outDir, weights: wf, kv: kvf, maxSeqDefaulted: defaulted,
		res: &Result{KV: kv, KVBytes: kvBytes, Backend: backend}, print: printStages, lower: lower}

	c.specs = []entrySpec{{name: artifact.EntryDecode, seq: 1}, {name: artifact.EntryPrefill, seq: o.PrefillChunk},
		{name: artifact.EntryPrefillAll, seq: o.PrefillChunk, all: true}}
	if o.Slots > 1 {
		// A decode step of every slot, and a longer one that also carries
		// a piece of another slot's prefill: a step computes all its
		// rows, so pure decode steps keep to the short one.
		c.specs = append(c.specs,
			entrySpec{name: artifact.EntryDecodeBatch, seq: o.Slots, all: true, batch: true},
			entrySpec{name: artifact.EntryPrefillBatch, seq: o.Slots + o.PrefillChunk, batch: true, runs: o.Slots})
	}
	if o.KV == passes.Dynamic {
		c.specs = []entrySpec{{name: artifact.EntryForward}, {name: artifact.EntryForwardAll, all: true}}
	}
	c.man = &artifact.Manifest{
		Format: artifact.Format, Version: artifact.VersionFor(kvf), Created: time.Now().UTC(),
		KV: string(o.KV), MaxSeq: o.MaxSeq, Backend: t.Name, IR: artifact.IRName, KVDtype: kvf,
	}
	if o.KV == passes.Static {
		c.man.PrefillChunk = o.PrefillChunk
	}
	if o.Slots > 1 {
		c.man.Slots = o.Slots
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	c.man.BuildID = hex.EncodeToString(id[:])
	if t.StaticKV && o.KV != passes.Static {
		return nil, passes.OptionErrorf("--backend %s needs a static KV cache (--kv static): generated kernels are specialised to constant shapes", t.Name)
	}
	return c, nil
}

// kvFormat resolves --kv-dtype for a cache of mode kv on target t, beside
// weights stored as w. Unset, the cache is f32, except beside block-format
// weights in a static cache on a target that stores f16: there it is f16,
// llama.cpp's default cache type. The weights' own rounding moves the
// results 25 times more than an f16 cache does (stories260K's NLL: Q8_0
// +0.15%, an f16 cache +0.006%), and at long contexts a float32 cache is
// about as many bytes a step as 4-bit weights.
func kvFormat(name string, kv passes.KVMode, t *Target, w wformat.Format) (wformat.Format, error) {
	if name == "" {
		if w.Blocked() && kv == passes.Static && t.StoresKV(wformat.F16) {
			return wformat.F16, nil
		}
		return wformat.F32, nil
	}
	f, err := wformat.ParseKV(name)
	if err != nil {
		return 0, passes.OptionErrorf("--kv-dtype %q: want f32, f16 or bf16", name)
	}
	switch {
	case f == wformat.F32:
	case kv != passes.Static:
		return 0, passes.OptionErrorf("--kv-dtype %s needs a static KV cache (--kv static): a dynamic cache is the interpreter's, which stores float32", f)
	case !t.StoresKV(f):
		return 0, passes.OptionErrorf("--kv-dtype %s: backend %s stores its KV cache in float32 only (backends that store %s: %s)", f, t.Name, f, kvStorers(f))
	}
	return f, nil
}

// weightFormat resolves --weights for target t: f32, bf16 (as stored) or a
// block format the target loads.
func weightFormat(name string, t *Target) (wformat.Format, error) {
	if name == "" {
		return wformat.BF16, nil
	}
	f, err := wformat.Parse(name)
	if err != nil {
		return 0, passes.OptionErrorf("--weights %q: want f32, bf16, f16, q8_0, q4_0 or q4_k", name)
	}
	if f.Converted() && !t.Loads(ir.WeightDType(f)) {
		return 0, passes.OptionErrorf("--weights %s: backend %s does not load %s weights yet (backends that do: %s)", f, t.Name, f, loadersOf(ir.WeightDType(f)))
	}
	return f, nil
}

// blockOnly refuses the --weights options that only a block format uses
// when the weights are stored as f (f32, bf16, f16; defaulted when no
// --weights was given), rather than ignore them.
func blockOnly(w WeightOptions, f wformat.Format, defaulted bool) error {
	if f.Blocked() {
		return nil
	}
	what := "the weights are " + f.String()
	if defaulted {
		what = "without --weights the weights stay as the checkpoint stores them"
	}
	for _, flag := range []struct {
		set  bool
		name string
	}{{w.KeepEmbeddings, "--keep-embeddings"}, {w.KeepOutput, "--keep-output"}, {w.FloatDot, "--float-dot"}} {
		if flag.set {
			return passes.OptionErrorf("%s applies to block formats (--weights q8_0, q4_0 or q4_k), and %s", flag.name, what)
		}
	}
	return nil
}

// copiedFiles are the model's small files an artifact carries, so that it
// runs (and tokenizes) without reading them from the model folder.
var copiedFiles = []string{
	"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
	"special_tokens_map.json", "chat_template.jinja",
}

// describeGraph adds g's kernels, buffer plan and weights to the manifest.
func describeGraph(man *artifact.Manifest, g *ir.Graph) {
	plan := artifact.EntryPlan{Entry: g.Name}
	for _, n := range g.Nodes {
		if n.Op != ir.OpKernel {
			continue
		}
		k := artifact.Kernel{Entry: g.Name, Kind: n.StringAttr("name")}
		if n.Result != nil {
			k.Value = n.Result.Ref()
		}
		for _, b := range n.Body.Nodes {
			k.Ops = append(k.Ops, b.Op.String())
		}
		man.Kernels = append(man.Kernels, k)
		if off := n.IntAttr("offset"); off >= 0 && n.Result != nil {
			size := 4
			for _, d := range n.Result.Type.Shape {
				size *= d.N
			}
			plan.Buffers = append(plan.Buffers, artifact.Buffer{Value: n.Result.Ref(), Offset: off, Bytes: size})
			plan.ArenaBytes = max(plan.ArenaBytes, off+size)
		}
	}
	man.BufferPlan = append(man.BufferPlan, plan)
	seen := map[string]bool{}
	for _, w := range man.Weights {
		seen[w] = true
	}
	for _, d := range man.Derived {
		seen["derived:"+d.Name] = true
	}
	for _, w := range g.Weights {
		if w.Derive != nil {
			if !seen["derived:"+w.Name] {
				info := artifact.DerivedInfo{Name: w.Name, Op: w.Derive.Op}
				for _, a := range w.Derive.Args {
					info.Args = append(info.Args, a.Name)
				}
				man.Derived = append(man.Derived, info)
				seen["derived:"+w.Name] = true
			}
			continue
		}
		if !seen[w.Name] {
			man.Weights = append(man.Weights, w.Name)
			seen[w.Name] = true
		}
	}
	sort.Strings(man.Weights)
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "llmc: "+format+"\n", args...)
	}
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// planKV describes the KV cache of a compilation and refuses one that does
// not fit in this machine's memory: a static cache is allocated in full
// when the artifact loads.
//
// The size is the cache as compiled (hf.Config.StaticKVBytes: sliding-window
// layers keep window + chunk - 1 rows) at the bytes of format f, for the
// resolved options o; describeKV words it again from the states once the
// passes have shaped them.
func planKV(cfg *hf.Config, o *Options, f wformat.Format, defaulted bool) (string, int64, error) {
	if o.KV != passes.Static {
		return fmt.Sprintf("dynamic KV cache: grows with the sequence, up to %d positions", o.MaxSeq), 0, nil
	}
	bytes := cfg.StaticKVBytes(o.MaxSeq, o.PrefillChunk, f.BlockBytes()) * int64(o.Slots)
	desc := describeKV(cfg, o, f, bytes, defaulted)
	what := fmt.Sprintf("the static KV cache for %d positions (llmc kv %s --max-seq %d --dtype %s)", o.MaxSeq, filepath.Dir(cfg.Path), o.MaxSeq, f)
	fix := "pass a smaller --max-seq"
	if o.Slots > 1 {
		what = fmt.Sprintf("the static KV cache for --slots %d of %d positions (%s a slot: llmc kv %s --max-seq %d --dtype %s)",
			o.Slots, o.MaxSeq, sysmem.Human(bytes/int64(o.Slots)), filepath.Dir(cfg.Path), o.MaxSeq, f)
		fix = "pass fewer --slots or a smaller --max-seq"
	}
	if f == wformat.F32 {
		fix += ", or --kv-dtype f16 or bf16 to halve it"
	}
	if err := sysmem.Check(bytes, what, fix); err != nil {
		return "", 0, err
	}
	return desc, bytes, nil
}

// describeKV is the --stats line of a static KV cache of bytes bytes,
// stored as f, for the resolved options o; defaulted says --max-seq was not
// given.
func describeKV(cfg *hf.Config, o *Options, f wformat.Format, bytes int64, defaulted bool) string {
	maxSeq := o.MaxSeq
	desc := fmt.Sprintf("static KV cache: %d positions, %s", maxSeq, sysmem.Human(bytes))
	if o.Slots > 1 {
		desc = fmt.Sprintf("static KV cache: %d slots of %d positions, %s", o.Slots, maxSeq, sysmem.Human(bytes))
	}
	switch {
	case f != wformat.F32 && o.KVDtype == "":
		desc += fmt.Sprintf(" stored as %s (the default beside block-format weights; computed in f32; --kv-dtype f32 to keep float32)", f)
	case f != wformat.F32:
		desc += fmt.Sprintf(" stored as %s (--kv-dtype; computed in f32)", f)
	}
	if defaulted && maxSeq < cfg.MaxPositions {
		desc += fmt.Sprintf(" (default; the model allows %d: --max-seq N to change)", cfg.MaxPositions)
	}
	return desc
}
