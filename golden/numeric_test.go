package golden

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
)

// What the numeric tests feed each model: a prompt whose last prefill
// chunk is partial (21 = 8 + 8 + 5), then single-token decode steps.
const (
	numPrompt   = 21
	numChunk    = 8
	numSteps    = 5
	numMaxSeq   = 32 // past the sliding windows (16) of mistral-tiny and gemma2-tiny
	numLogitTol = 1e-4
)

// sharedModels lists the model folders of ../shared/models.
func sharedModels(t *testing.T) []string {
	t.Helper()
	dir := testshared.Path(t, "models")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var models []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), "config.json")); e.IsDir() && err == nil {
			models = append(models, e.Name())
		}
	}
	require.NotEmpty(t, models, "no models in %s", dir)
	return models
}

// trace is what a decoder returns for one fixed run: the prompt's logits
// (all rows, through prefill_all), each decode step's logits, and the
// prompt's last logits again through the last-logits prefill entry.
type trace struct {
	prompt [][]float32
	steps  [][]float32
	last   []float32
}

func runTrace(t *testing.T, d runtime.Decoder, prompt, steps []int) *trace {
	t.Helper()
	v := d.VocabSize()
	require.NoError(t, d.Rewind(0))
	all, err := d.Forward(prompt, true)
	require.NoError(t, err)
	require.Len(t, all, len(prompt)*v)
	tr := &trace{}
	for i := range prompt {
		tr.prompt = append(tr.prompt, all[i*v:(i+1)*v])
	}
	for _, tok := range steps {
		l, err := d.Forward([]int{tok}, false)
		require.NoError(t, err)
		require.Len(t, l, v)
		tr.steps = append(tr.steps, l)
	}
	require.NoError(t, d.Rewind(0))
	tr.last, err = d.Forward(prompt, false)
	require.NoError(t, err)
	return tr
}

func compareTraces(t *testing.T, want, got *trace) {
	t.Helper()
	for i := range want.prompt {
		closeLogits(t, want.prompt[i], got.prompt[i], "prompt position %d (prefill_all)", i)
	}
	for k := range want.steps {
		closeLogits(t, want.steps[k], got.steps[k], "decode step %d (position %d)", k, len(want.prompt)+k)
	}
	closeLogits(t, want.prompt[len(want.prompt)-1], got.last, "last prompt position (prefill)")
}

func closeLogits(t *testing.T, want, got []float32, format string, args ...any) {
	t.Helper()
	require.Len(t, got, len(want))
	worst, at := 0.0, 0
	for i := range want {
		d := math.Abs(float64(want[i] - got[i]))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > numLogitTol || math.IsNaN(worst) {
		t.Fatalf("%s: logit %d differs by %g (interpreter %g, compiled %g)", fmt.Sprintf(format, args...), at, worst, want[at], got[at])
	}
}

// variant is one way to compile a model.
type variant struct {
	name     string
	kv       passes.KVMode
	disabled []string
}

func variants() []variant {
	vs := []variant{{name: "all-passes", kv: passes.Static}}
	for _, p := range passes.Pipeline() {
		if !p.Required {
			vs = append(vs, variant{name: "without-" + p.Name, kv: passes.Static, disabled: []string{p.Name}})
		}
	}
	return append(vs, variant{name: "kv-dynamic", kv: passes.Dynamic})
}

// TestCompiledMatchesInterpreter runs every shared model through the eager
// interpreter on its unoptimised graph (dynamic cache) and through compiled
// artifacts: with the whole pipeline, with each optional pass disabled in
// turn (so no pass silently depends on another), and with a dynamic cache.
// Logits must agree within 1e-4 at every prompt position, at each decode
// step and for the last position of a chunked prefill.
func TestCompiledMatchesInterpreter(t *testing.T) {
	for _, model := range sharedModels(t) {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			dir := testshared.Path(t, "models", model)
			eager, err := engine.Open(dir, engine.Options{})
			require.NoError(t, err)
			defer eager.Close()
			require.Equal(t, "model folder", eager.Kind)

			h := fnv.New64a()
			h.Write([]byte(model))
			rng := rand.New(rand.NewSource(int64(h.Sum64())))
			v := eager.Config.VocabSize
			prompt, steps := make([]int, numPrompt), make([]int, numSteps)
			for i := range prompt {
				prompt[i] = rng.Intn(v)
			}
			for i := range steps {
				steps[i] = rng.Intn(v)
			}
			want := runTrace(t, eager.Decoder, prompt, steps)

			for _, vr := range variants() {
				t.Run(vr.name, func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "artifact")
					res, err := compiler.Compile(dir, out, compiler.Options{
						Backend: "interp", KV: vr.kv, MaxSeq: numMaxSeq, PrefillChunk: numChunk,
						Passes: passes.Options{Disabled: vr.disabled},
					})
					require.NoError(t, err)
					for _, rep := range res.Reports {
						for _, st := range rep.Passes {
							require.Equal(t, len(vr.disabled) > 0 && st.Pass == vr.disabled[0], st.Disabled,
								"entry %s pass %s", rep.Entry, st.Pass)
						}
					}
					e, err := engine.Open(out, engine.Options{})
					require.NoError(t, err)
					defer e.Close()
					require.Equal(t, "artifact", e.Kind)
					require.Equal(t, string(vr.kv), e.Manifest.KV)
					compareTraces(t, want, runTrace(t, e.Decoder, prompt, steps))
				})
			}
		})
	}
}

// TestNumericCheckSeesBadPlan makes sure the comparison above can fail: an
// artifact whose decode entry places %l0.q.rope over %x (which layer 0's
// residual add still reads) must give other logits than the interpreter.
func TestNumericCheckSeesBadPlan(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	out := filepath.Join(t.TempDir(), "artifact")
	_, err := compiler.Compile(dir, out, compiler.Options{Backend: "interp", MaxSeq: numMaxSeq, PrefillChunk: numChunk})
	require.NoError(t, err)

	path := filepath.Join(out, "program.ir")
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	graphs, err := ir.ParseModule(string(src))
	require.NoError(t, err)
	corrupted := false
	for _, g := range graphs {
		if g.Name != artifact.EntryDecode {
			continue
		}
		x, q := node(g, "%x"), node(g, "%l0.q.rope")
		require.NotNil(t, x, "decode has no kernel %%x")
		require.NotNil(t, q, "decode has no kernel %%l0.q.rope")
		require.NotEqual(t, x.Attrs.Int("offset", -1), q.Attrs.Int("offset", -1))
		q.Attrs["offset"] = x.Attrs.Int("offset", -1)
		corrupted = true
	}
	require.True(t, corrupted)
	require.NoError(t, os.WriteFile(path, []byte(ir.PrintModule(graphs)), 0o644))
	// Reseal: the artifact's checksums would refuse the edited program,
	// and this test is about the numeric check seeing what it computes.
	require.NoError(t, artifact.Edit(out, func(*artifact.Manifest) {}))

	eager, err := engine.Open(dir, engine.Options{})
	require.NoError(t, err)
	defer eager.Close()
	bad, err := engine.Open(out, engine.Options{})
	require.NoError(t, err)
	defer bad.Close()
	prompt := []int{1, 403, 407}
	want, err := eager.Decoder.Forward(prompt, false)
	require.NoError(t, err)
	got, err := bad.Decoder.Forward(prompt, false) // prefill: not corrupted
	require.NoError(t, err)
	closeLogits(t, want, got, "prefill")
	want, err = eager.Decoder.Forward([]int{300}, false)
	require.NoError(t, err)
	got, err = bad.Decoder.Forward([]int{300}, false) // decode: corrupted
	require.NoError(t, err)
	worst := 0.0
	for i := range want {
		worst = math.Max(worst, math.Abs(float64(want[i]-got[i])))
	}
	require.Greater(t, worst, numLogitTol, "a corrupted memory plan went unnoticed by the logits")
}

// TestCompiledFillsCache runs a static cache to its last position with a
// max-seq that is no multiple of the chunk: the last prefill chunk is
// padded past the end of the cache (18 = 8 + 8 + 2 tokens, padded to 24 >
// 20 positions), then decode fills the remaining two.
func TestCompiledFillsCache(t *testing.T) {
	const maxSeq, promptLen = 20, 18
	for _, model := range sharedModels(t) {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			dir := testshared.Path(t, "models", model)
			eager, err := engine.Open(dir, engine.Options{})
			require.NoError(t, err)
			defer eager.Close()
			v := eager.Config.VocabSize
			prompt := make([]int, promptLen)
			for i := range prompt {
				prompt[i] = (i*37 + 5) % v
			}
			steps := []int{3 % v, 7 % v}
			want := runTrace(t, eager.Decoder, prompt, steps)
			for _, disabled := range [][]string{nil, {"fuse-attention"}} {
				out := filepath.Join(t.TempDir(), "artifact")
				_, err := compiler.Compile(dir, out, compiler.Options{Backend: "interp", MaxSeq: maxSeq, PrefillChunk: numChunk,
					Passes: passes.Options{Disabled: disabled}})
				require.NoError(t, err)
				e, err := engine.Open(out, engine.Options{})
				require.NoError(t, err)
				defer e.Close()
				got := runTrace(t, e.Decoder, prompt, steps)
				require.Equal(t, maxSeq, e.Decoder.Context())
				compareTraces(t, want, got)
				// runTrace ended with the prompt prefilled again: decode to
				// the end of the cache, one past it must fail.
				for _, tok := range steps {
					_, err = e.Decoder.Forward([]int{tok}, false)
					require.NoError(t, err)
				}
				_, err = e.Decoder.Forward([]int{1}, false)
				require.ErrorContains(t, err, "exceed the context of 20", "the cache is full")
			}
		})
	}
}

// TestCompiledRewind rewinds the decoder and feeds other tokens from there,
// as llmrun chat does when it reuses the cached prefix of a conversation,
// and compares with the interpreter doing the same.
//
// window-kv keeps window + chunk - 1 rows of a sliding-window
// layer's cache as a ring, so after more than chunk positions have been
// written past the rewind point, the rows of the window before it are gone,
// so runtime.Static.Rewind recomputes the cache; the same rewinds without
// window-kv must match too.
func TestCompiledRewind(t *testing.T) {
	const written = 40
	for _, model := range []string{"mistral-tiny", "gemma2-tiny", "llama-tiny"} {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			dir := testshared.Path(t, "models", model)
			eager, err := engine.Open(dir, engine.Options{})
			require.NoError(t, err)
			defer eager.Close()
			v := eager.Config.VocabSize
			first := make([]int, written)
			for i := range first {
				first[i] = (i*31 + 7) % v
			}
			next := []int{5 % v, 9 % v, 11 % v}
			for _, disabled := range [][]string{nil, {"window-kv"}} {
				out := filepath.Join(t.TempDir(), "artifact")
				res, err := compiler.Compile(dir, out, compiler.Options{Backend: "interp", MaxSeq: 64, PrefillChunk: numChunk,
					Passes: passes.Options{Disabled: disabled}})
				require.NoError(t, err)
				rings := false
				for _, g := range res.Graphs {
					for _, s := range g.States {
						rings = rings || s.Type.Shape[0].N < 64
					}
				}
				require.Equal(t, model != "llama-tiny" && len(disabled) == 0, rings, "which caches are rings")
				e, err := engine.Open(out, engine.Options{})
				require.NoError(t, err)
				defer e.Close()
				for _, back := range []int{1, numChunk, numChunk + 1, 20} {
					name := fmt.Sprintf("back-%d", back)
					if len(disabled) > 0 {
						name += "-without-" + disabled[0]
					}
					t.Run(name, func(t *testing.T) {
						var want, got []float32
						for _, d := range []struct {
							dec runtime.Decoder
							out *[]float32
						}{{eager.Decoder, &want}, {e.Decoder, &got}} {
							require.NoError(t, d.dec.Rewind(0))
							_, err := d.dec.Forward(first, false)
							require.NoError(t, err)
							require.NoError(t, d.dec.Rewind(written-back))
							*d.out, err = d.dec.Forward(next, true)
							require.NoError(t, err)
						}
						n := len(want) / v
						for i := 0; i < n; i++ {
							closeLogits(t, want[i*v:(i+1)*v], got[i*v:(i+1)*v], "position %d after rewinding %d", written-back+i, back)
						}
					})
				}
			}
		})
	}
}
