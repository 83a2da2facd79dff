package synth_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/frontends/safetensors"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// published is what each real shape's config.json must say, as the
// published model's config.json says it (written out here independently
// of the shape table), read back through frontends/hf.
type published struct {
	shape    string
	arch     string
	family   hf.Family
	hidden   int
	ffn      int
	layers   int
	heads    int
	kvHeads  int
	headDim  int
	vocab    int
	maxPos   int
	eps      float64
	theta    float64
	scaling  *hf.RopeScaling
	act      string
	tied     bool
	qkvBias  bool
	bos, eos []int
	// Gemma2: soft-caps, 1/sqrt(query_pre_attn_scalar), the window.
	attnCap, finalCap, attnScale float64
	window                       int
	dtype                        string  // torch_dtype of the published checkpoint
	params                       float64 // the published parameter count
	tokenizer                    string  // folder of ../shared/tokenizers, "" for none
	fixture                      string  // the tiny model of ../shared/models whose tensor names the family's must match
}

var publishedShapes = []published{
	{shape: "gemma-2b", arch: "GemmaForCausalLM", family: hf.Gemma, hidden: 2048, ffn: 16384, layers: 18, heads: 8, kvHeads: 1,
		headDim: 256, vocab: 256000, maxPos: 8192, eps: 1e-6, theta: 10000, act: "gelu_pytorch_tanh", tied: true,
		bos: []int{2}, eos: []int{1}, attnScale: 1.0 / 16, dtype: "bfloat16", params: 2.506e9, tokenizer: "gemma-2b-it", fixture: "gemma-tiny"},
	{shape: "gemma2-2b", arch: "Gemma2ForCausalLM", family: hf.Gemma2, hidden: 2304, ffn: 9216, layers: 26, heads: 8, kvHeads: 4,
		headDim: 256, vocab: 256000, maxPos: 8192, eps: 1e-6, theta: 10000, act: "gelu_pytorch_tanh", tied: true,
		bos: []int{2}, eos: []int{1}, attnCap: 50, finalCap: 30, attnScale: 1.0 / 16, window: 4096,
		dtype: "float32", params: 2.614e9, tokenizer: "gemma-2b-it", fixture: "gemma2-tiny"},
	{shape: "llama-3.2-1b", arch: "LlamaForCausalLM", family: hf.Llama, hidden: 2048, ffn: 8192, layers: 16, heads: 32, kvHeads: 8,
		headDim: 64, vocab: 128256, maxPos: 131072, eps: 1e-5, theta: 500000,
		scaling: &hf.RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192},
		act:     "silu", tied: true, bos: []int{128000}, eos: []int{128001}, attnScale: 1.0 / 8, dtype: "bfloat16", params: 1.236e9,
		fixture: "llama-tiny"},
	{shape: "qwen2.5-0.5b", arch: "Qwen2ForCausalLM", family: hf.Qwen2, hidden: 896, ffn: 4864, layers: 24, heads: 14, kvHeads: 2,
		headDim: 64, vocab: 151936, maxPos: 32768, eps: 1e-6, theta: 1000000, act: "silu", tied: true, qkvBias: true,
		bos: []int{151643}, eos: []int{151643}, attnScale: 1.0 / 8, dtype: "bfloat16", params: 0.494e9, fixture: "qwen2-tiny"},
	{shape: "smollm2-135m", arch: "LlamaForCausalLM", family: hf.Llama, hidden: 576, ffn: 1536, layers: 30, heads: 9, kvHeads: 3,
		headDim: 64, vocab: 49152, maxPos: 8192, eps: 1e-5, theta: 100000, act: "silu", tied: true,
		bos: []int{1}, eos: []int{2}, attnScale: 1.0 / 8, dtype: "bfloat16", params: 134.5e6, tokenizer: "smollm2-135m-instruct",
		fixture: "llama-tiny"},
	{shape: "tinyllama-1.1b", arch: "LlamaForCausalLM", family: hf.Llama, hidden: 2048, ffn: 5632, layers: 22, heads: 32, kvHeads: 4,
		headDim: 64, vocab: 32000, maxPos: 2048, eps: 1e-5, theta: 10000, act: "silu", tied: false,
		bos: []int{1}, eos: []int{2}, attnScale: 1.0 / 8, dtype: "bfloat16", params: 1.100e9, tokenizer: "tinyllama-1.1b-chat-v1.0",
		fixture: "llama-tiny"},
}

// checkConfig compares what frontends/hf reads from dir with w; small
// says dir holds synth.Shape.Small's variant, whose sizes differ.
func checkConfig(t *testing.T, dir string, w published, small bool) *hf.Config {
	t.Helper()
	c, err := hf.ReadConfig(dir)
	require.NoError(t, err)
	assert.Equal(t, w.arch, c.Architecture)
	assert.Equal(t, w.family, c.Family)
	sizes := [9]int{w.hidden, w.ffn, w.layers, w.heads, w.kvHeads, w.headDim, w.vocab, w.maxPos, w.window}
	if small {
		sizes = [9]int{16 * w.heads, 32 * w.heads, 2, w.heads, w.kvHeads, 16, 512, w.maxPos, w.window}
	}
	assert.Equal(t, sizes, [9]int{c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKVHeads, c.HeadDim,
		c.VocabSize, c.MaxPositions, c.SlidingWindow}, "hidden, MLP, layers, heads, KV heads, head dim, vocab, positions, window")
	assert.Equal(t, w.eps, c.RMSNormEps)
	assert.Equal(t, w.theta, c.RopeTheta)
	assert.Equal(t, w.scaling, c.RopeScaling)
	assert.Equal(t, w.act, c.HiddenAct)
	assert.Equal(t, w.tied, c.TieEmbeddings)
	assert.Equal(t, w.qkvBias, c.QKVBias)
	assert.False(t, c.OBias || c.MLPBias)
	gemma := w.family == hf.Gemma || w.family == hf.Gemma2
	assert.Equal(t, gemma, c.RMSNormUnitOffset, "Gemma scales by 1 + w")
	assert.Equal(t, w.family == hf.Gemma2, c.SandwichNorms)
	if gemma {
		assert.InDelta(t, math.Sqrt(float64(c.HiddenSize)), c.EmbedScale, 1e-4)
	}
	if !small {
		assert.Equal(t, w.bos, c.BOS)
		assert.Equal(t, w.eos, c.EOS)
		assert.InDelta(t, w.attnScale, c.AttnScale, 1e-12)
	}
	assert.Equal(t, w.attnCap, c.AttnSoftcap)
	assert.Equal(t, w.finalCap, c.FinalSoftcap)
	if w.window > 0 {
		for l := range c.NumLayers {
			assert.Equal(t, l%2 == 0, c.IsLayerSliding(l), "Gemma2 slides on even layers")
		}
	}
	return c
}

// TestPublishedConfigs writes every real shape's config files (not its
// gigabytes of weights) and checks them against the published values.
func TestPublishedConfigs(t *testing.T) {
	t.Parallel()
	for _, w := range publishedShapes {
		t.Run(w.shape, func(t *testing.T) {
			s, err := synth.LookupShape(w.shape)
			require.NoError(t, err)
			dir := filepath.Join(t.TempDir(), "m")
			res, err := synth.Write(dir, synth.Options{Shape: s, ConfigOnly: true})
			require.NoError(t, err)
			_, err = os.Stat(filepath.Join(dir, "model.safetensors"))
			assert.ErrorIs(t, err, os.ErrNotExist, "ConfigOnly writes no weights")
			checkConfig(t, dir, w, false)

			var raw map[string]any
			data, err := os.ReadFile(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(data, &raw))
			assert.Equal(t, w.dtype, raw["torch_dtype"], "--dtype defaults to the published checkpoint's")
			assert.InEpsilon(t, w.params, float64(res.Params), 0.002, "parameters")
			assert.Equal(t, w.tokenizer, s.Tokenizer)
			switch w.family {
			case hf.Gemma2:
				assert.Equal(t, 256.0, raw["query_pre_attn_scalar"])
				assert.Equal(t, "hybrid", raw["cache_implementation"])
			case hf.Qwen2:
				assert.Equal(t, false, raw["use_sliding_window"])
			case hf.Gemma:
				assert.Equal(t, "gelu_pytorch_tanh", raw["hidden_activation"])
			}
			if w.family == hf.Gemma || w.family == hf.Gemma2 {
				assert.Equal(t, 0.0, raw["pad_token_id"])
			}
		})
	}
}

var layerIndex = regexp.MustCompile(`\.layers\.\d+\.`)

// tensorNames lists a checkpoint's tensor names with layer numbers
// dropped.
func tensorNames(names []string) []string {
	var out []string
	for _, n := range names {
		n = layerIndex.ReplaceAllString(n, ".layers.N.")
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// TestSmallShapes writes each real shape scaled down, opens it with
// frontends/hf and runs a forward step eagerly; its tensors are named as
// in the family's tiny transformers-written model in ../shared/models.
func TestSmallShapes(t *testing.T) {
	t.Parallel()
	for _, w := range publishedShapes {
		t.Run(w.shape, func(t *testing.T) {
			t.Parallel()
			s, err := synth.LookupShape(w.shape)
			require.NoError(t, err)
			small := s.Small()
			dir := filepath.Join(t.TempDir(), "m")
			res, err := synth.Write(dir, synth.Options{Shape: small, Seed: 5})
			require.NoError(t, err)
			c := checkConfig(t, dir, w, true)
			assert.Less(t, slices.Max(slices.Concat(c.BOS, c.EOS)), 512)

			m, err := hf.Open(dir)
			require.NoError(t, err)
			defer m.Close()
			var names []string
			for _, ts := range synth.Tensors(res.Shape) {
				tensor, ok := m.Tensors.Tensor(ts.Name)
				require.True(t, ok, ts.Name)
				assert.Equal(t, ts.Shape, tensor.Shape, ts.Name)
				assert.Equal(t, w.dtype, map[string]string{"BF16": "bfloat16", "F32": "float32"}[tensor.DType.String()], ts.Name)
				names = append(names, ts.Name)
			}
			norm, _, err := m.Float32("model.layers.1.input_layernorm.weight")
			require.NoError(t, err)
			wantNorm := float32(1)
			if c.RMSNormUnitOffset {
				wantNorm = 0 // scale 1 + 0
			}
			for _, v := range norm {
				require.Equal(t, wantNorm, v)
			}
			_, err = m.Build(hf.BuildOptions{})
			require.NoError(t, err, "the graph builder finds every tensor")

			// The family's tensor names are transformers': those of the
			// tiny model it wrote, with the same tying.
			fx, err := safetensors.OpenDir(testshared.Path(t, "models", w.fixture))
			require.NoError(t, err)
			defer fx.Close()
			fxCfg, err := hf.ReadConfig(testshared.Path(t, "models", w.fixture))
			require.NoError(t, err)
			like := small
			like.Tied = fxCfg.TieEmbeddings
			var want, got []string
			for _, n := range fx.Names() {
				want = append(want, n)
			}
			for _, ts := range synth.Tensors(like) {
				got = append(got, ts.Name)
			}
			assert.Equal(t, tensorNames(want), tensorNames(got), "tensor names as transformers writes them")

			e, err := engine.Open(dir, engine.Options{Threads: 1})
			require.NoError(t, err)
			defer e.Close()
			logits, err := e.Decoder.Forward([]int{c.BOS[0], 5, 9}, false)
			require.NoError(t, err)
			require.Len(t, logits, 512)
			for i, v := range logits {
				require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0), fmt.Sprint("logit ", i))
			}
		})
	}
}

// TestShapeTokenizers pairs each shape with its tokenizer: the published
// vocabulary holds the tokenizer, and the tokenizer's BOS and EOS are the
// published config's.
func TestShapeTokenizers(t *testing.T) {
	t.Parallel()
	for _, w := range publishedShapes {
		if w.tokenizer == "" {
			continue
		}
		t.Run(w.shape, func(t *testing.T) {
			s, err := synth.LookupShape(w.shape)
			require.NoError(t, err)
			dir := filepath.Join(t.TempDir(), "m")
			res, err := synth.Write(dir, synth.Options{Shape: s, ConfigOnly: true, Tokenizer: testshared.Path(t, "tokenizers", w.tokenizer)})
			require.NoError(t, err)
			assert.Equal(t, w.vocab, res.Shape.Vocab, "the published vocabulary")
			data, err := os.ReadFile(filepath.Join(dir, "config.json"))
			require.NoError(t, err)
			c, err := hf.ParseConfig(data)
			require.NoError(t, err)
			assert.Equal(t, w.bos, c.BOS, "config.json")
			assert.Equal(t, w.eos, c.EOS, "config.json")
			assert.Equal(t, w.eos, res.EOS[:1], "generation_config.json starts with the EOS")
			_, err = os.Stat(filepath.Join(dir, "tokenizer.json"))
			assert.NoError(t, err)
		})
	}
}
