package cli_test

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var stageNames = []string{"build", "graph-passes", "quantize", "lower", "kir-passes", "emit", "toolchain", "write"}

// TestCompileStatsStages: --stats prints the stage times after the
// per-pass tables.
func TestCompileStatsStages(t *testing.T) {
	t.Parallel()
	r := llmc(t, "compile", model(t, "stories260K"), "--backend", "interp", "--max-seq", "32", "-o", filepath.Join(t.TempDir(), "s.llmc"), "--stats", "--quiet")
	requireOK(t, r)
	i := strings.Index(r.stdout, "\nstages\n")
	require.Positive(t, i, "no stage table in:\n%s", r.stdout)
	assert.Greater(t, i, strings.LastIndex(r.stdout, "entry prefill_all"), "the stage table follows the pass tables")
	table := r.stdout[i:]
	last := 0
	for _, s := range stageNames {
		loc := regexp.MustCompile(`(?m)^  ` + s + ` +\d+\.\d\dms`).FindStringIndex(table)
		require.NotNil(t, loc, "no time for stage %s in:\n%s", s, table)
		assert.Greater(t, loc[0], last, "stage %s out of order", s)
		last = loc[0]
	}
	assert.Contains(t, table, "skipped: backend interp runs the graph IR")
	assert.Contains(t, r.stdout, "backend interp (--backend)\n", "--stats names the backend")
	assert.Regexp(t, `(?m)^  total +\d+\.\d\dms$`, table)
	assert.Regexp(t, `(?m)^  KV cache: \d+ bytes$`, r.stdout, "stories260K has no sliding-window layers")
}

// TestCompilePrintAfterStage: --print-after takes stage names as well as
// pass names; unknown names and stages that print nothing are usage
// errors listing the valid names; --list-stages lists the stages.
func TestCompilePrintAfterStage(t *testing.T) {
	t.Parallel()
	m := model(t, "stories260K")
	out := func() string { return filepath.Join(t.TempDir(), "s.llmc") }

	r := llmc(t, "compile", m, "--backend", "interp", "--max-seq", "32", "-o", out(), "--quiet", "--print-after", "lower")
	requireOK(t, r)
	assert.True(t, strings.HasPrefix(r.stderr, "# kernel IR after lower\n"), "stderr starts with:\n%.200s", r.stderr)
	assert.NotContains(t, r.stderr, "# decode after")

	r = llmc(t, "compile", m, "--backend", "interp", "--max-seq", "32", "-o", out(), "--quiet", "--print-after", "build,dce-late,graph-passes")
	requireOK(t, r)
	for _, w := range []string{"# decode after build\n", "# decode after dce-late\n", "# decode after graph-passes\n", "# prefill_all after graph-passes\n"} {
		assert.Contains(t, r.stderr, w)
	}
	assert.NotContains(t, r.stderr, "kernel IR")

	r = llmc(t, "compile", m, "-o", out(), "--print-after", "regalloc")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, `--print-after: no pass or stage named "regalloc"`)
	assert.Contains(t, r.stderr, "passes: static-kv, specialize-shapes")
	assert.Contains(t, r.stderr, "stages: build, graph-passes, quantize, lower, kir-passes, emit")

	r = llmc(t, "compile", m, "-o", out(), "--print-after", "write")
	assert.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "--print-after: stage write prints nothing")

	r = llmc(t, "compile", "--list-stages")
	requireOK(t, r)
	var listed []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		listed = append(listed, strings.Fields(line)[0])
	}
	assert.Equal(t, stageNames, listed)
	assert.Contains(t, r.stdout, "(--print-after prints the kernel IR)")
}

// TestCompileRefusesDisablingABackendsPass: --disable-pass of a pass the
// backend needs is a usage error naming the pass, the backend and why,
// rather than a lowering failure blaming another pass.
func TestCompileRefusesDisablingABackendsPass(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"go", "llvm"} {
		r := llmc(t, "compile", model(t, "stories260K"), "-o", filepath.Join(t.TempDir(), "s.llmc"), "--backend", backend, "--disable-pass", "form-kernels")
		assert.Equal(t, 2, r.code, r.stderr)
		assert.Contains(t, r.stderr, "--disable-pass: form-kernels is needed by --backend "+backend+" and cannot be disabled: lowering takes kernels only")
		assert.NotContains(t, r.stderr, "plan-memory")
	}
}

// TestCompileBackendHelp: --backend's help lists every backend with its doc.
func TestCompileBackendHelp(t *testing.T) {
	t.Parallel()
	r := llmc(t, "compile", "--help")
	require.Zero(t, r.code)
	help := r.stdout + r.stderr
	for _, w := range []string{"interp: the runtime interprets", "go: generated Go kernels", "llvm: LLVM IR compiled by opt and llc", "-list-stages"} {
		assert.Contains(t, help, w)
	}
}
