// Package testshared locates the project's shared test assets: the folder
// named shared next to the module root (<module root>/../shared), which holds
// test models, reference outputs and tokenizers too large for the repository.
//
// Tests call Dir or Path. When the folder or file is missing they skip, with
// the reason, so that the repository alone still tests cleanly; under CI
// (CI=true in the environment) they fail instead, because there a missing
// asset means the run is not testing what it claims to.
package testshared

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Dir returns the absolute path of the shared folder, or skips (fails under
// CI) the test if there is none.
func Dir(tb testing.TB) string {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		missing(tb, fmt.Errorf("testshared: %w", err))
		return ""
	}
	dir, err := find(wd)
	if err != nil {
		missing(tb, err)
		return ""
	}
	return dir
}

// Path returns the absolute path of elem inside the shared folder, such as
// Path(t, "models", "stories260K", "model.safetensors"), or skips (fails
// under CI) the test if it does not exist.
func Path(tb testing.TB, elem ...string) string {
	tb.Helper()
	dir := Dir(tb)
	if dir == "" {
		return ""
	}
	p := filepath.Join(append([]string{dir}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		missing(tb, fmt.Errorf("testshared: %w", err))
		return ""
	}
	return p
}

// InCI reports whether the CI environment variable is set to a true value.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// missing skips the test with err, or fails it under CI. Both stop the test
// in a real testing.T; the callers return anyway in case tb is a stand-in.
func missing(tb testing.TB, err error) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("%v (required because CI=true)", err)
		return
	}
	tb.Skipf("skipping: %v (set up <module root>/../shared to run this test)", err)
}

// find walks up from start to the module root, the first directory with a
// go.mod, and returns the shared folder beside it.
func find(start string) (string, error) {
	start, err := filepath.Abs(start)
	if err != nil {
		return "", fmt.Errorf("testshared: %w", err)
	}
	for dir := start; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			shared := filepath.Join(filepath.Dir(dir), "shared")
			fi, err := os.Stat(shared)
			if err != nil {
				return "", fmt.Errorf("testshared: shared folder not found: %w", err)
			}
			if !fi.IsDir() {
				return "", fmt.Errorf("testshared: %s is not a directory", shared)
			}
			return shared, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testshared: no go.mod found above " + start)
		}
		dir = parent
	}
}
