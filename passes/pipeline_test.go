package passes

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
)

// Tiny synthetic configs: the graphs of one or two layers are enough to
// exercise every pass, and cost nothing to build.
var testConfigs = map[string]string{
	"llama": `{"architectures": ["LlamaForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
		"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32,
		"max_position_embeddings": 64}`,
	"gemma2": `{"architectures": ["Gemma2ForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
		"num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4,
		"vocab_size": 32, "max_position_embeddings": 64, "sliding_window": 8, "query_pre_attn_scalar": 4,
		"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}`,
	"qwen2": `{"architectures": ["Qwen2ForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
		"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 32,
		"max_position_embeddings": 64}`,
}

func buildTest(t *testing.T, model, name string, all bool) *ir.Graph {
	t.Helper()
	cfg, err := hf.ParseConfig([]byte(testConfigs[model]))
	require.NoError(t, err)
	g, err := hf.Build(cfg, hf.BuildOptions{Name: name, AllLogits: all})
	require.NoError(t, err)
	return g
}

func passIndex(name string) int {
	return slices.IndexFunc(Pipeline(), func(p Pass) bool { return p.Name == name })
}

func TestPassNamesUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Pipeline() {
		require.NotEmpty(t, p.Name)
		require.False(t, seen[p.Name], "pass %s appears twice in the table", p.Name)
		seen[p.Name] = true
		require.NotEmpty(t, p.Doc, "pass %s has no Doc (--list-passes prints it)", p.Name)
		require.NotNil(t, p.fn, "pass %s has no function", p.Name)
		require.Equal(t, strings.ToLower(p.Name), p.Name, "pass names are lower-case words joined by '-'")
		require.NotContains(t, p.Name, " ")
	}
	require.Equal(t, len(Pipeline()), len(PassNames()))
}

func TestOrderConstraints(t *testing.T) {
	for _, c := range orderConstraints {
		a, b := passIndex(c[0]), passIndex(c[1])
		require.GreaterOrEqual(t, a, 0, "order constraint %v: no pass %s", c, c[0])
		require.GreaterOrEqual(t, b, 0, "order constraint %v: no pass %s", c, c[1])
		require.Less(t, a, b, "%s must run before %s, but the table has it at %d and %s at %d", c[0], c[1], a, c[1], b)
	}
}

// A required pass must not depend on an optional one running first: a
// user could disable the optional one.
func TestRequiredPassesComeFirst(t *testing.T) {
	for _, c := range orderConstraints {
		a, b := Pipeline()[passIndex(c[0])], Pipeline()[passIndex(c[1])]
		if b.Required {
			require.True(t, a.Required, "required pass %s runs after optional %s, which may be disabled", b.Name, a.Name)
		}
	}
}

func TestCheckOptions(t *testing.T) {
	ok := func(o Options) Options {
		if o.KV == "" {
			o.KV, o.MaxSeq = Static, 32
		}
		return o
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string // "" for valid options
	}{
		{"defaults", ok(Options{}), ""},
		{"dynamic", Options{KV: Dynamic}, ""},
		{"disable optional", ok(Options{Disabled: []string{"fuse-attention", "plan-memory"}}), ""},
		{"print after", ok(Options{PrintAfter: []string{"cse"}}), ""},
		{"unknown pass", ok(Options{Disabled: []string{"fuse-everything"}}),
			`--disable-pass: no pass named "fuse-everything" (see --list-passes)`},
		{"required pass", ok(Options{Disabled: []string{"cse", "static-kv"}}),
			"--disable-pass: static-kv is required and cannot be disabled"},
		{"required check", ok(Options{Disabled: []string{"check-static"}}),
			"--disable-pass: check-static is required and cannot be disabled"},
		{"disable a pass nobody needs", ok(Options{Disabled: []string{"cse"}, Needs: []Need{{Pass: "plan-memory", By: "--backend x", Why: "it reads offsets"}}}), ""},
		{"needed pass", ok(Options{Disabled: []string{"cse", "plan-memory"}, Needs: []Need{{Pass: "plan-memory", By: "--backend x", Why: "it reads offsets"}}}),
			"--disable-pass: plan-memory is needed by --backend x and cannot be disabled: it reads offsets"},
		{"unknown print-after", ok(Options{PrintAfter: []string{"regalloc"}}),
			`--print-after: no pass named "regalloc" (see --list-passes)`},
		{"bad kv", Options{KV: "paged", MaxSeq: 32}, `--kv is "paged", want static or dynamic`},
		{"no max-seq", Options{KV: Static}, "a static KV cache needs --max-seq > 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckOptions(&tc.opts)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
			// Run refuses the same options before touching the graph.
			g := buildTest(t, "llama", "decode", false)
			before := ir.Print(g)
			_, err = Run(&Entry{Name: "decode", Graph: g, Seq: 1}, &tc.opts)
			require.EqualError(t, err, tc.want)
			require.Equal(t, before, ir.Print(g))
		})
	}
}

func TestRunOneUnknownPass(t *testing.T) {
	g := buildTest(t, "llama", "decode", false)
	_, err := RunOne("fuse-everything", &Entry{Name: "decode", Graph: g, Seq: 1}, &Options{KV: Static, MaxSeq: 32})
	require.EqualError(t, err, `no pass named "fuse-everything"`)
}

func TestDisabledPassIsRecorded(t *testing.T) {
	g := buildTest(t, "llama", "decode", false)
	rep, err := Run(&Entry{Name: "decode", Graph: g, Seq: 1}, &Options{KV: Static, MaxSeq: 32, Disabled: []string{"fuse-attention"}})
	require.NoError(t, err)
	for _, st := range rep.Passes {
		require.Equal(t, st.Pass == "fuse-attention", st.Disabled, st.Pass)
	}
	require.Contains(t, ir.Print(g), "softmax", "fuse-attention was disabled, yet softmax is gone")
	require.NotContains(t, ir.Print(g), "= attention ")
}

// legalOnDynamic are the passes that run on a graph with a dynamic cache:
// they rewrite ops without needing constant shapes. Every other pass is
// static-only and must skip, saying why.
var legalOnDynamic = map[string]bool{"simplify": true, "cse": true, "dce": true, "dce-late": true}

func TestDynamicCacheSkips(t *testing.T) {
	for _, model := range []string{"llama", "gemma2", "qwen2"} {
		for _, all := range []bool{false, true} {
			name := "forward"
			if all {
				name = "forward_all"
			}
			t.Run(model+"/"+name, func(t *testing.T) {
				opts := &Options{KV: Dynamic}
				// Each pass alone leaves the builder's graph as it was.
				for _, p := range Pipeline() {
					g := buildTest(t, model, name, all)
					before := ir.Print(g)
					st, err := RunOne(p.Name, &Entry{Name: name, Graph: g}, opts)
					require.NoError(t, err, p.Name)
					require.Equal(t, before, ir.Print(g), "pass %s changed a dynamic-cache graph", p.Name)
					if legalOnDynamic[p.Name] {
						require.Empty(t, st.Skipped, "pass %s is legal on a dynamic cache but skipped", p.Name)
					} else {
						require.Contains(t, st.Skipped, "KV cache is dynamic", "static-only pass %s", p.Name)
					}
				}
				// And so does the whole pipeline.
				g := buildTest(t, model, name, all)
				before := ir.Print(g)
				rep, err := Run(&Entry{Name: name, Graph: g}, opts)
				require.NoError(t, err)
				require.Equal(t, before, ir.Print(g))
				require.Len(t, rep.Passes, len(Pipeline()))
				for _, st := range rep.Passes {
					require.Zero(t, st.Changes, "pass %s", st.Pass)
					require.Equal(t, !legalOnDynamic[st.Pass], strings.Contains(st.Skipped, "KV cache is dynamic"),
						"pass %s skipped: %q", st.Pass, st.Skipped)
				}
				require.Equal(t, rep.Before, rep.After)
			})
		}
	}
}

// The pipeline gives the same text after every pass when run twice on the
// same input: no result depends on map order or pointer values.
func TestPipelineIsDeterministic(t *testing.T) {
	for _, model := range []string{"llama", "gemma2", "qwen2"} {
		var runs [2]bytes.Buffer
		for i := range runs {
			g := buildTest(t, model, "prefill", false)
			_, err := Run(&Entry{Name: "prefill", Graph: g, Seq: 4}, &Options{KV: Static, MaxSeq: 32, PrintAfterAll: true, Log: &runs[i]})
			require.NoError(t, err)
		}
		require.Equal(t, runs[0].String(), runs[1].String(), model)
		require.Equal(t, len(Pipeline()), strings.Count(runs[0].String(), "# prefill after "), model)
	}
}

func TestDumpDir(t *testing.T) {
	dir := t.TempDir()
	g := buildTest(t, "gemma2", "decode", false)
	_, err := Run(&Entry{Name: "decode", Graph: g, Seq: 1}, &Options{KV: Static, MaxSeq: 32, DumpDir: dir, Disabled: []string{"cse"}})
	require.NoError(t, err)
	files, err := os.ReadDir(filepath.Join(dir, "decode"))
	require.NoError(t, err)
	var names, want []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	for i, p := range Pipeline() {
		if p.Name != "cse" {
			want = append(want, fmt.Sprintf("%02d__%s.ir", i+1, p.Name))
		}
	}
	require.Equal(t, want, names, "one file per pass that ran, numbered by its place in the table")
	last, err := os.ReadFile(filepath.Join(dir, "decode", names[len(names)-1]))
	require.NoError(t, err)
	require.Equal(t, ir.Print(g), string(last))
	_, err = ir.Parse(string(last))
	require.NoError(t, err)
}

// TestStatsStories260K checks what --stats reports for stories260K's
// decode entry: layer 0 goes from its unfused ops to a handful of kernels.
func TestStatsStories260K(t *testing.T) {
	m, err := hf.Open(testshared.Path(t, "models", "stories260K"))
	require.NoError(t, err)
	defer m.Close()
	g, err := m.Build(hf.BuildOptions{Name: "decode"})
	require.NoError(t, err)
	rep, err := Run(&Entry{Name: "decode", Graph: g, Seq: 1}, &Options{KV: Static, MaxSeq: 64})
	require.NoError(t, err)

	// Unfused, layer 0 is: attn_norm, q, k, v, 2 rope, 2 kv_append,
	// attn_scores, causal_mask, softmax, attn_values, o, add, mlp_norm,
	// gate, up, silu, mul, down, add (reshapes are views and not counted).
	require.Equal(t, 21, rep.Before.PerLayer)
	require.Zero(t, rep.Before.Kernels)
	require.LessOrEqual(t, rep.After.PerLayer, 6, "layer 0 should be at most 6 kernels after fusion")
	require.Equal(t, rep.After.Ops, rep.After.Kernels, "every computing op should be inside a kernel")
	for _, n := range g.Nodes {
		if layerOf(n) == 0 {
			require.Contains(t, []ir.Op{ir.OpKernel, ir.OpReshape}, n.Op, n.LongString())
		}
	}
	require.Positive(t, rep.After.Arena)
	require.Less(t, rep.After.Arena, rep.After.Buffers, "the plan should reuse dead buffers")

	var b bytes.Buffer
	WriteStats(&b, []*Report{rep})
	require.Contains(t, b.String(), "layer 0: 21 → ")
	require.Contains(t, b.String(), "fuse-attention")
}

// plannedGraph returns a fully compiled decode graph and its buffers.
func plannedGraph(t *testing.T, model string) (*ir.Graph, *bufferPlan) {
	t.Helper()
	g := buildTest(t, model, "decode", false)
	_, err := Run(&Entry{Name: "decode", Graph: g, Seq: 1}, &Options{KV: Static, MaxSeq: 32})
	require.NoError(t, err)
	plan, err := liveBuffers(g)
	require.NoError(t, err)
	require.True(t, plan.planned)
	return g, plan
}

func checkPlan(g *ir.Graph) (*PassStat, error) {
	return RunOne("check-planned", &Entry{Name: "decode", Graph: g, Seq: 1}, &Options{KV: Static, MaxSeq: 32})
}

// TestCheckPlannedCatchesOverlap corrupts a valid plan, pair by pair: any
// two buffers that are live at the same time, placed at one offset, must
// be reported by name.
func TestCheckPlannedCatchesOverlap(t *testing.T) {
	for _, model := range []string{"llama", "gemma2"} {
		g, plan := plannedGraph(t, model)
		st, err := checkPlan(g)
		require.NoError(t, err)
		require.Empty(t, st.Skipped)

		pairs := 0
		for i, a := range plan.buffers {
			for _, b := range plan.buffers[i+1:] {
				if !overlap(a, b) {
					continue
				}
				pairs++
				saved := b.node.Attrs.Int("offset", -1)
				b.node.Attrs["offset"] = a.offset
				_, err := checkPlan(g)
				require.Error(t, err, "%s and %s share offset %d while both live", a.node.Result.Ref(), b.node.Result.Ref(), a.offset)
				require.Contains(t, err.Error(), "are live at the same time and overlap")
				require.Contains(t, err.Error(), b.node.Result.Ref())
				b.node.Attrs["offset"] = saved
			}
		}
		require.Positive(t, pairs, model)
		_, err = checkPlan(g)
		require.NoError(t, err, "restoring the plan")
	}
}

func TestCheckPlannedCatchesMisalignment(t *testing.T) {
	g, plan := plannedGraph(t, "llama")
	b := plan.buffers[0]
	b.node.Attrs["offset"] = b.offset + 4
	_, err := checkPlan(g)
	require.ErrorContains(t, err, b.node.Result.Ref()+": offset 4 is not 64-byte aligned")
}

// A plan that covers only some buffers is no plan to trust: the check must
// name a buffer without an offset rather than skip.
func TestCheckPlannedCatchesPartialPlan(t *testing.T) {
	g, plan := plannedGraph(t, "llama")
	b := plan.buffers[len(plan.buffers)-1]
	delete(b.node.Attrs, "offset")
	_, err := checkPlan(g)
	require.ErrorContains(t, err, b.node.Result.Ref()+" has no offset")

	// With no offsets at all there is nothing to check.
	for _, b := range plan.buffers {
		delete(b.node.Attrs, "offset")
	}
	st, err := checkPlan(g)
	require.NoError(t, err)
	require.Equal(t, "no memory plan", st.Skipped)
}

// Buffers that are never live together may share memory, and the plan
// must actually make use of that on a model with more than one layer.
func TestPlanMemoryReuses(t *testing.T) {
	g, plan := plannedGraph(t, "gemma2")
	total := 0
	for _, b := range plan.buffers {
		total += b.size
		require.Zero(t, b.offset%Alignment, b.node.Result.Ref())
	}
	require.Less(t, plan.arena, total)
	require.Equal(t, CountOps(g).Arena, plan.arena)
}
