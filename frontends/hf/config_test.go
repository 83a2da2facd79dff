package hf

import (
	"math"
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
