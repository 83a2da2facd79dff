package synth_test

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/frontends/safetensors"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/tokenizer"
)

func tiny(t *testing.T) synth.Shape {
	t.Helper()
	s, err := synth.LookupShape("stories260K")
	require.NoError(t, err)
	return s
}

func TestShapes(t *testing.T) {
	want := map[string][7]int{ // hidden, intermediate, layers, heads, KV heads, vocab, positions
		"stories15M":     {288, 768, 6, 6, 6, 32000, 1024},
		"stories110M":    {768, 2048, 12, 12, 12, 32000, 1024},
		"tinyllama-1.1b": {2048, 5632, 22, 32, 4, 32000, 2048},
	}
	for name, w := range want {
		s, err := synth.LookupShape(name)
		require.NoError(t, err)
		assert.Equal(t, w, [7]int{s.Hidden, s.Intermediate, s.Layers, s.Heads, s.KVHeads, s.Vocab, s.MaxPositions}, name)
	}
	s, _ := synth.LookupShape("tinyllama-1.1b")
	assert.InDelta(t, 1.1e9, float64(s.Params()), 0.01e9, "TinyLlama has 1.1B parameters")
	s, _ = synth.LookupShape("stories110M")
	assert.InDelta(t, 110e6, float64(s.Params()), 1e6, "stories110M")
	_, err := synth.LookupShape("gpt-5")
	require.ErrorContains(t, err, "stories110M")
}

// TestWriteLoadsAndRuns writes every dtype, tied and untied, and runs a
// forward step on each.
func TestWriteLoadsAndRuns(t *testing.T) {
	t.Parallel()
	for _, dt := range []synth.DType{"f32", "f16", "bf16"} {
		for _, tied := range []bool{false, true} {
			dir := filepath.Join(t.TempDir(), "model")
			res, err := synth.Write(dir, synth.Options{Shape: tiny(t), Seed: 7, DType: dt, Tied: &tied})
			require.NoError(t, err)

			m, err := hf.Open(dir)
			require.NoError(t, err)
			assert.Equal(t, "LlamaForCausalLM", m.Config.Architecture)
			assert.Equal(t, tied, m.Config.TieEmbeddings)
			assert.Equal(t, 512, m.Config.VocabSize)
			_, hasHead := m.Tensors.Tensor("lm_head.weight")
			assert.Equal(t, !tied, hasHead)
			var params int64
			for _, ts := range synth.Tensors(res.Shape) {
				tensor, ok := m.Tensors.Tensor(ts.Name)
				require.True(t, ok, ts.Name)
				assert.Equal(t, ts.Shape, tensor.Shape, ts.Name)
				n := int64(1)
				for _, d := range ts.Shape {
					n *= int64(d)
				}
				params += n
			}
			assert.Equal(t, res.Params, params)
			_, err = m.Build(hf.BuildOptions{})
			require.NoError(t, err, "the graph builder accepts every tensor")
			require.NoError(t, m.Close())

			e, err := engine.Open(dir, engine.Options{Threads: 1})
			require.NoError(t, err)
			logits, err := e.Decoder.Forward([]int{1, 5, 9}, false)
			require.NoError(t, err)
			require.Len(t, logits, 512)
			for _, v := range logits {
				require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0))
			}
			require.NoError(t, e.Close())
		}
	}
}

func TestWeightsStatistics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	_, err := synth.Write(dir, synth.Options{Shape: tiny(t), Seed: 1})
	require.NoError(t, err)
	m, err := hf.Open(dir)
	require.NoError(t, err)
	defer m.Close()
	norm, _, err := m.Float32("model.layers.2.input_layernorm.weight")
	require.NoError(t, err)
	for _, v := range norm {
		require.Equal(t, float32(1), v)
	}
	w, _, err := m.Float32("model.embed_tokens.weight")
	require.NoError(t, err)
	var sum, sq float64
	for _, v := range w {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean := sum / float64(len(w))
	std := math.Sqrt(sq/float64(len(w)) - mean*mean)
	assert.InDelta(t, 0, mean, 0.001)
	assert.InDelta(t, 0.02, std, 0.001)
}

func TestDeterministic(t *testing.T) {
	t.Parallel()
	write := func(seed uint64) []byte {
		dir := filepath.Join(t.TempDir(), "m")
		_, err := synth.Write(dir, synth.Options{Shape: tiny(t), Seed: seed, DType: "bf16"})
		require.NoError(t, err)
		data, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
		require.NoError(t, err)
		return data
	}
	a, b, c := write(3), write(3), write(4)
	assert.True(t, bytes.Equal(a, b), "same seed, same bytes")
	assert.False(t, bytes.Equal(a, c), "another seed, other weights")
}

func TestConfigJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "m")
	_, err := synth.Write(dir, synth.Options{Shape: tiny(t), DType: "bf16", MaxPositions: 64, Vocab: 600})
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(data, &raw))
	assert.Equal(t, "llama", raw["model_type"])
	assert.Equal(t, "bfloat16", raw["torch_dtype"])
	assert.Contains(t, string(data), `"rms_norm_eps": 1e-05,`, "Python float syntax")
	assert.Contains(t, string(data), `"rope_theta": 10000.0,`)
	cfg, err := hf.ReadConfig(dir)
	require.NoError(t, err)
	assert.Equal(t, 64, cfg.MaxPositions)
	assert.Equal(t, 600, cfg.VocabSize)
	assert.Equal(t, 8, cfg.HeadDim)
	assert.Equal(t, []int{1}, cfg.BOS)
	assert.Equal(t, []int{2}, cfg.EOS)
	require.NotNil(t, cfg.Generation)
}

func TestTokenizer(t *testing.T) {
	t.Parallel()
	src := testshared.Path(t, "tokenizers", "phi-3.5-mini-instruct")
	dir := filepath.Join(t.TempDir(), "m")
	res, err := synth.Write(dir, synth.Options{Shape: tiny(t), Tokenizer: src})
	require.NoError(t, err)
	tok, err := tokenizer.Load(src)
	require.NoError(t, err)
	assert.Equal(t, tok.VocabSize(), res.Shape.Vocab)
	cfg, err := hf.ReadConfig(dir)
	require.NoError(t, err)
	assert.Equal(t, tok.VocabSize(), cfg.VocabSize)
	assert.Equal(t, []int{1}, cfg.BOS)
	assert.Equal(t, []int{32000, 32007}, cfg.EOS, "<|endoftext|> and the turn end <|end|>")
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		want, err := os.ReadFile(filepath.Join(src, f))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(want, got), f)
	}
	_, err = synth.Write(filepath.Join(t.TempDir(), "m"), synth.Options{Shape: tiny(t), Tokenizer: src, Vocab: 100})
	require.ErrorContains(t, err, "smaller than the tokenizer's")
}

func TestDestination(t *testing.T) {
	dir := t.TempDir() // exists, empty: fine
	_, err := synth.Write(dir, synth.Options{Shape: tiny(t)})
	require.NoError(t, err)
	_, err = synth.Write(dir, synth.Options{Shape: tiny(t)})
	require.ErrorContains(t, err, "not empty")
	_, err = synth.Write(dir, synth.Options{Shape: tiny(t), Seed: 2, Replace: true})
	require.NoError(t, err)
	ents, err := os.ReadDir(filepath.Dir(dir))
	require.NoError(t, err)
	assert.Len(t, ents, 1, "no temporary folders left behind")
	f, err := safetensors.Open(filepath.Join(dir, "model.safetensors"))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	_, err = synth.Write(filepath.Join(t.TempDir(), "x"), synth.Options{Shape: tiny(t), DType: "f8"})
	require.ErrorContains(t, err, "want f32, f16 or bf16")
}
