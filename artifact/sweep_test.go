package artifact_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
)

// deadPID returns the id of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	require.NoError(t, cmd.Run())
	return cmd.Process.Pid
}

func TestWriteDirSweepsStaleTempFolders(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("temporary folders are swept only where process ids can be checked (unix)")
	}
	dead, live := strconv.Itoa(deadPID(t)), strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name  string
		kept  bool
		about string
	}{
		{".art.tmp" + dead + "-123", false, "a dead compile's folder"},
		{".art.tmp" + dead + "-123.old", false, "a dead compile's replaced artifact"},
		{".art.tmp" + live + "-456", true, "a running compile's folder (this process)"},
		{".art.tmp" + live + "-456.old", true, "a running compile's replaced artifact"},
		{".art.tmp789", true, "a folder without an owner in its name"},
		{".art.tmp" + dead + "-x", true, "a folder not named by WriteDir"},
		{".other.tmp" + dead + "-123", true, "another target's folder"},
	} {
		t.Run(tc.about, func(t *testing.T) {
			parent := t.TempDir()
			stale := filepath.Join(parent, tc.name)
			require.NoError(t, os.MkdirAll(filepath.Join(stale, "gosrc"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(stale, "gosrc", "main.go"), []byte("package main\n"), 0o644))

			out := filepath.Join(parent, "art")
			require.NoError(t, artifact.WriteDir(out, func(tmp string) error {
				return os.WriteFile(filepath.Join(tmp, artifact.ManifestName), []byte("{}\n"), 0o644)
			}))
			require.FileExists(t, filepath.Join(out, artifact.ManifestName))
			if tc.kept {
				require.DirExists(t, stale)
			} else {
				require.NoDirExists(t, stale)
			}
			ents, err := os.ReadDir(parent)
			require.NoError(t, err)
			want := 2
			if !tc.kept {
				want = 1
			}
			require.Len(t, ents, want, "WriteDir left its own temporary folder behind: %v", ents)
		})
	}
}

func TestWriteDirNamesTempFolderAfterProcess(t *testing.T) {
	out := filepath.Join(t.TempDir(), "art")
	var seen string
	require.NoError(t, artifact.WriteDir(out, func(tmp string) error {
		seen = filepath.Base(tmp)
		return os.WriteFile(filepath.Join(tmp, artifact.ManifestName), []byte("{}\n"), 0o644)
	}))
	require.Regexp(t, `^\.art\.tmp`+strconv.Itoa(os.Getpid())+`-[0-9]+$`, seen)
}
