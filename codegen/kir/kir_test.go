package kir_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
)

// machineRunner runs a lowered program on kir.Machine, which indexes Go
// slices: any index the lowering gets wrong panics here, where the
// backends' unchecked vector loads would read or write out of bounds.
type machineRunner struct {
	m   *kir.Machine
	seq map[string]int
}

func (r *machineRunner) Run(name string, tokens []int32, pos int) (out []float32, shape []int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s at pos %d with %d tokens: %v", name, pos, len(tokens), p)
		}
	}()
	padded := make([]int32, r.seq[name])
	copy(padded, tokens)
	out, err = r.m.Run(name, padded, pos, len(tokens))
	return out, nil, err
}

// TestLoweringAgainstInterpreter lowers small models and runs them on
// kir.Machine through the static decoder, filling the cache to its last
// position (a partial last chunk, then single decode steps), and compares
// with the eager interpreter.
func TestLoweringAgainstInterpreter(t *testing.T) {
	const maxSeq, chunk = 29, 8
	for _, model := range []string{"stories260K", "gemma2-tiny", "qwen2-tiny", "mistral-tiny", "llama-tiny-bf16"} {
		t.Run(model, func(t *testing.T) {
			dir := testshared.Path(t, "models", model)
			m, err := hf.Open(dir)
			require.NoError(t, err)
			defer m.Close()
			var graphs []*ir.Graph
			for _, e := range []struct {
				name string
				seq  int
				all  bool
			}{{"decode", 1, false}, {"prefill", chunk, false}, {"prefill_all", chunk, true}} {
				g, err := m.Build(hf.BuildOptions{Name: e.name, AllLogits: e.all})
				require.NoError(t, err)
				_, err = passes.Run(&passes.Entry{Name: e.name, Graph: g, Seq: e.seq},
					&passes.Options{KV: passes.Static, MaxSeq: maxSeq, MaxTokens: chunk})
				require.NoError(t, err)
				graphs = append(graphs, g)
			}
			prog, err := kir.LowerWith(graphs, kir.Options{MaxSeq: maxSeq, KeepBF16: true})
			require.NoError(t, err)
			ws, free, err := runtime.LinkedWeights(linkedOf(prog), m)
			require.NoError(t, err)
			defer free()
			// The machine reads every weight as float32; bfloat16 ones widen
			// exactly, as the backends' loads do.
			f32 := make([][]float32, len(ws.F32))
			for i := range f32 {
				f32[i] = ws.F32[i]
				if prog.Weights[i].BF16 {
					f32[i] = make([]float32, len(ws.BF16[i]))
					for j, h := range ws.BF16[i] {
						f32[i][j] = math.Float32frombits(uint32(h) << 16)
					}
				}
			}
			r := &machineRunner{m: kir.NewMachine(prog, f32), seq: map[string]int{"decode": 1, "prefill": chunk, "prefill_all": chunk}}
			dec, err := runtime.NewStatic(r, runtime.StaticEntries{Decode: "decode", Prefill: "prefill", PrefillAll: "prefill_all", Chunk: chunk},
				m.Config.VocabSize, maxSeq)
			require.NoError(t, err)
			eager, err := engine.Open(dir, engine.Options{})
			require.NoError(t, err)
			defer eager.Close()

			v := m.Config.VocabSize
			tokens := make([]int, maxSeq)
			for i := range tokens {
				tokens[i] = (i*37 + 11) % v
			}
			// 21 tokens: two whole chunks and a partial one.
			compare(t, eager.Decoder, dec, tokens[:21], true)
			for _, tok := range tokens[21:] {
				compare(t, eager.Decoder, dec, []int{tok}, false)
			}
			require.Equal(t, maxSeq, dec.Pos())
		})
	}
}

func compare(t *testing.T, want, got runtime.Decoder, tokens []int, all bool) {
	t.Helper()
	w, err := want.Forward(tokens, all)
	require.NoError(t, err)
	g, err := got.Forward(tokens, all)
	require.NoError(t, err)
	require.Len(t, g, len(w))
	worst := 0.0
	for i := range w {
		worst = math.Max(worst, math.Abs(float64(w[i]-g[i])))
	}
	require.Less(t, worst, 1e-4, "at position %d", got.Pos())
}

func linkedOf(p *kir.Program) *runtime.LinkedProgram {
	lp := &runtime.LinkedProgram{}
	for _, w := range p.Weights {
		lp.Weights = append(lp.Weights, *w)
	}
	return lp
}
