// Package hf reads Hugging Face model folders (config.json,
// generation_config.json and safetensors weights) and builds llmc graph IR
// for the decoder-only families llmc supports.
package hf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// Family is a group of architectures that share one graph builder.
type Family string

const (
	Llama   Family = "llama"
	Mistral Family = "mistral"
	Qwen2   Family = "qwen2"
	Gemma   Family = "gemma"
	Gemma2  Family = "gemma2"
)

// architectures maps the "architectures" entry of config.json to a family.
var architectures = map[string]Family{
	"LlamaForCausalLM":   Llama,
	"MistralForCausalLM": Mistral,
	"Qwen2ForCausalLM":   Qwen2,
	"GemmaForCausalLM":   Gemma,
	"Gemma2ForCausalLM":  Gemma2,
}

// ModelType is the config.json model_type that transformers writes for
// the family's architectures (the family's name).
func (f Family) ModelType() string { return string(f) }

// SupportedArchitectures lists the config.json architectures llmc reads.
func SupportedArchitectures() []string {
	var names []string
	for n := range architectures {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Config is a model's architecture, normalised across families: every
// field has its family default filled in.
type Config struct {
	Architecture string
	Family       Family

	HiddenSize       int
	IntermediateSize int
	NumLayers        int
	NumHeads         int
	NumKVHeads       int
	HeadDim          int
	VocabSize        int
	MaxPositions     int

	RMSNormEps float64
	// RMSNormUnitOffset scales by (1 + w) instead of w (Gemma).
	RMSNormUnitOffset bool
	RopeTheta         float64
	RopeScaling       *RopeScaling
	HiddenAct         string // "silu" or "gelu_pytorch_tanh"
	TieEmbeddings     bool
	// QKVBias: q_proj, k_proj and v_proj have biases (Qwen2, Llama with
	// attention_bias); OBias: o_proj has one (Llama with attention_bias).
	QKVBias, OBias bool
	MLPBias        bool
	// EmbedScale multiplies the embeddings (Gemma: sqrt(hidden), rounded to
	// float32); 0 means none.
	EmbedScale float64
	// SlidingWindow is the window W (query at p sees keys p-W < j <= p), 0
	// for none. SlidingLayers says which layers use it (nil: all).
	SlidingWindow int
	SlidingLayers []bool
	// AttnScale multiplies the query-key scores (1/sqrt(head_dim) unless
	// the model says otherwise).
	AttnScale     float64
	AttnSoftcap   float64 // 0 for none (Gemma2)
	FinalSoftcap  float64 // 0 for none (Gemma2)
	SandwichNorms bool    // Gemma2's extra post-attention and post-MLP norms
	BOS           []int
	EOS           []int
	TorchDType    string
	Generation    *GenerationConfig
	Path          string // the config.json it was read from
}

// RopeScaling is config.json's rope_scaling.
type RopeScaling struct {
	Type                 string  // "linear" or "llama3"
	Factor               float64 // both
	LowFreqFactor        float64 // llama3
	HighFreqFactor       float64 // llama3
	OriginalMaxPositions int     // llama3
}

// GenerationConfig holds the sampling defaults of generation_config.json.
type GenerationConfig struct {
	DoSample          *bool
	Temperature       *float64
	TopK              *int
	TopP              *float64
	MinP              *float64
	RepetitionPenalty *float64
	MaxNewTokens      *int
	BOS               []int
	EOS               []int
	Path              string // the generation_config.json it was read from
}

// IsLayerSliding reports whether layer l uses the sliding window.
func (c *Config) IsLayerSliding(l int) bool {
	if c.SlidingWindow <= 0 {
		return false
	}
	if c.SlidingLayers == nil {
		return true
	}
	return l < len(c.SlidingLayers) && c.SlidingLayers[l]
}

// KVBytes is the size of a KV cache for positions positions at elemSize
// bytes an element: K and V for every layer and KV head, layers with a
// sliding window holding at most the window.
func (c *Config) KVBytes(positions, elemSize int) int64 {
	perPos := 2 * int64(c.NumKVHeads) * int64(c.HeadDim) * int64(elemSize)
	var total int64
	for l := 0; l < c.NumLayers; l++ {
		n := positions
		if c.IsLayerSliding(l) {
			n = min(n, c.SlidingWindow)
		}
		total += perPos * int64(n)
	}
	return total
}

// StaticKVBytes is the size of the static KV cache llmc compile allocates
// for positions positions and prefill chunks of chunk tokens, at elemSize
// bytes an element: KVBytes, except that a sliding-window layer keeps a
// ring of window + chunk - 1 rows (passes' window-kv: a chunk's rows are
// written before its first row has read the whole window), when that is
// fewer than positions.
func (c *Config) StaticKVBytes(positions, chunk, elemSize int) int64 {
	perPos := 2 * int64(c.NumKVHeads) * int64(c.HeadDim) * int64(elemSize)
	var total int64
	for l := 0; l < c.NumLayers; l++ {
		n := positions
		if c.IsLayerSliding(l) {
			n = min(n, c.SlidingWindow+max(chunk, 1)-1)
		}
		total += perPos * int64(n)
	}
	return total
}

// rawConfig mirrors the config.json fields llmc reads. Pointers tell a
// missing field from a zero.
type rawConfig struct {
	Architectures         []string        `json:"architectures"`
	ModelType             string          `json:"model_type"`
	HiddenSize            *int            `json:"hidden_size"`
	IntermediateSize      *int            `json:"intermediate_size"`
	NumHiddenLayers       *int            `json:"num_hidden_layers"`
	NumAttentionHeads     *int            `json:"num_attention_heads"`
	NumKeyValueHeads      *int            `json:"num_key_value_heads"`
	HeadDim               *int            `json:"head_dim"`
	VocabSize             *int            `json:"vocab_size"`
	MaxPositionEmbeddings *int            `json:"max_position_embeddings"`
	RMSNormEps            *float64        `json:"rms_norm_eps"`
	RopeTheta             *float64        `json:"rope_theta"`
	RopeScaling           json.RawMessage `json:"rope_scaling"`
	HiddenAct             *string         `json:"hidden_act"`
	HiddenActivation      *string         `json:"hidden_activation"`
	TieWordEmbeddings     *bool           `json:"tie_word_embeddings"`
	AttentionBias         *bool           `json:"attention_bias"`
	MLPBias               *bool           `json:"mlp_bias"`
	SlidingWindow         *int            `json:"sliding_window"`
	UseSlidingWindow      *bool           `json:"use_sliding_window"`
	QueryPreAttnScalar    *float64        `json:"query_pre_attn_scalar"`
	AttnLogitSoftcapping  nullableFloat   `json:"attn_logit_softcapping"`
	FinalLogitSoftcapping nullableFloat   `json:"final_logit_softcapping"`
	BOSTokenID            json.RawMessage `json:"bos_token_id"`
	EOSTokenID            json.RawMessage `json:"eos_token_id"`
	TorchDType            string          `json:"torch_dtype"`
}

// ReadConfig reads DIR/config.json and, when present,
// DIR/generation_config.json.
func ReadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading model config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	gpath := filepath.Join(dir, "generation_config.json")
	if gdata, err := os.ReadFile(gpath); err == nil {
		gen, err := ParseGenerationConfig(gdata)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", gpath, err)
		}
		gen.Path = gpath
		cfg.Generation = gen
		// generation_config.json overrides the token ids when it has them.
		if len(gen.BOS) > 0 {
			cfg.BOS = gen.BOS
		}
		if len(gen.EOS) > 0 {
			cfg.EOS = gen.EOS
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading generation config: %w", err)
	}
	return cfg, nil
}

// ParseConfig parses the contents of a config.json.
func ParseConfig(data []byte) (*Config, error) {
	var raw rawConfig
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, jsonError(err, "")
	}
	if len(raw.Architectures) == 0 {
		return nil, fmt.Errorf("field \"architectures\" is missing; supported: %s", strings.Join(SupportedArchitectures(), ", "))
	}
	arch := raw.Architectures[0]
	fam, ok := architectures[arch]
	if !ok {
		return nil, fmt.Errorf("architecture %q is not supported; supported: %s", arch, strings.Join(SupportedArchitectures(), ", "))
	}
	// transformers builds the model model_type names (AutoModelForCausalLM
	// maps the config class to a model class), llmc the one architectures
	// names: a config where they disagree describes two models.
	if raw.ModelType != "" && raw.ModelType != fam.ModelType() {
		names, _ := json.Marshal(raw.Architectures)
		return nil, fmt.Errorf("model_type %q does not match architectures %s (%s is model_type %q)", raw.ModelType, names, arch, fam.ModelType())
	}
	c := &Config{Architecture: arch, Family: fam, TorchDType: raw.TorchDType}

	required := []struct {
		name string
		src  *int
		dst  *int
	}{
		{"hidden_size", raw.HiddenSize, &c.HiddenSize},
		{"intermediate_size", raw.IntermediateSize, &c.IntermediateSize},
		{"num_hidden_layers", raw.NumHiddenLayers, &c.NumLayers},
		{"num_attention_heads", raw.NumAttentionHeads, &c.NumHeads},
		{"vocab_size", raw.VocabSize, &c.VocabSize},
	}
	for _, f := range required {
		if f.src == nil {
			return nil, fmt.Errorf("field %q is missing", f.name)
		}
		if *f.src <= 0 {
			return nil, fmt.Errorf("field %q is %d, want a positive number", f.name, *f.src)
		}
		*f.dst = *f.src
	}
	c.NumKVHeads = intOr(raw.NumKeyValueHeads, c.NumHeads)
	if c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0 {
		return nil, fmt.Errorf("field \"num_key_value_heads\" is %d, which does not divide num_attention_heads %d", c.NumKVHeads, c.NumHeads)
	}
	switch {
	case raw.HeadDim != nil:
		c.HeadDim = *raw.HeadDim
	case fam == Gemma || fam == Gemma2:
		c.HeadDim = 256
	default:
		if c.HiddenSize%c.NumHeads != 0 {
			return nil, fmt.Errorf("hidden_size %d is not a multiple of num_attention_heads %d, and \"head_dim\" is missing", c.HiddenSize, c.NumHeads)
		}
		c.HeadDim = c.HiddenSize / c.NumHeads
	}
	if c.HeadDim <= 0 || c.HeadDim%2 != 0 {
		return nil, fmt.Errorf("field \"head_dim\" is %d, want a positive even number", c.HeadDim)
	}
	c.MaxPositions = intOr(raw.MaxPositionEmbeddings, 2048)
	if c.MaxPositions <= 0 {
		return nil, fmt.Errorf("field \"max_position_embeddings\" is %d, want a positive number", c.MaxPositions)
	}
	c.RopeTheta = floatOr(raw.RopeTheta, 10000)
	if !(c.RopeTheta > 0) || math.IsInf(c.RopeTheta, 0) {
		return nil, fmt.Errorf("field \"rope_theta\" is %g, want a positive number", c.RopeTheta)
	}
	rs, err := parseRopeScaling(raw.RopeScaling)
	if err != nil {
		return nil, err
	}
	c.RopeScaling = rs

	actField := "hidden_act" // the field c.HiddenAct was read from, for errors
	switch fam {
	case Gemma, Gemma2:
		c.RMSNormEps = floatOr(raw.RMSNormEps, 1e-6)
		c.RMSNormUnitOffset = true
		c.TieEmbeddings = boolOr(raw.TieWordEmbeddings, true)
		c.HiddenAct = "gelu_pytorch_tanh"
		if raw.HiddenActivation != nil {
			c.HiddenAct, actField = *raw.HiddenActivation, "hidden_activation"
		} else if raw.HiddenAct != nil && fam == Gemma2 {
			c.HiddenAct = *raw.HiddenAct
		}
		c.EmbedScale = float64(float32(math.Sqrt(float64(c.HiddenSize))))
		c.QKVBias = boolOr(raw.AttentionBias, false)
	default:
		c.RMSNormEps = floatOr(raw.RMSNormEps, 1e-6)
		c.TieEmbeddings = boolOr(raw.TieWordEmbeddings, false)
		c.HiddenAct = strOr(raw.HiddenAct, "silu")
		c.QKVBias = boolOr(raw.AttentionBias, false)
		c.OBias = c.QKVBias && fam == Llama
		c.MLPBias = boolOr(raw.MLPBias, false) && fam == Llama
	}
	if fam == Qwen2 {
		c.QKVBias, c.OBias = true, false
	}
	// A negative epsilon makes the norm's mean square negative for small
	// activations, and its square root NaN, from the first layer on.
	if err := nonNegative("rms_norm_eps", c.RMSNormEps); err != nil {
		return nil, err
	}
	// Gemma's "gelu" is the tanh approximation too (transformers warns and
	// uses gelu_pytorch_tanh for it).
	switch c.HiddenAct {
	case "silu", "swish":
		c.HiddenAct = "silu"
	case "gelu_pytorch_tanh", "gelu_tanh", "gelu_new":
		c.HiddenAct = "gelu_pytorch_tanh"
	case "gelu":
		if fam != Gemma {
			return nil, fmt.Errorf("field %q is \"gelu\" (exact GELU), which is not supported; supported: silu, gelu_pytorch_tanh", actField)
		}
		c.HiddenAct = "gelu_pytorch_tanh"
	default:
		return nil, fmt.Errorf("field %q is %q, which is not supported; supported: silu, gelu_pytorch_tanh", actField, c.HiddenAct)
	}

	c.AttnScale = 1 / math.Sqrt(float64(c.HeadDim))
	// transformers turns the window off only with null: its masks keep key
	// j for query p when p-W < j <= p, so a window of 0 masks every key and,
	// like a negative window, describes no model.
	window := func(def int) (int, error) {
		if raw.SlidingWindow == nil {
			return def, nil
		}
		if *raw.SlidingWindow <= 0 {
			return 0, fmt.Errorf("field \"sliding_window\" is %d, want a positive number or null", *raw.SlidingWindow)
		}
		return *raw.SlidingWindow, nil
	}
	switch fam {
	case Mistral:
		if c.SlidingWindow, err = window(0); err != nil {
			return nil, err
		}
	case Qwen2:
		if boolOr(raw.UseSlidingWindow, false) {
			if c.SlidingWindow, err = window(0); err != nil {
				return nil, err
			}
		}
	case Gemma2:
		if c.SlidingWindow, err = window(4096); err != nil {
			return nil, err
		}
		c.SlidingLayers = make([]bool, c.NumLayers)
		for l := range c.SlidingLayers {
			c.SlidingLayers[l] = l%2 == 0
		}
		// Absent fields take transformers' Gemma2Config defaults:
		// query_pre_attn_scalar 256, soft-caps 50 (attention) and 30
		// (final logits); null turns a soft-cap off.
		scalar := floatOr(raw.QueryPreAttnScalar, 256)
		if !(scalar > 0) || math.IsInf(scalar, 0) {
			return nil, fmt.Errorf("field \"query_pre_attn_scalar\" is %g, want a positive number", scalar)
		}
		c.AttnScale = 1 / math.Sqrt(scalar)
		c.AttnSoftcap = raw.AttnLogitSoftcapping.or(50)
		c.FinalSoftcap = raw.FinalLogitSoftcapping.or(30)
		for _, f := range []struct {
			name string
			v    float64
		}{{"attn_logit_softcapping", c.AttnSoftcap}, {"final_logit_softcapping", c.FinalSoftcap}} {
			if err := nonNegative(f.name, f.v); err != nil {
				return nil, fmt.Errorf("%w (0 or null for none)", err)
			}
		}
		c.SandwichNorms = true
	}
	if c.SlidingWindow >= c.MaxPositions {
		c.SlidingWindow, c.SlidingLayers = 0, nil // the window never binds
	}

	if c.BOS, err = tokenIDs("bos_token_id", raw.BOSTokenID); err != nil {
		return nil, err
	}
	if c.EOS, err = tokenIDs("eos_token_id", raw.EOSTokenID); err != nil {
		return nil, err
	}
	for _, id := range append(append([]int(nil), c.BOS...), c.EOS...) {
		if id < 0 || id >= c.VocabSize {
			return nil, fmt.Errorf("special token id %d is outside the vocabulary (vocab_size %d)", id, c.VocabSize)
		}
	}
	return c, nil
}

func parseRopeScaling(data json.RawMessage) (*RopeScaling, error) {
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	var r struct {
		RopeType                      string   `json:"rope_type"`
		Type                          string   `json:"type"`
		Factor                        *float64 `json:"factor"`
		LowFreqFactor                 *float64 `json:"low_freq_factor"`
		HighFreqFactor                *float64 `json:"high_freq_factor"`
		OriginalMaxPositionEmbeddings *int     `json:"original_max_position_embeddings"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, jsonError(err, "rope_scaling.")
	}
	t := r.RopeType
	if t == "" {
		t = r.Type
	}
	switch t {
	case "default", "":
		return nil, nil
	case "linear", "llama3":
	default:
		return nil, fmt.Errorf("field \"rope_scaling\": type %q is not supported; supported: linear, llama3", t)
	}
	if r.Factor == nil || !(*r.Factor > 0) || math.IsInf(*r.Factor, 0) {
		return nil, fmt.Errorf("field \"rope_scaling\": \"factor\" is missing or not positive")
	}
	rs := &RopeScaling{Type: t, Factor: *r.Factor}
	if t == "llama3" {
		if r.LowFreqFactor == nil || r.HighFreqFactor == nil || r.OriginalMaxPositionEmbeddings == nil {
			return nil, fmt.Errorf("field \"rope_scaling\": llama3 scaling needs low_freq_factor, high_freq_factor and original_max_position_embeddings")
		}
		rs.LowFreqFactor, rs.HighFreqFactor = *r.LowFreqFactor, *r.HighFreqFactor
		rs.OriginalMaxPositions = *r.OriginalMaxPositionEmbeddings
		if !(rs.LowFreqFactor > 0) {
			return nil, fmt.Errorf("field \"rope_scaling\": \"low_freq_factor\" is %g, want a positive number", rs.LowFreqFactor)
		}
		if rs.HighFreqFactor <= rs.LowFreqFactor || rs.OriginalMaxPositions <= 0 {
			return nil, fmt.Errorf("field \"rope_scaling\": llama3 scaling needs high_freq_factor > low_freq_factor and a positive original_max_position_embeddings")
		}
	}
	return rs, nil
}

// tokenIDs reads a token id field that may be null, an int or a list.
func tokenIDs(field string, data json.RawMessage) ([]int, error) {
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	var one int
	if err := json.Unmarshal(data, &one); err == nil {
		return []int{one}, nil
	}
	var many []int
	if err := json.Unmarshal(data, &many); err != nil {
		return nil, fmt.Errorf("field %q is %s, want an int or a list of ints", field, data)
	}
	return many, nil
}

// ParseGenerationConfig parses the contents of a generation_config.json.
func ParseGenerationConfig(data []byte) (*GenerationConfig, error) {
	var raw struct {
		DoSample          *bool           `json:"do_sample"`
		Temperature       *float64        `json:"temperature"`
		TopK              *int            `json:"top_k"`
		TopP              *float64        `json:"top_p"`
		MinP              *float64        `json:"min_p"`
		RepetitionPenalty *float64        `json:"repetition_penalty"`
		MaxNewTokens      *int            `json:"max_new_tokens"`
		BOSTokenID        json.RawMessage `json:"bos_token_id"`
		EOSTokenID        json.RawMessage `json:"eos_token_id"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, jsonError(err, "")
	}
	g := &GenerationConfig{DoSample: raw.DoSample, Temperature: raw.Temperature, TopK: raw.TopK, TopP: raw.TopP,
		MinP: raw.MinP, RepetitionPenalty: raw.RepetitionPenalty, MaxNewTokens: raw.MaxNewTokens}
	var err error
	if g.BOS, err = tokenIDs("bos_token_id", raw.BOSTokenID); err != nil {
		return nil, err
	}
	if g.EOS, err = tokenIDs("eos_token_id", raw.EOSTokenID); err != nil {
		return nil, err
	}
	return g, nil
}

// nonNegative refuses a float field that is negative, NaN or infinite.
func nonNegative(field string, v float64) error {
	if !(v >= 0) || math.IsInf(v, 0) {
		return fmt.Errorf("field %q is %g, want a non-negative number", field, v)
	}
	return nil
}

func intOr(p *int, def int) int {
	if p != nil {
		return *p
	}
	return def
}

// nullableFloat is a number field where transformers tells absent (the
// config class's default) from null (none).
type nullableFloat struct {
	set bool     // the field is present, possibly null
	v   *float64 // nil for null
}

func (n *nullableFloat) UnmarshalJSON(data []byte) error {
	n.set = true
	return json.Unmarshal(data, &n.v)
}

// or returns the value, def when the field is absent, 0 when it is null.
func (n nullableFloat) or(def float64) float64 {
	switch {
	case !n.set:
		return def
	case n.v == nil:
		return 0
	}
	return *n.v
}

func floatOr(p *float64, def float64) float64 {
	if p != nil {
		return *p
	}
	return def
}

func boolOr(p *bool, def bool) bool {
	if p != nil {
		return *p
	}
	return def
}

func strOr(p *string, def string) string {
	if p != nil {
		return *p
	}
	return def
}

// jsonError says what is wrong with a config file in the words of the
// file: a value of the wrong type names its field (prefix + the field's
// path) and the type it must have, rather than the Go struct it was
// decoded into. prefix is "" when data is the whole file, else the path,
// ending in ".", of the field data was taken from (a json.RawMessage,
// which llmc reads as absent when it is null).
func jsonError(err error, prefix string) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	switch {
	case te.Field != "":
		return fmt.Errorf("field %q must be %s (got %s)", prefix+te.Field, jsonWant(te.Type), jsonGot(te.Value))
	case prefix != "":
		// The field's value as a whole has the wrong type.
		return fmt.Errorf("field %q must be %s or null (got %s)", strings.TrimSuffix(prefix, "."), jsonWant(te.Type), jsonGot(te.Value))
	}
	// The file as a whole has the wrong type.
	want := jsonWant(te.Type)
	if want == "an object" {
		want = "a JSON object"
	}
	return fmt.Errorf("want %s, got %s", want, jsonKind(te.Value))
}

// jsonWant names the JSON values a Go type decodes from.
func jsonWant(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		w := jsonWant(t.Elem())
		switch w {
		case "true or false":
			return "a list of booleans"
		case "a list":
			return "a list of lists"
		}
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(w, "an "), "a ") + "s"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.String()
}

// jsonKind names the JSON value of an UnmarshalTypeError in JSON's own
// words: "an array", "a string", "a number", "a boolean" or "an object".
func jsonKind(v string) string {
	switch {
	case v == "array", v == "object":
		return "an " + v
	case v == "bool":
		return "a boolean"
	case strings.HasPrefix(v, "number"):
		return "a number"
	}
	return "a " + v
}

// jsonGot names the JSON value of an UnmarshalTypeError: "string",
// "number", "number 1.5", "bool", "array" or "object".
func jsonGot(v string) string {
	switch {
	case v == "string":
		return "a string"
	case v == "number":
		return "a number"
	case strings.HasPrefix(v, "number "):
		return strings.TrimPrefix(v, "number ")
	case v == "bool":
		return "true or false"
	case v == "array":
		return "a list"
	case v == "object":
		return "an object"
	}
	return v
}
