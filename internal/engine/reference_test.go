package engine

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/runtime"
)

// TestEagerMatchesReference runs every shared model eagerly against what
// an independent implementation computes (../shared/reference), with the
// interpreter's kernels of each instruction set this binary and CPU have
// (the vector ones exist when built with GOEXPERIMENT=simd on amd64).
func TestEagerMatchesReference(t *testing.T) {
	models := []string{"stories260K", "llama-tiny", "llama-tiny-bf16", "llama-tied-bias-free-gqa1",
		"gemma-tiny", "gemma2-tiny", "qwen2-tiny", "mistral-tiny"}
	for _, isa := range []string{runtime.ISAAVX512, runtime.ISAAVX2, runtime.ISAScalar} {
		t.Run(isa, func(t *testing.T) {
			prev, ok := runtime.ForceEagerISA(isa)
			if !ok {
				t.Skipf("no %s kernels in this binary or on this CPU", isa)
			}
			defer runtime.ForceEagerISA(prev)
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
		})
	}
}
