package synth

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/llmc-dev/llmc/frontends/hf"
)

// The architectures Write can write, as config.json's architectures[0].
const (
	LlamaArch  = "LlamaForCausalLM"
	GemmaArch  = "GemmaForCausalLM"
	Gemma2Arch = "Gemma2ForCausalLM"
	Qwen2Arch  = "Qwen2ForCausalLM"
)

// Shape is a model architecture: a family (Arch) and the config.json
// values of one model of it.
type Shape struct {
	Name string
	Doc  string // where the shape comes from
	// Model is the Hugging Face repository whose config.json the shape
	// reproduces; "" for llama2.c's models, which are not published as
	// Hugging Face folders.
	Model        string
	Arch         string // LlamaArch, GemmaArch, Gemma2Arch or Qwen2Arch; "" is LlamaArch
	Hidden       int    // hidden_size (dim)
	Intermediate int    // intermediate_size (the MLP's hidden dim)
	Layers       int
	Heads        int
	KVHeads      int
	// HeadDimension is head_dim; 0 is Hidden/Heads. See HeadDim.
	HeadDimension int
	Vocab         int
	MaxPositions  int
	Tied          bool // tie_word_embeddings
	RMSNormEps    float64
	RopeTheta     float64
	RopeScaling   *hf.RopeScaling // nil for none
	InitRange     float64         // initializer_range, the weights' standard deviation; 0 is 0.02
	// BOS and EOS are the published config's token ids (nil: 1 and 2).
	BOS, EOS []int
	// Gemma2's attention: soft-caps, the query scale's denominator and
	// the window of every other layer. Qwen2 writes SlidingWindow with
	// use_sliding_window false, as its configs do.
	AttnSoftcap, FinalSoftcap float64
	QueryPreAttnScalar        float64
	SlidingWindow             int
	// DType is the published checkpoint's weight type, Write's default.
	DType DType
	// Tokenizer names the folder of ../shared/tokenizers that holds the
	// model's tokenizer, "" for none. Write copies a tokenizer only when
	// Options.Tokenizer says so.
	Tokenizer string
	// Extra holds further config.json fields of the published config, as
	// JSON text, written as they are.
	Extra map[string]string
}

var shapes = []Shape{
	// llama2.c's models share the classifier with the embeddings.
	{Name: "stories260K", Doc: "llama2.c's stories260K (the shared test model's shape)",
		Hidden: 64, Intermediate: 172, Layers: 5, Heads: 8, KVHeads: 4, Vocab: 512, MaxPositions: 512, Tied: true,
		RMSNormEps: 1e-5, RopeTheta: 10000, Tokenizer: "stories260K"},
	{Name: "stories15M", Doc: "llama2.c's stories15M",
		Hidden: 288, Intermediate: 768, Layers: 6, Heads: 6, KVHeads: 6, Vocab: 32000, MaxPositions: 1024, Tied: true,
		RMSNormEps: 1e-5, RopeTheta: 10000},
	{Name: "stories42M", Doc: "llama2.c's stories42M",
		Hidden: 512, Intermediate: 1376, Layers: 8, Heads: 8, KVHeads: 8, Vocab: 32000, MaxPositions: 1024, Tied: true,
		RMSNormEps: 1e-5, RopeTheta: 10000},
	{Name: "stories110M", Doc: "llama2.c's stories110M",
		Hidden: 768, Intermediate: 2048, Layers: 12, Heads: 12, KVHeads: 12, Vocab: 32000, MaxPositions: 1024, Tied: true,
		RMSNormEps: 1e-5, RopeTheta: 10000},
	{Name: "smollm2-135m", Doc: "SmolLM2-135M (9 heads, 3 KV heads; the ids of SmolLM2-135M-Instruct's ChatML tokenizer)",
		Model: "HuggingFaceTB/SmolLM2-135M", Arch: LlamaArch,
		Hidden: 576, Intermediate: 1536, Layers: 30, Heads: 9, KVHeads: 3, Vocab: 49152, MaxPositions: 8192, Tied: true,
		RMSNormEps: 1e-5, RopeTheta: 100000, InitRange: 0.041666666666666664, BOS: []int{1}, EOS: []int{2},
		DType: "bf16", Tokenizer: "smollm2-135m-instruct",
		Extra: map[string]string{"is_llama_config": "true", "rope_interleaved": "false"}},
	{Name: "qwen2.5-0.5b", Doc: "Qwen2.5-0.5B (q/k/v biases, 14 heads, 2 KV heads)",
		Model: "Qwen/Qwen2.5-0.5B", Arch: Qwen2Arch,
		Hidden: 896, Intermediate: 4864, Layers: 24, Heads: 14, KVHeads: 2, Vocab: 151936, MaxPositions: 32768, Tied: true,
		RMSNormEps: 1e-6, RopeTheta: 1000000, BOS: []int{151643}, EOS: []int{151643}, SlidingWindow: 32768, DType: "bf16",
		Extra: map[string]string{"max_window_layers": "24", "use_mrope": "false"}},
	{Name: "tinyllama-1.1b", Doc: "TinyLlama-1.1B-Chat-v1.0 (grouped-query attention, 4 KV heads)",
		Model: "TinyLlama/TinyLlama-1.1B-Chat-v1.0", Arch: LlamaArch,
		Hidden: 2048, Intermediate: 5632, Layers: 22, Heads: 32, KVHeads: 4, Vocab: 32000, MaxPositions: 2048,
		RMSNormEps: 1e-5, RopeTheta: 10000, BOS: []int{1}, EOS: []int{2}, DType: "bf16", Tokenizer: "tinyllama-1.1b-chat-v1.0"},
	{Name: "llama-3.2-1b", Doc: "Llama-3.2-1B (llama3 RoPE scaling, 8 KV heads)",
		Model: "meta-llama/Llama-3.2-1B", Arch: LlamaArch,
		Hidden: 2048, Intermediate: 8192, Layers: 16, Heads: 32, KVHeads: 8, HeadDimension: 64, Vocab: 128256,
		MaxPositions: 131072, Tied: true, RMSNormEps: 1e-5, RopeTheta: 500000,
		RopeScaling: &hf.RopeScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192},
		BOS:         []int{128000}, EOS: []int{128001}, DType: "bf16"},
	{Name: "gemma-2b", Doc: "Gemma-2B (multi-query attention, head dim 256, GeGLU)",
		Model: "google/gemma-2b", Arch: GemmaArch,
		Hidden: 2048, Intermediate: 16384, Layers: 18, Heads: 8, KVHeads: 1, HeadDimension: 256, Vocab: 256000,
		MaxPositions: 8192, Tied: true, RMSNormEps: 1e-6, RopeTheta: 10000, BOS: []int{2}, EOS: []int{1},
		DType: "bf16", Tokenizer: "gemma-2b-it"},
	{Name: "gemma2-2b", Doc: "Gemma-2-2B (soft-capping, a 4096 window every other layer, sandwich norms)",
		Model: "google/gemma-2-2b", Arch: Gemma2Arch,
		Hidden: 2304, Intermediate: 9216, Layers: 26, Heads: 8, KVHeads: 4, HeadDimension: 256, Vocab: 256000,
		MaxPositions: 8192, Tied: true, RMSNormEps: 1e-6, RopeTheta: 10000, BOS: []int{2}, EOS: []int{1},
		AttnSoftcap: 50, FinalSoftcap: 30, QueryPreAttnScalar: 256, SlidingWindow: 4096,
		DType: "f32", Tokenizer: "gemma-2b-it"},
}

// Shapes lists the named shapes, smallest first.
func Shapes() []Shape { return slices.Clone(shapes) }

// LookupShape returns the shape called name.
func LookupShape(name string) (Shape, error) {
	var names []string
	for _, s := range shapes {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Shape{}, fmt.Errorf("unknown shape %q; known: %s", name, strings.Join(names, ", "))
}

// Small returns s scaled down for tests of its family: 2 layers, the same
// heads and KV heads of dim 16, hidden heads×16, intermediate 2×hidden and
// a vocabulary of 512, with BOS and EOS ids outside it replaced by 1 and 2.
// Everything else (family, norms, RoPE, soft-caps, window, ids inside the
// vocabulary) stays the shape's.
func (s Shape) Small() Shape {
	s.Name += "-small"
	s.Layers, s.HeadDimension = 2, 16
	s.Hidden = s.Heads * s.HeadDimension
	s.Intermediate = 2 * s.Hidden
	s.Vocab = 512
	remap := func(ids []int, def int) []int {
		out := slices.Clone(ids)
		for i, id := range out {
			if id >= s.Vocab {
				out[i] = def
			}
		}
		return out
	}
	s.BOS, s.EOS = remap(s.BOS, 1), remap(s.EOS, 2)
	return s
}

// Params is the number of parameters of s.
func (s Shape) Params() int64 {
	var n int64
	for _, t := range Tensors(s) {
		n += t.elems()
	}
	return n
}

// HeadDim is head_dim: HeadDimension, or hidden / heads when it is 0.
func (s Shape) HeadDim() int {
	if s.HeadDimension > 0 {
		return s.HeadDimension
	}
	return s.Hidden / s.Heads
}

func (s Shape) arch() string {
	if s.Arch == "" {
		return LlamaArch
	}
	return s.Arch
}

// normWeight is what a random model's norm weights hold: 1, or 0 where the
// family stores the scale as an offset from 1 (Gemma: scale = 1 + w, the
// frontend's unit_offset).
func (s Shape) normWeight() float32 {
	switch s.arch() {
	case GemmaArch, Gemma2Arch:
		return 0
	}
	return 1
}

func (s Shape) initRange() float64 {
	if s.InitRange > 0 {
		return s.InitRange
	}
	return initStd
}

func (s Shape) check() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"hidden size", s.Hidden}, {"intermediate size", s.Intermediate}, {"layers", s.Layers}, {"heads", s.Heads},
		{"KV heads", s.KVHeads}, {"vocabulary", s.Vocab}, {"positions", s.MaxPositions}} {
		if f.v <= 0 {
			return fmt.Errorf("shape %s: %s is %d, want a positive number", s.Name, f.name, f.v)
		}
	}
	switch s.arch() {
	case LlamaArch, GemmaArch, Gemma2Arch:
	case Qwen2Arch:
		// Qwen2's config.json has no head_dim: it is hidden / heads.
		if s.Hidden%s.Heads != 0 || s.HeadDim() != s.Hidden/s.Heads {
			return fmt.Errorf("shape %s: a Qwen2 head dim is hidden size %d over %d heads, not %d", s.Name, s.Hidden, s.Heads, s.HeadDim())
		}
	default:
		return fmt.Errorf("shape %s: architecture %q: want %s", s.Name, s.Arch, strings.Join([]string{LlamaArch, GemmaArch, Gemma2Arch, Qwen2Arch}, ", "))
	}
	if s.HeadDimension == 0 && s.Hidden%s.Heads != 0 {
		return fmt.Errorf("shape %s: hidden size %d is not a multiple of %d heads", s.Name, s.Hidden, s.Heads)
	}
	if s.HeadDim() <= 0 || s.HeadDim()%2 != 0 {
		return fmt.Errorf("shape %s: head dim %d is not a positive even number", s.Name, s.HeadDim())
	}
	if s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("shape %s: %d KV heads do not divide %d heads", s.Name, s.KVHeads, s.Heads)
	}
	return nil
}

// Tensor is one weight of a checkpoint.
type Tensor struct {
	Name  string
	Shape []int
	// Const says every element is Value (norm weights), not random.
	Const bool
	Value float32
}

// Tensors lists the weights of s with their transformers names, sorted by
// name as safetensors' Python writer lays them out.
func Tensors(s Shape) []Tensor {
	h, hd := s.Hidden, s.HeadDim()
	norm := func(name string) Tensor {
		return Tensor{Name: name, Shape: []int{h}, Const: true, Value: s.normWeight()}
	}
	ts := []Tensor{
		{Name: "model.embed_tokens.weight", Shape: []int{s.Vocab, h}},
		norm("model.norm.weight"),
	}
	if !s.Tied {
		ts = append(ts, Tensor{Name: "lm_head.weight", Shape: []int{s.Vocab, h}})
	}
	for l := range s.Layers {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			norm(p+"input_layernorm.weight"),
			Tensor{Name: p + "self_attn.q_proj.weight", Shape: []int{s.Heads * hd, h}},
			Tensor{Name: p + "self_attn.k_proj.weight", Shape: []int{s.KVHeads * hd, h}},
			Tensor{Name: p + "self_attn.v_proj.weight", Shape: []int{s.KVHeads * hd, h}},
			Tensor{Name: p + "self_attn.o_proj.weight", Shape: []int{h, s.Heads * hd}},
			norm(p+"post_attention_layernorm.weight"),
			Tensor{Name: p + "mlp.gate_proj.weight", Shape: []int{s.Intermediate, h}},
			Tensor{Name: p + "mlp.up_proj.weight", Shape: []int{s.Intermediate, h}},
			Tensor{Name: p + "mlp.down_proj.weight", Shape: []int{h, s.Intermediate}},
		)
		switch s.arch() {
		case Qwen2Arch:
			ts = append(ts,
				Tensor{Name: p + "self_attn.q_proj.bias", Shape: []int{s.Heads * hd}},
				Tensor{Name: p + "self_attn.k_proj.bias", Shape: []int{s.KVHeads * hd}},
				Tensor{Name: p + "self_attn.v_proj.bias", Shape: []int{s.KVHeads * hd}},
			)
		case Gemma2Arch:
			// Gemma2's sandwich norms: post_attention_layernorm normalises
			// the attention output, these the MLP's input and output.
			ts = append(ts, norm(p+"pre_feedforward_layernorm.weight"), norm(p+"post_feedforward_layernorm.weight"))
		}
	}
	slices.SortFunc(ts, func(a, b Tensor) int { return strings.Compare(a.Name, b.Name) })
	return ts
}

func (t Tensor) elems() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= int64(d)
	}
	return n
}

// configJSON is config.json as transformers writes it for s's family
// (the fields of the published configs): keys sorted, two-space indent,
// Python float syntax.
func configJSON(s Shape, torchDType string, bos, eos []int) []byte {
	f := map[string]string{
		"architectures":           "[\n    " + strconv.Quote(s.arch()) + "\n  ]",
		"attention_dropout":       "0.0",
		"bos_token_id":            idsJSON(bos, "  "),
		"eos_token_id":            idsJSON(eos, "  "),
		"hidden_size":             strconv.Itoa(s.Hidden),
		"initializer_range":       pyFloat(s.initRange()),
		"intermediate_size":       strconv.Itoa(s.Intermediate),
		"max_position_embeddings": strconv.Itoa(s.MaxPositions),
		"num_attention_heads":     strconv.Itoa(s.Heads),
		"num_hidden_layers":       strconv.Itoa(s.Layers),
		"num_key_value_heads":     strconv.Itoa(s.KVHeads),
		"rms_norm_eps":            pyFloat(s.RMSNormEps),
		"rope_theta":              pyFloat(s.RopeTheta),
		"tie_word_embeddings":     strconv.FormatBool(s.Tied),
		"torch_dtype":             strconv.Quote(torchDType),
		"use_cache":               "true",
		"vocab_size":              strconv.Itoa(s.Vocab),
	}
	switch s.arch() {
	case LlamaArch:
		f["model_type"] = `"llama"`
		f["attention_bias"] = "false"
		f["head_dim"] = strconv.Itoa(s.HeadDim())
		f["hidden_act"] = `"silu"`
		f["mlp_bias"] = "false"
		f["pretraining_tp"] = "1"
		f["rope_scaling"] = ropeScalingJSON(s.RopeScaling)
	case Qwen2Arch:
		f["model_type"] = `"qwen2"`
		f["hidden_act"] = `"silu"`
		f["sliding_window"] = strconv.Itoa(s.SlidingWindow)
		f["use_sliding_window"] = "false"
	case GemmaArch, Gemma2Arch:
		f["model_type"] = `"gemma"`
		f["attention_bias"] = "false"
		f["head_dim"] = strconv.Itoa(s.HeadDim())
		// Gemma's published configs say "gelu", which transformers runs
		// as the tanh approximation that hidden_activation names.
		f["hidden_act"] = `"gelu"`
		f["hidden_activation"] = `"gelu_pytorch_tanh"`
		f["pad_token_id"] = "0"
		if s.arch() == Gemma2Arch {
			f["model_type"] = `"gemma2"`
			f["hidden_act"] = `"gelu_pytorch_tanh"`
			f["attn_logit_softcapping"] = pyFloat(s.AttnSoftcap)
			f["final_logit_softcapping"] = pyFloat(s.FinalSoftcap)
			f["query_pre_attn_scalar"] = strconv.FormatFloat(s.QueryPreAttnScalar, 'f', -1, 64)
			f["sliding_window"] = strconv.Itoa(s.SlidingWindow)
			f["cache_implementation"] = `"hybrid"`
		}
	}
	for k, v := range s.Extra {
		f[k] = v
	}
	return objectJSON(f)
}

// ropeScalingJSON writes rope_scaling as a nested object, as transformers
// does.
func ropeScalingJSON(r *hf.RopeScaling) string {
	if r == nil {
		return "null"
	}
	f := map[string]string{"rope_type": strconv.Quote(r.Type), "factor": pyFloat(r.Factor)}
	if r.Type == "llama3" {
		f["low_freq_factor"] = pyFloat(r.LowFreqFactor)
		f["high_freq_factor"] = pyFloat(r.HighFreqFactor)
		f["original_max_position_embeddings"] = strconv.Itoa(r.OriginalMaxPositions)
	}
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSuffix(string(objectJSON(f)), "\n"), "\n") {
		if i > 0 {
			b.WriteString("\n  ")
		}
		b.WriteString(line)
	}
	return b.String()
}
