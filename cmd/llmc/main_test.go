package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/cli/llmruncmd"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// These tests run llmc as users do: built (with -trimpath, so that it
// records no path of this checkout, like an installed llmc whose checkout
// is gone), started from an unrelated folder, stopped by signals.

// buildLlmc builds this command with -trimpath into a temporary folder.
func buildLlmc(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "llmc")
	out, err := exec.Command("go", "build", "-trimpath", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build -trimpath ./cmd/llmc:\n%s", out)
	return bin
}

// llmcEnv is the environment of a test llmc: without $LLMC_SOURCE, and
// with a fresh user cache folder (where the embedded sources are
// unpacked) but the usual Go build cache.
func llmcEnv(t *testing.T) []string {
	t.Helper()
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	require.NoError(t, err)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, compiler.EnvSource+"=") && !strings.HasPrefix(kv, "XDG_CACHE_HOME=") && !strings.HasPrefix(kv, "GOCACHE=") {
			env = append(env, kv)
		}
	}
	return append(env, "XDG_CACHE_HOME="+t.TempDir(), "GOCACHE="+strings.TrimSpace(string(gocache)))
}

func TestInstalledCompilesGoBackend(t *testing.T) {
	model := testshared.Path(t, "models", "stories260K")
	bin := buildLlmc(t)
	env := llmcEnv(t)
	wd := t.TempDir()
	out := filepath.Join(t.TempDir(), "s.llmc")

	cmd := exec.Command(bin, "compile", model, "--backend", "go", "--max-seq", "64", "-o", out)
	cmd.Dir, cmd.Env = wd, env
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "llmc compile --backend go without a checkout:\n%s", msg)
	require.FileExists(t, filepath.Join(out, compiler.GoBinary))
	unpacked, err := filepath.Glob(filepath.Join(envValue(env, "XDG_CACHE_HOME"), "llmc", "source", "*", "go.mod"))
	require.NoError(t, err)
	require.Len(t, unpacked, 1, "the embedded sources were not unpacked into the user cache")

	var stdout, stderr bytes.Buffer
	code := llmruncmd.Run([]string{"generate", out, "--ids", "1,403,407", "--max-new-tokens", "6", "--temperature", "0"}, &stdout, &stderr)
	require.Zero(t, code, "llmrun generate: %s", stderr.String())
	ids := strings.FieldsFunc(stdout.String(), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
	require.GreaterOrEqual(t, len(ids), 6, "want at least the 6 generated ids, got %q", stdout.String())
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// fakeGo is a go command that stands in for a go build that takes long:
// it runs a step as its own child, as go build runs compile and link, and
// waits for it.
const fakeGo = "#!/bin/sh\nsleep 120 &\nwait\n"

// TestInterruptedCompile signals llmc while go build runs in a --backend go
// compile. SIGINT and SIGTERM must stop it cleanly: exit status 1 with a
// message, no temporary folder, no tool or step of it left running.
// SIGKILL cannot be caught: the temporary folder stays until the next
// compile to the same -o, but the kernel kills go build (Pdeathsig); what
// go build had started ends with its step. Most cases run fakeGo, which
// cannot finish before the signal; one runs the real go build.
func TestInterruptedCompile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("finds the compile's child processes in /proc, which is Linux's")
	}
	model := testshared.Path(t, "models", "stories260K")
	bin := buildLlmc(t)
	env := llmcEnv(t)
	fake := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(fake, "go"), []byte(fakeGo), 0o755))
	fakeEnv := append(slices.Clone(env), "PATH="+fake+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		env    []string
		caught bool
	}{
		{"SIGTERM during go build", syscall.SIGTERM, env, true},
		{"SIGTERM", syscall.SIGTERM, fakeEnv, true},
		{"SIGINT", syscall.SIGINT, fakeEnv, true},
		{"SIGKILL", syscall.SIGKILL, fakeEnv, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			out := filepath.Join(parent, "s.llmc")
			var stderr bytes.Buffer
			cmd := exec.Command(bin, "compile", model, "--backend", "go", "--max-seq", "64", "-o", out)
			cmd.Dir, cmd.Env, cmd.Stderr = t.TempDir(), tc.env, &stderr
			require.NoError(t, cmd.Start())
			t.Cleanup(func() { cmd.Process.Kill() })

			children := waitForBuild(t, cmd.Process.Pid, parent)
			for _, c := range children {
				t.Cleanup(func() { syscall.Kill(-c, syscall.SIGKILL) }) // what a SIGKILL leaves
			}
			require.NoError(t, cmd.Process.Signal(tc.sig))
			err := waitTimeout(t, cmd, time.Minute)

			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "llmc finished its compile before the signal; stderr:\n%s", stderr.String())
			if tc.caught {
				require.Equal(t, 1, exit.ExitCode(), "exit status; stderr:\n%s", stderr.String())
				require.Contains(t, stderr.String(), "interrupted ("+strings.Fields(tc.name)[0]+")")
				require.Contains(t, stderr.String(), "the unfinished temporary folder was removed")
				require.Empty(t, tempFolders(t, parent), "temporary folders left after %v", tc.sig)
			} else {
				require.Equal(t, tc.sig, exit.Sys().(syscall.WaitStatus).Signal())
				require.Len(t, tempFolders(t, parent), 1, "a SIGKILLed compile leaves its temporary folder")
			}
			require.NoDirExists(t, out)
			for _, c := range children {
				requireGone(t, c, 5*time.Second, processAlive)
				if tc.caught {
					requireGone(t, c, 5*time.Second, groupAlive)
				}
			}

			if !tc.caught {
				again := exec.Command(bin, "compile", model, "--backend", "interp", "--max-seq", "64", "-o", out)
				again.Dir, again.Env = t.TempDir(), env
				msg, err := again.CombinedOutput()
				require.NoError(t, err, "%s", msg)
				require.Empty(t, tempFolders(t, parent), "the next compile to the same -o did not sweep the temporary folder")
				require.FileExists(t, filepath.Join(out, "manifest.json"))
			}
		})
	}
}

// waitForBuild waits until the compile llmc runs as pid has created its
// temporary folder in parent and started a tool, and returns the pids of
// its children.
func waitForBuild(t *testing.T, pid int, parent string) []int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if kids := childrenOf(t, pid); len(kids) > 0 && len(tempFolders(t, parent)) > 0 {
			return kids
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("llmc (pid %d) started no tool within 2 minutes", pid)
	return nil
}

func waitTimeout(t *testing.T, cmd *exec.Cmd, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("llmc did not exit within %v of the signal", d)
		return nil
	}
}

func tempFolders(t *testing.T, parent string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(parent, ".s.llmc.tmp*"))
	require.NoError(t, err)
	return m
}

// procStat is what /proc/PID/stat says of a process.
type procStat struct {
	pid, ppid, pgrp int
}

// processes lists the processes in /proc, without zombies (a reparented
// zombie has ended; whether its new parent reaps it is not ours to test).
func processes(t *testing.T) []procStat {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var ps []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		s := string(data)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		pgrp, _ := strconv.Atoi(fields[2])
		ps = append(ps, procStat{pid: pid, ppid: ppid, pgrp: pgrp})
	}
	return ps
}

func childrenOf(t *testing.T, pid int) []int {
	var kids []int
	for _, p := range processes(t) {
		if p.ppid == pid {
			kids = append(kids, p.pid)
		}
	}
	return kids
}

// processAlive and groupAlive report whether process pid, or any process
// of the group it leads, is still running.
func processAlive(t *testing.T, pid int) bool {
	for _, p := range processes(t) {
		if p.pid == pid {
			return true
		}
	}
	return false
}

func groupAlive(t *testing.T, pid int) bool {
	for _, p := range processes(t) {
		if p.pgrp == pid {
			return true
		}
	}
	return false
}

func requireGone(t *testing.T, pid int, within time.Duration, alive func(*testing.T, int) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(t, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d (or a process of its group) still runs %v after llmc ended", pid, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
