package compiler

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/wformat"
)

// TestWeightsFlag: --weights takes f32, bf16 and the block formats the
// backend loads (f16, q8_0, q4_0, q4_k: every backend).
func TestWeightsFlag(t *testing.T) {
	goT, err := LookupTarget(artifact.BackendGo)
	require.NoError(t, err)
	llvmT, err := LookupTarget(artifact.BackendLLVM)
	require.NoError(t, err)
	for _, bf := range []wformat.Format{wformat.F16, wformat.Q8_0, wformat.Q4_0, wformat.Q4_K} {
		for _, tg := range []*Target{goT, llvmT} {
			f, err := weightFormat(bf.String(), tg)
			require.NoError(t, err, tg.Name)
			require.Equal(t, bf, f, tg.Name)
		}
		require.Equal(t, "interp, go, llvm", loadersOf(ir.WeightDType(bf)))
	}
	f, err := weightFormat("f32", goT)
	require.NoError(t, err)
	require.Equal(t, wformat.F32, f)
	f, err = weightFormat("f16", llvmT)
	require.NoError(t, err)
	require.Equal(t, wformat.F16, f)
	_, err = weightFormat("q5_1", llvmT)
	require.ErrorContains(t, err, "want f32, bf16, f16, q8_0, q4_0 or q4_k")
	f, err = weightFormat("", goT)
	require.NoError(t, err)
	require.Equal(t, wformat.BF16, f)
}

// TestQuantizeStage: stories260K (tied embeddings, 172-wide FFN rows)
// quantizes its linear weights and embedding table, padded, keeps norms
// in f32, types the graphs' weights in the block format (verified), and
// stores every quantized tensor in weights.bin; --keep-embeddings keeps
// the table. For q8_0, q4_0 and q4_k.
func TestQuantizeStage(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	for _, c := range []struct {
		f    wformat.Format
		keep bool
	}{{wformat.Q8_0, false}, {wformat.Q8_0, true}, {wformat.Q4_0, false}, {wformat.Q4_0, true}, {wformat.Q4_K, false}} {
		f, keep := c.f, c.keep
		art := filepath.Join(t.TempDir(), "a")
		res, err := Compile(dir, art, Options{KV: passes.Static, MaxSeq: 64, Backend: artifact.BackendInterp,
			Weights: WeightOptions{Format: f.String(), KeepEmbeddings: keep}})
		require.NoError(t, err)
		by := map[string]QuantStat{}
		for _, s := range res.Quant {
			by[s.Class] = s
		}
		require.Equal(t, by[ClassLinear].Tensors, by[ClassLinear].Quantized)
		require.Zero(t, by[ClassNorm].Quantized)
		require.Equal(t, by[ClassNorm].Before, by[ClassNorm].After)
		// 5 layers: q, k, v, o of 64-wide rows; gate and up 64-wide; down
		// 172-wide, padded to 192.
		require.Equal(t, int64(5*(64+32+32+64+172+172)*f.RowBytes(64)+5*64*f.RowBytes(172)), by[ClassLinear].After)
		emb := by[ClassEmbedding]
		stored := map[string]artifact.StoredTensor{}
		for _, s := range res.Manifest.StoredWeights {
			stored[s.Name] = s
			require.Zero(t, s.Offset%artifact.StoredAlign)
		}
		_, embStored := stored["model.embed_tokens.weight"]
		require.Equal(t, !keep, embStored)
		if keep {
			require.Zero(t, emb.Quantized)
		} else {
			require.Equal(t, int64(512*f.RowBytes(64)), emb.After)
		}
		require.Contains(t, res.Manifest.Files, artifact.StoredWeightsName)
		for _, s := range stored {
			require.Equal(t, f, s.Format, s.Name)
		}
		for _, g := range res.Graphs {
			require.NoError(t, ir.Verify(g))
			for _, w := range g.Weights {
				_, isStored := stored[w.Name]
				if w.Derive == nil {
					require.Equal(t, isStored, w.Type.DType == ir.WeightDType(f), w.Name)
				}
			}
		}
	}
}

// TestKVDtypeDefault: without --kv-dtype a static cache is f16 beside
// block-format weights on a backend that stores f16, and f32 everywhere
// else; a --kv-dtype given is kept.
func TestKVDtypeDefault(t *testing.T) {
	target := func(name string) *Target {
		tg, err := LookupTarget(name)
		require.NoError(t, err)
		return tg
	}
	for _, c := range []struct {
		flag    string
		kv      passes.KVMode
		backend string
		weights wformat.Format
		want    wformat.Format
	}{
		{"", passes.Static, artifact.BackendLLVM, wformat.Q8_0, wformat.F16},
		{"", passes.Static, artifact.BackendGo, wformat.Q4_0, wformat.F16},
		{"", passes.Static, artifact.BackendLLVM, wformat.Q4_K, wformat.F16},
		{"", passes.Static, artifact.BackendInterp, wformat.Q8_0, wformat.F32},
		{"", passes.Dynamic, artifact.BackendInterp, wformat.Q8_0, wformat.F32},
		{"", passes.Static, artifact.BackendLLVM, wformat.BF16, wformat.F32},
		{"", passes.Static, artifact.BackendLLVM, wformat.F16, wformat.F32},
		{"", passes.Static, artifact.BackendLLVM, wformat.F32, wformat.F32},
		{"f32", passes.Static, artifact.BackendLLVM, wformat.Q8_0, wformat.F32},
		{"bf16", passes.Static, artifact.BackendLLVM, wformat.Q4_0, wformat.BF16},
		{"f16", passes.Static, artifact.BackendGo, wformat.F32, wformat.F16},
	} {
		got, err := kvFormat(c.flag, c.kv, target(c.backend), c.weights)
		require.NoError(t, err, "%+v", c)
		require.Equal(t, c.want, got, "--kv-dtype %q, %s cache, backend %s, weights %s", c.flag, c.kv, c.backend, c.weights)
	}
}

// TestKVPlanTooBig: a cache larger than the machine is refused naming what
// makes it large: with --slots, the slots and one slot's size.
func TestKVPlanTooBig(t *testing.T) {
	cfg, err := hf.ReadConfig(testshared.Path(t, "models", "stories260K"))
	require.NoError(t, err)
	o := &Options{KV: passes.Static, MaxSeq: 512, PrefillChunk: 16, Slots: 1 << 20}
	_, _, err = planKV(cfg, o, wformat.F32, false)
	require.ErrorContains(t, err, "the static KV cache for --slots 1048576 of 512 positions (")
	require.ErrorContains(t, err, "pass fewer --slots or a smaller --max-seq, or --kv-dtype f16 or bf16 to halve it")
	_, _, err = planKV(cfg, o, wformat.F16, false)
	require.ErrorContains(t, err, "pass fewer --slots or a smaller --max-seq")
	require.NotContains(t, err.Error(), "--kv-dtype", "an f16 cache is halved already")
	o.Slots = 1
	_, _, err = planKV(cfg, o, wformat.F32, false)
	require.NoError(t, err)
}

// TestBlockOnlyFlags: the flags of block formats are refused beside
// float weights instead of doing nothing.
func TestBlockOnlyFlags(t *testing.T) {
	for _, c := range []struct {
		w         WeightOptions
		f         wformat.Format
		defaulted bool
		want      string
	}{
		{WeightOptions{KeepEmbeddings: true}, wformat.F32, false, "--keep-embeddings applies to block formats (--weights q8_0, q4_0 or q4_k), and the weights are f32"},
		{WeightOptions{KeepOutput: true}, wformat.BF16, true, "--keep-output applies to block formats (--weights q8_0, q4_0 or q4_k), and without --weights the weights stay as the checkpoint stores them"},
		{WeightOptions{FloatDot: true}, wformat.F16, false, "--float-dot applies to block formats"},
		{WeightOptions{KeepEmbeddings: true, FloatDot: true}, wformat.Q8_0, false, ""},
		{WeightOptions{}, wformat.F32, false, ""},
	} {
		err := blockOnly(c.w, c.f, c.defaulted)
		if c.want == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, c.want)
	}
}

// TestWeightsBF16OfFloat32: --weights bf16 keeps bfloat16 tensors and
// converts none, which the quantize stage says when the checkpoint has
// none to keep.
func TestWeightsBF16OfFloat32(t *testing.T) {
	for _, c := range []struct {
		model string
		note  bool
	}{{"stories260K", true}, {"llama-tiny-bf16", false}} {
		res, err := Compile(testshared.Path(t, "models", c.model), filepath.Join(t.TempDir(), "a"), Options{
			Backend: "interp", MaxSeq: 32, Weights: WeightOptions{Format: "bf16"}})
		require.NoError(t, err)
		i := slices.IndexFunc(res.Stages, func(s StageStat) bool { return s.Stage == StageQuantize })
		require.GreaterOrEqual(t, i, 0)
		if c.note {
			require.Contains(t, res.Stages[i].Skipped, "the checkpoint holds no bfloat16 tensors", c.model)
		} else {
			require.NotContains(t, res.Stages[i].Skipped, "no bfloat16", c.model)
		}
	}
}
