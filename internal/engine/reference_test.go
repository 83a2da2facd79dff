package engine

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// reference is a file of ../shared/reference: what an independent
// implementation computes on the same weights.
type reference struct {
	Model string `json:"model"`
	Cases []struct {
		Prompt        []int       `json:"prompt"`
		Greedy        []int       `json:"greedy"`
		LastLogits    []float32   `json:"last_logits"`
		StepLogits    [][]float32 `json:"step_logits"`
		GreedyMargins []float64   `json:"greedy_margins"`
		PromptLogits  [][]float32 `json:"prompt_logits"`
		Name          string      `json:"name"`
	} `json:"cases"`
}

func loadReference(t *testing.T, model string) *reference {
	t.Helper()
	data, err := os.ReadFile(testshared.Path(t, "reference", model+".json"))
	require.NoError(t, err)
	var ref reference
	require.NoError(t, json.Unmarshal(data, &ref))
	require.NotEmpty(t, ref.Cases)
	return &ref
}

const (
	logitTol = 1e-4 // absolute, as the reference README suggests
	nearTie  = 1e-3 // greedy margins below this are not held against us
)

// checkAgainstReference teacher-forces prompt+greedy through d and compares
// the logits at every recorded position, and the argmax wherever the
// reference margin is not a near tie.
func checkAgainstReference(t *testing.T, d runtime.Decoder, ref *reference) {
	for ci, c := range ref.Cases {
		seq := append(append([]int(nil), c.Prompt...), c.Greedy...)
		if len(seq) > d.Context() {
			seq = seq[:d.Context()]
		}
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
		for k, g := range c.Greedy {
			if np-1+k >= len(seq) {
				break
			}
			if k < len(c.GreedyMargins) && c.GreedyMargins[k] > nearTie {
				require.Equal(t, g, sample.Argmax(row(np-1+k)), "case %d greedy step %d (margin %g)", ci, k, c.GreedyMargins[k])
			}
		}
	}
}

func assertClose(t *testing.T, want, got []float32, msg string, args ...any) {
	t.Helper()
	require.Len(t, got, len(want))
	worst, at := 0.0, 0
	for i := range want {
		if d := math.Abs(float64(want[i] - got[i])); d > worst {
			worst, at = d, i
		}
	}
	if worst > logitTol {
		t.Fatalf("%s: logit %d differs by %g (want %g, got %g)", fmtMsg(msg, args...), at, worst, want[at], got[at])
	}
}

func fmtMsg(msg string, args ...any) string {
	return fmt.Sprintf(msg, args...)
}

// checkIncremental decodes prompt+greedy one token at a time after a
// prefill of the prompt, comparing each step's logits with step_logits:
// this exercises the cache across steps, which checkAgainstReference's
// single forward call does not.
func checkIncremental(t *testing.T, d runtime.Decoder, ref *reference) {
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

func TestEagerMatchesReference(t *testing.T) {
	models := []string{"stories260K", "llama-tiny", "llama-tiny-bf16", "llama-tied-bias-free-gqa1",
		"gemma-tiny", "gemma2-tiny", "qwen2-tiny", "mistral-tiny"}
	for _, m := range models {
		t.Run(m, func(t *testing.T) {
			ref := loadReference(t, m)
			e, err := Open(testshared.Path(t, "models", m), Options{})
			require.NoError(t, err)
			defer e.Close()
			checkAgainstReference(t, e.Decoder, ref)
			checkIncremental(t, e.Decoder, ref)
		})
	}
}
