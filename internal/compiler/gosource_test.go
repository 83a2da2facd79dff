package compiler

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func TestGoSource(t *testing.T) {
	checkout, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	if buildTree() == "" {
		t.Skip("the test binary was built with -trimpath: it has no checkout to find")
	}
	embedded := fstest.MapFS{"go.mod": {Data: []byte("module " + modulePath + "\n\ngo 1.26\n")}}
	notSource := t.TempDir()
	for _, tc := range []struct {
		name, env  string
		embedded   bool
		wantDir    string // "" for the unpacked copy
		wantOrigin string
		wantErr    string
	}{
		{name: "LLMC_SOURCE wins", env: checkout, embedded: true, wantDir: checkout, wantOrigin: "$LLMC_SOURCE"},
		{name: "LLMC_SOURCE not a source tree", env: notSource, embedded: true, wantErr: "$LLMC_SOURCE: " + notSource + " is not an llmc source tree"},
		{name: "the checkout llmc was built from", wantDir: checkout, wantOrigin: "the checkout llmc was built from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvSource, tc.env)
			var fsys fstest.MapFS
			if tc.embedded {
				fsys = embedded
			}
			dir, origin, err := goSource(fsys)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantDir, dir)
			require.Equal(t, tc.wantOrigin, origin)
		})
	}
}

func TestUnpackSource(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("HOME", cache) // os.UserCacheDir on darwin
	src := fstest.MapFS{
		"go.mod":            {Data: []byte("module " + modulePath + "\n\ngo 1.26\n")},
		"runtime/linked.go": {Data: []byte("package runtime\n")},
	}
	dir, err := unpackSource(src)
	require.NoError(t, err)
	data, err := os.ReadFile(filepath.Join(dir, "runtime", "linked.go"))
	require.NoError(t, err)
	require.Equal(t, "package runtime\n", string(data))

	again, err := unpackSource(src)
	require.NoError(t, err)
	require.Equal(t, dir, again, "the same sources are unpacked once")

	src["runtime/linked.go"] = &fstest.MapFile{Data: []byte("package runtime // changed\n")}
	other, err := unpackSource(src)
	require.NoError(t, err)
	require.NotEqual(t, dir, other, "other sources go to another folder")

	ents, err := os.ReadDir(filepath.Dir(dir))
	require.NoError(t, err)
	require.Len(t, ents, 2, "temporary folders left in the cache: %v", ents)

	_, err = unpackSource(fstest.MapFS{"runtime/linked.go": {Data: []byte("package runtime\n")}})
	require.ErrorContains(t, err, "no go.mod")
}
