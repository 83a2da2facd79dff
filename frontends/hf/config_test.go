package hf

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGemma2Defaults: fields a Gemma2 config.json leaves out take
// transformers' Gemma2Config defaults (query_pre_attn_scalar 256,
// attn_logit_softcapping 50, final_logit_softcapping 30); null turns a
// soft-cap off, as it does in transformers; 0 means none too.
func TestGemma2Defaults(t *testing.T) {
	const base = `"architectures": ["Gemma2ForCausalLM"], "hidden_size": 16, "intermediate_size": 32,
		"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
		"vocab_size": 32, "max_position_embeddings": 64`
	tests := []struct {
		name        string
		extra       string
		scale       float64
		attn, final float64
	}{
		{"absent", "", 1 / math.Sqrt(256), 50, 30},
		{"given", `, "query_pre_attn_scalar": 8, "attn_logit_softcapping": 20.0, "final_logit_softcapping": 15`, 1 / math.Sqrt(8), 20, 15},
		{"null", `, "attn_logit_softcapping": null, "final_logit_softcapping": null`, 1 / math.Sqrt(256), 0, 0},
		{"zero", `, "attn_logit_softcapping": 0, "final_logit_softcapping": 0.0`, 1 / math.Sqrt(256), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte("{" + base + tt.extra + "}"))
			require.NoError(t, err)
			assert.Equal(t, tt.scale, c.AttnScale)
			assert.Equal(t, tt.attn, c.AttnSoftcap)
			assert.Equal(t, tt.final, c.FinalSoftcap)
		})
	}
	_, err := ParseConfig([]byte("{" + base + `, "attn_logit_softcapping": "big"}`))
	assert.ErrorContains(t, err, `field "attn_logit_softcapping" must be a number (got a string)`)
}

// configJSON is a minimal config.json of family arch with fields extra
// (a JSON object's members, without braces) appended.
func configJSON(arch, extra string) string {
	s := `{"architectures": ["` + arch + `"], "hidden_size": 16, "intermediate_size": 32,
		"num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8,
		"vocab_size": 32, "max_position_embeddings": 64`
	if extra != "" {
		s += ", " + extra
	}
	return s + "}"
}

// TestConfigModelType: model_type must name the family architectures
// does (transformers builds the model model_type names, llmc the one
// architectures names); either field alone is read as before.
func TestConfigModelType(t *testing.T) {
	tests := []struct {
		arch, modelType string
		want            Family
		err             string
	}{
		{"LlamaForCausalLM", "llama", Llama, ""},
		{"MistralForCausalLM", "mistral", Mistral, ""},
		{"Qwen2ForCausalLM", "qwen2", Qwen2, ""},
		{"GemmaForCausalLM", "gemma", Gemma, ""},
		{"Gemma2ForCausalLM", "gemma2", Gemma2, ""},
		{"LlamaForCausalLM", "", Llama, ""}, // architectures alone
		{"LlamaForCausalLM", "gemma", "", `model_type "gemma" does not match architectures ["LlamaForCausalLM"] (LlamaForCausalLM is model_type "llama")`},
		{"GemmaForCausalLM", "gemma2", "", `model_type "gemma2" does not match architectures ["GemmaForCausalLM"]`},
		{"Gemma2ForCausalLM", "gemma", "", `model_type "gemma" does not match architectures ["Gemma2ForCausalLM"]`},
		{"MistralForCausalLM", "llama", "", `model_type "llama" does not match architectures ["MistralForCausalLM"]`},
		{"Qwen2ForCausalLM", "qwen2_moe", "", `model_type "qwen2_moe" does not match architectures ["Qwen2ForCausalLM"]`},
	}
	for _, tt := range tests {
		t.Run(tt.arch+"/"+tt.modelType, func(t *testing.T) {
			extra := ""
			if tt.modelType != "" {
				extra = `"model_type": "` + tt.modelType + `"`
			}
			c, err := ParseConfig([]byte(configJSON(tt.arch, extra)))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Family)
		})
	}
	// Every architecture llmc reads accepts its own model_type.
	for _, arch := range SupportedArchitectures() {
		_, err := ParseConfig([]byte(configJSON(arch, `"model_type": "`+architectures[arch].ModelType()+`"`)))
		require.NoError(t, err, arch)
	}
	// model_type alone does not choose an architecture.
	_, err := ParseConfig([]byte(`{"model_type": "llama", "hidden_size": 16}`))
	require.ErrorContains(t, err, `field "architectures" is missing`)
}

// TestConfigHiddenActField: an unsupported activation is reported under
// the field it was read from (Gemma's hidden_activation wins over
// hidden_act).
func TestConfigHiddenActField(t *testing.T) {
	tests := []struct {
		name, arch, extra, err string
	}{
		{"llama hidden_act", "LlamaForCausalLM", `"hidden_act": "relu"`, `field "hidden_act" is "relu", which is not supported`},
		{"llama exact gelu", "LlamaForCausalLM", `"hidden_act": "gelu"`, `field "hidden_act" is "gelu" (exact GELU)`},
		{"gemma hidden_activation", "GemmaForCausalLM", `"hidden_activation": "relu"`, `field "hidden_activation" is "relu", which is not supported`},
		{"gemma both", "GemmaForCausalLM", `"hidden_act": "gelu", "hidden_activation": "relu"`, `field "hidden_activation" is "relu"`},
		{"gemma2 hidden_activation", "Gemma2ForCausalLM", `"hidden_activation": "relu"`, `field "hidden_activation" is "relu"`},
		{"gemma2 exact gelu", "Gemma2ForCausalLM", `"hidden_activation": "gelu"`, `field "hidden_activation" is "gelu" (exact GELU)`},
		{"gemma2 hidden_act", "Gemma2ForCausalLM", `"hidden_act": "relu"`, `field "hidden_act" is "relu"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(configJSON(tt.arch, tt.extra)))
			require.ErrorContains(t, err, tt.err)
		})
	}
	// Gemma's "gelu" is the tanh approximation.
	c, err := ParseConfig([]byte(configJSON("GemmaForCausalLM", `"hidden_activation": "gelu"`)))
	require.NoError(t, err)
	assert.Equal(t, "gelu_pytorch_tanh", c.HiddenAct)
}

// TestConfigJSONTypes: a value of the wrong JSON type names its field (or
// the file) and the type wanted, never the Go type it is decoded into.
func TestConfigJSONTypes(t *testing.T) {
	tests := []struct {
		name, data, err string
	}{
		{"rope_scaling a string", configJSON("LlamaForCausalLM", `"rope_scaling": "linear"`), `field "rope_scaling" must be an object or null (got a string)`},
		{"rope_scaling a number", configJSON("LlamaForCausalLM", `"rope_scaling": 2`), `field "rope_scaling" must be an object or null (got a number)`},
		{"rope_scaling a list", configJSON("LlamaForCausalLM", `"rope_scaling": ["linear", 2]`), `field "rope_scaling" must be an object or null (got a list)`},
		{"rope_scaling.factor a string", configJSON("LlamaForCausalLM", `"rope_scaling": {"type": "linear", "factor": "2"}`), `field "rope_scaling.factor" must be a number (got a string)`},
		{"rope_scaling.rope_type a number", configJSON("LlamaForCausalLM", `"rope_scaling": {"rope_type": 3, "factor": 2}`), `field "rope_scaling.rope_type" must be a string (got a number)`},
		{"hidden_size a string", configJSON("LlamaForCausalLM", `"hidden_size": "16"`), `field "hidden_size" must be an integer (got a string)`},
		{"sliding_window a bool", configJSON("MistralForCausalLM", `"sliding_window": true`), `field "sliding_window" must be an integer (got true or false)`},
		{"model_type a list", configJSON("LlamaForCausalLM", `"model_type": ["llama"]`), `field "model_type" must be a string (got a list)`},
		{"file an array", `[]`, `want a JSON object, got an array`},
		{"file a string", `"config"`, `want a JSON object, got a string`},
		{"file a number", `1.5`, `want a JSON object, got a number`},
		{"file a boolean", `true`, `want a JSON object, got a boolean`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.data))
			require.EqualError(t, err, tt.err)
		})
	}
	_, err := ParseGenerationConfig([]byte(`[1]`))
	require.EqualError(t, err, `want a JSON object, got an array`)

	// ReadConfig names the file.
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte("[]\n"), 0o644))
	_, err = ReadConfig(dir)
	require.ErrorContains(t, err, `config.json: want a JSON object, got an array`)
}

// TestConfigSlidingWindow: transformers turns a sliding window off only
// with null (0 masks every key), so 0 is refused as a negative window is;
// Qwen2 reads the field only with use_sliding_window.
func TestConfigSlidingWindow(t *testing.T) {
	const bad = "want a positive number or null"
	tests := []struct {
		name, arch, extra string
		window            int
		err               string
	}{
		{"mistral 16", "MistralForCausalLM", `"sliding_window": 16`, 16, ""},
		{"mistral null", "MistralForCausalLM", `"sliding_window": null`, 0, ""},
		{"mistral absent", "MistralForCausalLM", ``, 0, ""},
		{"mistral beyond max positions", "MistralForCausalLM", `"sliding_window": 64`, 0, ""},
		{"mistral 0", "MistralForCausalLM", `"sliding_window": 0`, 0, `field "sliding_window" is 0, ` + bad},
		{"mistral -16", "MistralForCausalLM", `"sliding_window": -16`, 0, `field "sliding_window" is -16, ` + bad},
		{"qwen2 0 unused", "Qwen2ForCausalLM", `"sliding_window": 0, "use_sliding_window": false`, 0, ""},
		{"qwen2 16 used", "Qwen2ForCausalLM", `"sliding_window": 16, "use_sliding_window": true`, 16, ""},
		{"qwen2 0 used", "Qwen2ForCausalLM", `"sliding_window": 0, "use_sliding_window": true`, 0, `field "sliding_window" is 0, ` + bad},
		{"gemma2 16", "Gemma2ForCausalLM", `"sliding_window": 16`, 16, ""},
		{"gemma2 0", "Gemma2ForCausalLM", `"sliding_window": 0`, 0, `field "sliding_window" is 0, ` + bad},
		{"gemma2 -1", "Gemma2ForCausalLM", `"sliding_window": -1`, 0, `field "sliding_window" is -1, ` + bad},
		{"llama ignores it", "LlamaForCausalLM", `"sliding_window": 0`, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(configJSON(tt.arch, tt.extra)))
			if tt.err != "" {
				require.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.window, c.SlidingWindow)
		})
	}
}
