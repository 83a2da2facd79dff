package kir_test

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
)

// machineRunner runs a lowered program on kir.Machine, which indexes Go
// slices: any index the lowering gets wrong panics here, where the
// backends' unchecked vector loads would read or write out of bounds.
type machineRunner struct {
	m     *kir.Machine
	seq   map[string]int
	slots int
}

func (r *machineRunner) Slots() int { return max(1, r.slots) }

func (r *machineRunner) RunRows(name string, tokens, positions, slots []int32) (out []float32, shape []int, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s at positions %v of slots %v: %v", name, positions, slots, p)
		}
	}()
	rows := make([]int32, artifact.RowFields*r.seq[name])
	artifact.FillRows(rows, r.seq[name], tokens, positions, slots)
	out, err = r.m.RunRows(name, rows, int(slices.Max(positions)), len(tokens))
	return out, nil, err
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
// with the eager interpreter; with eight-lane vectors, and with sixteen
// (Options.Wide) where backends print them. Attention tiles the heads of
// a KV group (attnHeads) by the shapes: the shared models have groups of
// 2, 4 and 8 heads of 8 to 32; random-weight ones from llmc synth add
// heads of 12 (no whole vector: scalar value sums), groups of 3 and 6, a
// head of three f32x16s, and a soft-capped sliding window in tiles of
// four.
func TestLoweringAgainstInterpreter(t *testing.T) {
	const maxSeq, chunk = 29, 8
	synthetic := func(name, arch string, heads, kvHeads, headDim, window int) *synth.Shape {
		s := &synth.Shape{Name: name, Arch: arch, Hidden: 64, Intermediate: 96, Layers: 2, Heads: heads, KVHeads: kvHeads,
			HeadDimension: headDim, Vocab: 96, MaxPositions: 64, RMSNormEps: 1e-5, RopeTheta: 10000, InitRange: 0.1}
		if arch == synth.Gemma2Arch {
			s.AttnSoftcap, s.FinalSoftcap, s.QueryPreAttnScalar, s.SlidingWindow = 20, 30, float64(headDim), window
		}
		return s
	}
	for _, tc := range []struct {
		model string
		shape *synth.Shape // written by synth, instead of a shared model
		wide  bool
	}{
		{model: "stories260K"}, {model: "gemma2-tiny"}, {model: "qwen2-tiny"}, {model: "mistral-tiny"},
		{model: "llama-tiny-bf16"}, {model: "gemma-tiny"}, {model: "llama-tied-bias-free-gqa1"},
		{model: "stories260K", wide: true}, {model: "gemma2-tiny", wide: true}, {model: "gemma-tiny", wide: true},
		{model: "llama-tied-bias-free-gqa1", wide: true},
		{shape: synthetic("h12-g6", "", 12, 2, 12, 0)},
		{shape: synthetic("h24-g3", "", 6, 2, 24, 0)},
		{shape: synthetic("h48-g8", "", 8, 1, 48, 0), wide: true},
		{shape: synthetic("gemma2-g4", synth.Gemma2Arch, 8, 2, 16, 8)},
		{shape: synthetic("gemma2-g4", synth.Gemma2Arch, 8, 2, 16, 8), wide: true},
	} {
		model := tc.model
		if tc.shape != nil {
			model = tc.shape.Name
		}
		name := model
		if tc.wide {
			name += "/wide"
		}
		t.Run(name, func(t *testing.T) {
			var dir string
			if tc.shape != nil {
				dir = filepath.Join(t.TempDir(), model)
				_, err := synth.Write(dir, synth.Options{Shape: *tc.shape, Seed: 11, DType: "f32", NoGenerationConfig: true})
				require.NoError(t, err)
			} else {
				dir = testshared.Path(t, "models", model)
			}
			m, err := hf.Open(dir)
			require.NoError(t, err)
			defer m.Close()
			graphs := optimised(t, m, maxSeq, chunk, 0, []passes.Entry{{Name: "decode", Seq: 1}, {Name: "prefill", Seq: chunk}, {Name: "prefill_all", Seq: chunk}})
			prog, err := kir.LowerWith(graphs, kir.Options{MaxSeq: maxSeq, KeepBF16: true, Wide: tc.wide})
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

// optimised builds m's graph for each entry (every row's logits for the
// names ending in _all and for decode_batch, each run's last for
// prefill_batch) and runs the static-cache pipeline on it.
func optimised(t *testing.T, m *hf.Model, maxSeq, chunk, runs int, entries []passes.Entry) []*ir.Graph {
	t.Helper()
	var graphs []*ir.Graph
	for _, e := range entries {
		o := hf.BuildOptions{Name: e.Name, AllLogits: strings.HasSuffix(e.Name, "_all") || e.Name == artifact.EntryDecodeBatch}
		if e.Name == artifact.EntryPrefillBatch {
			o.Runs = runs
		}
		g, err := m.Build(o)
		require.NoError(t, err)
		e.Graph = g
		_, err = passes.Run(&e, &passes.Options{KV: passes.Static, MaxSeq: maxSeq, MaxTokens: chunk})
		require.NoError(t, err)
		graphs = append(graphs, g)
	}
	return graphs
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

// TestLoweringSlots lowers programs whose caches hold three sequences and
// runs them on kir.Machine: prompts of different lengths prefilled into
// each slot, then batched steps of every slot, and of two, each row at its
// own position, some steps carrying a piece of a prefill for one slot
// (through decode_batch when the rows fit, prefill_batch when not),
// against an eager decoder per sequence. Gemma 2 has
// sliding-window layers, whose caches are rings per slot.
func TestLoweringSlots(t *testing.T) {
	const maxSeq, chunk, slots = 40, 4, 3
	for _, model := range []string{"stories260K", "gemma2-tiny"} {
		t.Run(model, func(t *testing.T) {
			dir := testshared.Path(t, "models", model)
			m, err := hf.Open(dir)
			require.NoError(t, err)
			defer m.Close()
			graphs := optimised(t, m, maxSeq, chunk, slots, []passes.Entry{{Name: "decode", Seq: 1}, {Name: "prefill", Seq: chunk},
				{Name: "prefill_all", Seq: chunk}, {Name: "decode_batch", Seq: slots, Batch: true},
				{Name: "prefill_batch", Seq: slots + chunk, Batch: true}})
			prog, err := kir.LowerWith(graphs, kir.Options{MaxSeq: maxSeq, Slots: slots})
			require.NoError(t, err)
			require.Equal(t, slots, prog.Slots)
			_, err = kir.Parse(kir.Print(prog))
			require.NoError(t, err)
			ws, free, err := runtime.LinkedWeights(linkedOf(prog), m)
			require.NoError(t, err)
			defer free()
			r := &machineRunner{m: kir.NewMachine(prog, ws.F32), slots: slots,
				seq: map[string]int{"decode": 1, "prefill": chunk, "prefill_all": chunk, "decode_batch": slots, "prefill_batch": slots + chunk}}
			all, err := runtime.NewStaticSlots(r, runtime.StaticEntries{Decode: "decode", Prefill: "prefill", PrefillAll: "prefill_all",
				Chunk: chunk, DecodeBatch: "decode_batch", BatchRows: slots, PrefillBatch: "prefill_batch", PrefillBatchRows: slots + chunk},
				m.Config.VocabSize, maxSeq)
			require.NoError(t, err)
			require.Equal(t, slots, all.Len())

			v := m.Config.VocabSize
			eager := make([]runtime.Decoder, slots)
			for i := range eager {
				e, err := engine.Open(dir, engine.Options{})
				require.NoError(t, err)
				defer e.Close()
				eager[i] = e.Decoder
			}
			for i := range slots {
				prompt := make([]int, 3+5*i) // 3, 8 and 13 tokens
				for j := range prompt {
					prompt[j] = (j*31 + 7*i + 1) % v
				}
				compare(t, eager[i], all.Slot(i), prompt, false)
			}
			for step := range 20 {
				ids := []int{0, 1, 2}
				if step%3 == 2 {
					ids = []int{2, 0} // some slots sit out a step
				}
				runs := make([]runtime.Run, len(ids))
				for j, i := range ids {
					n := 1
					if step%4 == 1 && j == 1 {
						// A piece of a prefill rides along: 5 rows (prefill_batch)
						// beside two others, 3 (decode_batch) beside one.
						n = chunk - 1 - (slots - len(ids))
					}
					for k := range n {
						runs[j].Tokens = append(runs[j].Tokens, (step*13+i*5+3+k)%v)
					}
					runs[j].Slot = i
				}
				got, err := all.StepRuns(runs)
				require.NoError(t, err)
				require.Len(t, got, len(ids)*v)
				for j, i := range ids {
					want, err := eager[i].Forward(runs[j].Tokens, false)
					require.NoError(t, err)
					worst := 0.0
					for k := range want {
						worst = math.Max(worst, math.Abs(float64(want[k]-got[j*v+k])))
					}
					require.Less(t, worst, 1e-4, "step %d, slot %d at position %d", step, i, all.Slot(i).Pos())
					require.Equal(t, eager[i].Pos(), all.Slot(i).Pos())
				}
			}
		})
	}
}

// TestPrefillSkipsPadding lowers prefill chunks of 13 rows and requires
// every loop over a chunk's token rows to stop at its real rows
// (min(13, %len)): a loop bounded by the chunk itself would compute the
// padding, so a short prompt would cost a whole chunk. 13 is no dimension
// of these models, so a constant bound of 13 can only be the chunk.
func TestPrefillSkipsPadding(t *testing.T) {
	const maxSeq, chunk = 29, 13
	for _, model := range []string{"stories260K", "gemma2-tiny", "qwen2-tiny", "mistral-tiny", "llama-tiny-bf16"} {
		t.Run(model, func(t *testing.T) {
			m, err := hf.Open(testshared.Path(t, "models", model))
			require.NoError(t, err)
			defer m.Close()
			graphs := optimised(t, m, maxSeq, chunk, 0, []passes.Entry{{Name: "prefill", Seq: chunk}, {Name: "prefill_all", Seq: chunk}})
			prog, err := kir.LowerWith(graphs, kir.Options{MaxSeq: maxSeq, KeepBF16: true})
			require.NoError(t, err)
			var loops func(where string, ss []kir.Stmt)
			loops = func(where string, ss []kir.Stmt) {
				for _, s := range ss {
					switch s := s.(type) {
					case *kir.For:
						if c, ok := s.Hi.(kir.IntConst); ok && c.N == chunk {
							t.Errorf("%s: loop over %s in [%v, %d) runs over the chunk's padding", where, s.Var, s.Lo, chunk)
						}
						loops(where, s.Body)
					case *kir.IfGreater:
						loops(where, s.Then)
					}
				}
			}
			for _, e := range prog.Entries {
				for _, k := range e.Kernels {
					for i, p := range k.Phases {
						loops(fmt.Sprintf("%s phase %d", k.Name, i), p.Body)
					}
				}
			}
		})
	}
}
