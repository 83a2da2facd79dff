package cli_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/llvm"
)

// compiledArtifact compiles llama-tiny with backend into a fresh folder.
func compiledArtifact(t *testing.T, model, backend string) string {
	t.Helper()
	art := filepath.Join(t.TempDir(), "tiny.llmc")
	requireOK(t, llmc(t, "compile", model, "--backend", backend, "--max-seq", "32", "--prefill-chunk", "4", "-o", art, "--quiet"))
	return art
}

// copyTree copies the folder src to a fresh temporary folder, keeping
// file modes (an artifact's executable must stay executable).
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	require.NoError(t, os.CopyFS(dst, os.DirFS(src)))
	return dst
}

// keepTimes runs change on path and puts its modification time back, as a
// tool that edits a file in place and restores its timestamp would.
func keepTimes(t *testing.T, path string, change func(data []byte) []byte) {
	t.Helper()
	st, err := os.Stat(path)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, change(data), st.Mode()))
	require.NoError(t, os.Chtimes(path, st.ModTime(), st.ModTime()))
}

func editManifest(edit func(m *artifact.Manifest)) func(t *testing.T, art string) {
	return func(t *testing.T, art string) {
		require.NoError(t, artifact.Edit(art, edit))
	}
}

// TestBadArtifact damages compiled artifacts and their model the ways a
// careless or hostile user could: each must be refused with status 1 and
// a message naming the file and saying what to do. The Go backend's cases
// run a built llmrun as a subprocess in its own process group, with a
// deadline, so that a regression to a hand-off loop (a fork bomb) is
// killed and reported instead of taking the machine down.
func TestBadArtifact(t *testing.T) {
	t.Parallel()
	model := copyModel(t, "llama-tiny")
	interp := compiledArtifact(t, model, "interp")
	goArt := compiledArtifact(t, model, "go")
	otherGo := compiledArtifact(t, model, "go") // another build of the same model
	llmrunBin := filepath.Join(t.TempDir(), "llmrun")
	build := exec.Command("go", "build", "-o", llmrunBin, "github.com/llmc-dev/llmc/cmd/llmrun")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	tests := []struct {
		name    string
		art     string // the artifact to copy and damage
		ownCopy bool   // the case damages the model, so it gets its own model copy and compile
		damage  func(t *testing.T, art string)
		want    []string
		// caught: llmrun verify fails too (a manifest resealed on purpose
		// describes what is there, so verify agrees with it).
		caught bool
	}{
		{name: "model bytes changed, size and mtime kept", art: interp, ownCopy: true,
			damage: func(t *testing.T, art string) {
				keepTimes(t, filepath.Join(modelOf(t, art), "model.safetensors"), func(d []byte) []byte { d[len(d)-1] ^= 0xff; return d })
			},
			want: []string{"model.safetensors changed since it was compiled (sha256", "compile again"}, caught: true},
		{name: "recorded model hash edited", art: interp, damage: func(t *testing.T, art string) {
			keepTimes(t, filepath.Join(art, artifact.ManifestName), func(d []byte) []byte {
				return bytes.Replace(d, []byte(`"sha256": "`), []byte(`"sha256": "0`), 1)
			})
		}, want: []string{"manifest.json was edited after llmc wrote it", "compile the artifact again"}, caught: true},
		{name: "program edited", art: interp, damage: func(t *testing.T, art string) {
			keepTimes(t, filepath.Join(art, artifact.IRName), func(d []byte) []byte { return append(d, '\n') })
		}, want: []string{"program.ir changed since it was compiled", "compile the artifact again"}, caught: true},
		{name: "config removed from the artifact", art: interp, damage: func(t *testing.T, art string) {
			require.NoError(t, os.Remove(filepath.Join(art, "config.json")))
		}, want: []string{"config.json", "compile the artifact again"}, caught: true},
		{name: "cache larger than the machine", art: interp, damage: editManifest(func(m *artifact.Manifest) { m.MaxSeq = 1 << 40 }),
			want: []string{"static KV cache for 1099511627776 positions", "more than the", "--max-seq"}},
		{name: "executable from another build", art: goArt, damage: func(t *testing.T, art string) {
			copyFile(t, filepath.Join(otherGo, "bin", "llmc-model"), filepath.Join(art, "bin", "llmc-model"))
		}, want: []string{"bin/llmc-model changed since it was compiled", "compile the artifact again"}, caught: true},
		{name: "executable from another build, manifest resealed", art: goArt, damage: func(t *testing.T, art string) {
			copyFile(t, filepath.Join(otherGo, "bin", "llmc-model"), filepath.Join(art, "bin", "llmc-model"))
			require.NoError(t, artifact.Edit(art, func(*artifact.Manifest) {}))
		}, want: []string{"llmc-model is from build", "compile the artifact again"}},
		{name: "build id edited, manifest resealed", art: goArt, damage: editManifest(func(m *artifact.Manifest) { m.BuildID = "0123456789abcdef" }),
			want: []string{"is from build", "the artifact from build 0123456789abcdef"}},
		{name: "plain llmrun as the executable, manifest resealed", art: goArt, damage: func(t *testing.T, art string) {
			copyFile(t, llmrunBin, filepath.Join(art, "bin", "llmc-model"))
			require.NoError(t, artifact.Edit(art, func(*artifact.Manifest) {}))
		}, want: []string{"has no compiled program linked in", "compile the artifact again"}},
		{name: "executable removed", art: goArt, damage: func(t *testing.T, art string) {
			require.NoError(t, os.Remove(filepath.Join(art, "bin", "llmc-model")))
		}, want: []string{"bin/llmc-model", "compile the artifact again"}, caught: true},
	}
	if _, err := llvm.FindToolchain(); err == nil || os.Getenv("CI") == "true" {
		llvmArt := compiledArtifact(t, model, "llvm")
		tests = append(tests,
			struct {
				name    string
				art     string
				ownCopy bool
				damage  func(t *testing.T, art string)
				want    []string
				caught  bool
			}{name: "shared object truncated", art: llvmArt, damage: func(t *testing.T, art string) {
				require.NoError(t, os.Truncate(filepath.Join(art, "model.so"), 100))
			}, want: []string{"model.so changed since it was compiled", "compile the artifact again"}, caught: true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			art := copyTree(t, tt.art)
			if tt.ownCopy {
				art = compiledArtifact(t, copyModel(t, "llama-tiny"), "interp")
			}
			tt.damage(t, art)
			args := []string{"generate", art, "--ids", "1,2", "--max-new-tokens", "2"}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, llmrunBin, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			require.NoError(t, cmd.Start())
			loop := watchGroup(ctx, cmd.Process.Pid, 4, cancel)
			err := cmd.Wait()
			require.False(t, loop.Load(), "llmrun started more than 4 processes: a hand-off loop (fork bomb); stderr:\n%s", tail(stderr.String()))
			require.NoError(t, ctx.Err(), "llmrun did not finish; stderr:\n%s", tail(stderr.String()))
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "llmrun should fail; stdout:\n%s", stdout.String())
			t.Logf("exit %d: %s", exit.ExitCode(), stderr.String())
			assert.Equal(t, 1, exit.ExitCode(), "exit status; stderr:\n%s", stderr.String())
			assert.Empty(t, stdout.String())
			assert.Equal(t, 1, strings.Count(stderr.String(), "llmrun:"), "one message")
			for _, w := range tt.want {
				assert.Contains(t, stderr.String(), w)
			}

			// verify names the same problem, or the manifest that hides it.
			if tt.caught {
				r := llmrun(t, "verify", art)
				assert.Equal(t, 1, r.code, "verify exit status; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
		})
	}
}

// watchGroup polls the processes of group pgid and calls kill once there
// are more than max of them: a hand-off must be one parent and one child.
// The result reads true once it has fired (after the group is gone).
func watchGroup(ctx context.Context, pgid, max int, kill func()) *atomic.Bool {
	fired := new(atomic.Bool)
	go func() {
		for ctx.Err() == nil {
			if groupSize(pgid) > max {
				fired.Store(true)
				kill()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return fired
}

// groupSize counts the live processes whose process group is pgid.
func groupSize(pgid int) int {
	ents, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range ents {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			n++
		}
	}
	return n
}

// modelOf is the model folder an artifact was compiled from.
func modelOf(t *testing.T, art string) string {
	t.Helper()
	m, err := artifact.Read(art)
	require.NoError(t, err)
	return m.Model.Dir
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, data, 0o755))
}

// tail is the end of a long output.
func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// TestVerify checks llmrun verify on an intact artifact and on one whose
// model changed without its identity saying so to the fast check's
// satisfaction: every file is listed, and the changed one fails.
func TestVerify(t *testing.T) {
	t.Parallel()
	model := copyModel(t, "llama-tiny")
	art := compiledArtifact(t, model, "interp")
	r := llmrun(t, "verify", art)
	requireOK(t, r)
	for _, f := range []string{artifact.ManifestName, artifact.IRName, "config.json", "model.safetensors"} {
		assert.Regexp(t, `(?m)^ok +\S*`+f+`$`, r.stdout)
	}
	keepTimes(t, filepath.Join(model, "model.safetensors"), func(d []byte) []byte { d[100] ^= 1; return d })
	r = llmrun(t, "verify", art)
	assert.Equal(t, 1, r.code)
	assert.Regexp(t, `(?m)^FAIL +\S*model.safetensors: .*changed since it was compiled \(sha256`, r.stdout)
	assert.Regexp(t, `(?m)^ok +\S*`+artifact.IRName+`$`, r.stdout)
	assert.Contains(t, r.stderr, "1 of ")
}
