package engine

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// greedySteps decodes n greedy tokens after prompt on d, one at a time.
func greedySteps(t *testing.T, d runtime.Decoder, prompt []int, n int) []int {
	t.Helper()
	logits, err := d.Forward(prompt, false)
	require.NoError(t, err)
	var ids []int
	for range n {
		id := sample.Argmax(logits)
		ids = append(ids, id)
		logits, err = d.Forward([]int{id}, false)
		require.NoError(t, err)
	}
	return ids
}

// TestSlotsAreIndependent runs three prompts in three slots, prefilled
// one after another and then stepped together, and checks that each
// slot's tokens equal what the model gives that prompt alone: slots share
// weights but no cache.
func TestSlotsAreIndependent(t *testing.T) {
	prompts := [][]int{{1, 400, 30}, {1, 7, 8, 9, 10, 11}, {1, 200}}
	const steps = 12
	open := map[string]func(t *testing.T) *Engine{
		"eager": func(t *testing.T) *Engine {
			e, err := Open(testshared.Path(t, "models", "stories260K"), Options{Threads: 2})
			require.NoError(t, err)
			t.Cleanup(func() { e.Close() })
			return e
		},
		"interp": func(t *testing.T) *Engine { return compileOpen(t, "stories260K", "interp", "f32") },
		// One program whose cache holds three sequences, stepped by
		// decode_batch in one call.
		"llvm-slots": func(t *testing.T) *Engine { return compileOpenSlots(t, "stories260K", "llvm", 3) },
	}
	for name, openFn := range open {
		t.Run(name, func(t *testing.T) {
			e := openFn(t)
			slots, err := e.Slots(len(prompts))
			require.NoError(t, err)
			require.Equal(t, len(prompts), slots.Len())
			require.Equal(t, strings.HasSuffix(name, "-slots"), slots.Batched())
			vocab := e.Config.VocabSize
			got := make([][]int, len(prompts))
			next := make([]int, len(prompts))
			for i, p := range prompts {
				logits, err := slots.Slot(i).Forward(p, false)
				require.NoError(t, err)
				next[i] = sample.Argmax(logits)
			}
			all := []int{0, 1, 2}
			for range steps {
				for i := range next {
					got[i] = append(got[i], next[i])
				}
				logits, err := slots.Step(all, next)
				require.NoError(t, err)
				require.Len(t, logits, len(all)*vocab)
				for j := range all {
					next[j] = sample.Argmax(logits[j*vocab : (j+1)*vocab])
				}
			}
			alone, err := e.Slots(1)
			require.NoError(t, err)
			for i, p := range prompts {
				d := alone.Slot(0)
				require.NoError(t, d.Rewind(0))
				require.Equal(t, greedySteps(t, d, p, steps), got[i], "slot %d", i)
			}

			_, err = slots.Step([]int{0, 0}, []int{1, 2})
			require.ErrorContains(t, err, "slot 0 is stepped twice")
			_, err = slots.Step([]int{5}, []int{1})
			require.ErrorContains(t, err, "slot 5 is outside 0..2")
		})
	}
}

func compileOpenSlots(t *testing.T, model, backend string, slots int) *Engine {
	t.Helper()
	if backend == "llvm" {
		_, err := llvm.FindToolchain()
		if _, ok := errors.AsType[*llvm.ToolError](err); ok && !testshared.InCI() {
			t.Skipf("skipping: %v", err)
		}
		require.NoError(t, err)
	}
	art := filepath.Join(t.TempDir(), "slots.llmc")
	_, err := compiler.Compile(testshared.Path(t, "models", model), art, compiler.Options{
		KV: passes.Static, MaxSeq: 64, PrefillChunk: 4, Backend: backend, Slots: slots})
	require.NoError(t, err)
	e, err := Open(art, Options{Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}
