package cli_test

import (
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/frontends/safetensors"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// setElement sets element i of an F32 tensor to v.
func setElement(name string, i int, v float32) func(t *testing.T, dir string) {
	return changeTensor(name, func(x *safetensors.WriteTensor) {
		binary.LittleEndian.PutUint32(x.Data[4*i:], math.Float32bits(v))
	})
}

// greedyFirst is the first token greedy decoding picks after ids on dir.
func greedyFirst(t *testing.T, dir string, ids string) int {
	t.Helper()
	r := llmrun(t, "generate", dir, "--ids", ids, "--max-new-tokens", "1", "--temperature", "0")
	requireOK(t, r)
	id, err := strconv.Atoi(strings.TrimSpace(r.stdout))
	require.NoError(t, err, "stdout %q", r.stdout)
	return id
}

// TestNonFiniteModel runs generate and score on copies of llama-tiny whose
// weights hold a NaN or an Inf: each must fail with status 1, print nothing
// on stdout (no token -1, no NaN score), name the step and say the logits
// are non-finite; with --debug-nan, name the op that first went wrong.
func TestNonFiniteModel(t *testing.T) {
	t.Parallel()
	const q1 = "model.layers.1.self_attn.q_proj.weight"
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	// embedNaN puts a NaN in the embedding of the token greedy decoding
	// picks first after 1,2: the prompt is fine, the first decode step is
	// not (llama-tiny's lm_head is untied, so only that row goes NaN).
	embedNaN := func(t *testing.T, dir string) {
		id := greedyFirst(t, dir, "1,2")
		require.NotContains(t, []int{1, 2}, id, "the test needs a token outside the prompt")
		setElement("model.embed_tokens.weight", id*64+3, nan)(t, dir)
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		// In the message of generate --ids 1,2 and score --ids 1,2,3, and
		// with --debug-nan.
		generate, score, debug []string
	}{
		{name: "NaN in a projection", damage: setElement(q1, 10, nan),
			generate: []string{"prefill", "position 1", "prompt token index 1 (id 2)", "NaN (256 of 256)"},
			score:    []string{"scoring", "position 0", "token index 0 (id 1)", "NaN (256 of 256)"},
			debug: []string{"graph forward", "op %l1.q (linear)", "is the first to produce a non-finite value",
				"@" + q1 + " holds NaN (1 of 4096), the first at [0 10]"}},
		{name: "+Inf in the final norm", damage: setElement("model.norm.weight", 5, inf),
			generate: []string{"prefill", "position 1", "hold"},
			score:    []string{"scoring", "position 0", "hold"},
			debug:    []string{"op %final_norm (rms_norm)", "+Inf", "@model.norm.weight holds +Inf (1 of 64), the first at [5]"}},
		{name: "NaN in the embedding of the first generated token", damage: embedNaN,
			generate: []string{"decode step 1", "position 2", "generated token index 0", "NaN (256 of 256)"},
			debug:    []string{"op %x (embedding)", "@model.embed_tokens.weight holds NaN (1 of 16384)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyModel(t, "llama-tiny")
			tt.damage(t, dir)
			cmds := []struct {
				args []string
				want []string
			}{
				{[]string{"generate", dir, "--ids", "1,2", "--max-new-tokens", "3"}, tt.generate},
				{[]string{"generate", dir, "--ids", "1,2", "--max-new-tokens", "3", "--format", "json"}, tt.generate},
				{[]string{"generate", dir, "--ids", "1,2", "--max-new-tokens", "3", "--debug-nan"}, tt.debug},
			}
			if tt.score != nil {
				cmds = append(cmds,
					struct {
						args []string
						want []string
					}{[]string{"score", dir, "--ids", "1,2,3"}, tt.score},
					struct {
						args []string
						want []string
					}{[]string{"score", dir, "--ids", "1,2,3", "--format", "json"}, tt.score},
					struct {
						args []string
						want []string
					}{[]string{"score", dir, "--ids", "1,2,3", "--debug-nan"}, tt.debug})
			}
			for _, c := range cmds {
				r := llmrun(t, c.args...)
				what := strings.Join(append([]string{c.args[0]}, c.args[2:]...), " ")
				t.Logf("%s: exit %d: %s", what, r.code, r.stderr)
				assert.Equalf(t, 1, r.code, "%s: exit status; stderr:\n%s", what, r.stderr)
				debug := strings.Contains(what, "--debug-nan")
				if c.args[0] == "score" || strings.Contains(what, "json") {
					// generate's text output streams the tokens before the
					// step that fails; nothing else may print anything.
					assert.Emptyf(t, r.stdout, "%s: stdout", what)
				}
				assert.NotContainsf(t, r.stdout, "-1", "%s: stdout", what)
				assert.NotContainsf(t, r.stderr, "outside the vocabulary", "%s", what)
				for _, w := range c.want {
					assert.Containsf(t, r.stderr, w, "%s: the message should say %q", what, w)
				}
				if debug {
					assert.NotContainsf(t, r.stderr, "run again with --debug-nan", "%s", what)
				} else {
					assert.Containsf(t, r.stderr, "the model computed a non-finite value", "%s", what)
					assert.Containsf(t, r.stderr, "run again with --debug-nan", "%s: the hint", what)
				}
			}
		})
	}
}

// TestNonFiniteArtifact: an artifact compiled from a model with a NaN
// weight fails the same way on every backend (the compiled kernels must
// not turn the NaN into a finite number on the way), and --debug-nan runs
// the model folder it was compiled from eagerly to name the op, and says
// so.
func TestNonFiniteArtifact(t *testing.T) {
	t.Parallel()
	dir := copyModel(t, "llama-tiny")
	setElement("model.layers.1.self_attn.q_proj.weight", 10, float32(math.NaN()))(t, dir)
	for _, backend := range []string{"interp", "go", "llvm"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			switch {
			case backend == "go" && testing.Short():
				t.Skip("skipping: builds an executable")
			case backend == "llvm":
				_, err := llvm.FindToolchain()
				if _, ok := errors.AsType[*llvm.ToolError](err); ok && !testshared.InCI() {
					t.Skipf("skipping: %v", err)
				}
				require.NoError(t, err)
			}
			art := filepath.Join(t.TempDir(), "nan.llmc")
			requireOK(t, llmc(t, "compile", dir, "--max-seq", "32", "--backend", backend, "-o", art))
			for _, args := range [][]string{
				{"generate", art, "--ids", "1,2", "--max-new-tokens", "3"},
				{"score", art, "--ids", "1,2,3", "--format", "json"},
			} {
				r := llmrun(t, args...)
				assert.Equalf(t, 1, r.code, "%s: exit status; stderr:\n%s", args[0], r.stderr)
				assert.Emptyf(t, r.stdout, "%s: stdout", args[0])
				assert.Containsf(t, r.stderr, "the logits at position", "%s", args[0])
				assert.Containsf(t, r.stderr, "hold NaN", "%s", args[0])
				assert.Containsf(t, r.stderr, "run again with --debug-nan", "%s", args[0])
			}

			r := llmrun(t, "score", art, "--ids", "1,2,3", "--debug-nan")
			assert.Equal(t, 1, r.code, r.stderr)
			assert.Empty(t, r.stdout)
			for _, w := range []string{"--debug-nan: running " + dir, "artifact " + art, "with the interpreter",
				"graph forward_all", "op %l1.q (linear)", "@model.layers.1.self_attn.q_proj.weight holds NaN"} {
				assert.Contains(t, r.stderr, w)
			}
		})
	}
}

// TestImpossibleConfig: numeric fields of config.json that cannot be right
// are refused by every command that reads the config, naming the file and
// the field.
func TestImpossibleConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		model string
		edit  func(c map[string]any)
		want  []string
	}{
		{"negative rms_norm_eps", "llama-tiny", func(c map[string]any) { c["rms_norm_eps"] = -1 },
			[]string{`field "rms_norm_eps" is -1, want a non-negative number`}},
		{"negative rms_norm_eps on gemma", "gemma-tiny", func(c map[string]any) { c["rms_norm_eps"] = -1e-6 },
			[]string{`field "rms_norm_eps" is -1e-06`}},
		{"rms_norm_eps a string", "llama-tiny", func(c map[string]any) { c["rms_norm_eps"] = "NaN" },
			[]string{"rms_norm_eps"}},
		{"zero rope_theta", "llama-tiny", func(c map[string]any) { c["rope_theta"] = 0 },
			[]string{`field "rope_theta" is 0, want a positive number`}},
		{"negative rope_theta", "llama-tiny", func(c map[string]any) { c["rope_theta"] = -10000 },
			[]string{`field "rope_theta" is -10000`}},
		{"llama3 rope scaling with a zero low_freq_factor", "llama-tiny", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 0, "high_freq_factor": 4,
				"original_max_position_embeddings": 128}
		}, []string{`"rope_scaling"`, `"low_freq_factor" is 0`}},
		{"negative rope scaling factor", "llama-tiny", func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "linear", "factor": -2}
		}, []string{`"rope_scaling"`, `"factor"`}},
		{"negative query_pre_attn_scalar", "gemma2-tiny", func(c map[string]any) { c["query_pre_attn_scalar"] = -24 },
			[]string{`field "query_pre_attn_scalar" is -24, want a positive number`}},
		{"negative attn_logit_softcapping", "gemma2-tiny", func(c map[string]any) { c["attn_logit_softcapping"] = -20 },
			[]string{`field "attn_logit_softcapping" is -20`}},
		{"negative final_logit_softcapping", "gemma2-tiny", func(c map[string]any) { c["final_logit_softcapping"] = -15 },
			[]string{`field "final_logit_softcapping" is -15`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyModel(t, tt.model)
			editConfig(tt.edit)(t, dir)
			for _, c := range []struct {
				main func(*testing.T, ...string) result
				args []string
			}{
				{llmrun, []string{"generate", dir, "--ids", "1,2"}},
				{llmrun, []string{"score", dir, "--ids", "1,2,3"}},
				{llmc, []string{"kv", dir, "--max-seq", "16"}},
			} {
				r := c.main(t, c.args...)
				t.Logf("%s: exit %d: %s", c.args[0], r.code, r.stderr)
				assert.Equalf(t, 1, r.code, "%s: exit status; stderr:\n%s", c.args[0], r.stderr)
				assert.Emptyf(t, r.stdout, "%s: stdout", c.args[0])
				assert.Containsf(t, r.stderr, filepath.Join(dir, "config.json"), "%s: names the file", c.args[0])
				for _, w := range tt.want {
					assert.Containsf(t, r.stderr, w, "%s", c.args[0])
				}
			}
		})
	}
}
