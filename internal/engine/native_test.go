package engine

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// TestLLVMOneCallPerStep runs stories260K's LLVM artifact, whose steps are
// one call into the shared object each, on one thread and on a team of
// two (its prefill chunks' matmuls and its decode step's classifier are
// split across the team), and compares the logits of a prefill of one full
// chunk and a partial one, and of the decode steps after it, with the
// interpreter's on the model folder.
func TestLLVMOneCallPerStep(t *testing.T) {
	requireLLVM(t)
	model := testshared.Path(t, "models", "stories260K")
	art := filepath.Join(t.TempDir(), "s.llmc")
	const chunk = 16
	_, err := compiler.Compile(model, art, compiler.Options{Backend: "llvm", KV: passes.Static, MaxSeq: 64, PrefillChunk: chunk})
	require.NoError(t, err)
	eager, err := Open(model, Options{Threads: 1})
	require.NoError(t, err)
	defer eager.Close()
	want := eager.Decoder
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			e, err := Open(art, Options{Threads: threads})
			require.NoError(t, err)
			defer e.Close()
			got := e.Decoder
			require.NoError(t, want.Rewind(0))
			r := rand.New(rand.NewPCG(5, 6))
			prompt := make([]int, chunk+chunk/2+1)
			for i := range prompt {
				prompt[i] = r.IntN(want.VocabSize())
			}
			w, err := want.Forward(prompt, true)
			require.NoError(t, err)
			g, err := got.Forward(prompt, true)
			require.NoError(t, err)
			testshared.AssertLogitsClose(t, w, g, "prefill of %d tokens (chunk %d)", len(prompt), chunk)
			next := sample.Argmax(w[len(w)-want.VocabSize():])
			for step := range 16 {
				w, err := want.Forward([]int{next}, false)
				require.NoError(t, err)
				g, err := got.Forward([]int{next}, false)
				require.NoError(t, err)
				testshared.AssertLogitsClose(t, w, g, "decode step %d", step)
				next = sample.Argmax(w)
			}
		})
	}
}
