package engine

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
)

// copyDir copies a model folder's files into a temporary folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644))
	}
	return dst
}

func compileTo(t *testing.T, model string) string {
	t.Helper()
	art := filepath.Join(t.TempDir(), "a.llmc")
	_, err := compiler.Compile(model, art, compiler.Options{Backend: "interp", KV: passes.Static, MaxSeq: 32, PrefillChunk: 8})
	require.NoError(t, err)
	return art
}

// TestArtifactBadInput checks that a stale or foreign artifact, and a step
// past the static cache, are refused with a clear error.
func TestArtifactBadInput(t *testing.T) {
	model := copyDir(t, testshared.Path(t, "models", "llama-tiny"))

	t.Run("format version", func(t *testing.T) {
		art := compileTo(t, model)
		path := filepath.Join(art, artifact.ManifestName)
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(data, &m))
		m["version"] = artifact.VersionKV16 + 1 // the newest version this llmrun reads is VersionKV16
		data, _ = json.Marshal(m)
		require.NoError(t, os.WriteFile(path, data, 0o644))
		_, err = Open(art, Options{})
		require.ErrorIs(t, err, artifact.ErrVersion)
		require.ErrorContains(t, err, "compile it again")
	})

	t.Run("not an artifact", func(t *testing.T) {
		art := compileTo(t, model)
		require.NoError(t, os.WriteFile(filepath.Join(art, artifact.ManifestName), []byte(`{"format": "other"}`), 0o644))
		_, err := Open(art, Options{})
		require.ErrorContains(t, err, "not an llmc artifact")
	})

	t.Run("model changed, same size", func(t *testing.T) {
		m := copyDir(t, model)
		art := compileTo(t, m)
		path := filepath.Join(m, "model.safetensors")
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		data[len(data)-1] ^= 0xff // the last byte of the last tensor
		require.NoError(t, os.WriteFile(path, data, 0o644))
		later := time.Now().Add(time.Minute)
		require.NoError(t, os.Chtimes(path, later, later))
		_, err = Open(art, Options{})
		require.ErrorContains(t, err, "changed since it was compiled (sha256")
	})

	t.Run("model changed size", func(t *testing.T) {
		m := copyDir(t, model)
		art := compileTo(t, m)
		f, err := os.OpenFile(filepath.Join(m, "model.safetensors"), os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.Write([]byte{0})
		require.NoError(t, err)
		require.NoError(t, f.Close())
		_, err = Open(art, Options{})
		require.ErrorContains(t, err, "changed since it was compiled (size")
	})

	t.Run("model touched, same content", func(t *testing.T) {
		m := copyDir(t, model)
		art := compileTo(t, m)
		later := time.Now().Add(time.Minute)
		require.NoError(t, os.Chtimes(filepath.Join(m, "model.safetensors"), later, later))
		e, err := Open(art, Options{})
		require.NoError(t, err, "an unchanged hash is accepted")
		e.Close()
	})

	t.Run("past the static cache", func(t *testing.T) {
		e, err := Open(compileTo(t, model), Options{})
		require.NoError(t, err)
		defer e.Close()
		_, err = e.Decoder.Forward(make([]int, 33), false)
		require.ErrorContains(t, err, "exceed the context of 32")
		_, err = e.Decoder.Forward(make([]int, 30), false)
		require.NoError(t, err)
		_, err = e.Decoder.Forward([]int{1, 2, 3}, false)
		require.ErrorContains(t, err, "30 cached + 3 new positions exceed the context of 32")
		_, err = e.Decoder.Forward([]int{9999}, false)
		require.Error(t, err)
		require.False(t, errors.Is(err, artifact.ErrVersion))
	})
}

// TestLoaders checks that every backend a manifest may record has a
// loader, and that an artifact of a backend this llmrun has no loader for
// is refused by name.
func TestLoaders(t *testing.T) {
	for _, b := range []string{artifact.BackendInterp, artifact.BackendGo, artifact.BackendLLVM} {
		ld, ok := loaders[b]
		require.True(t, ok, b)
		require.NotNil(t, ld.load, b)
	}
	art := compileTo(t, testshared.Path(t, "models", "stories260K"))
	require.NoError(t, artifact.Edit(art, func(m *artifact.Manifest) { m.Backend = "wasm" }))
	_, err := Open(art, Options{})
	require.ErrorContains(t, err, `backend "wasm" is not supported by this llmrun`)
}

// TestVerify checks that Verify passes an intact artifact and fails one
// this llmrun cannot run although its files hash as sealed: a backend it
// has no loader for, or a Go artifact's binary that lost its execute bit.
func TestVerify(t *testing.T) {
	failed := func(checks []artifact.Check) []string {
		var out []string
		for _, c := range checks {
			if c.Err != nil {
				out = append(out, c.What+": "+c.Err.Error())
			}
		}
		return out
	}
	art := compileTo(t, testshared.Path(t, "models", "stories260K"))
	checks, err := Verify(art)
	require.NoError(t, err)
	require.Empty(t, failed(checks))

	require.NoError(t, artifact.Edit(art, func(m *artifact.Manifest) { m.Backend = "wasm" }))
	checks, err = Verify(art)
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(art, artifact.ManifestName) + `, backend wasm: backend "wasm" is not supported by this llmrun`}, failed(checks))

	dir := t.TempDir()
	bin := filepath.Join(dir, "llmc-model")
	require.NoError(t, os.WriteFile(bin, []byte("\x7fELF"), 0o755))
	man := &artifact.Manifest{Backends: artifact.BackendInfo{Binary: "llmc-model"}}
	require.Empty(t, failed(verifyLinked(dir, man)))
	require.Equal(t, []string{filepath.Join(dir) + ", executable: the manifest names no binary (backend_info.binary)"}, failed(verifyLinked(dir, &artifact.Manifest{})))
	require.NoError(t, os.Chmod(bin, 0o644))
	require.Equal(t, []string{bin + ", executable: not executable (mode -rw-r--r--): llmrun runs it; chmod u+x it, or compile the artifact again"}, failed(verifyLinked(dir, man)))
}
