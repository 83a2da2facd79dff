package ir_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/ir"
)

// verifyBase is a valid graph that the verifier tests break one way at a
// time. It has a kernel with a body (reading %af and %x from outside).
const verifyBase = `
graph base[seq, ctx](%tokens: i32[seq], %pos: i32[]) {
  weight @emb: f32[32, 16]
  weight @norm: f32[16]
  weight @wq: f32[16, 16]
  weight @wk: f32[8, 16]
  weight @wv: f32[8, 16]
  weight @wkv: f32[16, 16] = concat @wk, @wv
  state $k: f32[ctx, 2, 4]
  state $v: f32[ctx, 2, 4]
  state $ks: f32[64, 2, 4]

  %x = embedding @emb, %tokens : f32[seq, 16]
  %h = rms_norm %x, @norm {eps=1e-05} : f32[seq, 16]
  %q = linear %h, @wq : f32[seq, 16]
  %k = linear %h, @wk : f32[seq, 8]
  %qh = reshape %q : f32[seq, 4, 4]
  %kh = reshape %k : f32[seq, 2, 4]
  kv_append $k, %kh
  kv_append $v, %kh
  kv_write $ks, %kh, %pos
  %a = attention %qh, $k, $v, %pos {scale=0.5} : f32[seq, 4, 4]
  %af = reshape %a : f32[seq, 16]
  %f = kernel fused : f32[seq, 16] {
    %s = silu %af : f32[seq, 16]
    %m = mul %s, %x : f32[seq, 16]
    yield %m
  }
  %kv = linear %f, @wkv : f32[seq, 16]
  %sl = slice %kv {start=8, len=8} : f32[seq, 8]
  %out = add %f, %x : f32[seq, 16]
  return %out, %sl
}
`

func parseBase(t *testing.T) *ir.Graph {
	t.Helper()
	g, err := ir.Parse(verifyBase)
	require.NoError(t, err)
	require.NoError(t, ir.Verify(g))
	return g
}

// value returns the value written as ref, failing the test if there is none.
func value(t *testing.T, g *ir.Graph, ref string) *ir.Value {
	t.Helper()
	v, ok := g.Lookup(ref)
	require.True(t, ok, "no value %s", ref)
	return v
}

// node returns the node defining ref.
func node(t *testing.T, g *ir.Graph, ref string) *ir.Node {
	t.Helper()
	v := value(t, g, ref)
	require.NotNil(t, v.Def, "%s has no defining node", ref)
	return v.Def
}

// nodeAt returns the i-th top-level node whose op is op.
func nodeAt(t *testing.T, g *ir.Graph, op ir.Op, i int) *ir.Node {
	t.Helper()
	for _, n := range g.Nodes {
		if n.Op == op {
			if i == 0 {
				return n
			}
			i--
		}
	}
	t.Fatalf("no such %s node", op)
	return nil
}

func indexOf(t *testing.T, g *ir.Graph, n *ir.Node) int {
	t.Helper()
	for i, m := range g.Nodes {
		if m == n {
			return i
		}
	}
	t.Fatalf("%s is not a top-level node", n.LongString())
	return -1
}

func TestVerifyBase(t *testing.T) {
	g := parseBase(t)
	// Verify also accepts graphs assembled by hand, without a name table.
	c := g.Clone()
	assert.NoError(t, ir.Verify(c))
}

func TestVerifyErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(t *testing.T, g *ir.Graph)
		want   []string // substrings of the error
	}{
		{
			name:   "undeclared symbol",
			mutate: func(t *testing.T, g *ir.Graph) { g.Syms = []string{"seq"} },
			want:   []string{"$k: symbol ctx in f32[ctx, 2, 4] is not declared"},
		},
		{
			name:   "symbol declared twice",
			mutate: func(t *testing.T, g *ir.Graph) { g.Syms = append(g.Syms, "seq") },
			want:   []string{"symbol seq declared twice"},
		},
		{
			name: "value used before definition",
			mutate: func(t *testing.T, g *ir.Graph) {
				i, j := indexOf(t, g, node(t, g, "%h")), indexOf(t, g, node(t, g, "%q"))
				g.Nodes[i], g.Nodes[j] = g.Nodes[j], g.Nodes[i]
			},
			want: []string{"%q = linear %h, @wq : f32[seq, 16]: %h is used but not defined before this point"},
		},
		{
			name:   "duplicate node name",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "%k").Name = "q" },
			want:   []string{"%q is defined twice"},
		},
		{
			name:   "node named like an input",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "%x").Name = "pos" },
			want:   []string{"%pos is defined twice"},
		},
		{
			name:   "body value named like an outer value",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "%s").Name = "x" },
			want:   []string{"%x is defined twice"},
		},
		{
			name: "wrong argument count",
			mutate: func(t *testing.T, g *ir.Graph) {
				n := node(t, g, "%out")
				n.Args = append(n.Args, n.Args[0])
			},
			want: []string{"%out = add %f, %x, %f : f32[seq, 16]: add takes 2 arguments, got 3"},
		},
		{
			name:   "too few arguments with an optional one",
			mutate: func(t *testing.T, g *ir.Graph) { n := node(t, g, "%q"); n.Args = n.Args[:1] },
			want:   []string{"linear takes 2 to 3 arguments, got 1"},
		},
		{
			name:   "weight where a state is needed",
			mutate: func(t *testing.T, g *ir.Graph) { nodeAt(t, g, ir.OpKVAppend, 0).Args[0] = value(t, g, "@norm") },
			want:   []string{"kv_append @norm, %kh: argument 1 @norm must be a state"},
		},
		{
			name:   "tensor where a weight is needed",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%q").Args[1] = value(t, g, "%h") },
			want:   []string{"argument 2 %h must be a weight"},
		},
		{
			name:   "state where a tensor is needed",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%out").Args[1] = value(t, g, "$k") },
			want:   []string{"argument 2 $k is a state; only cache ops take states"},
		},
		{
			name:   "unknown attribute",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%h").Attrs["epsilon"] = 1e-5 },
			want:   []string{`rms_norm has no attribute "epsilon"`},
		},
		{
			name:   "unknown kernel attribute",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%f").Attrs["tile"] = 4 },
			want:   []string{`kernel has no attribute "tile"`},
		},
		{
			name:   "missing required attribute",
			mutate: func(t *testing.T, g *ir.Graph) { delete(node(t, g, "%h").Attrs, "eps") },
			want:   []string{"%h = rms_norm %x, @norm : f32[seq, 16]: missing attribute eps"},
		},
		{
			name:   "missing kernel name",
			mutate: func(t *testing.T, g *ir.Graph) { delete(node(t, g, "%f").Attrs, "name") },
			want:   []string{"missing attribute name"},
		},
		{
			name:   "wrong attribute type",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%h").Attrs["eps"] = "small" },
			want:   []string{`attribute eps="small" has the wrong type`},
		},
		{
			name:   "float where an int is needed",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%sl").Attrs["len"] = 8.0 },
			want:   []string{"attribute len=8.0 has the wrong type"},
		},
		{
			name:   "result type mismatch",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "%q").Type = ir.T(ir.F32, ir.S("seq"), ir.C(15)) },
			want:   []string{"%q = linear %h, @wq : f32[seq, 15]: result type f32[seq, 15], but linear gives f32[seq, 16]"},
		},
		{
			name:   "result dtype mismatch",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "%out").Type.DType = ir.F16 },
			want:   []string{"result type f16[seq, 16], but add gives f32[seq, 16]"},
		},
		{
			name:   "linear inner-dim mismatch",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "@wq").Type = ir.T(ir.F32, ir.C(16), ir.C(12)) },
			want:   []string{"inner dims differ (%h [seq, 16] × @wq [16, 12]): 16 vs 12"},
		},
		{
			name: "attention head count not a multiple",
			mutate: func(t *testing.T, g *ir.Graph) {
				for _, ref := range []string{"$k", "$v"} {
					value(t, g, ref).Type = ir.T(ir.F32, ir.S("ctx"), ir.C(3), ir.C(4))
				}
			},
			want: []string{"%a = attention %qh, $k, $v, %pos {scale=0.5} : f32[seq, 4, 4]: 4 query heads is not a multiple of 3 key/value heads"},
		},
		{
			name:   "key and value caches differ",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%a").Args[2] = value(t, g, "$ks") },
			want:   []string{"key cache $k: f32[ctx, 2, 4] and value cache $ks: f32[64, 2, 4] differ"},
		},
		{
			name:   "kv_write to a dynamic cache",
			mutate: func(t *testing.T, g *ir.Graph) { nodeAt(t, g, ir.OpKVWrite, 0).Args[0] = value(t, g, "$k") },
			want:   []string{"kv_write needs a static cache, $k is f32[ctx, 2, 4]"},
		},
		{
			name:   "slice out of range",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%sl").Attrs["start"] = 9 },
			want:   []string{"columns [9, 17) are not inside f32[seq, 16]"},
		},
		{
			// start+len overflows int; it must not wrap around into range.
			name: "slice start near max int",
			mutate: func(t *testing.T, g *ir.Graph) {
				node(t, g, "%sl").Attrs["start"] = int(^uint(0) >> 1)
				node(t, g, "%sl").Attrs["len"] = 1
				value(t, g, "%sl").Type = ir.T(ir.F32, ir.S("seq"), ir.C(1))
			},
			want: []string{"are not inside f32[seq, 16]"},
		},
		{
			name: "kernel arguments do not match its body's captures",
			mutate: func(t *testing.T, g *ir.Graph) {
				n := node(t, g, "%f")
				n.Args[0], n.Args[1] = n.Args[1], n.Args[0]
			},
			want: []string{"%f = kernel fused : f32[seq, 16]: arguments do not match the values its body reads"},
		},
		{
			name:   "kernel with a missing argument",
			mutate: func(t *testing.T, g *ir.Graph) { n := node(t, g, "%f"); n.Args = n.Args[:1] },
			want:   []string{"arguments do not match the values its body reads"},
		},
		{
			name:   "outer node uses a value defined inside a kernel body",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%out").Args[0] = value(t, g, "%s") },
			want:   []string{"%out = add %s, %x : f32[seq, 16]: %s is used but not defined before this point"},
		},
		{
			name:   "output defined inside a kernel body",
			mutate: func(t *testing.T, g *ir.Graph) { g.Outputs = []*ir.Value{value(t, g, "%m")} },
			want:   []string{"output %m is not defined"},
		},
		{
			name: "kernel body uses a value defined after the kernel",
			mutate: func(t *testing.T, g *ir.Graph) {
				k := node(t, g, "%f")
				k.Body.Nodes[1].Args[1] = value(t, g, "%out")
				k.Args = k.Body.Captures()
			},
			// Reported at the kernel, whose arguments are what its body reads.
			want: []string{"%f = kernel fused : f32[seq, 16]: %out is used but not defined before this point"},
		},
		{
			name:   "kernel yields an undefined value",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%f").Body.Outputs = []*ir.Value{value(t, g, "%out")} },
			want:   []string{"yields %out, which is not defined"},
		},
		{
			name: "kernel yields two values",
			mutate: func(t *testing.T, g *ir.Graph) {
				b := node(t, g, "%f").Body
				b.Outputs = append(b.Outputs, value(t, g, "%s"))
			},
			want: []string{"kernel body yields 2 values, want at most 1"},
		},
		{
			name:   "kernel without a body",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%f").Body = nil },
			want:   []string{"kernel without a body"},
		},
		{
			name:   "body on a node that is not a kernel",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%out").Body = node(t, g, "%f").Body },
			want:   []string{"only kernels have bodies"},
		},
		{
			name:   "missing outputs",
			mutate: func(t *testing.T, g *ir.Graph) { g.Outputs = nil },
			want:   []string{"graph base: no outputs"},
		},
		{
			name:   "nil output",
			mutate: func(t *testing.T, g *ir.Graph) { g.Outputs = []*ir.Value{nil} },
			want:   []string{"output <nil> is not defined"},
		},
		{
			name:   "nil argument",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%out").Args[1] = nil },
			want:   []string{"argument 2 is nil"},
		},
		{
			name:   "result not linked to its node",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "%out").Def = node(t, g, "%q") },
			want:   []string{"%out = add %f, %x : f32[seq, 16]: result is not linked to its node"},
		},
		{
			name: "effect-only op given a result",
			mutate: func(t *testing.T, g *ir.Graph) {
				n := nodeAt(t, g, ir.OpKVAppend, 0)
				n.Result = &ir.Value{Name: "oops", Kind: ir.KindNode, Type: ir.T(ir.F32, ir.C(1)), Def: n}
			},
			want: []string{"op has no result"},
		},
		{
			name:   "node result missing",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%sl").Result = nil },
			want:   []string{"result of type f32[seq, 8] is missing"},
		},
		{
			name:   "reshape without a result",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%af").Result = nil },
			want:   []string{"reshape needs its result type"},
		},
		{
			name:   "invalid value name",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "%q").Name = "a b" },
			want:   []string{`invalid name "a b"`},
		},
		{
			name:   "invalid graph name",
			mutate: func(t *testing.T, g *ir.Graph) { g.Name = "" },
			want:   []string{`invalid graph name ""`},
		},
		{
			// Print writes graph, symbol and kernel names where Parse reads
			// identifiers; names that start like numbers would not read back
			// (and a symbol "16" would read back as the constant 16).
			name:   "graph name that is not an identifier",
			mutate: func(t *testing.T, g *ir.Graph) { g.Name = "1st" },
			want:   []string{`invalid graph name "1st"`},
		},
		{
			name: "symbol name that is not an identifier",
			mutate: func(t *testing.T, g *ir.Graph) {
				g.Syms = append(g.Syms, "16")
				value(t, g, "@norm").Type = ir.T(ir.F32, ir.S("16"))
			},
			want: []string{`invalid symbol name "16"`},
		},
		{
			name:   "kernel name that is not an identifier",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%f").Attrs["name"] = "-fused" },
			want:   []string{`%f = kernel -fused : f32[seq, 16]: invalid kernel name "-fused"`},
		},
		{
			name:   "empty kernel name",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%f").Attrs["name"] = "" },
			want:   []string{`invalid kernel name ""`},
		},
		{
			name:   "kernel name of the wrong type",
			mutate: func(t *testing.T, g *ir.Graph) { node(t, g, "%f").Attrs["name"] = 7 },
			want:   []string{"attribute name=7 has the wrong type"},
		},
		{
			name:   "negative dimension",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "@norm").Type = ir.T(ir.F32, ir.C(-16)) },
			want:   []string{"@norm: negative dimension in f32[-16]"},
		},
		{
			name:   "input of the wrong kind",
			mutate: func(t *testing.T, g *ir.Graph) { g.Inputs[1].Kind = ir.KindState },
			want:   []string{"$pos is listed as a input but has another kind"},
		},
		{
			name:   "derived weight declared before its arguments",
			mutate: func(t *testing.T, g *ir.Graph) { w := g.Weights; w[3], w[5] = w[5], w[3] },
			want:   []string{"weight @wkv is made from @wk, which is not declared before it"},
		},
		{
			name:   "derived weight of the wrong type",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "@wkv").Type = ir.T(ir.F32, ir.C(8), ir.C(16)) },
			want:   []string{"weight @wkv is declared f32[8, 16], but concat gives f32[16, 16]"},
		},
		{
			name:   "derived weight with an unknown derivation",
			mutate: func(t *testing.T, g *ir.Graph) { value(t, g, "@wkv").Derive.Op = "transpose" },
			want:   []string{`unknown weight derivation "transpose"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := parseBase(t)
			tt.mutate(t, g)
			g.Reindex()
			var err error
			require.NotPanics(t, func() { err = ir.Verify(g) })
			require.Error(t, err)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "graph "), "errors name the graph: %v", err)
			// Printing a broken graph must not panic either: it is how
			// errors and dumps show it.
			require.NotPanics(t, func() { _ = ir.Print(g) })
		})
	}
}

// TestVerifyCollectsErrors checks that Verify reports every problem, joined,
// rather than only the first.
func TestVerifyCollectsErrors(t *testing.T) {
	g := parseBase(t)
	delete(node(t, g, "%h").Attrs, "eps")
	g.Outputs = nil
	value(t, g, "@wq").Type = ir.T(ir.F32, ir.C(16), ir.C(12))
	err := ir.Verify(g)
	require.Error(t, err)
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined), "Verify joins its errors")
	assert.Len(t, joined.Unwrap(), 3, "%v", err)
	for _, want := range []string{"missing attribute eps", "inner dims differ", "no outputs"} {
		assert.Contains(t, err.Error(), want)
	}
}
