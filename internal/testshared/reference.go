package testshared

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// Reference is a file of shared/reference (see its README): what an
// independent implementation computes on the same weights.
type Reference struct {
	Model string          `json:"model"`
	Cases []ReferenceCase `json:"cases"`
}

// ReferenceCase is one prompt of a Reference.
type ReferenceCase struct {
	Name          string      `json:"name"`
	Prompt        []int       `json:"prompt"`
	Greedy        []int       `json:"greedy"`
	LastLogits    []float32   `json:"last_logits"`
	StepLogits    [][]float32 `json:"step_logits"`
	GreedyMargins []float64   `json:"greedy_margins"`
	PromptLogits  [][]float32 `json:"prompt_logits"`
}

// How the reference README says to compare fairly.
const (
	LogitTol = 1e-4 // absolute, per logit
	NearTie  = 1e-3 // greedy margins below this are not held against us
)

// LoadReference reads shared/reference/MODEL.json (skipping, or failing
// in CI, when it is missing).
func LoadReference(tb testing.TB, model string) *Reference {
	tb.Helper()
	data, err := os.ReadFile(Path(tb, "reference", model+".json"))
	require.NoError(tb, err)
	var ref Reference
	require.NoError(tb, json.Unmarshal(data, &ref))
	require.NotEmpty(tb, ref.Cases)
	return &ref
}

// AssertLogitsClose fails unless every logit of got is within LogitTol of
// want, naming the worst one.
func AssertLogitsClose(tb testing.TB, want, got []float32, format string, args ...any) {
	tb.Helper()
	what := fmt.Sprintf(format, args...)
	require.Len(tb, got, len(want), what)
	worst, at := 0.0, 0
	for i := range want {
		if d := math.Abs(float64(want[i] - got[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if worst > LogitTol || math.IsNaN(worst) {
		tb.Fatalf("%s: logit %d differs by %g (reference %g, got %g)", what, at, worst, want[at], got[at])
	}
}

// CheckTeacherForced feeds each case's prompt+greedy to d in one call and
// compares the logits at every recorded position, and the argmax with the
// greedy token wherever the reference margin is not a near tie.
func CheckTeacherForced(tb testing.TB, d runtime.Decoder, ref *Reference) {
	tb.Helper()
	for ci, c := range ref.Cases {
		seq := append(append([]int(nil), c.Prompt...), c.Greedy...)
		seq = seq[:min(len(seq), d.Context())]
		require.NoError(tb, d.Rewind(0))
		flat, err := d.Forward(seq, true)
		require.NoError(tb, err)
		v := d.VocabSize()
		rows := make([][]float32, len(seq))
		for i := range rows {
			rows[i] = flat[i*v : (i+1)*v]
		}
		CheckRows(tb, c, rows, fmt.Sprintf("case %d", ci))
	}
}

// CheckRows compares rows, the logits after each position of the case's
// prompt+greedy (possibly cut short), with the reference.
func CheckRows(tb testing.TB, c ReferenceCase, rows [][]float32, what string) {
	tb.Helper()
	np := len(c.Prompt)
	for i, want := range c.PromptLogits {
		AssertLogitsClose(tb, want, rows[i], "%s prompt position %d", what, i)
	}
	AssertLogitsClose(tb, c.LastLogits, rows[np-1], "%s last prompt logits", what)
	for k, want := range c.StepLogits {
		if np-1+k < len(rows) {
			AssertLogitsClose(tb, want, rows[np-1+k], "%s step %d", what, k)
		}
	}
	checked := 0
	for k, g := range c.Greedy {
		if np-1+k >= len(rows) {
			break
		}
		if k < len(c.GreedyMargins) && c.GreedyMargins[k] > NearTie {
			require.Equal(tb, g, sample.Argmax(rows[np-1+k]), "%s greedy step %d (margin %g)", what, k, c.GreedyMargins[k])
			checked++
		}
	}
	require.Positive(tb, checked, "%s: no greedy step was checked", what)
}

// CheckIncremental prefills each case's prompt, then decodes its greedy
// tokens one at a time, comparing each step's logits: this exercises the
// cache across steps, which CheckTeacherForced's single call does not.
func CheckIncremental(tb testing.TB, d runtime.Decoder, ref *Reference) {
	tb.Helper()
	for ci, c := range ref.Cases {
		require.NoError(tb, d.Rewind(0))
		logits, err := d.Forward(c.Prompt, false)
		require.NoError(tb, err)
		for k, want := range c.StepLogits {
			AssertLogitsClose(tb, want, logits, "case %d incremental step %d", ci, k)
			if k+1 < len(c.StepLogits) {
				logits, err = d.Forward([]int{c.Greedy[k]}, false)
				require.NoError(tb, err)
			}
		}
	}
}
