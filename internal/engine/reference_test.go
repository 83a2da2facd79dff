package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/testshared"
)

// TestEagerMatchesReference runs every shared model eagerly against what
// an independent implementation computes (../shared/reference).
func TestEagerMatchesReference(t *testing.T) {
	models := []string{"stories260K", "llama-tiny", "llama-tiny-bf16", "llama-tied-bias-free-gqa1",
		"gemma-tiny", "gemma2-tiny", "qwen2-tiny", "mistral-tiny"}
	for _, m := range models {
		t.Run(m, func(t *testing.T) {
			ref := testshared.LoadReference(t, m)
			e, err := Open(testshared.Path(t, "models", m), Options{})
			require.NoError(t, err)
			defer e.Close()
			testshared.CheckTeacherForced(t, e.Decoder, ref)
			testshared.CheckIncremental(t, e.Decoder, ref)
		})
	}
}
