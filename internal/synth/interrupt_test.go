package synth_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/synth"
)

// cancelOnWrite is a progress writer that cancels a context at its first
// line, which writeWeights prints after the first chunk of weights: the
// cancellation then lands in the middle of model.safetensors.
type cancelOnWrite struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	out    bytes.Buffer
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	c.cancel()
	return len(p), nil
}

// TestWriteContextCancelled: a context cancelled before Write starts, or
// while it writes the weights, stops it with an error wrapping
// context.Canceled, and leaves no temporary folder and the destination as
// it was (absent, or the model --force would have replaced).
func TestWriteContextCancelled(t *testing.T) {
	t.Parallel()
	s, err := synth.LookupShape("stories15M") // 60 MB in 28 tensors, 4 MB chunks
	require.NoError(t, err)

	t.Run("before", func(t *testing.T) {
		parent := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := synth.WriteContext(ctx, filepath.Join(parent, "m"), synth.Options{Shape: tiny(t)})
		require.ErrorIs(t, err, context.Canceled)
		requireEntries(t, parent)
	})

	t.Run("while writing the weights", func(t *testing.T) {
		parent := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p := &cancelOnWrite{cancel: cancel}
		_, err := synth.WriteContext(ctx, filepath.Join(parent, "m"), synth.Options{Shape: s, Progress: p})
		require.ErrorIs(t, err, context.Canceled)
		assert.Contains(t, p.out.String(), "writing model.safetensors: 4.0 MiB of", "the first chunk was written")
		assert.NotContains(t, p.out.String(), "(100%)", "writing stopped before the end")
		requireEntries(t, parent)
	})

	t.Run("replacing a model", func(t *testing.T) {
		parent := t.TempDir()
		dir := filepath.Join(parent, "m")
		_, err := synth.Write(dir, synth.Options{Shape: tiny(t), Seed: 1})
		require.NoError(t, err)
		before, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
		require.NoError(t, err)

		cause := errors.New("stopped by the test")
		ctx, cancel := context.WithCancelCause(context.Background())
		defer cancel(nil)
		p := &cancelOnWrite{cancel: func() { cancel(cause) }}
		_, err = synth.WriteContext(ctx, dir, synth.Options{Shape: s, Seed: 2, Replace: true, Progress: p})
		require.ErrorIs(t, err, cause, "the error wraps the context's cause")
		requireEntries(t, parent, "m")
		after, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
		require.NoError(t, err)
		assert.Equal(t, before, after, "the model --force would have replaced is as it was")
	})
}

// TestWriteSweepsStaleTempFolders: the temporary folder of a synth that
// was killed (named after its process, now gone) is removed by the next
// Write to the same destination; a running process's is kept.
func TestWriteSweepsStaleTempFolders(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("temporary folders are swept only where process ids can be checked (unix)")
	}
	t.Parallel()
	parent := t.TempDir()
	dead := filepath.Join(parent, ".m.tmp"+strconv.Itoa(deadPID(t))+"-123")
	replaced := dead + ".old"
	live := filepath.Join(parent, ".m.tmp"+strconv.Itoa(os.Getpid())+"-456")
	for _, d := range []string{dead, replaced, live} {
		require.NoError(t, os.MkdirAll(d, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(d, "model.safetensors"), make([]byte, 1<<20), 0o644))
	}

	_, err := synth.Write(filepath.Join(parent, "m"), synth.Options{Shape: tiny(t)})
	require.NoError(t, err)
	requireEntries(t, parent, filepath.Base(live), "m")
}

// deadPID returns the id of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

// requireEntries fails unless dir holds exactly the entries names.
func requireEntries(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	got := []string{}
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if names == nil {
		names = []string{}
	}
	require.Equal(t, names, got, "entries of %s", dir)
}
