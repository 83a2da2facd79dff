package ir

import (
	"fmt"
	"math"
	"strings"
)

// Op identifies an operation. Everything the verifier, printer and passes
// know about an op is in its OpInfo, in the table below.
type Op uint8

const (
	OpInvalid    Op = iota
	OpEmbedding     // gather rows of a [vocab, hidden] table by token id
	OpRMSNorm       // x / rms(x) * w (or * (1+w) with unit_offset)
	OpLinear        // x · wᵀ (+ bias): w is [out, in] as checkpoints store it
	OpReshape       // same elements, new shape (a view, no copy)
	OpRoPE          // rotary position embedding, rotate-half layout
	OpSiLU          // x * sigmoid(x)
	OpGELUTanh      // GELU, tanh approximation
	OpMul           // elementwise product
	OpAdd           // elementwise sum
	OpScale         // x * factor
	OpSoftcap       // cap * tanh(x / cap)
	OpLast          // the last row of a [seq, n] tensor, as [1, n] (or of each run of rows, runs > 0)
	OpKVAppend      // append rows to a growing (dynamic) cache
	OpKVWrite       // write rows into a preallocated (static) cache at pos
	OpAttention     // causal attention of q over a cache prefix, with GQA
	OpKernel        // a fused region: runs its body
	OpAttnScores    // q·kᵀ × scale against every cache row, with GQA
	OpCausalMask    // -inf where a key is after the query (or outside its window)
	OpSoftmax       // softmax over the last dim
	OpAttnValues    // probabilities × v, with GQA
	OpSlice         // columns [start, start+n) of a [rows, cols] tensor
	numOps
)

// ArgKind restricts what an argument may be.
type ArgKind uint8

const (
	ArgTensor ArgKind = iota // an input, node result or weight
	ArgWeight                // a weight
	ArgState                 // a state
)

// AttrKind is the type of an attribute value.
type AttrKind uint8

const (
	AttrInt    AttrKind = iota // int
	AttrFloat                  // float64 (an int is accepted)
	AttrBool                   // bool
	AttrString                 // string
	AttrInts                   // []int
	AttrFloats                 // []float64 (a []int is accepted)
)

func (k AttrKind) String() string {
	switch k {
	case AttrInt:
		return "int"
	case AttrFloat:
		return "float"
	case AttrBool:
		return "bool"
	case AttrString:
		return "string"
	case AttrInts:
		return "int list"
	case AttrFloats:
		return "float list"
	}
	return fmt.Sprintf("AttrKind(%d)", uint8(k))
}

// AttrSpec describes one attribute an op accepts.
type AttrSpec struct {
	Name     string
	Kind     AttrKind
	Required bool
	// Default is what readers (Node.Attr and the typed getters) get when
	// an optional attribute is absent, of Kind's Go type. Required
	// attributes have none: a valid node always carries them.
	Default any
}

// req is a required attribute.
func req(name string, kind AttrKind) AttrSpec {
	return AttrSpec{Name: name, Kind: kind, Required: true}
}

// opt is an optional attribute whose kind is that of its default.
func opt(name string, def any) AttrSpec {
	k, ok := attrKindOf(def)
	if !ok {
		panic(fmt.Sprintf("ir: attribute %s: default %#v has no attribute kind", name, def))
	}
	return AttrSpec{Name: name, Kind: k, Default: def}
}

// attrKindOf is the kind of an attribute value's Go type.
func attrKindOf(v any) (AttrKind, bool) {
	switch v.(type) {
	case int:
		return AttrInt, true
	case float64:
		return AttrFloat, true
	case bool:
		return AttrBool, true
	case string:
		return AttrString, true
	case []int:
		return AttrInts, true
	case []float64:
		return AttrFloats, true
	}
	return 0, false
}

// OpInfo is an op's entry in the op table.
type OpInfo struct {
	Name     string
	Args     []ArgKind // the kinds of the fixed arguments
	Optional int       // how many trailing arguments may be left out
	Variadic bool      // any number of tensor arguments (kernel)
	Attrs    []AttrSpec
	// Effect marks ops that write state: they have no result and are never
	// removed or moved across other accesses to the same state.
	Effect bool
	// Elementwise ops map each element independently; their result has the
	// shape of their first argument.
	Elementwise bool
	// Epilogue ops may run on a producer's output inside the producer's
	// kernel (fuse-kernels): they work element by element, or on pairs
	// within a row (RoPE), with no reduction.
	Epilogue bool
	// KernelKind, for an op that anchors a fused kernel (fuse-kernels),
	// names the kernel formed around it: the loop nest a backend emits
	// for it. Empty for ops that anchor none.
	KernelKind string
	// Infer checks the arguments and attributes of n and returns the type
	// of its result (the zero Type for effect-only ops).
	Infer func(n *Node) (Type, error)
}

// Attr returns the spec of the op's attribute name.
func (info *OpInfo) Attr(name string) (AttrSpec, bool) {
	for _, s := range info.Attrs {
		if s.Name == name {
			return s, true
		}
	}
	return AttrSpec{}, false
}

// HasAttr reports whether the op accepts attribute name.
func (info *OpInfo) HasAttr(name string) bool {
	_, ok := info.Attr(name)
	return ok
}

var opTable [numOps]OpInfo

func init() {
	opTable = [numOps]OpInfo{
		OpEmbedding: {Name: "embedding", Args: []ArgKind{ArgWeight, ArgTensor}, KernelKind: "embedding", Infer: inferEmbedding},
		OpRMSNorm: {Name: "rms_norm", Args: []ArgKind{ArgTensor, ArgWeight}, KernelKind: "rms_norm", Infer: inferRMSNorm,
			Attrs: []AttrSpec{req("eps", AttrFloat), opt("unit_offset", false)}},
		OpLinear:  {Name: "linear", Args: []ArgKind{ArgTensor, ArgWeight, ArgWeight}, Optional: 1, KernelKind: "matmul", Infer: inferLinear},
		OpReshape: {Name: "reshape", Args: []ArgKind{ArgTensor}, Epilogue: true, Infer: inferReshape},
		// The scaling defaults are those of transformers' llama3 example;
		// the frontend always writes them for llama3 scaling.
		OpRoPE: {Name: "rope", Args: []ArgKind{ArgTensor, ArgTensor}, Epilogue: true, Infer: inferRoPE,
			Attrs: []AttrSpec{req("theta", AttrFloat), opt("scaling", ""),
				opt("factor", 1.0), opt("low_freq_factor", 1.0),
				opt("high_freq_factor", 4.0), opt("original_max_positions", 8192),
				opt("dim_factors", []float64(nil))}},
		OpSiLU:     {Name: "silu", Args: []ArgKind{ArgTensor}, Elementwise: true, Epilogue: true, Infer: inferUnary},
		OpGELUTanh: {Name: "gelu_tanh", Args: []ArgKind{ArgTensor}, Elementwise: true, Epilogue: true, Infer: inferUnary},
		OpMul:      {Name: "mul", Args: []ArgKind{ArgTensor, ArgTensor}, Elementwise: true, Epilogue: true, Infer: inferBinary},
		OpAdd:      {Name: "add", Args: []ArgKind{ArgTensor, ArgTensor}, Elementwise: true, Epilogue: true, Infer: inferBinary},
		OpScale: {Name: "scale", Args: []ArgKind{ArgTensor}, Elementwise: true, Epilogue: true, Infer: inferUnary,
			Attrs: []AttrSpec{req("factor", AttrFloat)}},
		OpSoftcap: {Name: "softcap", Args: []ArgKind{ArgTensor}, Elementwise: true, Epilogue: true, Infer: inferUnary,
			Attrs: []AttrSpec{req("cap", AttrFloat)}},
		// runs > 0 (a batched step, artifact.EntryDecodeBatch): the last
		// row of each of up to runs runs of rows of one sequence, as
		// [runs, n]; which rows those are is the step's input
		// (artifact.RowOutputs), so only compiled code computes it.
		OpLast: {Name: "last", Args: []ArgKind{ArgTensor, ArgTensor}, Optional: 1, Infer: inferLast,
			Attrs: []AttrSpec{opt("runs", 0)}},
		OpKVAppend: {Name: "kv_append", Args: []ArgKind{ArgState, ArgTensor}, Effect: true, Infer: inferKVAppend},
		// ring > 0: the cache holds its rows in a ring of that many rows
		// (set by the static-kv pass for windowed caches).
		OpKVWrite: {Name: "kv_write", Args: []ArgKind{ArgState, ArgTensor, ArgTensor, ArgTensor}, Optional: 1, Effect: true, Epilogue: true, Infer: inferKVWrite,
			Attrs: []AttrSpec{opt("ring", 0)}},
		OpAttnScores: {Name: "attn_scores", Args: []ArgKind{ArgTensor, ArgState}, Infer: inferAttnScores,
			Attrs: []AttrSpec{req("scale", AttrFloat)}},
		// window 0: no sliding window.
		OpCausalMask: {Name: "causal_mask", Args: []ArgKind{ArgTensor, ArgTensor}, Infer: inferCausalMask,
			Attrs: []AttrSpec{opt("window", 0)}},
		OpSoftmax:    {Name: "softmax", Args: []ArgKind{ArgTensor}, Infer: inferUnary},
		OpAttnValues: {Name: "attn_values", Args: []ArgKind{ArgTensor, ArgState}, Infer: inferAttnValues},
		OpSlice: {Name: "slice", Args: []ArgKind{ArgTensor}, Epilogue: true, Infer: inferSlice,
			Attrs: []AttrSpec{req("start", AttrInt), req("len", AttrInt)}},
		// window 0: none; softcap 0: scores are not capped; ring 0: the
		// caches are not rings.
		OpAttention: {Name: "attention", Args: []ArgKind{ArgTensor, ArgState, ArgState, ArgTensor}, KernelKind: "attention", Infer: inferAttention,
			Attrs: []AttrSpec{req("scale", AttrFloat), opt("window", 0), opt("softcap", 0.0), opt("ring", 0)}},
		// offset -1: the result has no planned place in the arena.
		OpKernel: {Name: "kernel", Variadic: true, Infer: inferKernel,
			Attrs: []AttrSpec{req("name", AttrString), opt("offset", -1)}},
	}
}

// Info returns the op's table entry.
func (op Op) Info() *OpInfo {
	if op <= OpInvalid || op >= numOps {
		return &OpInfo{Name: fmt.Sprintf("op(%d)", op), Infer: func(*Node) (Type, error) { return Type{}, fmt.Errorf("invalid op") }}
	}
	return &opTable[op]
}

func (op Op) String() string { return op.Info().Name }

// LookupOp finds an op by its printed name.
func LookupOp(name string) (Op, bool) {
	for i := OpInvalid + 1; i < numOps; i++ {
		if opTable[i].Name == name {
			return i, true
		}
	}
	return OpInvalid, false
}

// HasEffect reports whether the node writes state (directly or, for a
// kernel, in its body).
func (n *Node) HasEffect() bool {
	if n.Op.Info().Effect {
		return true
	}
	if n.Body != nil {
		for _, b := range n.Body.Nodes {
			if b.HasEffect() {
				return true
			}
		}
	}
	return false
}

// LongString prints the node as one line of the text form (without its
// kernel body), for error messages.
func (n *Node) LongString() string {
	var b strings.Builder
	writeNodeHead(&b, n)
	return b.String()
}

func rank(v *Value, want int) error {
	if len(v.Type.Shape) != want {
		return fmt.Errorf("%s has rank %d, want %d", v.Ref(), len(v.Type.Shape), want)
	}
	return nil
}

func sameDim(what string, a, b Dim) error {
	if a != b {
		return fmt.Errorf("%s: %s vs %s", what, a, b)
	}
	return nil
}

func floatArg(v *Value) error {
	if !v.Type.DType.IsFloat() {
		return fmt.Errorf("%s is %s, want a float type", v.Ref(), v.Type)
	}
	return nil
}

func inferEmbedding(n *Node) (Type, error) {
	w, ids := n.Args[0], n.Args[1]
	if err := rank(w, 2); err != nil {
		return Type{}, err
	}
	if err := rank(ids, 1); err != nil {
		return Type{}, err
	}
	if ids.Type.DType != I32 {
		return Type{}, fmt.Errorf("token ids %s are %s, want i32", ids.Ref(), ids.Type.DType)
	}
	return T(F32, ids.Type.Shape[0], w.Type.Shape[1]), nil
}

func inferRMSNorm(n *Node) (Type, error) {
	x, w := n.Args[0], n.Args[1]
	if err := floatArg(x); err != nil {
		return Type{}, err
	}
	if len(x.Type.Shape) == 0 {
		return Type{}, fmt.Errorf("%s is a scalar", x.Ref())
	}
	if err := rank(w, 1); err != nil {
		return Type{}, err
	}
	if err := sameDim("normalised dim vs weight", x.Type.Shape.Last(), w.Type.Shape[0]); err != nil {
		return Type{}, err
	}
	return T(F32, x.Type.Shape...), nil
}

func inferLinear(n *Node) (Type, error) {
	x, w := n.Args[0], n.Args[1]
	if err := floatArg(x); err != nil {
		return Type{}, err
	}
	if err := rank(x, 2); err != nil {
		return Type{}, err
	}
	if err := rank(w, 2); err != nil {
		return Type{}, err
	}
	if err := sameDim(fmt.Sprintf("inner dims differ (%s %s × %s %s)", x.Ref(), x.Type.Shape, w.Ref(), w.Type.Shape),
		x.Type.Shape[1], w.Type.Shape[1]); err != nil {
		return Type{}, err
	}
	if len(n.Args) == 3 {
		b := n.Args[2]
		if err := rank(b, 1); err != nil {
			return Type{}, err
		}
		if err := sameDim("bias vs output dim", b.Type.Shape[0], w.Type.Shape[0]); err != nil {
			return Type{}, err
		}
	}
	return T(F32, x.Type.Shape[0], w.Type.Shape[0]), nil
}

// inferReshape accepts the declared result type when it has as many elements
// as the argument. Symbolic dims must appear on both sides, in any order.
func inferReshape(n *Node) (Type, error) {
	if n.Result == nil {
		return Type{}, fmt.Errorf("reshape needs its result type")
	}
	x, want := n.Args[0], n.Result.Type
	if want.IsVoid() {
		return Type{}, fmt.Errorf("reshape needs its result type")
	}
	if want.DType != x.Type.DType {
		return Type{}, fmt.Errorf("reshape changes dtype %s to %s", x.Type.DType, want.DType)
	}
	count := func(s Shape) (int, map[string]int) {
		p, syms := 1, map[string]int{}
		for _, d := range s {
			if d.IsConst() {
				p *= d.N
			} else {
				syms[d.Sym]++
			}
		}
		return p, syms
	}
	pa, sa := count(x.Type.Shape)
	pb, sb := count(want.Shape)
	same := pa == pb && len(sa) == len(sb)
	for k, v := range sa {
		same = same && sb[k] == v
	}
	if !same {
		return Type{}, fmt.Errorf("cannot reshape %s to %s: element counts differ", x.Type.Shape, want.Shape)
	}
	return want, nil
}

func inferRoPE(n *Node) (Type, error) {
	x, pos := n.Args[0], n.Args[1]
	if err := rank(x, 3); err != nil {
		return Type{}, err
	}
	if d := x.Type.Shape[2]; !d.IsConst() || d.N%2 != 0 {
		return Type{}, fmt.Errorf("head dim %s must be an even constant", d)
	}
	if err := scalarI32(pos); err != nil {
		return Type{}, err
	}
	if _, ok := n.Attrs["dim_factors"]; ok {
		fs, half := n.FloatsAttr("dim_factors"), x.Type.Shape[2].N/2
		if len(fs) != half {
			return Type{}, fmt.Errorf("dim_factors has %d factors, want head dim / 2 = %d", len(fs), half)
		}
		for i, f := range fs {
			if !(f > 0) || math.IsInf(f, 0) {
				return Type{}, fmt.Errorf("dim_factors[%d] is %s, want a positive number", i, formatAttr(f))
			}
		}
	}
	return x.Type, nil
}

func scalarI32(v *Value) error {
	if v.Type.DType != I32 || len(v.Type.Shape) != 0 {
		return fmt.Errorf("%s is %s, want the scalar position i32[]", v.Ref(), v.Type)
	}
	return nil
}

func inferUnary(n *Node) (Type, error) {
	if err := floatArg(n.Args[0]); err != nil {
		return Type{}, err
	}
	return n.Args[0].Type, nil
}

func inferBinary(n *Node) (Type, error) {
	a, b := n.Args[0], n.Args[1]
	if err := floatArg(a); err != nil {
		return Type{}, err
	}
	if !a.Type.Equal(b.Type) {
		return Type{}, fmt.Errorf("operand types differ: %s is %s, %s is %s", a.Ref(), a.Type, b.Ref(), b.Type)
	}
	return a.Type, nil
}

// inferLast: "last %x" takes row seq-1; "last %x, %len" row len-1 (of a
// padded chunk).
func inferLast(n *Node) (Type, error) {
	x := n.Args[0]
	if err := rank(x, 2); err != nil {
		return Type{}, err
	}
	if len(n.Args) == 2 {
		if err := scalarI32(n.Args[1]); err != nil {
			return Type{}, err
		}
	}
	if k := n.IntAttr("runs"); k > 0 {
		if len(n.Args) == 2 {
			return Type{}, fmt.Errorf("the last rows of %d runs take no length", k)
		}
		return T(x.Type.DType, C(k), x.Type.Shape[1]), nil
	}
	return T(x.Type.DType, C(1), x.Type.Shape[1]), nil
}

// checkCacheRows checks that rows [s, kvh, d] fit a cache [n, kvh, d].
func checkCacheRows(cache, rows *Value) error {
	if err := rank(cache, 3); err != nil {
		return err
	}
	if err := rank(rows, 3); err != nil {
		return err
	}
	for i := 1; i < 3; i++ {
		if err := sameDim(fmt.Sprintf("%s %s vs %s %s", cache.Ref(), cache.Type.Shape, rows.Ref(), rows.Type.Shape),
			cache.Type.Shape[i], rows.Type.Shape[i]); err != nil {
			return err
		}
	}
	return nil
}

func inferKVAppend(n *Node) (Type, error) {
	return Type{}, checkCacheRows(n.Args[0], n.Args[1])
}

func inferKVWrite(n *Node) (Type, error) {
	if err := checkCacheRows(n.Args[0], n.Args[1]); err != nil {
		return Type{}, err
	}
	if !n.Args[0].Type.Shape[0].IsConst() {
		return Type{}, fmt.Errorf("kv_write needs a static cache, %s is %s", n.Args[0].Ref(), n.Args[0].Type)
	}
	for _, a := range n.Args[2:] {
		if err := scalarI32(a); err != nil {
			return Type{}, err
		}
	}
	return Type{}, nil
}

// checkGQA checks q [seq, heads, dim] against a cache [n, kv heads, dim].
func checkGQA(q, cache *Value) error {
	if err := rank(q, 3); err != nil {
		return err
	}
	if err := rank(cache, 3); err != nil {
		return err
	}
	if err := sameDim("head dim of queries vs cache", q.Type.Shape[2], cache.Type.Shape[2]); err != nil {
		return err
	}
	h, kvh := q.Type.Shape[1], cache.Type.Shape[1]
	if !h.IsConst() || !kvh.IsConst() || kvh.N == 0 || h.N%kvh.N != 0 {
		return fmt.Errorf("%s query heads is not a multiple of %s key/value heads", h, kvh)
	}
	return nil
}

func inferAttnScores(n *Node) (Type, error) {
	q, k := n.Args[0], n.Args[1]
	if err := checkGQA(q, k); err != nil {
		return Type{}, err
	}
	return T(F32, q.Type.Shape[0], q.Type.Shape[1], k.Type.Shape[0]), nil
}

func inferCausalMask(n *Node) (Type, error) {
	if err := rank(n.Args[0], 3); err != nil {
		return Type{}, err
	}
	if err := scalarI32(n.Args[1]); err != nil {
		return Type{}, err
	}
	return n.Args[0].Type, nil
}

func inferAttnValues(n *Node) (Type, error) {
	p, v := n.Args[0], n.Args[1]
	if err := rank(p, 3); err != nil {
		return Type{}, err
	}
	if err := rank(v, 3); err != nil {
		return Type{}, err
	}
	if err := sameDim("score columns vs cache rows", p.Type.Shape[2], v.Type.Shape[0]); err != nil {
		return Type{}, err
	}
	h, kvh := p.Type.Shape[1], v.Type.Shape[1]
	if !h.IsConst() || !kvh.IsConst() || kvh.N == 0 || h.N%kvh.N != 0 {
		return Type{}, fmt.Errorf("%s query heads is not a multiple of %s key/value heads", h, kvh)
	}
	return T(F32, p.Type.Shape[0], h, v.Type.Shape[2]), nil
}

func inferSlice(n *Node) (Type, error) {
	x := n.Args[0]
	if err := rank(x, 2); err != nil {
		return Type{}, err
	}
	start, ln := n.IntAttr("start"), n.IntAttr("len")
	cols := x.Type.Shape[1]
	if !cols.IsConst() || start < 0 || ln <= 0 || start > cols.N || ln > cols.N-start { // start+ln could overflow
		return Type{}, fmt.Errorf("columns [%d, %d) are not inside %s", start, start+ln, x.Type)
	}
	return T(x.Type.DType, x.Type.Shape[0], C(ln)), nil
}

func inferAttention(n *Node) (Type, error) {
	q, k, v, pos := n.Args[0], n.Args[1], n.Args[2], n.Args[3]
	if err := checkGQA(q, k); err != nil {
		return Type{}, err
	}
	if !k.Type.Equal(v.Type) {
		return Type{}, fmt.Errorf("key cache %s and value cache %s differ", k, v)
	}
	if err := scalarI32(pos); err != nil {
		return Type{}, err
	}
	return T(F32, q.Type.Shape...), nil
}

// inferKernel types a kernel by its body's yield. A kernel's arguments are
// the outer values its body reads (see Graph.Captures).
func inferKernel(n *Node) (Type, error) {
	b := n.Body
	if b == nil {
		return Type{}, fmt.Errorf("kernel has no body")
	}
	switch len(b.Outputs) {
	case 0:
		return Type{}, nil
	case 1:
		return b.Outputs[0].Type, nil
	}
	return Type{}, fmt.Errorf("kernel body yields %d values, want at most 1", len(b.Outputs))
}
