package testshared

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFind(t *testing.T) {
	root := t.TempDir()
	module := filepath.Join(root, "main")
	sub := filepath.Join(module, "a", "b")
	require.NoError(t, os.MkdirAll(sub, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(module, "go.mod"), []byte("module x\n"), 0o644))

	_, err := find(sub)
	require.Error(t, err, "no shared folder yet")
	assert.Contains(t, err.Error(), "shared folder not found")

	shared := filepath.Join(root, "shared")
	require.NoError(t, os.Mkdir(shared, 0o755))
	got, err := find(sub)
	require.NoError(t, err)
	assert.Equal(t, shared, got)

	got, err = find(module)
	require.NoError(t, err)
	assert.Equal(t, shared, got)
}

func TestFindNoModule(t *testing.T) {
	_, err := find(t.TempDir())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no go.mod")
}

// recorder stands in for a testing.T to observe Skipf and Fatalf. Like the
// real ones, they end the calling goroutine.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, format
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, format
	runtime.Goexit()
}

func runMissing(r *recorder) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		missing(r, os.ErrNotExist)
	}()
	<-done
}

func TestMissingSkipsOrFails(t *testing.T) {
	tests := []struct {
		ci          string
		skip, fatal bool
	}{
		{ci: "", skip: true},
		{ci: "false", skip: true},
		{ci: "true", fatal: true},
		{ci: "1", fatal: true},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			runMissing(r)
			assert.Equal(t, tt.skip, r.skipped, "skipped")
			assert.Equal(t, tt.fatal, r.failed, "failed")
			if tt.fatal {
				assert.True(t, strings.Contains(r.msg, "CI=true"), "message %q should say why it fails", r.msg)
			}
		})
	}
}

func TestDir(t *testing.T) {
	dir := Dir(t)
	assert.True(t, filepath.IsAbs(dir), dir)
	assert.Equal(t, "shared", filepath.Base(dir))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
}
