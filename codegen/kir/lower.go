package kir

import (
	"fmt"
	"math"
	"slices"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/wformat"
)

// Lower turns the optimised entry-point graphs of one model (every
// computing node inside a kernel, memory planned) into a kernel IR
// program. Each op of a kernel body lowers to its own loop nest; ops in one
// kernel share scratch memory instead of the arena, and a residual add or
// bias right after a matmul is folded into the matmul's store.
func Lower(graphs []*ir.Graph) (*Program, error) {
	return LowerWith(graphs, Options{})
}

// Options tune lowering.
type Options struct {
	// MaxSeq, when set, is the most positions a step can see: RoPE's
	// cosines and sines are then baked in as a [MaxSeq, dim/2] table
	// instead of computed each step.
	MaxSeq int
	// KeepBF16 keeps weights that the checkpoint stores in bfloat16 in
	// bfloat16, widened as they are loaded, for backends that can.
	KeepBF16 bool
	// KVFormat is how the KV cache states store their elements (f32, f16
	// or bf16; llmc compile --kv-dtype): loads widen, stores round.
	KVFormat wformat.Format
	// Slots is how many sequences each KV cache state holds (0 means 1):
	// a state of R rows per slot gets Slots·R rows, and each row of a
	// step reads and writes the rows of its own slot (artifact.RowSlots).
	Slots int
	// TileColumns is the most output columns a register tile of a
	// prefill chunk's linear kernel takes (2 when 0): 4 paid with LLVM's
	// code, but the Go compiler spills the sixteen accumulators.
	TileColumns int
	// IntDot lowers block-format linears (Q8_0, Q4_0, Q4_K) to integer dot products (DotI8): the
	// input quantised once per call into int8 blocks of 32 with an f32
	// scale each (StoreI8), as llama.cpp does, instead of each weight
	// widened to float. For backends that print DotI8.
	IntDot bool
	// VNNI says the backend prints DotI8 as VNNI's vpdpbusd, which adds
	// unsigned-by-signed byte products into a register it is given: Q8_0
	// and Q4_0 dots then carry a Bias (DotI8), and prefill tiles multiply
	// the scales of eight blocks at once (see linearQ8Int).
	VNNI bool
	// Wide computes the dot products of float linears (f32, bf16 and f16
	// weights whose rows are a multiple of 16 long) on f32x16 vectors,
	// one AVX-512 register each, for backends that print F32x16 (LLVM on
	// a CPU with AVX-512 F); with VNNI, the prefill tiles' integer dots
	// take two blocks at once (DotI8.Pair: a 512-bit vpdpbusd, AVX-512
	// VNNI's) where a row has an even number of blocks; attention's
	// weighted value sums take sixteen where a head is a multiple of 16.
	// Other kernels keep eight lanes.
	Wide bool
	// BF16Dot lowers the prefill tiles of bf16 linears (rows a multiple
	// of 32 long, more than 8 rows a step) with Wide to DotBF16, AVX-512
	// BF16's vdpbf16ps: the input rounded to bfloat16 once per call
	// (StoreBF16), then 32 multiply-adds an instruction instead of 16,
	// with no widening of the weights. As llama.cpp's BF16 path does, it
	// trades the input's precision (8 significant bits) for speed; decode
	// keeps the f32 input. For backends that print DotBF16.
	BF16Dot bool
}

// LowerWith is Lower with options.
func LowerWith(graphs []*ir.Graph, o Options) (*Program, error) {
	if !slices.Contains(wformat.KVFormats, o.KVFormat) {
		return nil, fmt.Errorf("a KV cache stored as %s: want f32, f16 or bf16", o.KVFormat)
	}
	prog := &Program{}
	if o.Slots > 1 {
		prog.Slots = o.Slots
	}
	l := &lowerer{prog: prog, weights: map[string]int{}, states: map[string]int{}, opts: o, tables: map[string]*Buffer{}}
	l.arena = &Buffer{Name: "arena", Kind: Arena}
	l.scratch = &Buffer{Name: "scratch", Kind: Scratch}
	l.tokens = &Buffer{Name: "tokens", Kind: Tokens}
	for _, g := range graphs {
		if err := l.entry(g); err != nil {
			return nil, fmt.Errorf("lowering %s: %w", g.Name, err)
		}
	}
	for i, w := range l.prog.Weights {
		if w.Interleave != 0 && l.embedded[i] {
			// An embedding lowered after a linear of the same weight
			// would read moved rows.
			return nil, fmt.Errorf("weight %s: an embedding reads it and a linear reads it with interleaved rows", w.Name)
		}
	}
	if err := Verify(l.prog); err != nil {
		return nil, fmt.Errorf("lowering produced invalid kernel IR: %w", err)
	}
	return l.prog, nil
}

// view is a tensor in a buffer: element (i0, i1, ...) is at
// off + Σ i_d × strides[d].
type view struct {
	buf     *Buffer
	off     Expr
	shape   []int
	strides []int
}

func contiguous(b *Buffer, off Expr, shape []int) view {
	strides := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		strides[i] = s
		s *= shape[i]
	}
	return view{buf: b, off: off, shape: shape, strides: strides}
}

func (v view) size() int {
	n := 1
	for _, d := range v.shape {
		n *= d
	}
	return n
}

func (v view) isContiguous() bool {
	s := 1
	for i := len(v.shape) - 1; i >= 0; i-- {
		if v.shape[i] != 1 && v.strides[i] != s {
			return false
		}
		s *= v.shape[i]
	}
	return true
}

// at is the element index of (idx...).
func (v view) at(idx ...Expr) Expr {
	e := v.off
	for d, i := range idx {
		e = IAdd(e, IMul(i, I(v.strides[d])))
	}
	return e
}

// reshape views v with a new shape, when the element order allows it
// without a copy.
func (v view) reshape(shape []int) (view, bool) {
	if v.isContiguous() {
		return contiguous(v.buf, v.off, shape), true
	}
	// Split or merge the innermost dims of a view whose rows are strided
	// but whose last dim is contiguous (a column slice): [r, n] <-> [r, h, d].
	if len(v.shape) == 2 && len(shape) == 3 && v.strides[1] == 1 && shape[0] == v.shape[0] && shape[1]*shape[2] == v.shape[1] {
		return view{buf: v.buf, off: v.off, shape: shape, strides: []int{v.strides[0], shape[2], 1}}, true
	}
	if len(v.shape) == 3 && len(shape) == 2 && v.strides[2] == 1 && v.strides[1] == v.shape[2] && shape[0] == v.shape[0] {
		return view{buf: v.buf, off: v.off, shape: shape, strides: []int{v.strides[0], 1}}, true
	}
	return view{}, false
}

type lowerer struct {
	opts    Options
	tables  map[string]*Buffer // constant tables by content key
	prog    *Program
	weights map[string]int
	states  map[string]int
	arena   *Buffer
	scratch *Buffer
	tokens  *Buffer

	e          *Entry
	views      map[*ir.Value]view
	embedded   map[int]bool // weights an embedding reads, by index
	k          *Kernel
	scratchTop int
	nvar       int
	pos        Expr
	length     Expr // real tokens: Param len, or the constant seq
}

func (l *lowerer) entry(g *ir.Graph) error {
	tok, ok := g.Lookup("%tokens")
	if !ok || !tok.Type.Shape.IsConst() {
		return fmt.Errorf("entry points need a constant-size %%tokens input (compile with a static KV cache)")
	}
	seq := tok.Type.Shape[0].N
	l.e = &Entry{Name: g.Name, Seq: seq}
	l.tokens.Len = max(l.tokens.Len, artifact.RowFields*seq)
	l.views = map[*ir.Value]view{}
	l.pos = Param{Name: "pos"}
	l.length = I(seq)
	if _, ok := g.Lookup("%len"); ok {
		l.e.HasLen = true
		l.length = Param{Name: "len"}
	}
	for _, w := range g.Weights {
		l.weight(w)
	}
	for _, s := range g.States {
		if _, ok := l.states[s.Name]; !ok {
			l.states[s.Name] = len(l.prog.States)
			rows := s.Type.Shape[0].N
			l.prog.States = append(l.prog.States, &StateRef{Name: s.Name, Rows: rows * l.slots(), RowSize: s.Type.Shape[1].N * s.Type.Shape[2].N, Dtype: l.opts.KVFormat})
		}
	}
	for i, n := range g.Nodes {
		switch n.Op {
		case ir.OpReshape:
			src, ok := l.views[n.Args[0]]
			if !ok {
				return fmt.Errorf("%s: reshape of a value without storage", n.LongString())
			}
			v, ok := src.reshape(constShape(n.Result.Type))
			if !ok {
				return fmt.Errorf("%s: cannot view %v as %v", n.LongString(), src.shape, constShape(n.Result.Type))
			}
			l.views[n.Result] = v
		case ir.OpKernel:
			if err := l.kernel(n, i); err != nil {
				return fmt.Errorf("%s: %w", n.LongString(), err)
			}
		default:
			return fmt.Errorf("%s is outside any kernel: the backends lower kernels only (is form-kernels disabled?)", n.LongString())
		}
	}
	out, ok := l.views[g.Outputs[0]]
	if !ok || !out.isContiguous() {
		return fmt.Errorf("output %s has no contiguous storage", g.Outputs[0].Ref())
	}
	l.e.Output, l.e.OutOffset, l.e.OutShape = out.buf, out.off, out.shape
	l.prog.Entries = append(l.prog.Entries, l.e)
	return nil
}

func constShape(t ir.Type) []int {
	s, _ := t.Shape.Eval(nil)
	return s
}

func (l *lowerer) weight(w *ir.Value) int {
	if i, ok := l.weights[w.Name]; ok {
		return i
	}
	shape := constShape(w.Type)
	ref := &WeightRef{Name: w.Name, Rows: shape[0], Cols: 1, BF16: l.opts.KeepBF16 && w.Type.DType == ir.BF16}
	if f, ok := w.Type.DType.Format(); ok && f.Converted() {
		ref.Format = f // stored so by the artifact: there is nothing to widen
	}
	if len(shape) == 2 {
		ref.Cols = shape[1]
	}
	if w.Derive != nil {
		for _, a := range w.Derive.Args {
			ref.Concat = append(ref.Concat, a.Name)
		}
	}
	l.weights[w.Name] = len(l.prog.Weights)
	l.prog.Weights = append(l.prog.Weights, ref)
	return l.weights[w.Name]
}

func (l *lowerer) valueView(v *ir.Value) (view, error) {
	switch v.Kind {
	case ir.KindWeight:
		i := l.weight(v)
		shape := constShape(v.Type)
		ref := l.prog.Weights[i]
		b := &Buffer{Name: fmt.Sprintf("w_%d", i), Kind: Weight, Index: i, Len: prod(shape), Format: ref.Fmt()}
		if b.Format.Blocked() {
			b.Len = ref.Bytes()
		}
		return contiguous(b, I(0), shape), nil
	case ir.KindState:
		i := l.states[v.Name]
		shape := constShape(v.Type)
		return contiguous(&Buffer{Name: fmt.Sprintf("st_%d", i), Kind: State, Index: i, Len: prod(shape) * l.slots(), Format: l.opts.KVFormat}, I(0), shape), nil
	}
	vw, ok := l.views[v]
	if !ok {
		return view{}, fmt.Errorf("%s has no storage", v.Ref())
	}
	return vw, nil
}

// slots is how many sequences the states hold.
func (l *lowerer) slots() int { return max(1, l.opts.Slots) }

// rowPos is the position of row s of the step (artifact.RowPositions).
func (l *lowerer) rowPos(s Expr) Expr {
	return Ld(l.tokens, IAdd(I(artifact.RowPositions*l.e.Seq), s))
}

// lastOfRuns copies the last row of each of the step's first k runs
// (artifact.RowOutputs) into out's rows.
func (l *lowerer) lastOfRuns(out, x view, k int) error {
	if x.strides[1] != 1 || out.strides[1] != 1 {
		return fmt.Errorf("last of runs needs row-contiguous tensors")
	}
	o, row, c := l.newVar("o", Int), l.newVar("r", Int), l.newVar("c", Int)
	l.serial(&For{Var: o, Lo: I(0), Hi: I(k), Step: 1, Body: []Stmt{
		&Decl{Var: row, Init: IMin(Ld(l.tokens, IAdd(I(artifact.RowOutputs*l.e.Seq), o)), I(x.shape[0]-1))},
		&For{Var: c, Lo: I(0), Hi: I(x.shape[1]), Step: 1, Body: []Stmt{
			&Store{Buf: out.buf, Index: out.at(o, c), Val: Ld(x.buf, x.at(row, c))},
		}},
	}})
	return nil
}

// slotRow is the first row of row s's slot in a state view c, whose
// first dim is the rows of one slot: 0 when the states hold one sequence.
func (l *lowerer) slotRow(c view, s Expr) Expr {
	if l.slots() == 1 {
		return I(0)
	}
	return IMul(Ld(l.tokens, IAdd(I(artifact.RowSlots*l.e.Seq), s)), I(c.shape[0]))
}

func prod(xs []int) int {
	p := 1
	for _, x := range xs {
		p *= x
	}
	return p
}

// newVar is a new variable named prefix and a number, skipping the names
// kir.Verify reserves (v8: Gemma's embedding scale loop, with Q4_0
// weights, met it and did not compile).
func (l *lowerer) newVar(prefix string, t Type) *Var {
	for {
		l.nvar++
		if name := fmt.Sprintf("%s%d", prefix, l.nvar); !reserved[name] {
			return &Var{Name: name, T: t}
		}
	}
}

// alloc reserves scratch for a kernel-local tensor (aligned to 8 floats).
func (l *lowerer) alloc(shape []int) view {
	v := contiguous(l.scratch, I(l.scratchTop), shape)
	l.scratchTop += (prod(shape) + 7) / 8 * 8
	l.scratch.Len = max(l.scratch.Len, l.scratchTop)
	l.e.ScratchLen = max(l.e.ScratchLen, l.scratchTop)
	return v
}

func (l *lowerer) serial(body ...Stmt) {
	l.k.Phases = append(l.k.Phases, &Phase{Body: body})
}

func (l *lowerer) kernel(n *ir.Node, index int) error {
	name := fmt.Sprintf("k%d_%s", len(l.e.Kernels), n.StringAttr("name"))
	l.k = &Kernel{Name: l.e.Name + "_" + name, Kind: n.StringAttr("name")}
	l.scratchTop, l.nvar = 0, 0
	if n.Result != nil {
		l.k.Value = n.Result.Ref()
		off := n.IntAttr("offset")
		if off < 0 || off%4 != 0 {
			return fmt.Errorf("kernel result has no planned arena offset (is plan-memory disabled?)")
		}
		shape := constShape(n.Result.Type)
		v := contiguous(l.arena, I(off/4), shape)
		l.arena.Len = max(l.arena.Len, off/4+prod(shape))
		l.e.ArenaLen = max(l.e.ArenaLen, off/4+prod(shape))
		l.views[n.Result] = v
	}
	body := n.Body
	uses := body.Uses()
	var yield *ir.Value
	if len(body.Outputs) == 1 {
		yield = body.Outputs[0]
	}
	if yield != nil && yield.Def.Op != ir.OpReshape && yield.Def.Op != ir.OpSlice {
		l.views[yield] = l.views[n.Result] // computed straight into the arena
	}
	done := map[*ir.Node]bool{}
	for _, b := range body.Nodes {
		l.k.Ops = append(l.k.Ops, b.Op.String())
		if done[b] {
			continue
		}
		if b.Result != nil && b.Op != ir.OpReshape && b.Op != ir.OpSlice {
			if _, pre := l.views[b.Result]; !pre {
				l.views[b.Result] = l.alloc(constShape(b.Result.Type))
			}
		}
		if err := l.op(b, body, uses, done); err != nil {
			return fmt.Errorf("%s: %w", b.LongString(), err)
		}
	}
	if yield != nil {
		if src, dst := l.views[yield], l.views[n.Result]; src.buf != dst.buf || src.off != dst.off {
			// The kernel yields a view: copy it into the kernel's result.
			l.copy(dst, src)
		}
	}
	l.e.Kernels = append(l.e.Kernels, l.k)
	return nil
}

func (l *lowerer) op(n *ir.Node, body *ir.Graph, uses map[*ir.Value]int, done map[*ir.Node]bool) error {
	arg := func(i int) (view, error) { return l.valueView(n.Args[i]) }
	switch n.Op {
	case ir.OpReshape:
		src, err := arg(0)
		if err != nil {
			return err
		}
		v, ok := src.reshape(constShape(n.Result.Type))
		if !ok {
			return fmt.Errorf("cannot view %v as %v without a copy", src.shape, constShape(n.Result.Type))
		}
		l.views[n.Result] = v
		return nil
	case ir.OpSlice:
		src, err := arg(0)
		if err != nil {
			return err
		}
		start, ln := n.IntAttr("start"), n.IntAttr("len")
		l.views[n.Result] = view{buf: src.buf, off: IAdd(src.off, I(start*src.strides[1])),
			shape: []int{src.shape[0], ln}, strides: src.strides}
		return nil
	case ir.OpEmbedding:
		w, err := arg(0)
		if err != nil {
			return err
		}
		return l.embedding(l.views[n.Result], w)
	case ir.OpRMSNorm:
		x, err := arg(0)
		if err != nil {
			return err
		}
		w, err := arg(1)
		if err != nil {
			return err
		}
		return l.rmsNorm(l.views[n.Result], x, w, float32(n.FloatAttr("eps")), n.BoolAttr("unit_offset"))
	case ir.OpLinear:
		return l.linear(n, body, uses, done)
	case ir.OpRoPE:
		x, err := arg(0)
		if err != nil {
			return err
		}
		return l.rope(n, l.views[n.Result], x)
	case ir.OpKVWrite:
		x, err := arg(1)
		if err != nil {
			return err
		}
		cache, err := arg(0)
		if err != nil {
			return err
		}
		return l.kvWrite(cache, x, n.IntAttr("ring"))
	case ir.OpAttention:
		return l.attention(n)
	case ir.OpLast:
		x, err := arg(0)
		if err != nil {
			return err
		}
		if k := n.IntAttr("runs"); k > 0 {
			return l.lastOfRuns(l.views[n.Result], x, k)
		}
		row := ISub(I(x.shape[0]), I(1))
		if len(n.Args) == 2 {
			row = ISub(l.length, I(1))
		}
		src := view{buf: x.buf, off: x.at(row, I(0)), shape: []int{1, x.shape[1]}, strides: x.strides}
		l.copy(l.views[n.Result], src)
		return nil
	case ir.OpSiLU, ir.OpGELUTanh, ir.OpScale, ir.OpSoftcap, ir.OpAdd, ir.OpMul:
		var ins []view
		for i := range n.Args {
			v, err := arg(i)
			if err != nil {
				return err
			}
			ins = append(ins, v)
		}
		return l.elementwise(n, l.views[n.Result], ins)
	}
	return fmt.Errorf("no lowering for %s in a kernel (enable fuse-attention for attention)", n.Op)
}

// forEach builds nested loops over shape and calls f with the indices to
// make the innermost body.
func (l *lowerer) forEach(shape []int, f func(idx []Expr) []Stmt) []Stmt {
	idx := make([]Expr, len(shape))
	var build func(d int) []Stmt
	build = func(d int) []Stmt {
		if d == len(shape) {
			return f(idx)
		}
		if shape[d] == 1 {
			idx[d] = I(0)
			return build(d + 1)
		}
		v := l.newVar("i", Int)
		idx[d] = v
		hi := Expr(I(shape[d]))
		if d == 0 {
			hi = l.realRows(shape[0])
		}
		return []Stmt{&For{Var: v, Lo: I(0), Hi: hi, Step: 1, Body: build(d + 1)}}
	}
	return build(0)
}

// copy copies src into dst element by element (same shape).
func (l *lowerer) copy(dst, src view) {
	l.serial(l.forEach(src.shape, func(idx []Expr) []Stmt {
		return []Stmt{&Store{Buf: dst.buf, Index: dst.at(idx...), Val: Ld(src.buf, src.at(idx...))}}
	})...)
}

func (l *lowerer) embedding(out, w view) error {
	if w.buf.Kind == Weight {
		// Its rows stay where the checkpoint has them (see colsLinear).
		if l.embedded == nil {
			l.embedded = map[int]bool{}
		}
		l.embedded[w.buf.Index] = true
	}
	if w.buf.Format == wformat.Q4_K {
		return l.embeddingQ4K(out, w)
	}
	if w.buf.Format.Blocked() {
		return l.embeddingBlocks(out, w)
	}
	rows, dim := out.shape[0], out.shape[1]
	s := l.newVar("s", Int)
	id := l.newVar("id", Int)
	inner := l.rowCopy(out.buf, out.at(s, I(0)), w.buf, IMul(id, I(dim)), dim)
	l.serial(&For{Var: s, Lo: I(0), Hi: l.realRows(rows), Step: 1, Body: append([]Stmt{
		&Decl{Var: id, Init: Ld(l.tokens, s)},
	}, inner...)})
	return nil
}

// rowCopy copies n contiguous elements, eight at a time where it can.
func (l *lowerer) rowCopy(dst *Buffer, dOff Expr, src *Buffer, sOff Expr, n int) []Stmt {
	var out []Stmt
	v := l.newVar("j", Int)
	vec := n / 8 * 8
	if vec > 0 {
		out = append(out, &For{Var: v, Lo: I(0), Hi: I(vec), Step: 8, Body: []Stmt{
			&Store{Buf: dst, Index: IAdd(dOff, v), Val: Ld8(src, IAdd(sOff, v))},
		}})
	}
	if vec < n {
		t := l.newVar("j", Int)
		out = append(out, &For{Var: t, Lo: I(vec), Hi: I(n), Step: 1, Body: []Stmt{
			&Store{Buf: dst, Index: IAdd(dOff, t), Val: Ld(src, IAdd(sOff, t))},
		}})
	}
	return out
}

// dot emits statements that set r to Σ a[aOff+k]·b[bOff+k] for k < n:
// four f32x8 accumulators over blocks of 32, then blocks of 8, then a
// scalar tail.
func (l *lowerer) dot(r *Var, a *Buffer, aOff Expr, b *Buffer, bOff Expr, n int) []Stmt {
	return l.dotLanes(r, a, aOff, b, bOff, n, 8)
}

// linearLanes is how many lanes the dot products of a float linear with
// rows n long take: 16 when the backend prints f32x16 (Options.Wide) and
// n is a multiple of 16, else 8.
func (l *lowerer) linearLanes(n int) int {
	if l.opts.Wide && n%16 == 0 {
		return 16
	}
	return 8
}

// dotLanes is dot on vectors of lanes lanes (8 or 16): four accumulators
// over blocks of 4·lanes, then blocks of lanes, then a scalar tail.
func (l *lowerer) dotLanes(r *Var, a *Buffer, aOff Expr, b *Buffer, bOff Expr, n, lanes int) []Stmt {
	var out []Stmt
	n4, n1 := n/(4*lanes)*(4*lanes), n/lanes*lanes
	if n1 > 0 {
		accs := make([]*Var, 4)
		for i := range accs {
			accs[i] = l.newVar("acc", VecOf(lanes))
			out = append(out, &Decl{Var: accs[i], Init: Zeros(lanes)})
		}
		if n4 > 0 {
			k := l.newVar("k", Int)
			var body []Stmt
			for i, acc := range accs {
				o := I(lanes * i)
				body = append(body, &Assign{Var: acc, Val: &FMA{
					A: LdV(a, IAdd(IAdd(aOff, k), o), lanes), B: LdV(b, IAdd(IAdd(bOff, k), o), lanes), C: acc}})
			}
			if b.Kind == Weight && b.Is16() {
				body = append(body, prefetchAhead(b, IMul(IAdd(bOff, k), I(2)), 8*lanes)...)
			}
			out = append(out, &For{Var: k, Lo: I(0), Hi: I(n4), Step: 4 * lanes, Body: body})
		}
		for k, i := n4, 0; k < n1; k, i = k+lanes, i+1 {
			acc := accs[i%4]
			out = append(out, &Assign{Var: acc, Val: &FMA{A: LdV(a, IAdd(aOff, I(k)), lanes), B: LdV(b, IAdd(bOff, I(k)), lanes), C: acc}})
		}
		sum := FAdd(FAdd(accs[0], accs[1]), FAdd(accs[2], accs[3]))
		out = append(out, &Decl{Var: r, Init: &HSum{X: sum}})
	} else {
		out = append(out, &Decl{Var: r, Init: F(0)})
	}
	for k := n1; k < n; k++ {
		out = append(out, &Assign{Var: r, Val: &FMA{A: Ld(a, IAdd(aOff, I(k))), B: Ld(b, IAdd(bOff, I(k))), C: r}})
	}
	return out
}

// widenPrefetch is how far ahead (in bytes) a matrix-vector product of a
// 16-bit weight (bf16 or f16) prefetches its row. Such a product widens
// every weight before its multiply-add and ran at 84–86% of the read
// bandwidth a plain loop gets on one thread where f32's reached 91–94%.
// With prefetches 4 KiB ahead, stories110M-shape decode on an AMD EPYC
// (Zen 5), four interleaved rounds: BF16 6–11% faster on one thread and
// 2–25% on two, F16 4–9% on one and -5 to +15% on two (1 and 2 KiB: no
// better; 8 KiB: the same as 4). F32 weights gained nothing from it, here
// or in earlier trials, and get none.
const widenPrefetch = 4096

// prefetchAhead prefetches the n bytes (whole cache lines) widenPrefetch
// past byte off of weight b.
func prefetchAhead(b *Buffer, off Expr, n int) []Stmt {
	var out []Stmt
	for o := 0; o < n; o += 64 {
		out = append(out, &Prefetch{Buf: b, Off: IAdd(off, I(widenPrefetch+o))})
	}
	return out
}

func (l *lowerer) rmsNorm(out, x, w view, eps float32, unitOffset bool) error {
	rows, dim := x.shape[0], x.shape[len(x.shape)-1]
	if len(x.shape) != 2 || x.strides[1] != 1 || out.strides[1] != 1 {
		return fmt.Errorf("rms_norm lowers 2-D row-contiguous tensors")
	}
	r := l.newVar("r", Int)
	ss := l.newVar("ss", F32)
	inv := l.newVar("inv", F32)
	body := l.dot(ss, x.buf, x.at(r, I(0)), x.buf, x.at(r, I(0)), dim)
	body = append(body, &Decl{Var: inv, Init: FDiv(F(1), Fn(Sqrt, FAdd(FDiv(ss, F(float32(dim))), F(eps))))})
	h := l.newVar("h", Int)
	g := Ld(w.buf, w.at(h))
	if unitOffset {
		g = FAdd(F(1), g)
	}
	body = append(body, &For{Var: h, Lo: I(0), Hi: I(dim), Step: 1, Body: []Stmt{
		&Store{Buf: out.buf, Index: out.at(r, h), Val: FMul(FMul(Ld(x.buf, x.at(r, h)), inv), g)},
	}})
	l.serial(&For{Var: r, Lo: I(0), Hi: l.realRows(rows), Step: 1, Body: body})
	return nil
}

// linear lowers y = x·wᵀ (+ bias) as a loop over output columns split
// across threads. A following "add" of another tensor (a residual) that is
// the result's only use is folded into the store.
func (l *lowerer) linear(n *ir.Node, body *ir.Graph, uses map[*ir.Value]int, done map[*ir.Node]bool) error {
	x, err := l.valueView(n.Args[0])
	if err != nil {
		return err
	}
	w, err := l.valueView(n.Args[1])
	if err != nil {
		return err
	}
	if x.strides[1] != 1 {
		return fmt.Errorf("linear needs a row-contiguous input")
	}
	rows, in, outN := x.shape[0], x.shape[1], w.shape[0]
	out := l.views[n.Result]
	var extra *view
	if m := foldableAdd(n, body, uses, done); m != nil {
		other := m.Args[0]
		if other == n.Result {
			other = m.Args[1]
		}
		ov, err := l.valueView(other)
		if err != nil {
			return err
		}
		// The add writes where it would have written anyway, and the
		// linear's own result is never materialised.
		dst, ok := l.views[m.Result]
		if !ok {
			if m.Result == body.Outputs[0] {
				return fmt.Errorf("kernel result has no storage")
			}
			dst = l.alloc(constShape(m.Result.Type))
			l.views[m.Result] = dst
		}
		extra, out = &ov, dst
		l.views[n.Result] = dst
		done[m] = true
	}
	var bias *view
	if len(n.Args) == 3 {
		b, err := l.valueView(n.Args[2])
		if err != nil {
			return err
		}
		bias = &b
	}
	if l.opts.IntDot && l.colsLinear(w, out, extra, bias) {
		return l.linearCols(x, w, out, extra, bias)
	}
	if w.buf.Format.Blocked() && l.opts.IntDot {
		return l.linearQ8Int(x, w, out, extra, bias)
	}
	if w.buf.Format == wformat.Q4_K {
		return l.linearQ4K(x, w, out, extra, bias)
	}
	if w.buf.Format.Blocked() {
		return l.linearBlocks(x, w, out, extra, bias)
	}
	// Short rows: eight output columns at a time, one accumulator each
	// (eight independent chains), finished by one transposing add and
	// stored as one vector. Long rows stream one weight row at a time,
	// which the hardware prefetcher prefers.
	if in%8 == 0 && in <= 512 && outN%8 == 0 && out.strides[1] == 1 &&
		(extra == nil || extra.strides[1] == 1) && (bias == nil || bias.strides[0] == 1) {
		blk := l.newVar("nb", Int)
		col := IMul(blk, I(8))
		sv := l.newVar("s", Int)
		var row Expr = sv
		if rows == 1 {
			row = I(0)
		}
		var accs [8]Expr
		var init, step []Stmt
		k := l.newVar("k", Int)
		for t := 0; t < 8; t++ {
			acc := l.newVar("a", F32x8)
			wOff := w.at(IAdd(col, I(t)), I(0))
			init = append(init, &Decl{Var: acc, Init: FMul(Ld8(x.buf, x.at(row, I(0))), Ld8(w.buf, wOff))})
			step = append(step, &Assign{Var: acc, Val: &FMA{A: Ld8(x.buf, IAdd(x.at(row, I(0)), k)), B: Ld8(w.buf, IAdd(wOff, k)), C: acc}})
			accs[t] = acc
		}
		val := Expr(&HSums{Xs: accs})
		if bias != nil {
			val = FAdd(val, Ld8(bias.buf, bias.at(col)))
		}
		if extra != nil {
			val = FAdd(Ld8(extra.buf, extra.at(row, col)), val)
		}
		body := append(init, &For{Var: k, Lo: I(8), Hi: I(in), Step: 8, Body: step},
			&Store{Buf: out.buf, Index: out.at(row, col), Val: val})
		stmts := body
		if rows > 1 {
			stmts = []Stmt{&For{Var: sv, Lo: I(0), Hi: l.realRows(rows), Step: 1, Body: body}}
		}
		l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: blk, N: I(outN / 8), Work: I(outN * in * rows), Grain: 1, Body: stmts})
		return nil
	}
	col := l.newVar("n", Int)
	sv := l.newVar("s", Int)
	if t := rowTile(rows); t > 1 && in%8 == 0 {
		l.linearTiled(x, w, out, extra, bias, col, sv, t, rows, outN, in)
		return nil
	}
	var row Expr = sv
	if rows == 1 {
		row = I(0)
	}
	acc := l.newVar("y", F32)
	stmts := l.dotLanes(acc, x.buf, x.at(row, I(0)), w.buf, w.at(col, I(0)), in, l.linearLanes(in))
	l.outputColumnPhase(stmts, acc, out, extra, bias, row, col, sv, rows, outN, in)
	return nil
}

// realRows bounds a loop over the leading dimension of a tensor with rows
// rows: when rows is the entry's token count, the step's real rows (the
// padding rows of a prefill chunk are never computed, so a short prompt in
// a long chunk costs what its own tokens cost), else all of them.
func (l *lowerer) realRows(rows int) Expr {
	if rows == l.e.Seq {
		return IMin(I(rows), l.length)
	}
	return I(rows)
}

// rowTile is how many token rows a linear kernel computes together: the
// largest of 4, 3 and 2 that divides rows (1 for none).
func rowTile(rows int) int {
	for _, t := range []int{4, 3, 2} {
		if rows%t == 0 {
			return t
		}
	}
	return 1
}

// rowTiles is the loops of a linear over its real token rows: whole tiles
// of t rows from sv, then the rest one at a time from s1, each loop inside
// wrap (nil: none; the integer-dot prefill puts them in its loop over a
// block of columns).
func rowTiles(sv, s1 *Var, real Expr, t int, tile func(row Expr, n int) []Stmt, wrap func([]Stmt) []Stmt) []Stmt {
	if wrap == nil {
		wrap = func(s []Stmt) []Stmt { return s }
	}
	tiles := IMul(IDiv(real, I(t)), I(t))
	whole := &For{Var: sv, Lo: I(0), Hi: tiles, Step: t, Body: wrap(tile(sv, t))}
	return append([]Stmt{whole}, wrap([]Stmt{&For{Var: s1, Lo: tiles, Hi: real, Step: 1, Body: tile(s1, 1)}})...)
}

// linearTiled lowers a linear of several token rows with long weight rows
// (in a multiple of 8) as register tiles of t rows by one output column,
// or four (two when the columns are not a multiple of four) when there are
// more than 8 rows: each vector of a weight row and of an
// input row is loaded once per tile and feeds every multiply-add it takes
// part in, so a step of B sequences or a prefill chunk streams each weight
// once and loads it from cache once per t rows. Only the step's real rows
// are computed: whole tiles of them, then the rest one by one.
func (l *lowerer) linearTiled(x, w, out view, extra, bias *view, col, sv *Var, t, rows, outN, in int) {
	// Several columns per tile pay where a kernel has many rows (a
	// prefill chunk), which read each weight row from cache several
	// times; with few rows (a batched decode step) the weights stream
	// from memory once, and two weight rows streamed side by side were
	// slower (AMD EPYC, stories110M shape, 2 threads: prefill of 16-row
	// chunks 314 -> 360 tok/s with two columns, a step of 4 sequences
	// 164 -> 140). Four columns (16 accumulators: each loaded vector
	// feeds four multiply-adds) beat two again: 355 -> 451 tok/s, the
	// median of 7 interleaved runs, with LLVM's AVX2 code (16 registers,
	// so a few accumulators live in memory); 2 rows by 8 columns gave
	// 446, 4 by 6 fewer. The Go backend's code fell from 269–302 to
	// 232–245, so its target asks for two (Options.TileColumns).
	cols := 1
	for _, c := range []int{4, 2} {
		if rows > 8 && outN%c == 0 && c <= max(l.opts.TileColumns, 2) {
			cols = c
			break
		}
	}
	// col is the phase's index: a pair of columns, or one.
	colAt := func(c int) Expr { return IAdd(IMul(col, I(cols)), I(c)) }
	bf16Off := -1
	if l.opts.BF16Dot && l.opts.Wide && w.buf.IsBF16() && in%DotBF16Len == 0 && rows > 8 {
		bf16Off = l.bf16Input(x)
	}
	tile := func(row Expr, nrows int) []Stmt {
		ys := make([][]*Var, nrows)
		xOff := make([]Expr, nrows)
		for i := range ys {
			xOff[i] = x.at(IAdd(row, I(i)), I(0))
			for range cols {
				ys[i] = append(ys[i], l.newVar("y", F32))
			}
		}
		wOff := make([]Expr, cols)
		for c := range wOff {
			wOff[c] = w.at(colAt(c), I(0))
		}
		var stmts []Stmt
		if bf16Off >= 0 {
			for i := range xOff {
				xOff[i] = IAdd(I(4*bf16Off), IMul(IAdd(row, I(i)), I(2*in)))
			}
			stmts = l.dotTileBF16(ys, xOff, w.buf, wOff, in)
		} else {
			stmts = l.dotTile(ys, x.buf, xOff, w.buf, wOff, in, l.linearLanes(in))
		}
		for i := range ys {
			for c, y := range ys[i] {
				stmts = append(stmts, l.columnStore(y, out, extra, bias, IAdd(row, I(i)), colAt(c))...)
			}
		}
		return stmts
	}
	real := IMin(I(rows), l.length)
	stmts := rowTiles(sv, l.newVar("s", Int), real, t, tile, nil)
	l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: col, N: I(outN / cols), Work: IMul(I(outN*in), real), Grain: 1, Body: stmts})
}

// dotTile sets ys[i][c] to the dot product of n elements of a at aOffs[i]
// with n elements of b at bOffs[c] (n a multiple of lanes, 8 or 16),
// loading each vector of a and of b once for the whole tile. Every (i, c)
// pair has its own accumulator, two when the tile has one column, so that
// at least two chains per row hide the multiply-add latency.
func (l *lowerer) dotTile(ys [][]*Var, a *Buffer, aOffs []Expr, b *Buffer, bOffs []Expr, n, lanes int) []Stmt {
	var out []Stmt
	cols := len(ys[0])
	per := 1
	if cols == 1 {
		per = 2
	}
	accs := make([][][]*Var, len(ys))
	for i := range accs {
		accs[i] = make([][]*Var, cols)
		for c := range accs[i] {
			for range per {
				acc := l.newVar("acc", VecOf(lanes))
				accs[i][c] = append(accs[i][c], acc)
				out = append(out, &Decl{Var: acc, Init: Zeros(lanes)})
			}
		}
	}
	// step multiplies vectors h < halves of lanes elements from k on.
	step := func(k Expr, halves int) []Stmt {
		var body []Stmt
		ws := make([][]Expr, cols)
		for c := range ws {
			for h := range halves {
				wv := l.newVar("wv", VecOf(lanes))
				body = append(body, &Decl{Var: wv, Init: LdV(b, IAdd(IAdd(bOffs[c], k), I(lanes*h)), lanes)})
				ws[c] = append(ws[c], wv)
			}
		}
		for i := range ys {
			for h := range halves {
				xv := LdV(a, IAdd(IAdd(aOffs[i], k), I(lanes*h)), lanes)
				if cols > 1 {
					v := l.newVar("xv", VecOf(lanes))
					body = append(body, &Decl{Var: v, Init: xv})
					xv = v
				}
				for c := range cols {
					acc := accs[i][c][h]
					body = append(body, &Assign{Var: acc, Val: &FMA{A: xv, B: ws[c][h], C: acc}})
				}
			}
		}
		return body
	}
	width := lanes * per
	if whole := n / width * width; whole > 0 {
		k := l.newVar("k", Int)
		out = append(out, &For{Var: k, Lo: I(0), Hi: I(whole), Step: width, Body: step(k, per)})
	}
	if n%width != 0 {
		out = append(out, step(I(n/width*width), 1)...)
	}
	for i := range ys {
		for c, y := range ys[i] {
			sum := Expr(accs[i][c][0])
			for _, acc := range accs[i][c][1:] {
				sum = FAdd(sum, acc)
			}
			out = append(out, &Decl{Var: y, Init: &HSum{X: sum}})
		}
	}
	return out
}

// columnStore stores y, output column col of token row, with the bias
// and the residual (extra) added.
func (l *lowerer) columnStore(y *Var, out view, extra, bias *view, row, col Expr) []Stmt {
	val := Expr(y)
	if bias != nil {
		val = FAdd(val, Ld(bias.buf, bias.at(col)))
	}
	if extra != nil {
		val = FAdd(Ld(extra.buf, extra.at(row, col)), val)
	}
	return []Stmt{&Store{Buf: out.buf, Index: out.at(row, col), Val: val}}
}

// outputColumnPhase ends a linear kernel that computes output column col
// of token row into y with stmts: it adds the bias and the residual
// (extra), stores the result, runs it for every token of the chunk (sv,
// when rows > 1) and appends it as a phase parallel over the outN
// columns.
func (l *lowerer) outputColumnPhase(stmts []Stmt, y *Var, out view, extra, bias *view, row Expr, col, sv *Var, rows, outN, in int) {
	stmts = append(stmts, l.columnStore(y, out, extra, bias, row, col)...)
	work := Expr(I(outN * in))
	if rows > 1 {
		// The weight row stays in L1 while every real token of the chunk
		// reads it.
		real := IMin(I(rows), l.length)
		stmts = []Stmt{&For{Var: sv, Lo: I(0), Hi: real, Step: 1, Body: stmts}}
		work = IMul(work, real)
	}
	l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: col, N: I(outN), Work: work, Grain: 1, Body: stmts})
}

// rope rotates pairs (i, i+d/2) of each head of row s by p_s·θ_i, p_s the
// row's position, with the
// angles' cosines and sines computed once per position into scratch.
func (l *lowerer) rope(n *ir.Node, out, x view) error {
	seq, heads, dim := x.shape[0], x.shape[1], x.shape[2]
	half := dim / 2
	inv := ir.RoPEFrequencies(dim, n.Attrs)
	var cs, sn view
	if m := l.opts.MaxSeq; m > 0 {
		// Positions are bounded by the static cache: bake the rotation in.
		// Padding rows of a chunk may lie past the table; they read its
		// last row (their results are never used).
		cosT, sinT := l.ropeTables(inv, m)
		cs = view{buf: cosT, shape: []int{m, half}, strides: []int{half, 1}, off: I(0)}
		sn = view{buf: sinT, shape: []int{m, half}, strides: []int{half, 1}, off: I(0)}
	} else {
		table := &Buffer{Name: fmt.Sprintf("invfreq_%d", len(l.prog.Tables)), Kind: Table, Index: len(l.prog.Tables), Len: half, Data: inv}
		l.prog.Tables = append(l.prog.Tables, table)
		cs = l.alloc([]int{seq, half})
		sn = l.alloc([]int{seq, half})
		s, i := l.newVar("s", Int), l.newVar("i", Int)
		ang := l.newVar("ang", F32)
		l.serial(&For{Var: s, Lo: I(0), Hi: l.realRows(seq), Step: 1, Body: []Stmt{
			&For{Var: i, Lo: I(0), Hi: I(half), Step: 1, Body: []Stmt{
				&Decl{Var: ang, Init: FMul(&ToF32{X: l.rowPos(s)}, Ld(table, i))},
				&Store{Buf: cs.buf, Index: cs.at(s, i), Val: Fn(Cos, ang)},
				&Store{Buf: sn.buf, Index: sn.at(s, i), Val: Fn(Sin, ang)},
			}},
		}})
	}
	s2, h, j := l.newVar("s", Int), l.newVar("h", Int), l.newVar("i", Int)
	x1, x2 := l.newVar("x", F32), l.newVar("x", F32)
	row := Expr(s2)
	if m := l.opts.MaxSeq; m > 0 {
		row = IMin(l.rowPos(s2), I(m-1))
	}
	c, sv := Ld(cs.buf, cs.at(row, j)), Ld(sn.buf, sn.at(row, j))
	l.serial(&For{Var: s2, Lo: I(0), Hi: l.realRows(seq), Step: 1, Body: []Stmt{
		&For{Var: h, Lo: I(0), Hi: I(heads), Step: 1, Body: []Stmt{
			&For{Var: j, Lo: I(0), Hi: I(half), Step: 1, Body: []Stmt{
				&Decl{Var: x1, Init: Ld(x.buf, x.at(s2, h, j))},
				&Decl{Var: x2, Init: Ld(x.buf, x.at(s2, h, IAdd(j, I(half))))},
				&Store{Buf: out.buf, Index: out.at(s2, h, j), Val: FSub(FMul(x1, c), FMul(x2, sv))},
				&Store{Buf: out.buf, Index: out.at(s2, h, IAdd(j, I(half))), Val: FAdd(FMul(x2, c), FMul(x1, sv))},
			}},
		}},
	}})
	return nil
}

// ropeTables returns tables of cos and sin of p·θ_i for p < m, computed as
// the interpreter does (the angle rounded to float32, then cos and sin in
// float64), shared by every rope with the same frequencies.
func (l *lowerer) ropeTables(inv []float32, m int) (*Buffer, *Buffer) {
	key := fmt.Sprint(m, inv)
	if t, ok := l.tables[key]; ok {
		return t, l.tables[key+"/sin"]
	}
	half := len(inv)
	cosD, sinD := make([]float32, m*half), make([]float32, m*half)
	for p := 0; p < m; p++ {
		for i, f := range inv {
			a := float64(float32(p) * f)
			cosD[p*half+i], sinD[p*half+i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
	}
	n := len(l.prog.Tables)
	c := &Buffer{Name: fmt.Sprintf("ropecos_%d", n), Kind: Table, Index: n, Len: len(cosD), Data: cosD}
	sn := &Buffer{Name: fmt.Sprintf("ropesin_%d", n+1), Kind: Table, Index: n + 1, Len: len(sinD), Data: sinD}
	l.prog.Tables = append(l.prog.Tables, c, sn)
	l.tables[key], l.tables[key+"/sin"] = c, sn
	return c, sn
}

// kvWrite copies each real row of x into its slot's cache at its
// position.
func (l *lowerer) kvWrite(cache, x view, ring int) error {
	seq, heads, dim := x.shape[0], x.shape[1], x.shape[2]
	s, h := l.newVar("s", Int), l.newVar("h", Int)
	row := l.rowPos(s)
	if ring > 0 {
		row = IRem(row, I(ring))
	}
	row = IAdd(l.slotRow(cache, s), row)
	inner := l.rowCopy(cache.buf, cache.at(row, h, I(0)), x.buf, x.at(s, h, I(0)), dim)
	if x.strides[2] != 1 {
		return fmt.Errorf("kv_write needs rows contiguous in the head dim")
	}
	l.serial(&For{Var: s, Lo: I(0), Hi: l.realRows(seq), Step: 1, Body: []Stmt{
		&For{Var: h, Lo: I(0), Hi: I(heads), Step: 1, Body: inner},
	}})
	return nil
}

// attnHeads is how many heads of a KV group one item of attention's
// parallel phase runs together, for seq queries of heads heads of dim
// elements whose value sums take vl lanes. The heads of a group read the
// same key and value rows, so each row loaded (and, from a 16-bit cache,
// widened) serves all of them, where run alone each head streamed the rows
// again. Four at most, and no more than 32 vectors of value sums between
// them. TinyLlama's prefill attention (heads of 64 in groups of eight) at
// 1024 positions on an AMD EPYC (Zen 5), perf samples for tiles of 1, 2, 4
// and 8 heads: 1550, 1225, 1090 and 1190 (f32x16 sums: 4, 8, 16 and 32
// registers); capped at AVX2 (sixteen registers, f32x8 sums, 8 a head),
// 1910, 1600–2200 and 1500 for 1, 2 and 4, spills and all. Fewer heads a
// tile when there would be fewer than eight items (a decode step of a
// model with few heads), so that the step's threads still share the work;
// a decode step of TinyLlama has eight, which on a machine of more than
// eight cores leaves some idle in attention (not measured: these machines
// have two).
func attnHeads(seq, heads, group, dim, vl int) int {
	hg := 4
	for hg > 1 && (group%hg != 0 || seq*heads/hg < 8 || hg*max(1, dim/vl) > 32) {
		hg /= 2
	}
	return hg
}

// attention lowers causal attention with an online softmax over blocks of
// eight keys: per query and tile of attnHeads heads, one pass over the
// keys in the causal window computes each head's eight scores of a block,
// exponentiates them as one vector against the head's running maximum,
// rescales its running normaliser and value sums when the maximum grows,
// and adds the block's weighted values. Keys past the position are never
// read.
func (l *lowerer) attention(n *ir.Node) error {
	q, err := l.valueView(n.Args[0])
	if err != nil {
		return err
	}
	kc, _ := l.valueView(n.Args[1])
	vc, _ := l.valueView(n.Args[2])
	out := l.views[n.Result]
	seq, heads, dim := q.shape[0], q.shape[1], q.shape[2]
	kvHeads := kc.shape[1]
	group := heads / kvHeads
	if q.strides[2] != 1 || !out.isContiguous() {
		return fmt.Errorf("attention needs contiguous heads")
	}
	scale := float32(n.FloatAttr("scale"))
	window := n.IntAttr("window")
	softcap := float32(n.FloatAttr("softcap"))
	ring := n.IntAttr("ring")
	vec := dim%8 == 0
	// The weighted value sums take vl lanes: sixteen where the backend
	// prints f32x16 (half the registers), else eight, or one when a head
	// is no whole number of vectors.
	vl := 1
	switch {
	case l.opts.Wide && dim%16 == 0:
		vl = 16
	case vec:
		vl = 8
	}
	nacc := dim / vl
	hg := attnHeads(seq, heads, group, dim, vl)
	tiles := heads / hg
	blk := l.alloc([]int{seq * heads, 8}) // one block of scores per (query, head)

	it := l.newVar("it", Int)
	s, h0, kh, p, lo := l.newVar("s", Int), l.newVar("h", Int), l.newVar("kh", Int), l.newVar("p", Int), l.newVar("lo", Int)
	body := []Stmt{
		&Decl{Var: s, Init: IDiv(it, I(tiles))},
		&Decl{Var: h0, Init: IMul(ISub(it, IMul(IDiv(it, I(tiles)), I(tiles))), I(hg))},
		&Decl{Var: kh, Init: IDiv(h0, I(group))},
		&Decl{Var: p, Init: l.rowPos(s)},
	}
	// base is the first cache row of the query's slot.
	base := l.slotRow(kc, s)
	if _, ok := base.(IntConst); !ok {
		bv := l.newVar("base", Int)
		body = append(body, &Decl{Var: bv, Init: base})
		base = bv
	}
	loInit := Expr(I(0))
	if window > 0 {
		loInit = IMax(I(0), ISub(p, I(window-1)))
	}
	body = append(body, &Decl{Var: lo, Init: loInit})
	// Each head of the tile keeps its running maximum m, the lane sums of
	// its normaliser, and its weighted value sums.
	type head struct {
		m, sum     *Var
		accs       []*Var
		qOff, bOff Expr
	}
	hs := make([]head, hg)
	for i := range hs {
		hh := IAdd(h0, I(i))
		hd := head{m: l.newVar("m", F32), sum: l.newVar("l", F32x8), accs: make([]*Var, nacc),
			qOff: q.at(s, hh, I(0)), bOff: blk.at(IAdd(IMul(s, I(heads)), hh), I(0))}
		body = append(body, &Decl{Var: hd.m, Init: F(float32(math.Inf(-1)))},
			&Decl{Var: hd.sum, Init: &Broadcast{X: F(0)}})
		for j := range hd.accs {
			if vl > 1 {
				hd.accs[j] = l.newVar("o", VecOf(vl))
				body = append(body, &Decl{Var: hd.accs[j], Init: Zeros(vl)})
			} else {
				hd.accs[j] = l.newVar("o", F32)
				body = append(body, &Decl{Var: hd.accs[j], Init: F(0)})
			}
		}
		hs[i] = hd
	}
	// splat widens an f32 to the value sums' lanes.
	splat := func(x Expr) Expr {
		if vl == 1 {
			return x
		}
		return &Broadcast{X: x, Wide: vl == 16}
	}
	row := func(key Expr) Expr {
		if ring > 0 {
			key = IRem(key, I(ring))
		}
		return IAdd(base, key)
	}

	// softmax folds a block's scores x (f32x8, -inf past its keys) into a
	// head's running maximum and normaliser, rescaling its value sums when
	// the maximum grows (after the first few blocks, rarely), and leaves
	// the block's weights in the head's row of blk.
	softmax := func(hd head, x Expr) []Stmt {
		mn, corr, pv := l.newVar("mn", F32), l.newVar("c", F32), l.newVar("pv", F32x8)
		rescale := []Stmt{
			&Decl{Var: corr, Init: Fn(Exp, FSub(hd.m, mn))},
			&Assign{Var: hd.sum, Val: FMul(hd.sum, &Broadcast{X: corr})},
		}
		for _, acc := range hd.accs {
			rescale = append(rescale, &Assign{Var: acc, Val: FMul(acc, splat(corr))})
		}
		rescale = append(rescale, &Assign{Var: hd.m, Val: mn})
		return []Stmt{
			&Decl{Var: mn, Init: FMax(hd.m, &HMax{X: x})},
			&IfGreater{X: mn, Y: hd.m, Then: rescale},
			&Decl{Var: pv, Init: Fn(Exp, FSub(x, &Broadcast{X: hd.m}))},
			&Store{Buf: blk.buf, Index: hd.bOff, Val: pv},
			&Assign{Var: hd.sum, Val: FAdd(hd.sum, pv)}, // lane sums; added up at the end
		}
	}
	// weigh adds the cnt values of the block at jb, weighted, to every
	// head's sums: each value row is loaded once for the tile.
	weigh := func(jb *Var, cnt Expr) Stmt {
		t := l.newVar("t", Int)
		vOff := vc.at(row(IAdd(jb, t)), kh, I(0))
		var ws []*Var
		var stmts []Stmt
		for _, hd := range hs {
			w := l.newVar("w", F32)
			ws = append(ws, w)
			stmts = append(stmts, &Decl{Var: w, Init: Ld(blk.buf, IAdd(hd.bOff, t))})
		}
		for j := range nacc {
			v := LdV(vc.buf, IAdd(vOff, I(vl*j)), vl)
			if hg > 1 {
				vv := l.newVar("v", v.Type())
				stmts = append(stmts, &Decl{Var: vv, Init: v})
				v = vv
			}
			for i, hd := range hs {
				stmts = append(stmts, &Assign{Var: hd.accs[j], Val: &FMA{A: splat(ws[i]), B: v, C: hd.accs[j]}})
			}
		}
		return &For{Var: t, Lo: I(0), Hi: cnt, Step: 1, Body: stmts}
	}

	// Whole blocks of eight keys: for each head eight dot products,
	// finished together by one transposing horizontal add, with no trip
	// through memory.
	end := IAdd(p, I(1))
	var first Expr = lo
	if vec && softcap == 0 {
		jb, jt := l.newVar("jb", Int), l.newVar("jt", Int)
		first = jt
		var stmts []Stmt
		for t := 0; t < 8; t++ {
			stmts = append(stmts, prefetchRow(kc, IAdd(jb, I(attnKeyAhead+t)), ring, base, kh, dim)...)
			stmts = append(stmts, prefetchRow(vc, IAdd(jb, I(attnValueAhead+t)), ring, base, kh, dim)...)
		}
		dots := make([][8]Expr, hg)
		for t := 0; t < 8; t++ {
			kOff := kc.at(row(IAdd(jb, I(t))), kh, I(0))
			accs := make([]*Var, hg)
			for c := 0; c < dim; c += 8 {
				var k Expr = Ld8(kc.buf, IAdd(kOff, I(c)))
				if hg > 1 {
					kv := l.newVar("k", F32x8)
					stmts = append(stmts, &Decl{Var: kv, Init: k})
					k = kv
				}
				for i, hd := range hs {
					qv := Ld8(q.buf, IAdd(hd.qOff, I(c)))
					if c == 0 {
						accs[i] = l.newVar("d", F32x8)
						stmts = append(stmts, &Decl{Var: accs[i], Init: FMul(qv, k)})
					} else {
						stmts = append(stmts, &Assign{Var: accs[i], Val: &FMA{A: qv, B: k, C: accs[i]}})
					}
				}
			}
			for i := range hs {
				dots[i][t] = accs[i]
			}
		}
		for i, hd := range hs {
			xs := l.newVar("x", F32x8)
			stmts = append(stmts, &Decl{Var: xs, Init: FMul(&HSums{Xs: dots[i]}, &Broadcast{X: F(scale)})})
			stmts = append(stmts, softmax(hd, xs)...)
		}
		stmts = append(stmts, weigh(jb, I(8)))
		// jt is where the whole blocks end: lo + 8·⌊(p+1-lo)/8⌋.
		body = append(body, &Decl{Var: jt, Init: IAdd(lo, IMul(IDiv(ISub(end, lo), I(8)), I(8)))})
		body = append(body, &For{Var: jb, Lo: lo, Hi: first, Step: 8, Body: stmts})
	}
	// The rest (or, with soft-capping, every block): scores one by one.
	jb, cnt, t := l.newVar("jb", Int), l.newVar("cnt", Int), l.newVar("t", Int)
	block := []Stmt{&Decl{Var: cnt, Init: IMin(I(8), ISub(end, jb))}}
	var score []Stmt
	kOff := kc.at(row(IAdd(jb, t)), kh, I(0))
	for _, hd := range hs {
		block = append(block, &Store{Buf: blk.buf, Index: hd.bOff, Val: &Broadcast{X: F(float32(math.Inf(-1)))}})
		sc := l.newVar("sc", F32)
		score = append(score, l.dot(sc, q.buf, hd.qOff, kc.buf, kOff, dim)...)
		score = append(score, &Assign{Var: sc, Val: FMul(sc, F(scale))})
		if softcap != 0 {
			score = append(score, &Assign{Var: sc, Val: FMul(F(softcap), Fn(Tanh, FDiv(sc, F(softcap))))})
		}
		score = append(score, &Store{Buf: blk.buf, Index: IAdd(hd.bOff, t), Val: sc})
	}
	block = append(block, &For{Var: t, Lo: I(0), Hi: cnt, Step: 1, Body: score})
	for _, hd := range hs {
		x := l.newVar("x", F32x8)
		block = append(block, &Decl{Var: x, Init: Ld8(blk.buf, hd.bOff)})
		block = append(block, softmax(hd, x)...)
	}
	block = append(block, weigh(jb, cnt))
	body = append(body, &For{Var: jb, Lo: first, Hi: end, Step: 8, Body: block})
	for i, hd := range hs {
		inv := l.newVar("inv", F32)
		body = append(body, &Decl{Var: inv, Init: FDiv(F(1), &HSum{X: hd.sum})})
		oOff := out.at(s, IAdd(h0, I(i)), I(0))
		for j, acc := range hd.accs {
			body = append(body, &Store{Buf: out.buf, Index: IAdd(oOff, I(vl*j)), Val: FMul(acc, splat(inv))})
		}
	}
	// Padding queries of a chunk are skipped: their output is never read.
	valid := IMul(IMin(I(seq), l.length), I(tiles))
	work := IMul(IMul(valid, I(hg)), IMul(IAdd(l.pos, I(seq)), I(2*dim)))
	l.k.Phases = append(l.k.Phases, &Phase{Parallel: true, Var: it, N: valid, Work: work, Grain: 1, Body: body})
	return nil
}

// In a decode step the KV cache comes from memory (the weights streamed
// since the last step evicted it), and a key's head slice is a few cache
// lines a row apart, which the hardware prefetchers follow too late: in
// attention's whole-block loop the first use of each key and value row
// stalled (perf annotate, stories110M shape at 448 positions). The loop
// prefetches the keys of the block attnKeyAhead positions on and the
// values of the block attnValueAhead on. Measured on an AMD EPYC (Zen 5),
// Q4_0 decode with a float16 cache at 224 and 448 positions ran 9–24%
// faster (one block ahead for both: 3–23%; four and two: no better); at
// the first positions, and in prefill, where the cache is in the caches,
// it is the same.
const (
	attnKeyAhead   = 16
	attnValueAhead = 8
)

// prefetchRow prefetches each cache line of the head kh slice (dim
// elements) of the cache row at key (modulo a ring) after base.
func prefetchRow(c view, key Expr, ring int, base, kh Expr, dim int) []Stmt {
	if ring > 0 {
		key = IRem(key, I(ring))
	}
	esz := c.buf.Format.BlockBytes()
	at := IMul(c.at(IAdd(base, key), kh, I(0)), I(esz))
	var out []Stmt
	for b := 0; b < dim*esz; b += 64 {
		out = append(out, &Prefetch{Buf: c.buf, Off: IAdd(at, I(b))})
	}
	return out
}

// elementwise lowers unary and binary elementwise ops: eight lanes at a
// time along a contiguous innermost dim (tanh through exp, as
// 2/(1+e^(-2y)) - 1), and one at a time for the rest.
func (l *lowerer) elementwise(n *ir.Node, out view, ins []view) error {
	shape := out.shape
	inner := shape[len(shape)-1]
	contiguousInner := out.strides[len(shape)-1] == 1
	for _, in := range ins {
		contiguousInner = contiguousInner && in.strides[len(shape)-1] == 1
	}
	vecN := 0
	if contiguousInner {
		vecN = inner / 8 * 8
	}
	val := func(vec bool, idx []Expr) Expr {
		ld, c := Ld, func(f float64) Expr { return F(float32(f)) }
		if vec {
			ld = Ld8
			c = func(f float64) Expr { return &Broadcast{X: F(float32(f))} }
		}
		tanh := func(y Expr) Expr {
			if !vec {
				return Fn(Tanh, y)
			}
			return FSub(FDiv(c(2), FAdd(c(1), Fn(Exp, FMul(c(-2), y)))), c(1))
		}
		x := ld(ins[0].buf, ins[0].at(idx...))
		switch n.Op {
		case ir.OpSiLU:
			return FDiv(x, FAdd(c(1), Fn(Exp, FSub(c(0), x))))
		case ir.OpGELUTanh:
			return FMul(FMul(c(0.5), x), FAdd(c(1), tanh(FMul(c(0.7978845608028654),
				FAdd(x, FMul(c(0.044715), FMul(x, FMul(x, x))))))))
		case ir.OpScale:
			return FMul(x, c(n.FloatAttr("factor")))
		case ir.OpSoftcap:
			cp := n.FloatAttr("cap")
			return FMul(c(cp), tanh(FDiv(x, c(cp))))
		case ir.OpAdd:
			return FAdd(x, ld(ins[1].buf, ins[1].at(idx...)))
		case ir.OpMul:
			return FMul(x, ld(ins[1].buf, ins[1].at(idx...)))
		}
		return nil
	}
	outer := shape[:len(shape)-1]
	l.serial(l.forEach(outer, func(idx []Expr) []Stmt {
		var stmts []Stmt
		full := func(last Expr) []Expr { return append(append([]Expr(nil), idx...), last) }
		if vecN > 0 {
			v := l.newVar("v", Int)
			stmts = append(stmts, &For{Var: v, Lo: I(0), Hi: I(vecN), Step: 8, Body: []Stmt{
				&Store{Buf: out.buf, Index: out.at(full(v)...), Val: val(true, full(v))},
			}})
		}
		if vecN < inner {
			t := l.newVar("i", Int)
			stmts = append(stmts, &For{Var: t, Lo: I(vecN), Hi: I(inner), Step: 1, Body: []Stmt{
				&Store{Buf: out.buf, Index: out.at(full(t)...), Val: val(false, full(t))},
			}})
		}
		return stmts
	})...)
	return nil
}

// foldableAdd returns the add that is the only use of linear n's result and
// adds another tensor to it, if any: its sum can be formed in the matmul's
// store.
func foldableAdd(n *ir.Node, body *ir.Graph, uses map[*ir.Value]int, done map[*ir.Node]bool) *ir.Node {
	if uses[n.Result] != 1 {
		return nil
	}
	for _, m := range body.Nodes {
		if m.Op == ir.OpAdd && !done[m] && (m.Args[0] == n.Result) != (m.Args[1] == n.Result) {
			return m
		}
	}
	return nil
}
