package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/tools/txtar"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
)

// This file makes the inputs of the golden files: each case builds a graph
// from a tiny synthetic config, runs the pipeline up to just before the
// pass under test, optionally edits the graph to break a precondition, and
// prints it as in.ir. The inputs are checked in and reviewed like the
// outputs; TestGoldenInputs fails when they no longer match this file, and
// go test ./golden/ -regen-inputs rewrites them.

// synthModel is a config.json small enough that its graph reads at a glance.
type synthModel struct {
	doc  string
	json string
}

var synthModels = map[string]synthModel{
	"llama": {
		doc: "Llama, 1 layer, hidden 16, 2 query heads sharing 1 KV head of dim 8, FFN 32, vocab 32",
		json: `{"architectures": ["LlamaForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
			"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32,
			"max_position_embeddings": 64, "rms_norm_eps": 1e-5}`,
	},
	"gemma2": {
		doc: "Gemma2, 2 layers (window 8 on layer 0 only), hidden 16, 2 query heads / 1 KV head of dim 8, " +
			"attention soft-cap 50, logit soft-cap 30, sandwich norms, tied embeddings",
		json: `{"architectures": ["Gemma2ForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
			"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
			"vocab_size": 32, "max_position_embeddings": 64, "sliding_window": 8, "query_pre_attn_scalar": 8,
			"attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0}`,
	},
	"qwen2": {
		doc: "Qwen2, 1 layer, hidden 16, 2 query heads / 1 KV head of dim 8, q/k/v biases, FFN 32, vocab 32",
		json: `{"architectures": ["Qwen2ForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
			"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32,
			"max_position_embeddings": 64, "rms_norm_eps": 1e-6}`,
	},
}

// Entry points as llmc compile builds them (see internal/compiler).
var (
	decode     = caseOptions{KV: passes.Static, MaxSeq: 32, Seq: 1, Entry: artifact.EntryDecode}
	prefill    = caseOptions{KV: passes.Static, MaxSeq: 32, Seq: 4, Entry: artifact.EntryPrefill}
	prefillAll = caseOptions{KV: passes.Static, MaxSeq: 32, Seq: 4, Entry: artifact.EntryPrefillAll}
	dynamic    = caseOptions{KV: passes.Dynamic, Entry: artifact.EntryForward}
)

// genCase describes one generated golden file.
type genCase struct {
	pass, name string
	model      string
	opts       caseOptions
	// skip lists earlier passes left out when making the input.
	skip []string
	// edit, when set, changes the input after the earlier passes ran.
	edit func(g *ir.Graph) error
	// doc says what the case shows; it goes into the archive comment.
	doc string
}

func (c genCase) path() string {
	return filepath.Join("testdata", c.pass, c.name+".txtar")
}

var dynamicDoc = "A dynamic cache: the graph must come out unchanged."

// genCases are the generated golden cases. Every pass has at least a
// static case and a dynamic one; fusions also have one whose precondition
// fails.
var genCases = []genCase{
	// static-kv
	{pass: "static-kv", name: "decode", model: "llama", opts: decode,
		doc: "States get max-seq rows; kv_append becomes kv_write at %pos. One token: no %len."},
	{pass: "static-kv", name: "prefill", model: "llama", opts: prefill,
		doc: "A padded chunk: %len is added, kv_write writes only len rows, and last takes row len-1."},
	{pass: "static-kv", name: "prefill-all", model: "llama", opts: prefillAll,
		doc: "All logits: %len is added for kv_write; there is no last."},
	{pass: "static-kv", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},
	{pass: "static-kv", name: "already-sized", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			_, err := passes.RunOne("static-kv", &passes.Entry{Name: g.Name, Graph: g, Seq: 1},
				&passes.Options{KV: passes.Static, MaxSeq: 16})
			return err
		},
		doc: "Edited: static-kv already ran with max-seq=16. Running it for max-seq=32 must fail, naming the state."},

	// specialize-shapes
	{pass: "specialize-shapes", name: "decode", model: "llama", opts: decode,
		doc: "seq becomes 1 everywhere; the unused symbols seq and ctx are dropped."},
	{pass: "specialize-shapes", name: "prefill", model: "llama", opts: prefill,
		doc: "seq becomes the chunk size 4."},
	{pass: "specialize-shapes", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},
	{pass: "specialize-shapes", name: "no-token-count", model: "llama",
		opts: caseOptions{KV: passes.Static, MaxSeq: 32, Seq: 0, Entry: artifact.EntryDecode},
		doc:  "An entry point without a token count (seq=0) cannot be specialised."},

	// check-static
	{pass: "check-static", name: "decode", model: "llama", opts: decode,
		doc: "Every shape is constant: the check passes and changes nothing."},
	{pass: "check-static", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},
	{pass: "check-static", name: "unspecialised", model: "llama", opts: decode, skip: []string{"specialize-shapes"},
		doc: "specialize-shapes did not run: seq is left, and the check names the values that still use it."},

	// simplify
	{pass: "simplify", name: "decode", model: "llama", opts: decode,
		doc: "One token: 'last' of a one-row tensor is the tensor itself and goes away."},
	{pass: "simplify", name: "prefill", model: "llama", opts: prefill,
		doc: "A chunk: 'last %x, %len' picks a row and stays."},
	{pass: "simplify", name: "reshape-chain", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			attn, flat := node(g, "%l0.attn"), node(g, "%l0.attn.flat")
			if attn == nil || flat == nil {
				return fmt.Errorf("no %%l0.attn or %%l0.attn.flat")
			}
			t := ir.Type{DType: attn.Result.Type.DType, Shape: attn.Result.Type.Shape.Clone()}
			same, err := insertAfter(g, attn, ir.OpReshape, "l0.attn.same", nil, t, attn.Result)
			flat.Args[0] = same
			return err
		},
		doc: "Edited: %l0.attn.flat reshapes %l0.attn.same, itself a reshape of %l0.attn to the same shape.\n" +
			"The chain folds to one reshape and the identity reshape goes away ('last' goes as in decode)."},
	{pass: "simplify", name: "dynamic", model: "llama", opts: dynamic,
		doc: "simplify is legal on a dynamic cache; this graph has nothing to simplify."},

	// cse
	{pass: "cse", name: "decode", model: "llama", opts: decode,
		doc: "Nothing is computed twice: no change."},
	{pass: "cse", name: "duplicate", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			rope, write := node(g, "%l0.k.rope"), stateWrite(g, "k.0")
			if rope == nil || write == nil {
				return fmt.Errorf("no %%l0.k.rope or write of $k.0")
			}
			again, err := insertAfter(g, rope, ir.OpRoPE, "l0.k.rope.again", rope.Attrs.Clone(), ir.Type{}, rope.Args...)
			write.Args[1] = again
			return err
		},
		doc: "Edited: %l0.k.rope.again repeats %l0.k.rope and feeds the key cache write. cse merges the two."},
	{pass: "cse", name: "reads-state", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			scores, mask := node(g, "%l0.scores"), node(g, "%l0.scores.masked")
			if scores == nil || mask == nil {
				return fmt.Errorf("no %%l0.scores or %%l0.scores.masked")
			}
			again, err := insertAfter(g, scores, ir.OpAttnScores, "l0.scores.again", scores.Attrs.Clone(), ir.Type{}, scores.Args...)
			mask.Args[0] = again
			return err
		},
		doc: "Edited: %l0.scores.again repeats %l0.scores. Both read the cache state, whose value writes in\n" +
			"between could change, so cse leaves them alone."},
	{pass: "cse", name: "dynamic", model: "llama", opts: dynamic,
		doc: "cse is legal on a dynamic cache; this graph computes nothing twice."},

	// dce
	{pass: "dce", name: "decode", model: "llama", opts: decode,
		doc: "Everything is used: no change (cache writes have effects and stay)."},
	{pass: "dce", name: "unused", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			gate := node(g, "%l0.gate")
			if gate == nil {
				return fmt.Errorf("no %%l0.gate")
			}
			u, err := insertAfter(g, gate, ir.OpSiLU, "l0.unused", nil, ir.Type{}, gate.Result)
			if err != nil {
				return err
			}
			if _, err := insertAfter(g, u.Def, ir.OpMul, "l0.unused2", nil, ir.Type{}, u, u); err != nil {
				return err
			}
			_, err = g.Weight("unused.weight", ir.T(ir.F32, ir.C(16)))
			return err
		},
		doc: "Edited: %l0.unused2 uses %l0.unused and nothing uses it; @unused.weight is referenced by nothing.\n" +
			"All three go."},
	{pass: "dce", name: "dynamic", model: "llama", opts: dynamic,
		doc: "dce is legal on a dynamic cache; nothing here is dead."},

	// fuse-attention
	{pass: "fuse-attention", name: "decode", model: "llama", opts: decode,
		doc: "attn_scores, causal_mask, softmax and attn_values become one attention op."},
	{pass: "fuse-attention", name: "prefill", model: "llama", opts: prefill,
		doc: "The same for a chunk of 4 queries."},
	{pass: "fuse-attention", name: "gemma2-decode", model: "gemma2", opts: decode,
		doc: "The soft-cap is absorbed (softcap=50) and layer 0's window carries over (window=8); layer 1 has none."},
	{pass: "fuse-attention", name: "second-use", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			probs, ok := g.Lookup("%l0.probs")
			if !ok {
				return fmt.Errorf("no %%l0.probs")
			}
			g.SetOutputs(append(g.Outputs, probs)...)
			return nil
		},
		doc: "Edited: the graph also returns %l0.probs. An intermediate with a second use cannot disappear\n" +
			"into a fused op: nothing is fused."},
	{pass: "fuse-attention", name: "symbolic", model: "llama", opts: decode,
		skip: []string{"specialize-shapes", "check-static"},
		doc:  "The cache is static but seq was not specialised: fusions need constant shapes and skip."},
	{pass: "fuse-attention", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},

	// window-kv
	{pass: "window-kv", name: "gemma2-decode", model: "gemma2", opts: decode,
		doc: "Layer 0 attends to a window of 8: its caches shrink to 8 + 1 - 1 rows used as a ring, and the\n" +
			"attention op and cache writes say so (ring=8). Layer 1 attends to everything and keeps 32 rows."},
	{pass: "window-kv", name: "gemma2-prefill", model: "gemma2", opts: prefill,
		doc: "A chunk of 4 writes 4 positions before its queries read: the ring holds 8 + 4 - 1 rows."},
	{pass: "window-kv", name: "gemma2-max-tokens", model: "gemma2",
		opts: caseOptions{KV: passes.Static, MaxSeq: 32, MaxTokens: 4, Seq: 1, Entry: artifact.EntryDecode},
		doc: "Decode in a program whose prefill chunk is 4: entry points share the cache, so decode's ring\n" +
			"has the same 8 + 4 - 1 rows as prefill's."},
	{pass: "window-kv", name: "gemma2-small-cache", model: "gemma2",
		opts: caseOptions{KV: passes.Static, MaxSeq: 8, Seq: 1, Entry: artifact.EntryDecode},
		doc:  "max-seq 8 is no larger than the ring would be: nothing shrinks."},
	{pass: "window-kv", name: "gemma2-unfused", model: "gemma2", opts: decode, skip: []string{"fuse-attention"},
		doc: "fuse-attention did not run: attn_scores and attn_values read the caches by absolute row, so no\n" +
			"cache becomes a ring."},
	{pass: "window-kv", name: "llama-decode", model: "llama", opts: decode,
		doc: "No sliding window: no change."},
	{pass: "window-kv", name: "dynamic", model: "gemma2", opts: dynamic, doc: dynamicDoc},

	// fuse-linears
	{pass: "fuse-linears", name: "decode", model: "llama", opts: decode,
		doc: "q/k/v and gate/up read the same input: each group becomes one linear over a concatenated\n" +
			"weight, followed by column slices."},
	{pass: "fuse-linears", name: "qwen2-decode", model: "qwen2", opts: decode,
		doc: "With q/k/v biases, the biases are concatenated too."},
	{pass: "fuse-linears", name: "mixed-dtype", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			w, ok := g.Lookup("@model.layers.0.mlp.up_proj.weight")
			if !ok {
				return fmt.Errorf("no up_proj weight")
			}
			w.Type.DType = ir.BF16
			return nil
		},
		doc: "Edited: up_proj is stored in bf16, gate_proj in f32. Their weights cannot be concatenated,\n" +
			"so gate/up stay apart; q/k/v are still fused."},
	{pass: "fuse-linears", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},

	// fuse-kernels
	{pass: "fuse-kernels", name: "decode", model: "llama", opts: decode,
		doc: "Norms become matmul prologues; slices, RoPE, cache writes, SiLU×mul and residual adds epilogues."},
	{pass: "fuse-kernels", name: "prefill", model: "llama", opts: prefill,
		doc: "The same for a chunk; 'last %x, %len' is no epilogue op and stays outside (form-kernels wraps it)."},
	{pass: "fuse-kernels", name: "gemma2-decode", model: "gemma2", opts: decode,
		doc: "Sandwich norms after o and down are no prologue of a following matmul: they form rms_norm\n" +
			"kernels with the residual add as epilogue. The embedding scale and the logit soft-cap are epilogues."},
	{pass: "fuse-kernels", name: "norm-two-users", model: "llama", opts: decode, skip: []string{"fuse-linears"},
		doc: "fuse-linears did not run, so %l0.attn_norm has three users (q, k, v) and %l0.mlp_norm two\n" +
			"(gate, up). A norm with several users is no prologue: each forms an rms_norm kernel of its own."},
	{pass: "fuse-kernels", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},

	// form-kernels
	{pass: "form-kernels", name: "decode", model: "llama", opts: decode,
		doc: "fuse-kernels left nothing outside a kernel: no change."},
	{pass: "form-kernels", name: "prefill", model: "llama", opts: prefill,
		doc: "'last' is wrapped in a kernel of its own."},
	{pass: "form-kernels", name: "unfused", model: "llama", opts: decode, skip: []string{"fuse-kernels"},
		doc: "fuse-kernels did not run: every computing op gets a kernel of its own; reshapes stay views."},
	{pass: "form-kernels", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},

	// dce-late
	{pass: "dce-late", name: "decode", model: "llama", opts: decode,
		doc: "Nothing is dead after fusion; the checkpoint weights behind concatenated ones stay."},
	{pass: "dce-late", name: "dynamic", model: "llama", opts: dynamic,
		doc: "dce is legal on a dynamic cache; nothing here is dead."},

	// plan-memory
	{pass: "plan-memory", name: "decode", model: "llama", opts: decode,
		doc: "Every kernel result gets an offset; buffers whose values are dead are reused."},
	{pass: "plan-memory", name: "prefill", model: "llama", opts: prefill,
		doc: "The same with chunk-sized buffers."},
	{pass: "plan-memory", name: "unformed", model: "llama", opts: prefill, skip: []string{"form-kernels"},
		doc: "form-kernels did not run, so 'last' is outside any kernel: no plan, and the reason says why."},
	{pass: "plan-memory", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},

	// check-planned
	{pass: "check-planned", name: "decode", model: "llama", opts: decode,
		doc: "A valid plan: no change, no error."},
	{pass: "check-planned", name: "overlap", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			q, attn := node(g, "%l0.q.rope"), node(g, "%l0.attn")
			if q == nil || attn == nil {
				return fmt.Errorf("no %%l0.q.rope or %%l0.attn")
			}
			attn.Attrs["offset"] = q.Attrs.Int("offset", -1)
			return nil
		},
		doc: "Edited: %l0.attn is placed on %l0.q.rope, which the attention kernel reads while writing it."},
	{pass: "check-planned", name: "misaligned", model: "llama", opts: decode,
		edit: func(g *ir.Graph) error {
			x := node(g, "%x")
			if x == nil {
				return fmt.Errorf("no %%x")
			}
			x.Attrs["offset"] = x.Attrs.Int("offset", -1) + 4
			return nil
		},
		doc: "Edited: %x, the first buffer, is moved 4 bytes off its aligned offset."},
	{pass: "check-planned", name: "unplanned", model: "llama", opts: decode, skip: []string{"plan-memory"},
		doc: "plan-memory did not run: nothing to check."},
	{pass: "check-planned", name: "dynamic", model: "llama", opts: dynamic, doc: dynamicDoc},
}

// node returns the top-level node whose result is ref, or nil.
func node(g *ir.Graph, ref string) *ir.Node {
	for _, n := range g.Nodes {
		if n.Result != nil && n.Result.Ref() == ref {
			return n
		}
	}
	return nil
}

// stateWrite returns the top-level node that writes state name, or nil.
func stateWrite(g *ir.Graph, name string) *ir.Node {
	for _, n := range g.Nodes {
		if (n.Op == ir.OpKVAppend || n.Op == ir.OpKVWrite) && n.Args[0].Name == name {
			return n
		}
	}
	return nil
}

// insertAfter emits a node and moves it to just after node after.
func insertAfter(g *ir.Graph, after *ir.Node, op ir.Op, name string, attrs ir.Attrs, want ir.Type, args ...*ir.Value) (*ir.Value, error) {
	v, err := g.Emit(op, name, attrs, want, args...)
	if err != nil {
		return nil, err
	}
	n := g.Nodes[len(g.Nodes)-1]
	g.Nodes = g.Nodes[:len(g.Nodes)-1]
	i := slices.Index(g.Nodes, after)
	if i < 0 {
		return nil, fmt.Errorf("node %s is not in the graph", after.LongString())
	}
	g.Nodes = slices.Insert(g.Nodes, i+1, n)
	return v, nil
}

// generatedMark starts the second comment line of generated files.
const generatedMark = "Generated by golden/gen_test.go"

// comment is the archive comment of a generated case.
func (c genCase) comment() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", c.opts)
	fmt.Fprintf(&b, "# %s (go test ./golden/ -regen-inputs): edit the case there.\n", generatedMark)
	fmt.Fprintf(&b, "# model: %s\n", synthModels[c.model].doc)
	var ran []string
	for _, p := range passes.Pipeline() {
		if p.Name == c.pass {
			break
		}
		if !slices.Contains(c.skip, p.Name) {
			ran = append(ran, p.Name)
		}
	}
	input := "hf.Build"
	if len(ran) > 0 {
		input += ", then " + strings.Join(ran, ", ")
	}
	if len(c.skip) > 0 {
		input += " (not " + strings.Join(c.skip, ", ") + ")"
	}
	fmt.Fprintf(&b, "# input: %s\n", input)
	for _, line := range strings.Split(c.doc, "\n") {
		fmt.Fprintf(&b, "# %s\n", line)
	}
	return b.String()
}

// input builds the case's in.ir and returns it with the graph.
func (c genCase) input() (string, *ir.Graph, error) {
	m, ok := synthModels[c.model]
	if !ok {
		return "", nil, fmt.Errorf("no synthetic model %q", c.model)
	}
	if !slices.Contains(passes.PassNames(), c.pass) {
		return "", nil, fmt.Errorf("no pass %q", c.pass)
	}
	cfg, err := hf.ParseConfig([]byte(m.json))
	if err != nil {
		return "", nil, err
	}
	all := c.opts.Entry == artifact.EntryPrefillAll || c.opts.Entry == artifact.EntryForwardAll
	g, err := hf.Build(cfg, hf.BuildOptions{Name: c.opts.Entry, AllLogits: all})
	if err != nil {
		return "", nil, err
	}
	e := &passes.Entry{Name: c.opts.Entry, Graph: g, Seq: c.opts.Seq}
	o := c.opts.passOptions()
	skipped := 0
	for _, p := range passes.Pipeline() {
		if p.Name == c.pass {
			break
		}
		if slices.Contains(c.skip, p.Name) {
			skipped++
			continue
		}
		if _, err := passes.RunOne(p.Name, e, o); err != nil {
			return "", nil, fmt.Errorf("making the input: %w", err)
		}
	}
	if skipped != len(c.skip) {
		return "", nil, fmt.Errorf("skip %v names passes that do not run before %s", c.skip, c.pass)
	}
	if c.edit != nil {
		if err := c.edit(g); err != nil {
			return "", nil, fmt.Errorf("editing the input: %w", err)
		}
		if err := ir.Verify(g); err != nil {
			return "", nil, fmt.Errorf("the edited input does not verify: %w", err)
		}
	}
	return ir.Print(g), g, nil
}

// regenerate rewrites every generated case: comment, input and expected
// sections.
func regenerate(t *testing.T) {
	t.Helper()
	for _, c := range genCases {
		in, g, err := c.input()
		require.NoError(t, err, "case %s", c.path())
		r, err := runCase(c.pass, c.opts, in)
		require.NoError(t, err, "case %s", c.path())
		// The pass must do the same to the graph built in memory as to the
		// graph read back from its text: the text form loses nothing.
		st, err := passes.RunOne(c.pass, &passes.Entry{Name: c.opts.Entry, Graph: g, Seq: c.opts.Seq}, c.opts.passOptions())
		if err != nil {
			require.Equal(t, r.err, err.Error(), "case %s: error differs between the built and the parsed input", c.path())
		} else {
			require.Equal(t, r.skipped, st.Skipped, "case %s", c.path())
			if have := ir.Print(g); have != r.out {
				t.Fatalf("case %s: the pass gives another result on the parsed input:\n%s", c.path(), diff("built", have, "parsed", r.out))
			}
		}
		f := &goldenFile{path: c.path(), pass: c.pass, name: c.name, opts: c.opts,
			ar: &txtar.Archive{Comment: []byte(c.comment()), Files: []txtar.File{{Name: secIn, Data: []byte(in)}}}}
		f.setResult(r)
		require.NoError(t, os.MkdirAll(filepath.Dir(f.path), 0o755))
		require.NoError(t, f.write())
	}
}

// TestGoldenInputs checks that the generated golden files still hold what
// gen_test.go makes, so that a change to the frontend or to an earlier
// pass shows up as stale inputs rather than as confusing output diffs.
func TestGoldenInputs(t *testing.T) {
	if *regenInputs {
		t.Skip("-regen-inputs: TestGolden rewrites the inputs")
	}
	seen := map[string]bool{}
	defer func() {
		// A generated file that no case makes any more is left over.
		paths, err := filepath.Glob(casesPattern)
		require.NoError(t, err)
		for _, path := range paths {
			f, err := readGolden(path)
			require.NoError(t, err)
			if strings.Contains(string(f.ar.Comment), generatedMark) && !seen[path] {
				t.Errorf("%s says it is generated, but no case in gen_test.go makes it: delete it or add the case", path)
			}
		}
	}()
	for _, c := range genCases {
		t.Run(c.pass+"/"+c.name, func(t *testing.T) {
			require.False(t, seen[c.path()], "two generated cases write %s", c.path())
			seen[c.path()] = true
			in, _, err := c.input()
			require.NoError(t, err)
			f, err := readGolden(c.path())
			require.NoError(t, err, "run go test ./golden/ -regen-inputs to create it")
			const hint = "(run go test ./golden/ -regen-inputs and review the diff)"
			if have := string(f.ar.Comment); have != c.comment() {
				t.Errorf("%s: the comment is stale %s\n%s", c.path(), hint, diff("file", have, "generated", c.comment()))
			}
			if have, _ := f.section(secIn); have != in {
				t.Errorf("%s: %s is stale %s\n%s", c.path(), secIn, hint, diff("file", have, "generated", in))
			}
		})
	}
}
