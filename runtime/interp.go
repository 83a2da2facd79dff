// Package runtime runs llmc graphs: an interpreter with generic Go kernels,
// the KV cache, and the generation loop shared by every way of running a
// model.
package runtime

import (
	"errors"
	"fmt"

	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/wformat"
)

// WeightSource supplies weights by tensor name, converted to float32.
type WeightSource interface {
	// Float32 returns the named tensor's elements in row-major order and
	// its shape. The slice may alias read-only memory: callers must not
	// write to it.
	Float32(name string) ([]float32, []int, error)
}

// The graph inputs every entry point takes.
const (
	InputTokens = "tokens" // i32[seq]: the new tokens
	InputPos    = "pos"    // i32[]: how many tokens the cache already holds
	// InputLen (i32[]), taken by entry points compiled for a fixed number
	// of tokens, is how many of them are real: the rest is padding.
	InputLen = "len"
)

// Program interprets one or more entry-point graphs that share weights and
// state (the KV cache), one node at a time.
type Program struct {
	entries map[string]*entry
	weights map[string][]float32
	// halves are the weights kept in bfloat16 (their bits), as a BF16
	// checkpoint stores them: the matrices of linear and embedding ops,
	// the only ones with bfloat16 kernels, which widen them as they read.
	halves map[string][]uint16
	// wide names the weights some other op reads: they are float32.
	wide   map[string]bool
	states map[string]*stateBuf
	par    Parallel
	// debugNaN checks every op's result (SetDebugNaN); weightNonFinite
	// caches what the check found in each weight ("" for all finite).
	debugNaN        bool
	weightNonFinite map[string]string
}

type tensor struct {
	f     []float32
	h     []uint16 // a bfloat16 weight's bits instead of f (Program.halves)
	shape []int
}

type entry struct {
	g    *ir.Graph
	slot map[*ir.Value]int
	vals []tensor    // per slot, for the current step
	bufs [][]float32 // per slot, reused across steps
	prep map[*ir.Node][]float32
	// arena holds the results of kernels that a memory plan placed (the
	// "offset" attribute, in bytes).
	arena  []float32
	tokens *ir.Value
	pos    *ir.Value
	len    *ir.Value
}

// stateBuf is one state tensor, such as a layer's key cache. A dynamic
// cache ([ctx, ...]) grows as rows are appended; a static one ([N, ...]) is
// allocated once and written in place.
type stateBuf struct {
	name    string
	rowSize int
	static  bool
	maxRows int
	data    []float32
	rows    int // rows that hold data
}

// NewProgram prepares graphs for interpretation. Each graph must verify,
// take %tokens and %pos, and agree with the others on shared weights and
// states. par may be nil (single-threaded).
func NewProgram(graphs []*ir.Graph, ws WeightSource, par Parallel) (*Program, error) {
	if par == nil {
		par = serial{}
	}
	p := &Program{entries: map[string]*entry{}, weights: map[string][]float32{}, halves: map[string][]uint16{},
		wide: map[string]bool{}, states: map[string]*stateBuf{}, par: par, weightNonFinite: map[string]string{}}
	for _, g := range graphs {
		if err := ir.Verify(g); err != nil {
			return nil, err
		}
		g.Walk(func(n *ir.Node) {
			for i, a := range n.Args {
				matrix := (n.Op == ir.OpLinear && i == 1) || (n.Op == ir.OpEmbedding && i == 0)
				if a.Kind == ir.KindWeight && !matrix {
					p.wide[a.Name] = true
				}
			}
		})
	}
	for _, g := range graphs {
		if _, dup := p.entries[g.Name]; dup {
			return nil, fmt.Errorf("two entry points are named %s", g.Name)
		}
		e, err := p.prepare(g, ws)
		if err != nil {
			return nil, fmt.Errorf("graph %s: %w", g.Name, err)
		}
		p.entries[g.Name] = e
	}
	p.dropParts(graphs, ws)
	return p, nil
}

// dropParts forgets the weights that only make up stacked ones (their
// parts, which no op reads), so that a stacked weight is not held twice;
// their memory in ws is released (see Releaser).
func (p *Program) dropParts(graphs []*ir.Graph, ws WeightSource) {
	read := map[string]bool{}
	for _, g := range graphs {
		g.Walk(func(n *ir.Node) {
			for _, a := range n.Args {
				if a.Kind == ir.KindWeight {
					read[a.Name] = true
				}
			}
		})
	}
	r, _ := ws.(Releaser)
	var names []string
	for name := range p.weights {
		names = append(names, name)
	}
	for name := range p.halves {
		names = append(names, name)
	}
	for _, name := range names {
		if read[name] {
			continue
		}
		delete(p.weights, name)
		delete(p.halves, name)
		if r != nil {
			r.Release(name)
		}
	}
}

func (p *Program) prepare(g *ir.Graph, ws WeightSource) (*entry, error) {
	e := &entry{g: g, slot: map[*ir.Value]int{}, prep: map[*ir.Node][]float32{}}
	for _, in := range g.Inputs {
		switch in.Name {
		case InputTokens:
			e.tokens = in
		case InputPos:
			e.pos = in
		case InputLen:
			e.len = in
		default:
			return nil, fmt.Errorf("unknown input %s", in.Ref())
		}
	}
	if e.tokens == nil || e.pos == nil {
		return nil, fmt.Errorf("entry points need inputs %%%s and %%%s", InputTokens, InputPos)
	}
	for _, w := range g.Weights {
		if err := p.loadWeight(w, ws); err != nil {
			return nil, err
		}
	}
	for _, s := range g.States {
		sh := s.Type.Shape
		rowDims, err := sh[1:].Eval(nil)
		if err != nil {
			return nil, fmt.Errorf("state %s: inner dims must be constants: %w", s.Ref(), err)
		}
		rowSize := product(rowDims)
		sb := &stateBuf{name: s.Name, rowSize: rowSize, static: sh[0].IsConst()}
		if sb.static {
			sb.maxRows = sh[0].N
		}
		if old, ok := p.states[s.Name]; ok {
			if old.rowSize != sb.rowSize || old.static != sb.static || old.maxRows != sb.maxRows {
				return nil, fmt.Errorf("state %s differs between entry points", s.Ref())
			}
			continue
		}
		if sb.static {
			sb.data = make([]float32, sb.maxRows*rowSize)
		}
		p.states[s.Name] = sb
	}
	g.Walk(func(n *ir.Node) {
		if n.Result != nil {
			e.slot[n.Result] = len(e.slot)
		}
		if n.Op == ir.OpRoPE {
			e.prep[n] = ir.RoPEFrequencies(n.Args[0].Type.Shape[2].N, n.Attrs)
		}
	})
	arenaBytes := 0
	for _, n := range g.Nodes {
		if n.Op != ir.OpKernel {
			continue
		}
		if off := n.IntAttr("offset"); off >= 0 {
			shape, err := n.Result.Type.Shape.Eval(nil)
			if err != nil {
				return nil, fmt.Errorf("%s: planned buffer with a symbolic shape", n.Result.Ref())
			}
			arenaBytes = max(arenaBytes, off+4*product(shape))
		}
	}
	e.arena = make([]float32, (arenaBytes+3)/4)
	e.vals = make([]tensor, len(e.slot))
	e.bufs = make([][]float32, len(e.slot))
	return e, nil
}

// loadWeight loads weight w (once for all entry points): in bfloat16 when
// ws has it so and only linear and embedding ops read it, otherwise as
// float32. A stacked weight (Derive) is its parts' rows, which are loaded
// before it.
func (p *Program) loadWeight(w *ir.Value, ws WeightSource) error {
	if _, ok := p.weights[w.Name]; ok {
		return nil
	}
	if _, ok := p.halves[w.Name]; ok {
		return nil
	}
	want, _ := w.Type.Shape.Eval(nil)
	if w.Derive != nil {
		// concat: the arguments' rows, stacked; in bfloat16 if all of
		// them are, otherwise widened.
		n, halves := 0, !p.wide[w.Name]
		for _, a := range w.Derive.Args {
			n += len(p.weights[a.Name]) + len(p.halves[a.Name])
			if p.halves[a.Name] == nil {
				halves = false
			}
		}
		if halves {
			data := make([]uint16, 0, n)
			for _, a := range w.Derive.Args {
				data = append(data, p.halves[a.Name]...)
			}
			p.halves[w.Name] = data
			return nil
		}
		data := make([]float32, 0, n)
		for _, a := range w.Derive.Args {
			data = append(data, p.weights[a.Name]...)
			for _, h := range p.halves[a.Name] {
				data = append(data, wformat.BF16ToF32(h))
			}
		}
		p.weights[w.Name] = data
		return nil
	}
	f, _ := w.Type.DType.Format()
	if src, ok := ws.(BF16Source); ok && !p.wide[w.Name] && !f.Blocked() {
		// An error here says only that the tensor is not stored in
		// bfloat16: Float32 below reports anything else.
		if h, err := src.BF16(w.Name); err == nil {
			if len(h) != product(want) {
				return fmt.Errorf("weight %s has %d elements, the graph wants %v", w.Name, len(h), want)
			}
			p.halves[w.Name] = h
			return nil
		}
	}
	data, shape, err := ws.Float32(w.Name)
	if err != nil {
		return err
	}
	if !equalInts(shape, want) {
		return fmt.Errorf("weight %s has shape %v, the graph wants %v", w.Name, shape, want)
	}
	p.weights[w.Name] = data
	return nil
}

// WeightFormats are the formats of the weights the program keeps other
// than in float32, by name: the bfloat16 ones.
func (p *Program) WeightFormats() map[string]wformat.Format {
	fs := make(map[string]wformat.Format, len(p.halves))
	for name := range p.halves {
		fs[name] = wformat.BF16
	}
	return fs
}

// Entry reports whether the program has an entry point of that name.
func (p *Program) Entry(name string) (*ir.Graph, bool) {
	e, ok := p.entries[name]
	if !ok {
		return nil, false
	}
	return e.g, true
}

// Reset empties every state (the KV cache).
func (p *Program) Reset() {
	for _, s := range p.states {
		s.rows = 0
		if !s.static {
			s.data = s.data[:0]
		}
	}
}

// Run executes entry point name on tokens placed at positions pos,
// pos+1, ... and returns a copy of its output and the output's shape. An
// entry point compiled for a fixed number of tokens takes fewer: the rest
// is padded and masked.
func (p *Program) Run(name string, tokens []int32, pos int) ([]float32, []int, error) {
	e, ok := p.entries[name]
	if !ok {
		return nil, nil, fmt.Errorf("no entry point %q", name)
	}
	n := len(tokens)
	if seq := e.tokens.Type.Shape[0]; seq.IsConst() && seq.N != n {
		if e.len == nil || n > seq.N {
			return nil, nil, fmt.Errorf("entry point %s takes %d tokens, got %d", name, seq.N, n)
		}
		padded := make([]int32, seq.N)
		copy(padded, tokens)
		tokens = padded
	}
	env := map[string]int{"seq": len(tokens), "ctx": pos + len(tokens)}
	r := &run{p: p, e: e, env: env, tokens: tokens, pos: pos, n: n}
	if err := r.nodes(e.g.Nodes); err != nil {
		if nf, ok := errors.AsType[*NonFiniteOpError](err); ok {
			nf.Graph = name
			return nil, nil, nf
		}
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	out := r.value(e.g.Outputs[0])
	return append([]float32(nil), out.f...), append([]int(nil), out.shape...), nil
}

type run struct {
	p      *Program
	e      *entry
	env    map[string]int
	tokens []int32
	pos    int
	n      int // real tokens (the rest of tokens is padding)
}

func (r *run) value(v *ir.Value) tensor {
	switch v.Kind {
	case ir.KindWeight:
		shape, _ := v.Type.Shape.Eval(nil)
		return tensor{f: r.p.weights[v.Name], h: r.p.halves[v.Name], shape: shape}
	case ir.KindNode:
		return r.e.vals[r.e.slot[v]]
	}
	return tensor{}
}

// alloc returns the (reused) buffer for node n's result.
func (r *run) alloc(n *ir.Node) (tensor, error) {
	shape, err := n.Result.Type.Shape.Eval(r.env)
	if err != nil {
		return tensor{}, err
	}
	size := product(shape)
	i := r.e.slot[n.Result]
	if cap(r.e.bufs[i]) < size {
		r.e.bufs[i] = make([]float32, size)
	}
	t := tensor{f: r.e.bufs[i][:size], shape: shape}
	r.e.vals[i] = t
	return t, nil
}

func (r *run) nodes(nodes []*ir.Node) error {
	for _, n := range nodes {
		if err := r.node(n); err != nil {
			if nf, ok := errors.AsType[*NonFiniteOpError](err); ok {
				// An op in n's body: say which kernel it is in.
				if nf.Kernel == "" && n.Op == ir.OpKernel {
					nf.Kernel = n.StringAttr("name")
					if n.Result != nil {
						nf.Kernel = n.Result.Ref() + " " + nf.Kernel
					}
				}
				return nf
			}
			return fmt.Errorf("%s: %w", n.LongString(), err)
		}
		if r.p.debugNaN {
			if err := r.checkFinite(n); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *run) node(n *ir.Node) error {
	switch n.Op {
	case ir.OpKernel:
		if err := r.nodes(n.Body.Nodes); err != nil {
			return err
		}
		if n.Result == nil {
			return nil
		}
		res := r.value(n.Body.Outputs[0])
		if off := n.IntAttr("offset"); off >= 0 {
			// The memory plan placed the result in the arena: later
			// kernels read it there, so a wrong plan shows in the numbers.
			if off%4 != 0 {
				return fmt.Errorf("offset %d is not a multiple of 4", off)
			}
			buf := r.e.arena[off/4 : off/4+len(res.f)]
			copy(buf, res.f)
			res = tensor{f: buf, shape: res.shape}
		}
		r.e.vals[r.e.slot[n.Result]] = res
		return nil
	case ir.OpReshape:
		x := r.value(n.Args[0])
		shape, err := n.Result.Type.Shape.Eval(r.env)
		if err != nil {
			return err
		}
		r.e.vals[r.e.slot[n.Result]] = tensor{f: x.f, shape: shape}
		return nil
	case ir.OpKVAppend, ir.OpKVWrite:
		return r.cacheWrite(n)
	}

	out, err := r.alloc(n)
	if err != nil {
		return err
	}
	arg := func(i int) tensor { return r.value(n.Args[i]) }
	switch n.Op {
	case ir.OpEmbedding:
		w := arg(0)
		if w.h != nil {
			return embeddingBF16(out.f, w.h, r.tokensOf(n.Args[1]), w.shape[0], w.shape[1])
		}
		return embedding(out.f, w.f, r.tokensOf(n.Args[1]), w.shape[0], w.shape[1])
	case ir.OpRMSNorm:
		x := arg(0)
		dim := x.shape[len(x.shape)-1]
		rmsNorm(out.f, x.f, arg(1).f, len(x.f)/dim, dim, n.FloatAttr("eps"), n.BoolAttr("unit_offset"))
	case ir.OpLinear:
		x, w := arg(0), arg(1)
		var bias []float32
		if len(n.Args) == 3 {
			bias = arg(2).f
		}
		if w.h != nil {
			linearBF16(r.p.par, out.f, x.f, w.h, bias, x.shape[0], x.shape[1], w.shape[0])
		} else {
			linear(r.p.par, out.f, x.f, w.f, bias, x.shape[0], x.shape[1], w.shape[0])
		}
	case ir.OpRoPE:
		x := arg(0)
		rope(out.f, x.f, r.e.prep[n], x.shape[0], x.shape[1], x.shape[2], r.pos)
	case ir.OpSiLU:
		silu(out.f, arg(0).f)
	case ir.OpGELUTanh:
		geluTanh(out.f, arg(0).f)
	case ir.OpMul:
		mul(out.f, arg(0).f, arg(1).f)
	case ir.OpAdd:
		add(out.f, arg(0).f, arg(1).f)
	case ir.OpScale:
		scale(out.f, arg(0).f, float32(n.FloatAttr("factor")))
	case ir.OpSoftcap:
		softcap(out.f, arg(0).f, n.FloatAttr("cap"))
	case ir.OpLast:
		if n.IntAttr("runs") > 0 {
			return fmt.Errorf("%s: the last rows of a batched step's runs are compiled code's (the interpreter runs one sequence per step)", n.LongString())
		}
		x := arg(0)
		cols, row := x.shape[1], x.shape[0]-1
		if len(n.Args) == 2 {
			row = r.n - 1
		}
		copy(out.f, x.f[row*cols:(row+1)*cols])
	case ir.OpSlice:
		x := arg(0)
		sliceCols(out.f, x.f, x.shape[0], x.shape[1], n.IntAttr("start"), n.IntAttr("len"))
	case ir.OpAttnScores:
		q := arg(0)
		st := n.Args[1].Type.Shape
		kb := r.p.states[n.Args[1].Name]
		rows := out.shape[2]
		if kb.rows < r.pos+r.n {
			return fmt.Errorf("the KV cache holds %d positions, attention needs %d", kb.rows, r.pos+r.n)
		}
		attnScores(r.p.par, out.f, q.f, kb.data, q.shape[0], q.shape[1], st[1].N, q.shape[2], rows, float32(n.FloatAttr("scale")))
	case ir.OpCausalMask:
		x := arg(0)
		causalMask(out.f, x.f, x.shape[0], x.shape[1], x.shape[2], r.pos, n.IntAttr("window"))
	case ir.OpSoftmax:
		x := arg(0)
		softmaxRows(out.f, x.f, x.shape[len(x.shape)-1])
	case ir.OpAttnValues:
		pr := arg(0)
		vb := r.p.states[n.Args[1].Name]
		attnValues(r.p.par, out.f, pr.f, vb.data, pr.shape[0], pr.shape[1], n.Args[1].Type.Shape[1].N, out.shape[2], pr.shape[2])
	case ir.OpAttention:
		return r.attention(n, out)
	default:
		return fmt.Errorf("the interpreter has no kernel for %s", n.Op)
	}
	return nil
}

func (r *run) tokensOf(v *ir.Value) []int32 {
	if v.Kind == ir.KindInput && v.Name == InputTokens {
		return r.tokens
	}
	return nil
}

func (r *run) cacheWrite(n *ir.Node) error {
	sb := r.p.states[n.Args[0].Name]
	x := r.value(n.Args[1])
	rows := min(len(x.f)/sb.rowSize, r.n) // padding rows are not written
	at := r.pos
	ring := 0 // kv_append has no ring
	if n.Op == ir.OpKVWrite {
		ring = n.IntAttr("ring")
	}
	if ring > 0 && sb.static {
		// Position j lives in row j mod ring.
		for i := 0; i < rows; i++ {
			row := (at + i) % ring
			copy(sb.data[row*sb.rowSize:(row+1)*sb.rowSize], x.f[i*sb.rowSize:(i+1)*sb.rowSize])
		}
		sb.rows = max(sb.rows, at+rows)
		return nil
	}
	if sb.static {
		if at+rows > sb.maxRows {
			return fmt.Errorf("the static KV cache holds %d positions; positions %d..%d do not fit", sb.maxRows, at, at+rows-1)
		}
	} else {
		if at > sb.rows {
			return fmt.Errorf("cache %s holds %d positions, cannot append at %d", sb.name, sb.rows, at)
		}
		// Appending at pos drops anything after it (a rewind), then grows.
		sb.data = append(sb.data[:at*sb.rowSize], x.f...)
		sb.rows = at + rows
		return nil
	}
	copy(sb.data[at*sb.rowSize:], x.f[:rows*sb.rowSize])
	sb.rows = max(sb.rows, at+rows)
	return nil
}

func (r *run) attention(n *ir.Node, out tensor) error {
	q := r.value(n.Args[0])
	kb, vb := r.p.states[n.Args[1].Name], r.p.states[n.Args[2].Name]
	seq := q.shape[0]
	if need := r.pos + r.n; kb.rows < need || vb.rows < need {
		return fmt.Errorf("the KV cache holds %d positions, attention needs %d", min(kb.rows, vb.rows), need)
	}
	kvHeads := n.Args[1].Type.Shape[1].N
	attention(r.p.par, out.f, q.f, kb.data, vb.data, attentionParams{
		seq: seq, heads: q.shape[1], kvHeads: kvHeads, dim: q.shape[2], pos: r.pos, valid: r.n,
		scale:   float32(n.FloatAttr("scale")),
		window:  n.IntAttr("window"),
		softcap: n.FloatAttr("softcap"),
		ring:    n.IntAttr("ring"),
	})
	return nil
}

func product(xs []int) int {
	p := 1
	for _, x := range xs {
		p *= x
	}
	return p
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Fork returns a program over the same weights and entry points with
// empty states of its own: another sequence's KV cache. The two share
// their scratch buffers and worker pool, so they must not run at the same
// time.
func (p *Program) Fork() *Program {
	q := *p
	q.states = make(map[string]*stateBuf, len(p.states))
	for name, s := range p.states {
		c := *s
		c.rows = 0
		c.data = nil
		if c.static {
			c.data = make([]float32, len(s.data))
		}
		q.states[name] = &c
	}
	return &q
}
