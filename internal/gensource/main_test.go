package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/stretchr/testify/require"
)

// TestOutputFresh fails when source_files.go no longer lists what the
// artifact program needs (a package or file was added to or dropped from
// its dependencies).
func TestOutputFresh(t *testing.T) {
	root := filepath.Join("..", "..")
	want, err := generate(root)
	require.NoError(t, err)
	have, err := os.ReadFile(filepath.Join(root, Output))
	require.NoError(t, err)
	if string(have) != string(want) {
		diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A: difflib.SplitLines(string(have)), B: difflib.SplitLines(string(want)),
			FromFile: Output, ToFile: "wanted", Context: 1,
		})
		t.Fatalf("%s is stale: run `go generate .` in the module root.\n%s", Output, diff)
	}
}
