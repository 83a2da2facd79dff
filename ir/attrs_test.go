package ir_test

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/ir"
)

// TestAttrDefaults: every optional attribute reads its default from the op
// table when absent, through Attr and through its typed getter, and reads
// the value when present. The want column spells out the defaults, so a
// change to the table shows up here.
func TestAttrDefaults(t *testing.T) {
	tests := []struct {
		op    ir.Op
		name  string
		want  any // the default
		given any // a value to store instead
	}{
		{ir.OpRMSNorm, "unit_offset", false, true},
		{ir.OpRoPE, "scaling", "", "linear"},
		{ir.OpRoPE, "factor", 1.0, 8.0},
		{ir.OpRoPE, "low_freq_factor", 1.0, 2.0},
		{ir.OpRoPE, "high_freq_factor", 4.0, 8.0},
		{ir.OpRoPE, "original_max_positions", 8192, 4096},
		{ir.OpRoPE, "dim_factors", []float64(nil), []float64{1, 1.5}},
		{ir.OpKVWrite, "ring", 0, 24},
		{ir.OpCausalMask, "window", 0, 16},
		{ir.OpAttention, "window", 0, 16},
		{ir.OpAttention, "softcap", 0.0, 50.0},
		{ir.OpAttention, "ring", 0, 24},
		{ir.OpKernel, "offset", -1, 64},
		{ir.OpLast, "runs", 0, 4},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.op.String()+"."+tt.name] = true
		t.Run(tt.op.String()+"/"+tt.name, func(t *testing.T) {
			spec, ok := tt.op.Info().Attr(tt.name)
			require.True(t, ok)
			assert.False(t, spec.Required)
			assert.Equal(t, tt.want, spec.Default)

			absent := &ir.Node{Op: tt.op}
			assert.Equal(t, tt.want, absent.Attr(tt.name))
			assert.Equal(t, tt.want, typed(absent, spec.Kind, tt.name))

			present := &ir.Node{Op: tt.op, Attrs: ir.Attrs{tt.name: tt.given}}
			assert.Equal(t, tt.given, present.Attr(tt.name))
			assert.Equal(t, tt.given, typed(present, spec.Kind, tt.name))
		})
	}
	// Every optional attribute of the table is in the list above, and every
	// required one has no default.
	for _, name := range opNames() {
		op, _ := ir.LookupOp(name)
		for _, s := range op.Info().Attrs {
			if s.Required {
				assert.Nil(t, s.Default, "%s.%s is required and has a default", name, s.Name)
				continue
			}
			assert.True(t, covered[name+"."+s.Name], "%s.%s is optional but not tested", name, s.Name)
		}
	}
}

// typed reads an attribute with the typed getter of its kind.
func typed(n *ir.Node, k ir.AttrKind, name string) any {
	switch k {
	case ir.AttrInt:
		return n.IntAttr(name)
	case ir.AttrFloat:
		return n.FloatAttr(name)
	case ir.AttrBool:
		return n.BoolAttr(name)
	case ir.AttrString:
		return n.StringAttr(name)
	case ir.AttrInts:
		return n.IntsAttr(name)
	case ir.AttrFloats:
		return n.FloatsAttr(name)
	}
	panic("unknown kind")
}

// opNames lists every op of the table.
func opNames() []string {
	var names []string
	for op := ir.Op(1); !strings.HasPrefix(op.String(), "op("); op++ {
		names = append(names, op.String())
	}
	return names
}

// TestAttrGetters: ints read as floats, required attributes read as zero
// when absent, list getters return copies, and asking for an attribute
// the op does not have (or with the wrong getter) panics.
func TestAttrGetters(t *testing.T) {
	scale := &ir.Node{Op: ir.OpScale, Attrs: ir.Attrs{"factor": 2}}
	assert.Equal(t, 2.0, scale.FloatAttr("factor"))
	assert.Equal(t, 0.0, (&ir.Node{Op: ir.OpScale}).FloatAttr("factor"), "absent required")
	assert.Nil(t, (&ir.Node{Op: ir.OpScale}).Attr("factor"), "absent required")
	assert.Equal(t, 0, (&ir.Node{Op: ir.OpSlice}).IntAttr("len"), "absent required")

	rope := &ir.Node{Op: ir.OpRoPE, Attrs: ir.Attrs{"dim_factors": []int{1, 2}}}
	assert.Equal(t, []float64{1, 2}, rope.FloatsAttr("dim_factors"))
	stored := []float64{1, 2}
	rope.Attrs["dim_factors"] = stored
	got := rope.FloatsAttr("dim_factors")
	got[0] = 9
	assert.Equal(t, 1.0, stored[0], "FloatsAttr must return a copy")

	assert.PanicsWithValue(t, `ir: attention has no attribute "softcapp"`, func() {
		(&ir.Node{Op: ir.OpAttention}).FloatAttr("softcapp")
	})
	assert.PanicsWithValue(t, `ir: linear has no attribute "ring"`, func() {
		(&ir.Node{Op: ir.OpLinear}).Attr("ring")
	})
	assert.PanicsWithValue(t, "ir: attribute ring of kv_write is of kind int, read as float", func() {
		(&ir.Node{Op: ir.OpKVWrite}).FloatAttr("ring")
	})
	assert.Panics(t, func() { (&ir.Node{Op: ir.OpRoPE}).FloatAttr("dim_factors") })
}

func TestAttrsCloneCopiesLists(t *testing.T) {
	a := ir.Attrs{"dim_factors": []float64{1, 2}, "l": []int{3}}
	c := a.Clone()
	c["dim_factors"].([]float64)[0] = 9
	c["l"].([]int)[0] = 9
	assert.Equal(t, []float64{1, 2}, a["dim_factors"])
	assert.Equal(t, []int{3}, a["l"])
	assert.True(t, a.Equal(ir.Attrs{"dim_factors": []float64{1, 2}, "l": []int{3}}))
	assert.False(t, a.Equal(c))
}

// TestListAttrRoundTrip: list attributes print as [a, b] and parse back to
// the same value and kind; integer lists stay []int, a list with any float
// is []float64.
func TestListAttrRoundTrip(t *testing.T) {
	tests := []struct {
		text  string
		want  any
		print string
	}{
		{"[1.0, 1.5]", []float64{1, 1.5}, "[1.0, 1.5]"},
		{"[1, 2.5]", []float64{1, 2.5}, "[1.0, 2.5]"},
		{"[ 2 , 4 ]", []int{2, 4}, "[2, 4]"},
		{"[1e+03,2.0]", []float64{1000, 2}, "[1000.0, 2.0]"},
		{"[0.1, 3]", []float64{0.1, 3}, "[0.1, 3.0]"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			src := "graph g(%x: f32[1, 2, 4], %p: i32[]) {\n  %y = rope %x, %p {theta=10000.0, dim_factors=" + tt.text +
				"} : f32[1, 2, 4]\n  return %y\n}\n"
			g, err := ir.Parse(src)
			require.NoError(t, err, src)
			require.NoError(t, ir.Verify(g))
			y, _ := g.Lookup("%y")
			assert.Equal(t, tt.want, y.Def.Attrs["dim_factors"])
			text := ir.Print(g)
			assert.Contains(t, text, "dim_factors="+tt.print)
			assert.Equal(t, "{v="+tt.print+"}", ir.Attrs{"v": tt.want}.Format())
			checkRoundTrip(t, g)
		})
	}
	// Lists of any length, and the special floats, print and parse back.
	for _, l := range []any{[]int{}, []int{-3}, []float64{math.Inf(1), math.Inf(-1), -0.5}} {
		assert.NotPanics(t, func() { _ = ir.Attrs{"v": l}.Format() })
	}
	assert.Equal(t, "{v=[]}", ir.Attrs{"v": []int{}}.Format())
	assert.Equal(t, "{v=[inf, -inf, nan]}", ir.Attrs{"v": []float64{math.Inf(1), math.Inf(-1), math.NaN()}}.Format())
}

// TestListAttrErrors: the parser refuses malformed lists and the verifier
// (run by the parser and by Emit) refuses lists where scalars are wanted,
// scalars where lists are wanted, and dim_factors that do not fit.
func TestListAttrErrors(t *testing.T) {
	rope := func(attrs string) string {
		return "graph g(%x: f32[1, 2, 4], %p: i32[]) {\n  %y = rope %x, %p {" + attrs + "} : f32[1, 2, 4]\n  return %y\n}\n"
	}
	tests := []struct {
		name, src, msg string
	}{
		{"scalar for list", rope("theta=1.0, dim_factors=1.0"), "attribute dim_factors=1.0 has the wrong type (want float list)"},
		{"list for scalar", rope("theta=[1.0, 2.0]"), "attribute theta=[1.0, 2.0] has the wrong type (want float)"},
		{"int list for int", "graph g(%x: f32[2, 4]) {\n  %y = slice %x {start=[0], len=2} : f32[2, 2]\n  return %y\n}\n",
			"attribute start=[0] has the wrong type (want int)"},
		{"too few", rope("theta=1.0, dim_factors=[1.0]"), "dim_factors has 1 factors, want head dim / 2 = 2"},
		{"too many", rope("theta=1.0, dim_factors=[1, 2, 3]"), "dim_factors has 3 factors, want head dim / 2 = 2"},
		{"empty", rope("theta=1.0, dim_factors=[]"), "dim_factors has 0 factors"},
		{"zero", rope("theta=1.0, dim_factors=[1.0, 0.0]"), "dim_factors[1] is 0.0, want a positive number"},
		{"nan", rope("theta=1.0, dim_factors=[nan, 1.0]"), "dim_factors[0] is nan, want a positive number"},
		{"inf", rope("theta=1.0, dim_factors=[1.0, inf]"), "dim_factors[1] is inf, want a positive number"},
		{"bool element", rope("theta=1.0, dim_factors=[1.0, true]"), "list element true is not a number"},
		{"string element", rope(`theta=1.0, dim_factors=[1.0, "a"]`), `bad list element "\"a\""`},
		{"nested", rope("theta=1.0, dim_factors=[[1.0]]"), `bad list element "["`},
		{"no comma", rope("theta=1.0, dim_factors=[1.0 2.0]"), `expected ",", found "2.0"`},
		{"unclosed", "graph g(%x: f32[1, 2, 4], %p: i32[]) {\n  %y = rope %x, %p {theta=1.0, dim_factors=[1.0,\n  return %y\n}\n", "unexpected end of line"},
		{"bad number", rope("theta=1.0, dim_factors=[1.0, 1x]"), `bad attribute value "1x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ir.Parse(tt.src)
			require.Error(t, err)
			var pe *ir.ParseError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, 2, pe.Line)
			assert.Contains(t, pe.Msg, tt.msg)
		})
	}

	// Emit checks the same as the parser.
	g := ir.NewGraph("g")
	x, err := g.Input("x", ir.T(ir.F32, ir.C(1), ir.C(2), ir.C(4)))
	require.NoError(t, err)
	p, err := g.Input("p", ir.T(ir.I32))
	require.NoError(t, err)
	_, err = g.Emit(ir.OpRoPE, "y", ir.Attrs{"theta": 1.0, "dim_factors": []string{"a"}}, ir.Type{}, x, p)
	assert.ErrorContains(t, err, "has the wrong type (want float list)")
	_, err = g.Emit(ir.OpRoPE, "y", ir.Attrs{"theta": 1.0, "dim_factors": 2.0}, ir.Type{}, x, p)
	assert.ErrorContains(t, err, "has the wrong type (want float list)")
	_, err = g.Emit(ir.OpRoPE, "y", ir.Attrs{"theta": 1.0, "dim_factors": []float64{1, 2}}, ir.Type{}, x, p)
	assert.NoError(t, err)
}

// TestRoPEDimFactors: each inverse frequency is divided by its dimension's
// factor, as transformers' longrope does (1 / (ext_factors * base^(2i/d))).
func TestRoPEDimFactors(t *testing.T) {
	plain := ir.RoPEFrequencies(8, ir.Attrs{"theta": 10000.0})
	factors := []float64{1, 2, 4, 8}
	scaled := ir.RoPEFrequencies(8, ir.Attrs{"theta": 10000.0, "dim_factors": factors})
	require.Len(t, scaled, 4)
	for i := range plain {
		want := float32(1 / (factors[i] * math.Pow(10000, float64(2*i)/8)))
		assert.Equal(t, want, scaled[i], "i=%d", i)
	}
	assert.Equal(t, plain, ir.RoPEFrequencies(8, ir.Attrs{"theta": 10000.0, "dim_factors": []float64{1, 1, 1, 1}}))
	// Absent scaling attributes read the table's defaults.
	assert.Equal(t,
		ir.RoPEFrequencies(8, ir.Attrs{"theta": 500000.0, "scaling": "llama3", "factor": 8.0}),
		ir.RoPEFrequencies(8, ir.Attrs{"theta": 500000.0, "scaling": "llama3", "factor": 8.0,
			"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_positions": 8192}))
}
