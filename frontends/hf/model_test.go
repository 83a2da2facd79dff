package hf_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/frontends/safetensors"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// TestExtraLayers: a config that declares fewer layers than its checkpoint
// holds is an error naming the field and a tensor left over, not a model
// that silently drops its last layers.
func TestExtraLayers(t *testing.T) {
	src := testshared.Path(t, "models", "stories260K")
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join(src, "config.json"))
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(raw, &cfg))
	layers := int(cfg["num_hidden_layers"].(float64))
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".safetensors" {
			require.NoError(t, os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dir, e.Name())))
		}
	}
	write := func(n int) {
		cfg["num_hidden_layers"] = n
		raw, err := json.Marshal(cfg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644))
	}

	write(layers)
	m, err := hf.Open(dir)
	require.NoError(t, err)
	_, err = m.Build(hf.BuildOptions{})
	require.NoError(t, err, "the config as written")
	require.NoError(t, m.Close())

	write(layers - 2)
	m, err = hf.Open(dir)
	require.NoError(t, err)
	defer m.Close()
	_, err = m.Build(hf.BuildOptions{})
	require.ErrorContains(t, err, "config.json's num_hidden_layers is")
	require.ErrorContains(t, err, "tensors of layers")
	require.ErrorContains(t, err, "model.layers.")
	t.Log(err)
}

// TestCheckWeightsDType: a tensor in a dtype llmc does not read is
// reported as the checkpoint's format, not as weights that disagree with
// config.json; real mismatches keep their own heading, beside it when a
// checkpoint has both.
func TestCheckWeightsDType(t *testing.T) {
	src := testshared.Path(t, "models", "llama-tiny")
	tests := []struct {
		name   string
		dtypes map[string]safetensors.DType // tensors to store in another dtype (same shape)
		config func(map[string]any)
		want   []string
		not    []string
	}{
		{name: "as written"},
		{name: "F8_E4M3", dtypes: map[string]safetensors.DType{"model.norm.weight": safetensors.F8E4M3},
			want: []string{"the checkpoint stores weights in a dtype llmc does not read:\n  tensor model.norm.weight has dtype F8_E4M3; llmc reads F32, F16 and BF16 weights"},
			not:  []string{"do not match", "config.json"}},
		{name: "I64", dtypes: map[string]safetensors.DType{"model.layers.0.mlp.up_proj.weight": safetensors.I64},
			want: []string{"tensor model.layers.0.mlp.up_proj.weight has dtype I64; llmc reads F32, F16 and BF16 weights"},
			not:  []string{"do not match"}},
		{name: "shape mismatch", config: func(c map[string]any) { c["vocab_size"] = 300 },
			want: []string{"the weights do not match ", "config.json:\n  tensor model.embed_tokens.weight has shape [256 64], expected [300 64] (config: vocab_size 300, hidden_size 64)"},
			not:  []string{"dtype"}},
		{name: "both", dtypes: map[string]safetensors.DType{"model.norm.weight": safetensors.I64},
			config: func(c map[string]any) { c["vocab_size"] = 300 },
			want: []string{"does not read:\n  tensor model.norm.weight has dtype I64",
				"the weights do not match ", "config.json:\n  tensor model.embed_tokens.weight has shape [256 64], expected [300 64]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			raw, err := os.ReadFile(filepath.Join(src, "config.json"))
			require.NoError(t, err)
			if tt.config != nil {
				var cfg map[string]any
				require.NoError(t, json.Unmarshal(raw, &cfg))
				tt.config(cfg)
				raw, err = json.Marshal(cfg)
				require.NoError(t, err)
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o644))

			f, err := safetensors.Open(filepath.Join(src, "model.safetensors"))
			require.NoError(t, err)
			var tensors []safetensors.WriteTensor
			for _, st := range f.Tensors() {
				wt := safetensors.WriteTensor{Name: st.Name, DType: st.DType, Shape: st.Shape, Data: st.Data}
				if dt, ok := tt.dtypes[st.Name]; ok {
					wt.DType, wt.Data = dt, make([]byte, st.NumElements()*dt.Size())
				}
				tensors = append(tensors, wt)
			}
			require.NoError(t, safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, nil))
			require.NoError(t, f.Close())

			m, err := hf.Open(dir)
			require.NoError(t, err)
			defer m.Close()
			_, err = m.Build(hf.BuildOptions{})
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
			for _, n := range tt.not {
				require.NotContains(t, err.Error(), n)
			}
		})
	}
}
