package ir_test

import (
	"flag"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/tools/txtar"

	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
)

var update = flag.Bool("update", false, "rewrite the out.ir sections of testdata/roundtrip/*.txtar")

// checkRoundTrip checks the properties every graph's text form must have:
// g verifies, Print(Parse(Print(g))) == Print(g), the parsed graph verifies,
// and Clone prints identically without sharing values with the original.
func checkRoundTrip(t *testing.T, g *ir.Graph) string {
	t.Helper()
	require.NoError(t, ir.Verify(g), "the graph itself")
	text := ir.Print(g)
	parsed, err := ir.Parse(text)
	require.NoError(t, err, "parsing the printed graph:\n%s", text)
	assert.NoError(t, ir.Verify(parsed), "verifying the parsed graph")
	assert.Equal(t, text, ir.Print(parsed), "Print(Parse(Print(g))) != Print(g)")

	clone := g.Clone()
	assert.NoError(t, ir.Verify(clone), "verifying the clone")
	assert.Equal(t, text, ir.Print(clone), "Print(g.Clone()) != Print(g)")
	assertDisjoint(t, g, clone)
	return text
}

// assertDisjoint checks that a clone shares no values, nodes or shapes with
// its original.
func assertDisjoint(t *testing.T, g, c *ir.Graph) {
	t.Helper()
	orig := map[*ir.Value]bool{}
	origNodes := map[*ir.Node]bool{}
	collect(g, func(v *ir.Value) { orig[v] = true }, func(n *ir.Node) { origNodes[n] = true })
	collect(c, func(v *ir.Value) {
		assert.False(t, orig[v], "clone shares value %s", v.Ref())
	}, func(n *ir.Node) {
		assert.False(t, origNodes[n], "clone shares node %s", n.LongString())
	})
	// Mutating the clone must leave the original's printed form alone.
	before := ir.Print(g)
	c.Walk(func(n *ir.Node) {
		if n.Result != nil && len(n.Result.Type.Shape) > 0 {
			n.Result.Type.Shape[0] = ir.C(12345)
		}
		for k := range n.Attrs {
			n.Attrs[k] = "mutated"
		}
	})
	assert.Equal(t, before, ir.Print(g), "mutating the clone changed the original")
}

func collect(g *ir.Graph, value func(*ir.Value), node func(*ir.Node)) {
	for _, vs := range [][]*ir.Value{g.Inputs, g.Weights, g.States, g.Outputs} {
		for _, v := range vs {
			value(v)
		}
	}
	g.Walk(func(n *ir.Node) {
		node(n)
		if n.Result != nil {
			value(n.Result)
		}
	})
}

// TestRoundTripModels builds the graph of every shared test model, with and
// without AllLogits, and round-trips it through the text form.
func TestRoundTripModels(t *testing.T) {
	dir := testshared.Path(t, "models")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var models []string
	for _, e := range entries {
		if e.IsDir() {
			models = append(models, e.Name())
		}
	}
	require.NotEmpty(t, models, "no model folders in %s", dir)
	for _, model := range models {
		for _, opts := range []hf.BuildOptions{{}, {AllLogits: true}} {
			name := model
			if opts.AllLogits {
				name += "/all-logits"
			}
			t.Run(name, func(t *testing.T) {
				cfg, err := hf.ReadConfig(filepath.Join(dir, model))
				require.NoError(t, err)
				g, err := hf.Build(cfg, opts)
				require.NoError(t, err)
				text := checkRoundTrip(t, g)
				// The text form names every weight and state, with its type.
				for _, w := range g.Weights {
					assert.Contains(t, text, "  weight "+w.String()+"\n")
				}
				for _, s := range g.States {
					assert.Contains(t, text, "  state "+s.String()+"\n")
				}
			})
		}
	}
}

// TestRoundTripGolden parses each testdata/roundtrip/*.txtar's in.ir
// (hand-written, with comments and blank lines), checks that it prints as
// out.ir, and round-trips it. With -update it rewrites out.ir.
func TestRoundTripGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "roundtrip", "*.txtar"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			require.NoError(t, err)
			in, out := section(ar, "in.ir"), section(ar, "out.ir")
			require.NotNil(t, in, "%s has no in.ir section", file)
			require.NotNil(t, out, "%s has no out.ir section", file)

			g, err := ir.Parse(string(in.Data))
			require.NoError(t, err)
			got := checkRoundTrip(t, g)
			if *update {
				out.Data = []byte(got)
				require.NoError(t, os.WriteFile(file, txtar.Format(ar), 0o644))
				return
			}
			assert.Equal(t, string(out.Data), got, "Print(Parse(in.ir)) differs from out.ir (rerun with -update if the change is intended)")
			// The canonical form is itself a fixed point.
			g2, err := ir.Parse(string(out.Data))
			require.NoError(t, err)
			assert.Equal(t, string(out.Data), ir.Print(g2))
		})
	}
}

func section(ar *txtar.Archive, name string) *txtar.File {
	for i := range ar.Files {
		if ar.Files[i].Name == name {
			return &ar.Files[i]
		}
	}
	return nil
}

// TestAttributeValues checks that attribute values of every kind read back
// with the right Go type and value, and print canonically.
func TestAttributeValues(t *testing.T) {
	// Each kind goes where an op takes an attribute of that kind.
	templates := map[string]string{
		"int":    "%r = reshape %x : f32[1, 1, 2]\n  %y = rope %r, %p {theta=1.0, original_max_positions=V} : f32[1, 1, 2]",
		"float":  "%y = scale %x {factor=V} : f32[2]",
		"bool":   "%y = rms_norm %x, @w {eps=1.0, unit_offset=V} : f32[2]",
		"string": "%r = reshape %x : f32[1, 1, 2]\n  %y = rope %r, %p {theta=1.0, scaling=V} : f32[1, 1, 2]",
	}
	tests := []struct {
		kind, text string
		want       any    // the parsed value (NaN compares as NaN)
		print      string // as Print writes it
	}{
		{"int", "3", 3, "3"},
		{"int", "-7", -7, "-7"},
		{"int", "+5", 5, "5"},
		{"float", "8", 8, "8"}, // an int where a float is accepted stays an int
		{"float", "0.5", 0.5, "0.5"},
		{"float", "1e-05", 1e-05, "1e-05"},
		{"float", "1E-5", 1e-05, "1e-05"},
		{"float", "-2.5e+10", -2.5e+10, "-2.5e+10"},
		{"float", "500000", 500000, "500000"},
		{"float", "500000.0", 500000.0, "500000.0"},
		{"float", "1e+21", 1e+21, "1e+21"},
		{"float", "8.0", 8.0, "8.0"},
		{"float", "-0.0", math.Copysign(0, -1), "-0.0"},
		{"float", "inf", math.Inf(1), "inf"},
		{"float", "-inf", math.Inf(-1), "-inf"},
		{"float", "nan", math.NaN(), "nan"},
		{"bool", "true", true, "true"},
		{"bool", "false", false, "false"},
		{"string", `"plain"`, "plain", `"plain"`},
		{"string", `""`, "", `""`},
		{"string", `"# not a comment"`, "# not a comment", `"# not a comment"`},
		{"string", `"a \"b\" \\ \t\n é \u00e9 \x41"`, "a \"b\" \\ \t\n é é A", `"a \"b\" \\ \t\n é é A"`},
	}
	for _, tt := range tests {
		t.Run(tt.kind+"/"+tt.text, func(t *testing.T) {
			src := "graph g(%x: f32[2], %p: i32[]) {\n  weight @w: f32[2]\n  " +
				strings.ReplaceAll(templates[tt.kind], "=V", "="+tt.text) + "\n  return %y\n}\n"
			g, err := ir.Parse(src)
			require.NoError(t, err, src)
			require.NoError(t, ir.Verify(g))
			y, ok := g.Lookup("%y")
			require.True(t, ok)
			key := map[string]string{"int": "original_max_positions", "float": "factor", "bool": "unit_offset", "string": "scaling"}[tt.kind]
			got := y.Def.Attrs[key]
			require.IsType(t, tt.want, got)
			if f, ok := tt.want.(float64); ok {
				g := got.(float64)
				if math.IsNaN(f) {
					assert.True(t, math.IsNaN(g), "got %v", g)
				} else {
					assert.Equal(t, f, g)
					assert.Equal(t, math.Signbit(f), math.Signbit(g), "sign")
				}
			} else {
				assert.Equal(t, tt.want, got)
			}
			assert.Contains(t, ir.Print(g), key+"="+tt.print)
			assert.Equal(t, "{v="+tt.print+"}", ir.Attrs{"v": got}.Format())
			checkRoundTrip(t, g)
		})
	}
}

// TestNewKernelRoundTrip builds kernels in Go, from nodes emitted into a
// scratch graph, and checks that they print, parse back and clone.
func TestNewKernelRoundTrip(t *testing.T) {
	g := ir.NewGraph("built")
	seq, ctx := g.Sym("seq"), g.Sym("ctx")
	x, err := g.Input("x", ir.T(ir.F32, seq, ir.C(8)))
	require.NoError(t, err)
	w, err := g.Weight("norm.weight", ir.T(ir.F32, ir.C(8)))
	require.NoError(t, err)
	cache, err := g.State("cache", ir.T(ir.F32, ctx, ir.C(2), ir.C(4)))
	require.NoError(t, err)

	pre, err := g.Emit(ir.OpScale, "pre", ir.Attrs{"factor": 2.0}, ir.Type{}, x)
	require.NoError(t, err)

	// A kernel with a result: rms_norm → silu → mul, reading %pre and @w.
	scratch := ir.NewGraph("scratch")
	n, err := scratch.Emit(ir.OpRMSNorm, "k.norm", ir.Attrs{"eps": 1e-05}, ir.Type{}, pre, w)
	require.NoError(t, err)
	s, err := scratch.Emit(ir.OpSiLU, "k.act", nil, ir.Type{}, n)
	require.NoError(t, err)
	m, err := scratch.Emit(ir.OpMul, "k.out", nil, ir.Type{}, s, pre)
	require.NoError(t, err)
	fused := ir.NewKernel("fused_norm_act", "fused", scratch.Nodes, m)
	assert.Equal(t, []*ir.Value{pre, w}, fused.Args, "the kernel's arguments are its body's captures, in order of first use")
	require.NotNil(t, fused.Result)
	assert.True(t, fused.Result.Type.Equal(m.Type))
	g.Nodes = append(g.Nodes, fused)

	// An effect-only kernel: reshape, then append to the cache.
	scratch2 := ir.NewGraph("scratch2")
	rows, err := scratch2.Emit(ir.OpReshape, "k2.rows", nil, ir.T(ir.F32, seq, ir.C(2), ir.C(4)), fused.Result)
	require.NoError(t, err)
	_, err = scratch2.Emit(ir.OpKVAppend, "", nil, ir.Type{}, cache, rows)
	require.NoError(t, err)
	store := ir.NewKernel("store", "", scratch2.Nodes, nil)
	assert.Nil(t, store.Result)
	assert.True(t, store.HasEffect())
	assert.Equal(t, []*ir.Value{fused.Result, cache}, store.Args)
	g.Nodes = append(g.Nodes, store)

	out, err := g.Emit(ir.OpAdd, "out", nil, ir.Type{}, fused.Result, x)
	require.NoError(t, err)
	g.SetOutputs(out)
	g.Reindex()

	text := checkRoundTrip(t, g)
	want := `graph built[seq, ctx](%x: f32[seq, 8]) {
  weight @norm.weight: f32[8]
  state $cache: f32[ctx, 2, 4]

  %pre = scale %x {factor=2.0} : f32[seq, 8]
  %fused = kernel fused_norm_act : f32[seq, 8] {
    %k.norm = rms_norm %pre, @norm.weight {eps=1e-05} : f32[seq, 8]
    %k.act = silu %k.norm : f32[seq, 8]
    %k.out = mul %k.act, %pre : f32[seq, 8]
    yield %k.out
  }
  kernel store {
    %k2.rows = reshape %fused : f32[seq, 2, 4]
    kv_append $cache, %k2.rows
  }
  %out = add %fused, %x : f32[seq, 8]
  return %out
}
`
	assert.Equal(t, want, text)

	// Values of the body are found by Lookup, and know their kernel.
	v, ok := g.Lookup("%k.act")
	require.True(t, ok)
	assert.Equal(t, ir.OpSiLU, v.Def.Op)
	parsed, err := ir.Parse(text)
	require.NoError(t, err)
	pk, ok := parsed.Lookup("%fused")
	require.True(t, ok)
	require.NotNil(t, pk.Def.Body)
	assert.Equal(t, "fused_norm_act", pk.Def.Attrs.String("name", ""))
	assert.Len(t, pk.Def.Args, 2)
}

// TestRoundTripNames: every name the verifier accepts prints so that it
// reads back, including value names that start like numbers.
func TestRoundTripNames(t *testing.T) {
	g := ir.NewGraph("_g-1.x")
	s := g.Sym("_s.0-a")
	x, err := g.Input("0", ir.T(ir.F32, s, ir.C(4)))
	require.NoError(t, err)
	w, err := g.Weight("-1.weight", ir.T(ir.F32, ir.C(4)))
	require.NoError(t, err)
	_, err = g.State("..", ir.T(ir.F32, ir.C(1)))
	require.NoError(t, err)
	y, err := g.Emit(ir.OpRMSNorm, "1e5", ir.Attrs{"eps": 1e-6}, ir.Type{}, x, w)
	require.NoError(t, err)
	scratch := ir.NewGraph("scratch")
	z, err := scratch.Emit(ir.OpSiLU, "-inf", nil, ir.Type{}, y)
	require.NoError(t, err)
	k := ir.NewKernel("K_1.a-b", "nan", scratch.Nodes, z)
	g.Nodes = append(g.Nodes, k)
	g.SetOutputs(k.Result, y)
	g.Reindex()
	text := checkRoundTrip(t, g)
	assert.Equal(t, `graph _g-1.x[_s.0-a](%0: f32[_s.0-a, 4]) {
  weight @-1.weight: f32[4]
  state $..: f32[1]

  %1e5 = rms_norm %0, @-1.weight {eps=1e-06} : f32[_s.0-a, 4]
  %nan = kernel K_1.a-b : f32[_s.0-a, 4] {
    %-inf = silu %1e5 : f32[_s.0-a, 4]
    yield %-inf
  }
  return %nan, %1e5
}
`, text)
}
