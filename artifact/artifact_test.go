package artifact

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/wformat"
)

// sealed writes a small artifact and a model file it was "compiled" from.
func sealed(t *testing.T) (art, model string) {
	t.Helper()
	art, model = t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(model, "w.bin"), []byte("weights weights weights"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(art, IRName), []byte("graph"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(art, "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(art, "bin", "exe"), []byte("\x7fELF"), 0o755))
	f, err := DescribeFile(model, "w.bin", nil)
	require.NoError(t, err)
	m := &Manifest{Format: Format, Version: Version, KV: "static", MaxSeq: 8, IR: IRName, Backend: BackendGo,
		Backends: BackendInfo{Binary: "bin/exe"},
		Entries:  []Entry{{Name: "decode", Seq: 1, Logits: "last"}},
		Model:    Model{Dir: model, Files: []File{f}}}
	require.NoError(t, m.Seal(art))
	return art, model
}

func TestSealAndCheck(t *testing.T) {
	keepTimes := func(t *testing.T, path string, data []byte) {
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, data, 0o644))
		require.NoError(t, os.Chtimes(path, st.ModTime(), st.ModTime()))
	}
	tests := []struct {
		name    string
		damage  func(t *testing.T, art, model string)
		readErr string // from Read
		loadErr string // from CheckContents or CheckModel(false)
		fullErr string // from CheckModel(true) when the load passes
	}{
		{name: "intact", damage: func(*testing.T, string, string) {}},
		{name: "model touched, same bytes", damage: func(t *testing.T, _, model string) {
			later := time.Now().Add(time.Hour)
			require.NoError(t, os.Chtimes(filepath.Join(model, "w.bin"), later, later))
		}},
		{name: "model bytes changed, size and mtime kept", damage: func(t *testing.T, _, model string) {
			keepTimes(t, filepath.Join(model, "w.bin"), []byte("weights WEIGHTS weights"))
		}, loadErr: "w.bin changed since it was compiled (sha256"},
		{name: "model resized", damage: func(t *testing.T, _, model string) {
			require.NoError(t, os.WriteFile(filepath.Join(model, "w.bin"), []byte("w"), 0o644))
		}, loadErr: "changed since it was compiled (size 1, was 23)"},
		{name: "model gone", damage: func(t *testing.T, _, model string) {
			require.NoError(t, os.Remove(filepath.Join(model, "w.bin")))
		}, loadErr: "the artifact was compiled from"},
		{name: "program edited", damage: func(t *testing.T, art, _ string) {
			keepTimes(t, filepath.Join(art, IRName), []byte("graph!"))
		}, loadErr: "program.ir changed since it was compiled (6 bytes"},
		{name: "executable removed", damage: func(t *testing.T, art, _ string) {
			require.NoError(t, os.Remove(filepath.Join(art, "bin", "exe")))
		}, loadErr: "bin/exe: no such file"},
		{name: "manifest edited", damage: func(t *testing.T, art, _ string) {
			editManifest(t, art, func(data []byte) []byte { return []byte(string(data[:len(data)-2]) + ", \"max_seq\": 9}\n") })
		}, readErr: "was edited after llmc wrote it"},
		{name: "manifest from a newer llmc", damage: func(t *testing.T, art, _ string) {
			// A field this llmc does not know, sealed as Seal seals: the
			// manifest's bytes hashed with the checksum blanked.
			resealed(t, art, addField(`"future": {"x": 1}`))
		}},
		{name: "manifest from a newer llmc, edited", damage: func(t *testing.T, art, _ string) {
			resealed(t, art, addField(`"future": {"x": 1}`))
			editManifest(t, art, func(data []byte) []byte { return bytes.Replace(data, []byte(`"x": 1`), []byte(`"x": 2`), 1) })
		}, readErr: "has a field this llmrun does not know (future): it was edited, or a newer llmc"},
		{name: "manifest given an unknown field", damage: func(t *testing.T, art, _ string) {
			editManifest(t, art, addField(`"max_sequence": 9`))
		}, readErr: "has a field this llmrun does not know (max_sequence)"},
		{name: "manifest checksum blanked", damage: func(t *testing.T, art, _ string) {
			editManifest(t, art, func(data []byte) []byte {
				data = blankChecksum(t, data)
				return bytes.Replace(data, []byte(`"max_seq": 8`), []byte(`"max_seq": 4096`), 1)
			})
		}, readErr: "has no checksum: it was edited"},
		{name: "manifest checksum removed", damage: func(t *testing.T, art, _ string) {
			editManifest(t, art, func(data []byte) []byte {
				var m map[string]any
				require.NoError(t, json.Unmarshal(data, &m))
				delete(m, "checksum")
				m["max_seq"] = 4096
				data, err := json.MarshalIndent(m, "", "  ")
				require.NoError(t, err)
				return data
			})
		}, readErr: "has no checksum: it was edited"},
		{name: "manifest reformatted", damage: func(t *testing.T, art, _ string) {
			editManifest(t, art, func(data []byte) []byte { return append([]byte("\n\n"), data...) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			art, model := sealed(t)
			tt.damage(t, art, model)
			m, err := Read(art)
			if tt.readErr != "" {
				require.ErrorContains(t, err, tt.readErr)
				return
			}
			require.NoError(t, err)
			err = m.CheckContents(art)
			if err == nil {
				err = m.CheckModel(false)
			}
			if tt.loadErr != "" {
				require.ErrorContains(t, err, tt.loadErr)
				return
			}
			require.NoError(t, err)
			assert.NoError(t, m.CheckModel(true))
			_, checks, err := Verify(art)
			require.NoError(t, err)
			assert.Len(t, checks, 1+len(m.Contents)+len(m.Model.Files))
			for _, c := range checks {
				assert.NoError(t, c.Err, c.What)
			}
		})
	}
}

// TestCheckModelFastPath checks that an unchanged identity is trusted
// without reading the file, that any change of it makes the hash decide,
// and that full always hashes: with a wrong hash recorded (in memory, past
// the manifest's checksum), only the fast path passes.
func TestCheckModelFastPath(t *testing.T) {
	if runtimeIdentityUnknown(t) {
		t.Skip("this system reports no file identity: every load hashes")
	}
	art, model := sealed(t)
	m, err := Read(art)
	require.NoError(t, err)
	m.Model.Files[0].SHA256 = "0000"
	assert.NoError(t, m.CheckModel(false), "identity unchanged: trusted unread")
	assert.ErrorContains(t, m.CheckModel(true), "changed since it was compiled (sha256")

	p := filepath.Join(model, "w.bin")
	require.NoError(t, os.Chmod(p, 0o600)) // changes the ctime only
	assert.ErrorContains(t, m.CheckModel(false), "changed since it was compiled (sha256", "a new ctime makes the hash decide")
}

// TestCheckContentsFastPath is TestCheckModelFastPath for the artifact's
// own files: a load trusts an unchanged identity (a large weights.bin is
// not hashed every time), Verify hashes whatever the identity says, and a
// manifest without identities (Inode 0) makes every load hash.
func TestCheckContentsFastPath(t *testing.T) {
	if runtimeIdentityUnknown(t) {
		t.Skip("this system reports no file identity: every load hashes")
	}
	art, _ := sealed(t)
	m, err := Read(art)
	require.NoError(t, err)
	i := slices.IndexFunc(m.Contents, func(f File) bool { return f.Name == IRName })
	require.GreaterOrEqual(t, i, 0)
	require.NotZero(t, m.Contents[i].Inode, "Seal records the identity")
	m.Contents[i].SHA256 = "0000"
	assert.NoError(t, m.CheckContents(art), "identity unchanged: trusted unread")
	assert.ErrorContains(t, checkContent(art, m.Contents[i], true), "program.ir changed since it was compiled")

	noID := m.Contents[i]
	noID.Inode = 0
	assert.ErrorContains(t, checkContent(art, noID, false), "program.ir changed since it was compiled", "no identity recorded: hashed")

	require.NoError(t, os.Chmod(filepath.Join(art, IRName), 0o600)) // changes the ctime only
	assert.ErrorContains(t, m.CheckContents(art), "program.ir changed since it was compiled", "a new ctime makes the hash decide")
}

// TestContentsOfOlderArtifacts: a contents entry without an identity (an
// artifact sealed before Seal recorded them) marshals as it did then,
// name, size and sha256 only, so its manifest's checksum still holds.
func TestContentsOfOlderArtifacts(t *testing.T) {
	data, err := json.Marshal(File{Name: "weights.bin", Size: 3, SHA256: "abc"})
	require.NoError(t, err)
	require.JSONEq(t, `{"name": "weights.bin", "size": 3, "sha256": "abc"}`, string(data))
	require.Equal(t, `{"name":"weights.bin","size":3,"sha256":"abc"}`, string(data), "the old field order")
}

func runtimeIdentityUnknown(t *testing.T) bool {
	st, err := os.Stat(t.TempDir())
	require.NoError(t, err)
	_, _, _, ok := identity(st)
	return !ok
}

// TestKVDtypeVersions checks that a manifest records a 16-bit KV cache at
// VersionKV16 and a float32 one at Version, unchanged (it leaves kv_dtype
// out), and that Read refuses the two mixed up.
func TestKVDtypeVersions(t *testing.T) {
	write := func(t *testing.T, version int, kv wformat.Format) (string, []byte) {
		art := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(art, IRName), []byte("graph"), 0o644))
		m := &Manifest{Format: Format, Version: version, KV: "static", MaxSeq: 8, IR: IRName, Backend: BackendInterp, KVDtype: kv,
			Entries: []Entry{{Name: "decode", Seq: 1, Logits: "last"}}}
		require.NoError(t, m.Seal(art))
		data, err := os.ReadFile(filepath.Join(art, ManifestName))
		require.NoError(t, err)
		return art, data
	}
	art, data := write(t, VersionFor(wformat.F32), wformat.F32)
	require.Equal(t, Version, VersionFor(wformat.F32))
	require.NotContains(t, string(data), "kv_dtype", "a float32 cache is described as before")
	m, err := Read(art)
	require.NoError(t, err)
	require.Equal(t, wformat.F32, m.KVDtype)
	for _, f := range []wformat.Format{wformat.F16, wformat.BF16} {
		art, data := write(t, VersionFor(f), f)
		require.Equal(t, VersionKV16, VersionFor(f))
		require.Contains(t, string(data), `"kv_dtype": "`+f.String()+`"`)
		m, err := Read(art)
		require.NoError(t, err)
		require.Equal(t, f, m.KVDtype)

		art, _ = write(t, Version, f)
		_, err = Read(art)
		require.ErrorContains(t, err, "a KV cache stored as "+f.String()+" is recorded at version 2, not 3")
	}
	art, _ = write(t, VersionKV16, wformat.F32)
	_, err = Read(art)
	require.ErrorContains(t, err, "a KV cache stored as f32 is recorded at version 3, not 2")
	art, _ = write(t, VersionKV16, wformat.Q8_0)
	_, err = Read(art)
	require.ErrorContains(t, err, "kv_dtype is q8_0, want f32, f16 or bf16")
}

// TestLayoutStates checks the states' formats against the native ABI: a
// layout with a 16-bit state is version ABIVersionKV16, one without stays
// 3, and a 16-bit state in an older version is refused.
func TestLayoutStates(t *testing.T) {
	f32 := []State{{Name: "k", Rows: 4, RowSize: 8}}
	half := []State{{Name: "k", Rows: 4, RowSize: 8}, {Name: "v", Rows: 4, RowSize: 8, Dtype: wformat.BF16}}
	require.Equal(t, 3, ABIFor(f32))
	require.Equal(t, ABIVersionKV16, ABIFor(half))
	require.Equal(t, 64, half[1].Bytes())
	require.Equal(t, 128, half[0].Bytes())
	require.NoError(t, (&Layout{ABI: ABIFor(half), States: half}).CheckStates())
	require.ErrorContains(t, (&Layout{ABI: 3, States: half}).CheckStates(), "state v is stored as bf16, which native ABI version 3 has no room for")
	require.ErrorContains(t, (&Layout{ABI: 4, States: []State{{Name: "q", Dtype: wformat.Q4_0}}}).CheckStates(), "state q is stored as q4_0")
}

// editManifest rewrites the manifest of art with edit applied to its
// bytes, as a hand edit would: its checksum left as it was.
func editManifest(t *testing.T, art string, edit func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(art, ManifestName)
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p, edit(data), 0o644))
}

// addField is an edit that adds a top-level field (its JSON text, "name":
// value) before the checksum.
func addField(field string) func([]byte) []byte {
	return func(data []byte) []byte {
		return bytes.Replace(data, []byte(`  "checksum"`), []byte("  "+field+",\n  \"checksum\""), 1)
	}
}

// blankChecksum is data, a manifest, with its checksum's value blanked.
func blankChecksum(t *testing.T, data []byte) []byte {
	t.Helper()
	var m Manifest
	require.NoError(t, json.Unmarshal(data, &m))
	return bytes.Replace(data, []byte(`"checksum": "`+m.Checksum+`"`), []byte(`"checksum": ""`), 1)
}

// resealed rewrites the manifest of art with edit applied to its bytes
// and seals the result as Seal does: the SHA-256 of the bytes with the
// checksum's value blank and no final newline.
func resealed(t *testing.T, art string, edit func([]byte) []byte) {
	t.Helper()
	editManifest(t, art, func(data []byte) []byte {
		blank := edit(blankChecksum(t, data))
		sum := sha256.Sum256(bytes.TrimSuffix(blank, []byte("\n")))
		return bytes.Replace(blank, []byte(`"checksum": ""`), []byte(`"checksum": "`+hex.EncodeToString(sum[:])+`"`), 1)
	})
}
