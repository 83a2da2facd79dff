package compiler_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// reference is a file of ../shared/reference (see its README): what an
// independent implementation computes on the same weights.
type reference struct {
	Model string `json:"model"`
	Cases []struct {
		Name          string      `json:"name"`
		Prompt        []int       `json:"prompt"`
		Greedy        []int       `json:"greedy"`
		LastLogits    []float32   `json:"last_logits"`
		StepLogits    [][]float32 `json:"step_logits"`
		GreedyMargins []float64   `json:"greedy_margins"`
		PromptLogits  [][]float32 `json:"prompt_logits"`
	} `json:"cases"`
}

const (
	logitTol = 1e-4 // absolute, as the reference README suggests
	nearTie  = 1e-3 // greedy margins below this are not held against us
)

func loadReference(t *testing.T, model string) *reference {
	t.Helper()
	data, err := os.ReadFile(testshared.Path(t, "reference", model+".json"))
	require.NoError(t, err)
	var ref reference
	require.NoError(t, json.Unmarshal(data, &ref))
	require.NotEmpty(t, ref.Cases)
	return &ref
}

func assertClose(t *testing.T, want, got []float32, format string, args ...any) {
	t.Helper()
	require.Len(t, got, len(want), fmt.Sprintf(format, args...))
	worst, at := 0.0, 0
	for i := range want {
		if d := math.Abs(float64(want[i] - got[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > logitTol || math.IsNaN(worst) {
		t.Fatalf("%s: logit %d differs by %g (reference %g, compiled %g)", fmt.Sprintf(format, args...), at, worst, want[at], got[at])
	}
}

// teacherForced feeds prompt+greedy in one call (chunked prefill of all
// logits) and compares every recorded position, and the argmax wherever
// the reference is not a near tie.
func teacherForced(t *testing.T, d runtime.Decoder, ref *reference) {
	for ci, c := range ref.Cases {
		seq := append(append([]int(nil), c.Prompt...), c.Greedy...)
		seq = seq[:min(len(seq), d.Context())]
		require.NoError(t, d.Rewind(0))
		flat, err := d.Forward(seq, true)
		require.NoError(t, err)
		v := d.VocabSize()
		row := func(i int) []float32 { return flat[i*v : (i+1)*v] }
		np := len(c.Prompt)
		for i, want := range c.PromptLogits {
			assertClose(t, want, row(i), "case %d prompt position %d", ci, i)
		}
		assertClose(t, c.LastLogits, row(np-1), "case %d last prompt logits", ci)
		for k, want := range c.StepLogits {
			assertClose(t, want, row(np-1+k), "case %d step %d", ci, k)
		}
		checked := 0
		for k, g := range c.Greedy {
			if np-1+k >= len(seq) {
				break
			}
			if k < len(c.GreedyMargins) && c.GreedyMargins[k] > nearTie {
				require.Equal(t, g, sample.Argmax(row(np-1+k)), "case %d greedy step %d (margin %g)", ci, k, c.GreedyMargins[k])
				checked++
			}
		}
		require.Positive(t, checked, "case %d: no greedy step was checked", ci)
	}
}

// incremental prefills the prompt (last logits only) and then decodes the
// greedy tokens one at a time, comparing each step's logits: this runs
// the decode entry point against the cache the prefill chunks wrote.
func incremental(t *testing.T, d runtime.Decoder, ref *reference) {
	for ci, c := range ref.Cases {
		require.NoError(t, d.Rewind(0))
		logits, err := d.Forward(c.Prompt, false)
		require.NoError(t, err)
		for k, want := range c.StepLogits {
			assertClose(t, want, logits, "case %d incremental step %d", ci, k)
			if k+1 < len(c.StepLogits) {
				logits, err = d.Forward([]int{c.Greedy[k]}, false)
				require.NoError(t, err)
			}
		}
	}
}

// TestCompiledStories260KMatchesReference compiles stories260K and checks
// the artifact, opened as llmrun opens it, against llama2.c's logits.
func TestCompiledStories260KMatchesReference(t *testing.T) {
	const model = "stories260K"
	ref := loadReference(t, model)
	dir := testshared.Path(t, "models", model)
	for _, tc := range []struct {
		name string
		opts compiler.Options
	}{
		// The default chunk (16) leaves partial last chunks for the
		// prompts of 1, 3, 10 and 60 tokens and for prompt+greedy.
		{"static", compiler.Options{KV: passes.Static}},
		{"static-chunk-7", compiler.Options{KV: passes.Static, PrefillChunk: 7}},
		{"dynamic", compiler.Options{KV: passes.Dynamic}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "artifact")
			_, err := compiler.Compile(dir, out, tc.opts)
			require.NoError(t, err)
			e, err := engine.Open(out, engine.Options{})
			require.NoError(t, err)
			defer e.Close()
			require.Equal(t, "artifact", e.Kind)
			require.Equal(t, string(tc.opts.KV), e.Manifest.KV)
			teacherForced(t, e.Decoder, ref)
			incremental(t, e.Decoder, ref)
		})
	}
}
