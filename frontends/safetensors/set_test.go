package safetensors

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// shard writes a safetensors file in dir holding one U8 tensor per name,
// each a single byte equal to its position.
func shard(t *testing.T, dir, file string, names ...string) {
	t.Helper()
	var ts []WriteTensor
	for i, n := range names {
		ts = append(ts, WriteTensor{Name: n, DType: U8, Shape: []int{1}, Data: []byte{byte(i)}})
	}
	require.NoError(t, WriteFile(filepath.Join(dir, file), ts, nil))
}

func writeIndex(t *testing.T, dir, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, IndexFileName), []byte(body), 0o644))
}

func TestOpenDirSharded(t *testing.T) {
	dir := t.TempDir()
	shard(t, dir, "model-00001-of-00002.safetensors", "b", "a")
	shard(t, dir, "model-00002-of-00002.safetensors", "c")
	writeIndex(t, dir, `{
  "metadata": {"total_size": 3},
  "weight_map": {
    "a": "model-00001-of-00002.safetensors",
    "b": "model-00001-of-00002.safetensors",
    "c": "model-00002-of-00002.safetensors"
  }
}`)
	s, err := OpenDir(dir)
	require.NoError(t, err)
	defer s.Close()

	assert.Equal(t, []string{"a", "b", "c"}, s.Names())
	assert.Equal(t, []string{
		filepath.Join(dir, "model-00001-of-00002.safetensors"),
		filepath.Join(dir, "model-00002-of-00002.safetensors"),
	}, s.Files())
	for name, want := range map[string]byte{"a": 1, "b": 0, "c": 0} {
		tn, ok := s.Tensor(name)
		require.True(t, ok, name)
		assert.Equal(t, []byte{want}, tn.Data, name)
	}
	_, ok := s.Tensor("d")
	assert.False(t, ok)
	require.NoError(t, s.Close())
}

func TestOpenDirChoice(t *testing.T) {
	t.Run("model.safetensors wins", func(t *testing.T) {
		dir := t.TempDir()
		shard(t, dir, SingleFileName, "x")
		shard(t, dir, "other.safetensors", "y")
		writeIndex(t, dir, `{"weight_map":{"y":"other.safetensors"}}`)
		s, err := OpenDir(dir)
		require.NoError(t, err)
		defer s.Close()
		assert.Equal(t, []string{"x"}, s.Names())
		assert.Equal(t, []string{filepath.Join(dir, SingleFileName)}, s.Files())
	})
	t.Run("index before a lone file", func(t *testing.T) {
		dir := t.TempDir()
		shard(t, dir, "one.safetensors", "y")
		writeIndex(t, dir, `{"weight_map":{"y":"one.safetensors"}}`)
		s, err := OpenDir(dir)
		require.NoError(t, err)
		defer s.Close()
		assert.Equal(t, []string{"y"}, s.Names())
	})
	t.Run("lone file", func(t *testing.T) {
		dir := t.TempDir()
		shard(t, dir, "weights.safetensors", "z")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o644))
		s, err := OpenDir(dir)
		require.NoError(t, err)
		defer s.Close()
		assert.Equal(t, []string{"z"}, s.Names())
		assert.Equal(t, []string{filepath.Join(dir, "weights.safetensors")}, s.Files())
	})
}

func TestOpenDirErrors(t *testing.T) {
	const one, two = "s1.safetensors", "s2.safetensors"
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  []string
	}{
		{
			name:  "empty dir",
			setup: func(t *testing.T, dir string) {},
			want:  []string{"no model.safetensors, model.safetensors.index.json or other *.safetensors file"},
		},
		{
			name: "two files without index",
			setup: func(t *testing.T, dir string) {
				shard(t, dir, one, "a")
				shard(t, dir, two, "b")
			},
			want: []string{"2 *.safetensors files (s1.safetensors, s2.safetensors) but no model.safetensors.index.json"},
		},
		{
			name:  "index not json",
			setup: func(t *testing.T, dir string) { writeIndex(t, dir, `{"weight_map":`) },
			want:  []string{IndexFileName, "unexpected end of JSON input"},
		},
		{
			name:  "index without weight_map",
			setup: func(t *testing.T, dir string) { writeIndex(t, dir, `{"metadata":{}}`) },
			want:  []string{`no "weight_map" entries`},
		},
		{
			name:  "weight_map not strings",
			setup: func(t *testing.T, dir string) { writeIndex(t, dir, `{"weight_map":{"a":1}}`) },
			want:  []string{IndexFileName, "weight_map"},
		},
		{
			name:  "shard outside dir",
			setup: func(t *testing.T, dir string) { writeIndex(t, dir, `{"weight_map":{"a":"../x.safetensors"}}`) },
			want:  []string{`tensor "a" maps to "../x.safetensors", which is not a file name`},
		},
		{
			name: "missing shard",
			setup: func(t *testing.T, dir string) {
				shard(t, dir, one, "a")
				writeIndex(t, dir, `{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"}}`)
			},
			want: []string{"shard s2.safetensors (holding 2 tensors, such as \"b\") cannot be opened", "no such file"},
		},
		{
			name: "tensor missing from shard",
			setup: func(t *testing.T, dir string) {
				shard(t, dir, one, "a")
				shard(t, dir, two, "b")
				writeIndex(t, dir, `{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"}}`)
			},
			want: []string{`tensor "c" is mapped to shard s2.safetensors, which has no such tensor`},
		},
		{
			name: "tensor in the wrong shard",
			setup: func(t *testing.T, dir string) {
				shard(t, dir, one, "a", "b")
				shard(t, dir, two, "c")
				writeIndex(t, dir, `{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"}}`)
			},
			want: []string{`tensor "b" is mapped to shard s2.safetensors, which has no such tensor`},
		},
		{
			name: "tensor in two shards",
			setup: func(t *testing.T, dir string) {
				shard(t, dir, one, "a", "b")
				shard(t, dir, two, "b")
				writeIndex(t, dir, `{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}`)
			},
			want: []string{`tensor "b" is in both`, one, two},
		},
		{
			name: "bad shard",
			setup: func(t *testing.T, dir string) {
				shard(t, dir, one, "a")
				require.NoError(t, os.WriteFile(filepath.Join(dir, two), []byte("junk"), 0o644))
				writeIndex(t, dir, `{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}`)
			},
			want: []string{two, "file is 4 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			s, err := OpenDir(dir)
			require.Error(t, err)
			assert.Nil(t, s)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}

	_, err := OpenDir(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
}
