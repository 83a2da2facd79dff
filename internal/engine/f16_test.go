package engine

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/wformat"
)

// TestF16Checkpoint: an f16 checkpoint's linear weights and embedding
// table stay f16 without --weights (stored in the artifact, read by the
// kernels as float16), the norms are widened, and the logits are the
// f16 weights' exactly as --weights f32 (every weight widened) gives
// them; the LLVM backend's f16 kernels agree to float rounding.
func TestF16Checkpoint(t *testing.T) {
	shape, err := synth.LookupShape("tinyllama-1.1b")
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "m")
	_, err = synth.Write(dir, synth.Options{Shape: shape.Small(), Seed: 3, DType: "f16"})
	require.NoError(t, err)
	open := func(backend, weights string) *Engine {
		art := filepath.Join(t.TempDir(), backend+"-"+weights)
		_, err := compiler.Compile(dir, art, compiler.Options{KV: passes.Static, MaxSeq: 64, PrefillChunk: 16, Backend: backend,
			Weights: compiler.WeightOptions{Format: weights}})
		require.NoError(t, err)
		e, err := Open(art, Options{Threads: 2})
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		return e
	}
	wide := open("interp", "f32")
	require.Empty(t, wide.Manifest.StoredWeights, "--weights f32 widens the f16 tensors when loading")
	kept := open("interp", "")
	require.NotEmpty(t, kept.Manifest.StoredWeights)
	for _, st := range kept.Manifest.StoredWeights {
		require.Equal(t, wformat.F16, st.Format, st.Name)
		require.NotContains(t, st.Name, "norm", "norms stay f32")
	}
	ids := []int{1, 7, 42, 99, 3, 250, 17}
	logits := func(e *Engine) [][]float32 {
		t.Helper()
		require.NoError(t, e.Decoder.Rewind(0))
		var out [][]float32
		for k := range ids {
			l, err := e.Decoder.Forward(ids[k:k+1], false)
			require.NoError(t, err)
			out = append(out, l)
		}
		return out
	}
	want := logits(wide)
	require.Equal(t, want, logits(kept), "f16 widened at load either way")
	t.Run("llvm", func(t *testing.T) {
		requireLLVM(t)
		comp := open("llvm", "")
		require.Equal(t, "f16+f32", comp.WeightFormat)
		got := logits(comp)
		for k := range want {
			for v := range want[k] {
				require.InDelta(t, want[k][v], got[k][v], 2e-3, "step %d logit %d", k, v)
			}
		}
	})
}
