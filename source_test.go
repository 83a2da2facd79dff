package llmc_test

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc"
)

// TestSourceEmbedsPackages checks the embedded tree (its file list is
// checked by internal/gensource): go.mod and go.sum at its root, the
// generated program's main package, and no tests.
func TestSourceEmbedsPackages(t *testing.T) {
	src := llmc.Source()
	mod, err := fs.ReadFile(src, "go.mod")
	require.NoError(t, err)
	require.Contains(t, string(mod), "module github.com/llmc-dev/llmc\n")
	for _, name := range []string{"go.sum", "runtime/artifactmain/artifactmain.go", "runtime/linked.go"} {
		_, err := fs.Stat(src, name)
		require.NoError(t, err, "%s is not embedded", name)
	}
	require.NoError(t, fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		require.False(t, strings.HasSuffix(p, "_test.go"), "test file %s is embedded", p)
		return nil
	}))
}
