package hf_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/frontends/hf"
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
