// Package ir defines llmc's graph IR: one model step as a list of typed tensor
// operations.
//
// A Graph has named symbolic dimensions (for example seq, the number of new
// tokens, and ctx, the number of cached positions), inputs (%tokens, %pos),
// weights referenced by their checkpoint tensor name (@model.norm.weight),
// state that lives across steps (the KV cache, $k.0 and $v.0), and a list of
// nodes in execution order. Every node's result carries its dtype and shape;
// the verifier recomputes them from the op table and the arguments.
//
// The text form, printed by Print and read back by Parse, is what IR dumps
// show:
//
//	graph forward[seq, ctx](%tokens: i32[seq], %pos: i32[]) {
//	  weight @model.embed_tokens.weight: f32[512, 64]
//	  state  $k.0: f32[ctx, 4, 8]
//	  %x = embedding @model.embed_tokens.weight, %tokens : f32[seq, 64]
//	  ...
//	  return %logits
//	}
//
// A kernel node owns a region of the graph: a nested body whose values are
// computed by one backend loop nest, yet which the interpreter can still run.
package ir

import "fmt"

// Kind says where a value comes from.
type Kind uint8

const (
	KindNode   Kind = iota // the result of a node
	KindInput              // a graph (or kernel body) input
	KindWeight             // a model weight, by tensor name
	KindState              // per-session state such as a KV cache
)

// Sigil is the character that prefixes a value of this kind in the text form.
func (k Kind) Sigil() byte {
	switch k {
	case KindWeight:
		return '@'
	case KindState:
		return '$'
	}
	return '%'
}

// A Value is a typed tensor: an input, a weight, a state or a node's result.
type Value struct {
	Name string // unique within the graph; for weights, the tensor name
	Kind Kind
	Type Type
	Def  *Node // the defining node, for KindNode
	// Derive, for a weight the compiler makes from checkpoint weights
	// (such as q, k and v projections stacked into one), says how; the
	// runtime builds it when the program loads. nil for checkpoint tensors.
	Derive *Derivation
}

// Derivation is how a derived weight is made.
type Derivation struct {
	Op   string   // "concat": the arguments' rows stacked in order
	Args []*Value // checkpoint weights
}

// Ref is the value as it is written in the text form ("%x", "@w", "$k.0").
func (v *Value) Ref() string { return string(v.Kind.Sigil()) + v.Name }

func (v *Value) String() string { return v.Ref() + ": " + v.Type.String() }

// A Node applies an op to its arguments. Effect-only nodes (writes to state)
// have no result.
type Node struct {
	Op     Op
	Args   []*Value
	Attrs  Attrs
	Result *Value // nil for effect-only ops
	Body   *Graph // the region owned by a kernel node, else nil
}

// Graph is one entry point of a model: its symbols, inputs, weights, state,
// nodes in execution order and outputs.
type Graph struct {
	Name    string
	Syms    []string
	Inputs  []*Value
	Weights []*Value
	States  []*Value
	Nodes   []*Node
	Outputs []*Value

	names map[string]*Value // every value by Ref, for lookups and uniqueness
}

// NewGraph returns an empty graph.
func NewGraph(name string) *Graph {
	return &Graph{Name: name, names: map[string]*Value{}}
}

// Lookup returns the value written as ref ("%x", "@w", "$k.0").
func (g *Graph) Lookup(ref string) (*Value, bool) {
	g.index()
	v, ok := g.names[ref]
	return v, ok
}

// index rebuilds the name table when it is missing (for graphs assembled by
// hand or rewritten by passes).
func (g *Graph) index() {
	if g.names != nil {
		return
	}
	g.Reindex()
}

// Reindex rebuilds the name table from the graph's values. Passes that
// replace slices of values directly call it afterwards.
func (g *Graph) Reindex() {
	g.names = map[string]*Value{}
	for _, v := range g.Inputs {
		g.names[v.Ref()] = v
	}
	for _, v := range g.Weights {
		g.names[v.Ref()] = v
	}
	for _, v := range g.States {
		g.names[v.Ref()] = v
	}
	g.Walk(func(n *Node) {
		if n.Result != nil {
			g.names[n.Result.Ref()] = n.Result
		}
		if n.Body != nil {
			for _, in := range n.Body.Inputs {
				g.names[in.Ref()] = in
			}
		}
	})
}

// Walk calls f on every node in execution order, including the nodes of
// kernel bodies (after the kernel node itself).
func (g *Graph) Walk(f func(*Node)) {
	for _, n := range g.Nodes {
		f(n)
		if n.Body != nil {
			n.Body.Walk(f)
		}
	}
}

// HasSym reports whether name is one of the graph's symbols.
func (g *Graph) HasSym(name string) bool {
	for _, s := range g.Syms {
		if s == name {
			return true
		}
	}
	return false
}

// Sym declares a symbolic dimension and returns it.
func (g *Graph) Sym(name string) Dim {
	if !g.HasSym(name) {
		g.Syms = append(g.Syms, name)
	}
	return S(name)
}

func (g *Graph) claim(v *Value) error {
	g.index()
	if !validName(v.Name) {
		return fmt.Errorf("invalid value name %q", v.Name)
	}
	if old, ok := g.names[v.Ref()]; ok && old != v {
		return fmt.Errorf("%s is defined twice", v.Ref())
	}
	g.names[v.Ref()] = v
	return nil
}

// Input declares a graph input.
func (g *Graph) Input(name string, t Type) (*Value, error) {
	v := &Value{Name: name, Kind: KindInput, Type: t}
	if err := g.claim(v); err != nil {
		return nil, err
	}
	g.Inputs = append(g.Inputs, v)
	return v, nil
}

// Weight declares (or returns the existing declaration of) a weight tensor.
func (g *Graph) Weight(name string, t Type) (*Value, error) {
	g.index()
	if v, ok := g.names["@"+name]; ok {
		if !v.Type.Equal(t) {
			return nil, fmt.Errorf("weight @%s declared as %s and as %s", name, v.Type, t)
		}
		return v, nil
	}
	v := &Value{Name: name, Kind: KindWeight, Type: t}
	if err := g.claim(v); err != nil {
		return nil, err
	}
	g.Weights = append(g.Weights, v)
	return v, nil
}

// DerivedWeight declares a weight made from checkpoint weights by op
// ("concat": rows stacked). Its type is computed from the arguments.
func (g *Graph) DerivedWeight(name, op string, args ...*Value) (*Value, error) {
	v := &Value{Name: name, Kind: KindWeight, Derive: &Derivation{Op: op, Args: args}}
	t, err := v.Derive.Type()
	if err != nil {
		return nil, fmt.Errorf("weight @%s: %w", name, err)
	}
	v.Type = t
	if err := g.claim(v); err != nil {
		return nil, err
	}
	g.Weights = append(g.Weights, v)
	return v, nil
}

// Type checks the derivation's arguments and returns the derived type.
func (d *Derivation) Type() (Type, error) {
	if d.Op != "concat" {
		return Type{}, fmt.Errorf("unknown weight derivation %q (want concat)", d.Op)
	}
	if len(d.Args) < 2 {
		return Type{}, fmt.Errorf("concat needs at least two weights")
	}
	first := d.Args[0]
	rows := 0
	for _, a := range d.Args {
		if a == nil || a.Kind != KindWeight || a.Derive != nil {
			return Type{}, fmt.Errorf("concat takes checkpoint weights, got %s", refOf(a))
		}
		if a.Type.DType != first.Type.DType || len(a.Type.Shape) != len(first.Type.Shape) || len(a.Type.Shape) == 0 ||
			!a.Type.Shape[1:].Equal(first.Type.Shape[1:]) || !a.Type.Shape.IsConst() {
			return Type{}, fmt.Errorf("cannot stack %s and %s", first, a)
		}
		rows += a.Type.Shape[0].N
	}
	shape := append(Shape{C(rows)}, first.Type.Shape[1:]...)
	return Type{DType: first.Type.DType, Shape: shape}, nil
}

// State declares a state tensor.
func (g *Graph) State(name string, t Type) (*Value, error) {
	v := &Value{Name: name, Kind: KindState, Type: t}
	if err := g.claim(v); err != nil {
		return nil, err
	}
	g.States = append(g.States, v)
	return v, nil
}

// UniqueName returns hint, or hint with a numeric suffix, so that it names no
// existing value of kind KindNode or KindInput.
func (g *Graph) UniqueName(hint string) string {
	g.index()
	if hint == "" {
		hint = "v"
	}
	if _, ok := g.names["%"+hint]; !ok {
		return hint
	}
	for i := 1; ; i++ {
		n := fmt.Sprintf("%s.%d", hint, i)
		if _, ok := g.names["%"+n]; !ok {
			return n
		}
	}
}

// Emit appends a node applying op to args and returns its result (nil for
// effect-only ops). The result type is inferred from the op table; for ops
// whose result type is not implied by their arguments (reshape), pass it as
// want, otherwise pass the zero Type. The name is made unique if needed.
func (g *Graph) Emit(op Op, name string, attrs Attrs, want Type, args ...*Value) (*Value, error) {
	n := &Node{Op: op, Args: args, Attrs: attrs}
	if op == OpKernel {
		return nil, fmt.Errorf("use NewKernel to build kernel nodes")
	}
	if !op.Info().Effect {
		n.Result = &Value{Name: g.UniqueName(name), Kind: KindNode, Type: want, Def: n}
	}
	if err := checkArgs(n); err != nil {
		return nil, fmt.Errorf("%s: %w", n.LongString(), err)
	}
	t, err := op.Info().Infer(n)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.LongString(), err)
	}
	if n.Result != nil {
		n.Result.Type = t
		if err := g.claim(n.Result); err != nil {
			return nil, err
		}
	}
	g.Nodes = append(g.Nodes, n)
	return n.Result, nil
}

// NewKernel returns a kernel node named kernel whose body is the given
// nodes (already typed, in execution order) yielding out (nil for a kernel
// that only writes state). The kernel's arguments are the outer values the
// body reads. The node is not inserted into any graph; its result, if any,
// is named name.
func NewKernel(kernel, name string, nodes []*Node, out *Value) *Node {
	body := &Graph{Name: kernel, Nodes: nodes}
	if out != nil {
		body.Outputs = []*Value{out}
	}
	n := &Node{Op: OpKernel, Attrs: Attrs{"name": kernel}, Body: body}
	n.Args = body.Captures()
	if out != nil {
		n.Result = &Value{Name: name, Kind: KindNode, Type: out.Type, Def: n}
	}
	return n
}

// Captures lists the values that g's nodes read but g does not define, in
// order of first use: for a kernel body, the kernel's arguments.
func (g *Graph) Captures() []*Value {
	defined := map[*Value]bool{}
	seen := map[*Value]bool{}
	var out []*Value
	var visit func(*Graph)
	visit = func(b *Graph) {
		for _, n := range b.Nodes {
			for _, a := range n.Args {
				if !defined[a] && !seen[a] {
					seen[a] = true
					out = append(out, a)
				}
			}
			if n.Body != nil {
				visit(n.Body)
			}
			if n.Result != nil {
				defined[n.Result] = true
			}
		}
	}
	visit(g)
	for _, o := range g.Outputs {
		if !defined[o] && !seen[o] {
			seen[o] = true
			out = append(out, o)
		}
	}
	return out
}

// checkArgs checks a node's argument count and kinds against the op table.
func checkArgs(n *Node) error {
	info := n.Op.Info()
	if info.Variadic {
		return checkAttrs(n)
	}
	if len(n.Args) > len(info.Args) || len(n.Args) < len(info.Args)-info.Optional {
		if info.Optional > 0 {
			return fmt.Errorf("%s takes %d to %d arguments, got %d", info.Name, len(info.Args)-info.Optional, len(info.Args), len(n.Args))
		}
		return fmt.Errorf("%s takes %d arguments, got %d", info.Name, len(info.Args), len(n.Args))
	}
	for i, a := range n.Args {
		if a == nil {
			return fmt.Errorf("argument %d is missing", i+1)
		}
		switch want := info.Args[i]; {
		case want == ArgWeight && a.Kind != KindWeight:
			return fmt.Errorf("argument %d %s must be a weight", i+1, a.Ref())
		case want == ArgState && a.Kind != KindState:
			return fmt.Errorf("argument %d %s must be a state", i+1, a.Ref())
		case want == ArgTensor && a.Kind == KindState:
			return fmt.Errorf("argument %d %s is a state; only cache ops take states", i+1, a.Ref())
		}
	}
	return checkAttrs(n)
}

// checkAttrs checks a node's attributes against the op table.
func checkAttrs(n *Node) error {
	return checkAttrValues(n.Op.Info(), n.Attrs)
}

// checkAttrValues checks attributes against an op's specs: required ones
// are present, each value has its spec's kind, and there are no others.
func checkAttrValues(info *OpInfo, attrs Attrs) error {
	for _, spec := range info.Attrs {
		v, ok := attrs[spec.Name]
		if !ok {
			if spec.Required {
				return fmt.Errorf("missing attribute %s", spec.Name)
			}
			continue
		}
		if !kindAccepts(spec.Kind, v) {
			return fmt.Errorf("attribute %s=%s has the wrong type (want %s)", spec.Name, formatAttr(v), spec.Kind)
		}
	}
	for k := range attrs {
		if !info.HasAttr(k) {
			return fmt.Errorf("%s has no attribute %q", info.Name, k)
		}
	}
	return nil
}

// kindAccepts reports whether v is a valid value of an attribute of kind
// k: its own Go type, or ints where floats are wanted.
func kindAccepts(k AttrKind, v any) bool {
	got, ok := attrKindOf(v)
	switch {
	case !ok:
		return false
	case got == k:
		return true
	case got == AttrInt:
		return k == AttrFloat
	case got == AttrInts:
		return k == AttrFloats
	}
	return false
}

// SetOutputs sets the graph's outputs.
func (g *Graph) SetOutputs(vs ...*Value) { g.Outputs = vs }

// Uses counts how often each value is used as an argument or output,
// including uses inside kernel bodies.
func (g *Graph) Uses() map[*Value]int {
	uses := map[*Value]int{}
	var count func(g *Graph)
	count = func(g *Graph) {
		for _, n := range g.Nodes {
			for _, a := range n.Args {
				uses[a]++
			}
			if n.Body != nil {
				count(n.Body)
			}
		}
		for _, o := range g.Outputs {
			uses[o]++
		}
	}
	count(g)
	return uses
}

// Clone returns a deep copy of g: new values and nodes, same structure.
func (g *Graph) Clone() *Graph {
	m := map[*Value]*Value{}
	return g.cloneWith(m)
}

func (g *Graph) cloneWith(m map[*Value]*Value) *Graph {
	cp := func(v *Value) *Value {
		if v == nil {
			return nil
		}
		if c, ok := m[v]; ok {
			return c
		}
		c := &Value{Name: v.Name, Kind: v.Kind, Type: Type{DType: v.Type.DType, Shape: v.Type.Shape.Clone()}}
		m[v] = c
		return c
	}
	out := &Graph{Name: g.Name, Syms: append([]string(nil), g.Syms...)}
	for _, v := range g.Inputs {
		out.Inputs = append(out.Inputs, cp(v))
	}
	for _, v := range g.Weights {
		c := cp(v)
		if v.Derive != nil {
			c.Derive = &Derivation{Op: v.Derive.Op}
			for _, a := range v.Derive.Args {
				c.Derive.Args = append(c.Derive.Args, cp(a))
			}
		}
		out.Weights = append(out.Weights, c)
	}
	for _, v := range g.States {
		out.States = append(out.States, cp(v))
	}
	for _, n := range g.Nodes {
		c := &Node{Op: n.Op, Attrs: n.Attrs.Clone()}
		for _, a := range n.Args {
			c.Args = append(c.Args, cp(a))
		}
		if n.Body != nil {
			c.Body = n.Body.cloneWith(m)
		}
		if n.Result != nil {
			c.Result = cp(n.Result)
			c.Result.Def = c
		}
		out.Nodes = append(out.Nodes, c)
	}
	for _, v := range g.Outputs {
		out.Outputs = append(out.Outputs, cp(v))
	}
	return out
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
