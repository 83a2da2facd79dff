package ir_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/ir"
)

// parseHead opens the graph most parse-error cases use; its last line is
// line 4.
const parseHead = `graph g[seq](%x: f32[seq, 4], %pos: i32[]) {
  weight @w: f32[4, 4]
  state $c: f32[8, 1, 4]
  %y = silu %x : f32[seq, 4]
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		line int
		msg  string
	}{
		{
			name: "unknown op",
			src:  parseHead + "  %z = frobnicate %y : f32[seq, 4]\n  return %z\n}\n",
			line: 5, msg: `unknown op "frobnicate"`,
		},
		{
			name: "unterminated string",
			src:  parseHead + "  %r = reshape %y : f32[seq, 1, 4]\n  %z = rope %r, %pos {theta=1.0, scaling=\"linear} : f32[seq, 1, 4]\n  return %z\n}\n",
			line: 6, msg: "unterminated string",
		},
		{
			name: "string ending in a backslash",
			src:  parseHead + "  %z = rope %y, %pos {scaling=\"a\\\"}\n}\n",
			line: 5, msg: "unterminated string",
		},
		{
			name: "bad escape in a string",
			src:  parseHead + "  %r = reshape %y : f32[seq, 1, 4]\n  %z = rope %r, %pos {theta=1.0, scaling=\"\\q\"} : f32[seq, 1, 4]\n}\n",
			line: 6, msg: "attribute scaling: invalid syntax",
		},
		{
			name: "bad dtype in an input",
			src:  "graph g(%x: f64[4]) {\n  return %x\n}\n",
			line: 1, msg: `unknown dtype "f64"`,
		},
		{
			name: "bad dtype in a result",
			src:  parseHead + "  %z = silu %y : float[seq, 4]\n",
			line: 5, msg: `unknown dtype "float"`,
		},
		{
			name: "missing type",
			src:  parseHead + "  %z = silu %y\n  return %z\n}\n",
			line: 5, msg: `%z needs a type ("... : f32[...]")`,
		},
		{
			name: "missing type after the colon",
			src:  parseHead + "  %z = silu %y :\n",
			line: 5, msg: "unexpected end of line",
		},
		{
			name: "input without a type",
			src:  "graph g(%x) {\n}\n",
			line: 1, msg: `expected ":", found ")"`,
		},
		{
			name: "undefined value",
			src:  parseHead + "  %z = add %y, %nope : f32[seq, 4]\n  return %z\n}\n",
			line: 5, msg: "%nope is not defined",
		},
		{
			name: "undefined output",
			src:  parseHead + "  return %y, %nope\n}\n",
			line: 5, msg: "%nope is not defined",
		},
		{
			name: "undeclared symbol",
			src:  "graph g[seq](%x: f32[ctx]) {\n}\n",
			line: 1, msg: `undeclared symbol "ctx"`,
		},
		{
			name: "symbol declared twice",
			src:  "graph g[seq, seq]() {\n}\n",
			line: 1, msg: `symbol "seq" declared twice`,
		},
		{
			name: "node result defined twice",
			src:  parseHead + "  %y = silu %x : f32[seq, 4]\n",
			line: 5, msg: "%y is defined twice",
		},
		{
			name: "node named like an input",
			src:  parseHead + "  %x = silu %y : f32[seq, 4]\n",
			line: 5, msg: "%x is defined twice",
		},
		{
			name: "weight declared twice",
			src:  "graph g() {\n  weight @w: f32[4]\n\n  weight @w: f32[4]\n}\n",
			line: 4, msg: "@w is declared twice",
		},
		{
			name: "state declared twice",
			src:  "graph g() {\n  state $s: f32[4]\n  state $s: f32[4]\n}\n",
			line: 3, msg: "$s is declared twice",
		},
		{
			name: "input declared twice",
			src:  "graph g(%x: f32[1], %x: f32[1]) {\n}\n",
			line: 1, msg: "%x is defined twice",
		},
		{
			name: "kernel body value reused after the kernel",
			src: parseHead + "  %k = kernel f : f32[seq, 4] {\n    %s = silu %y : f32[seq, 4]\n    yield %s\n  }\n" +
				"  %s = add %k, %y : f32[seq, 4]\n  return %s\n}\n",
			line: 9, msg: "%s is defined twice",
		},
		{
			name: "kernel body value used after the kernel",
			src: parseHead + "  %k = kernel f : f32[seq, 4] {\n    %s = silu %y : f32[seq, 4]\n    yield %s\n  }\n" +
				"  %z = add %k, %s : f32[seq, 4]\n",
			line: 9, msg: "%s is not defined",
		},
		{
			name: "unexpected token after a node",
			src:  parseHead + "  %z = silu %y : f32[seq, 4] extra\n",
			line: 5, msg: `unexpected "extra"`,
		},
		{
			name: "unexpected token after the header",
			src:  "graph g() { x\n}\n",
			line: 1, msg: `unexpected "x"`,
		},
		{
			name: "unexpected token after a closing brace",
			src:  parseHead + "  return %y\n} trailing\n",
			line: 6, msg: `unexpected "trailing"`,
		},
		{
			name: "unexpected character",
			src:  parseHead + "  %z = silu %y ; f32[seq, 4]\n",
			line: 5, msg: "unexpected character ';'",
		},
		{
			name: "argument list without commas",
			src:  parseHead + "  %z = add %y %x : f32[seq, 4]\n",
			line: 5, msg: `expected "," before %x`,
		},
		{
			name: "missing closing brace of the graph",
			src:  parseHead + "  return %y\n",
			line: 5, msg: `missing "}"`,
		},
		{
			name: "missing closing brace of a kernel",
			src:  parseHead + "  %k = kernel f : f32[seq, 4] {\n    %s = silu %y : f32[seq, 4]\n    yield %s\n\n# end\n",
			line: 7, msg: `missing "}"`,
		},
		{
			name: "return not last",
			src:  parseHead + "  return %y\n  %z = silu %y : f32[seq, 4]\n}\n",
			line: 6, msg: "return must be the last line of its block",
		},
		{
			name: "yield not last",
			src:  parseHead + "  %k = kernel f : f32[seq, 4] {\n    yield %y\n    %s = silu %y : f32[seq, 4]\n  }\n",
			line: 7, msg: "yield must be the last line of its block",
		},
		{
			name: "return in a kernel body",
			src:  parseHead + "  %k = kernel f : f32[seq, 4] {\n    return %y\n  }\n",
			line: 6, msg: `"return" where "yield" was expected`,
		},
		{
			name: "weight declared in a kernel body",
			src:  parseHead + "  kernel f {\n    weight @v: f32[4]\n  }\n",
			line: 6, msg: "weight declarations must come before the graph's nodes",
		},
		{
			name: "weight declared after a node",
			src:  parseHead + "  weight @v: f32[4]\n",
			line: 5, msg: "weight declarations must come before the graph's nodes",
		},
		{
			name: "not a graph",
			src:  "\n# comment\nfunc g() {\n}\n",
			line: 3, msg: `expected "graph NAME(...) {"`,
		},
		{
			name: "wrong argument count",
			src:  parseHead + "  %z = silu %y, %x : f32[seq, 4]\n",
			line: 5, msg: "silu takes 1 arguments, got 2",
		},
		{
			name: "state where a tensor is needed",
			src:  parseHead + "  %z = silu $c : f32[8, 1, 4]\n",
			line: 5, msg: "argument 1 $c is a state",
		},
		{
			name: "declared type differs from the inferred one",
			src:  parseHead + "  %z = linear %y, @w : f32[seq, 5]\n",
			line: 5, msg: "declared type f32[seq, 5], but linear gives f32[seq, 4]",
		},
		{
			name: "kernel type differs from its yield",
			src:  parseHead + "  %k = kernel f : f32[seq, 5] {\n    yield %y\n  }\n",
			line: 5, msg: "declared type f32[seq, 5], but kernel gives f32[seq, 4]",
		},
		{
			name: "typed node without a result",
			src:  parseHead + "  silu %y : f32[seq, 4]\n",
			line: 5, msg: "a typed node needs a result name",
		},
		{
			name: "reshape without a result",
			src:  parseHead + "  reshape %y\n",
			line: 5, msg: "reshape needs its result type",
		},
		{
			name: "result that is not a %name",
			src:  parseHead + "  @z = silu %y : f32[seq, 4]\n",
			line: 5, msg: `a node's result must be a %name, found "@z"`,
		},
		{
			name: "bad dimension",
			src:  "graph g(%x: f32[-1]) {\n}\n",
			line: 1, msg: `bad dimension "-1"`,
		},
		{
			name: "bad attribute value",
			src:  parseHead + "  %z = scale %y {factor=big} : f32[seq, 4]\n",
			line: 5, msg: `attribute factor: bad attribute value "big"`,
		},
		{
			name: "attribute given twice",
			src:  parseHead + "  %z = scale %y {factor=1.0, factor=2.0} : f32[seq, 4]\n",
			line: 5, msg: "attribute factor given twice",
		},
		{
			name: "unknown attribute",
			src:  parseHead + "  %z = scale %y {factor=1.0, bias=2.0} : f32[seq, 4]\n",
			line: 5, msg: `scale has no attribute "bias"`,
		},
		{
			// Found by FuzzParse (testdata/fuzz/FuzzParse/cc8af661b3f5b68b):
			// kernels are variadic, and their attributes went unchecked.
			name: "unknown kernel attribute",
			src:  parseHead + "  kernel f {offset=1, tile=4} {\n    %s = silu %y : f32[seq, 4]\n  }\n",
			line: 5, msg: `kernel has no attribute "tile"`,
		},
		{
			name: "kernel attribute of the wrong type",
			src:  parseHead + "  kernel f {offset=\"one\"} {\n  }\n",
			line: 5, msg: `attribute offset="one" has the wrong type`,
		},
		{
			name: "float out of range",
			src:  parseHead + "  %z = scale %y {factor=1e999} : f32[seq, 4]\n",
			line: 5, msg: "attribute factor",
		},
		{
			name: "sigil without a name",
			src:  parseHead + "  %z = silu % : f32[seq, 4]\n",
			line: 5, msg: "% must be followed by a name",
		},
		{
			name: "derived weight of the wrong type",
			src:  "graph g() {\n  weight @a: f32[2, 4]\n  weight @b: f32[2, 4]\n  weight @ab: f32[2, 4] = concat @a, @b\n}\n",
			line: 4, msg: "weight @ab is declared f32[2, 4], but concat gives f32[4, 4]",
		},
		{
			name: "derived weight from an undeclared weight",
			src:  "graph g() {\n  weight @a: f32[2, 4]\n  weight @ab: f32[4, 4] = concat @a, @b\n}\n",
			line: 3, msg: "@b is not defined",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ir.Parse(tt.src)
			require.Error(t, err, "parsed:\n%s", printOrNil(g))
			var pe *ir.ParseError
			require.True(t, errors.As(err, &pe), "want a *ir.ParseError, got %T: %v", err, err)
			assert.Equal(t, tt.line, pe.Line, "line of %v", err)
			assert.Contains(t, pe.Msg, tt.msg)
			assert.True(t, strings.HasPrefix(err.Error(), "line "), "%v", err)
		})
	}
}

func printOrNil(g *ir.Graph) string {
	if g == nil {
		return "<nil>"
	}
	return ir.Print(g)
}

func TestParseModule(t *testing.T) {
	src := "graph a(%x: f32[1]) {\n  return %x\n}\n\n# between graphs\ngraph b(%y: i32[]) {\n  return %y\n}\n"
	gs, err := ir.ParseModule(src)
	require.NoError(t, err)
	require.Len(t, gs, 2)
	assert.Equal(t, "a", gs[0].Name)
	assert.Equal(t, "b", gs[1].Name)
	assert.Equal(t, "graph a(%x: f32[1]) {\n  return %x\n}\n\ngraph b(%y: i32[]) {\n  return %y\n}\n", ir.PrintModule(gs))

	// Parse wants exactly one graph.
	_, err = ir.Parse(src)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "want exactly one graph, found 2")
	_, err = ir.Parse("# nothing\n\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "found 0")

	// A graph's values are its own: b cannot use a's.
	_, err = ir.ParseModule("graph a(%x: f32[1]) {\n  return %x\n}\ngraph b() {\n  return %x\n}\n")
	var pe *ir.ParseError
	require.True(t, errors.As(err, &pe), "%v", err)
	assert.Equal(t, 5, pe.Line)
}

// TestParseNoOutputs: the parser accepts a graph that returns nothing (the
// text is well formed); the verifier rejects it.
func TestParseNoOutputs(t *testing.T) {
	for _, src := range []string{
		"graph g(%x: f32[1]) {\n}\n",
		"graph g(%x: f32[1]) {\n  return\n}\n",
	} {
		g, err := ir.Parse(src)
		require.NoError(t, err)
		assert.Empty(t, g.Outputs)
		err = ir.Verify(g)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no outputs")
		assert.Equal(t, "graph g(%x: f32[1]) {\n}\n", ir.Print(g))
	}
}

// TestParseLookup checks that parsed graphs have their name table: every
// value, including those inside kernel bodies, is found by Lookup.
func TestParseLookup(t *testing.T) {
	g := parseBase(t)
	for _, ref := range []string{"%tokens", "%pos", "@emb", "@wkv", "$k", "$ks", "%x", "%f", "%s", "%m", "%out"} {
		v, ok := g.Lookup(ref)
		if assert.True(t, ok, ref) {
			assert.Equal(t, ref, v.Ref())
		}
	}
	_, ok := g.Lookup("%nope")
	assert.False(t, ok)
	wkv := value(t, g, "@wkv")
	require.NotNil(t, wkv.Derive)
	assert.Equal(t, []*ir.Value{value(t, g, "@wk"), value(t, g, "@wv")}, wkv.Derive.Args)
}
