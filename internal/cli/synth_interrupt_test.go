package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/cli"
)

// synthChildEnv, when set, makes TestSynthChildProcess run llmc with the
// arguments after "--" instead of testing: the test binary stands in for
// an llmc process that TestInterruptedSynth can signal.
const synthChildEnv = "LLMC_TEST_SYNTH_CHILD"

func TestSynthChildProcess(t *testing.T) {
	if os.Getenv(synthChildEnv) != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(cli.Llmc(args, os.Stdout, os.Stderr))
}

// llmcProcess is an llmc command run as its own process.
func llmcProcess(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestSynthChildProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), synthChildEnv+"=1")
	return cmd
}

// TestInterruptedSynth signals llmc synth while it writes
// model.safetensors, as TestInterruptedCompile (cmd/llmc) does a compile.
// SIGINT and SIGTERM must stop it cleanly: exit status 1 with a message,
// no temporary folder, -o as it was (absent, or the model --force would
// have replaced). SIGKILL cannot be caught: the temporary folder stays
// until the next synth to the same -o, which removes it.
func TestInterruptedSynth(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("sends SIGTERM, and sweeps by process id (unix)")
	}
	t.Parallel()
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		force  bool // over an existing model
		caught bool
	}{
		{"SIGINT", syscall.SIGINT, false, true},
		{"SIGTERM", syscall.SIGTERM, false, true},
		{"SIGTERM with --force", syscall.SIGTERM, true, true},
		{"SIGKILL", syscall.SIGKILL, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			parent := t.TempDir()
			out := filepath.Join(parent, "m")
			var before []byte
			if tc.force {
				requireOK(t, llmc(t, "synth", "--shape", "stories260K", "-o", out))
				var err error
				before, err = os.ReadFile(filepath.Join(out, "model.safetensors"))
				require.NoError(t, err)
			}
			// 440 MB: long enough to be signalled while writing.
			args := []string{"synth", "--shape", "stories110M", "--dtype", "f32", "-o", out}
			if tc.force {
				args = append(args, "--force")
			}
			var stderr bytes.Buffer
			cmd := llmcProcess(args...)
			cmd.Stderr = &stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill() })

			waitForWeights(t, parent)
			require.NoError(t, cmd.Process.Signal(tc.sig))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatalf("llmc synth did not exit within a minute of %v", tc.sig)
			}

			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "llmc synth finished before the signal; stderr:\n%s", stderr.String())
			if tc.caught {
				require.Equal(t, 1, exit.ExitCode(), "exit status; stderr:\n%s", stderr.String())
				assert.Contains(t, stderr.String(), "interrupted ("+strings.Fields(tc.name)[0]+")")
				assert.Contains(t, stderr.String(), out+" is as it was, and the unfinished temporary folder was removed")
				require.Empty(t, synthTempFolders(t, parent), "temporary folders left after %v", tc.sig)
			} else {
				require.Equal(t, tc.sig, exit.Sys().(syscall.WaitStatus).Signal())
				require.Len(t, synthTempFolders(t, parent), 1, "a SIGKILLed synth leaves its temporary folder")
			}
			if tc.force {
				after, err := os.ReadFile(filepath.Join(out, "model.safetensors"))
				require.NoError(t, err)
				require.Equal(t, before, after, "the model --force would have replaced is as it was")
			} else {
				require.NoDirExists(t, out)
			}

			if !tc.caught {
				requireOK(t, llmc(t, "synth", "--shape", "stories260K", "-o", out))
				require.Empty(t, synthTempFolders(t, parent), "the next synth to the same -o did not sweep the temporary folder")
				require.FileExists(t, filepath.Join(out, "model.safetensors"))
			}
		})
	}
}

// waitForWeights waits until the synth writing into parent has started
// model.safetensors in its temporary folder.
func waitForWeights(t *testing.T, parent string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		for _, d := range synthTempFolders(t, parent) {
			if _, err := os.Stat(filepath.Join(d, "model.safetensors")); err == nil {
				return
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("llmc synth started no model.safetensors in %s within a minute", parent)
}

func synthTempFolders(t *testing.T, parent string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(parent, ".m.tmp*"))
	require.NoError(t, err)
	return m
}
