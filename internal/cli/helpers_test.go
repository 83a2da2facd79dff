package cli_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/cli"
	"github.com/llmc-dev/llmc/internal/cli/llmruncmd"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// result is what one in-process run of a command left behind.
type result struct {
	code           int
	stdout, stderr string
}

// run calls main (llmruncmd.Run or cli.Llmc) with args as a shell would and
// fails the test, with the stack, if it panics: bad input must come back as
// an error message and an exit status, never as a crash.
func run(t *testing.T, main func([]string, io.Writer, io.Writer) int, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	var code int
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("%q panicked: %v\n%s", args, r, debug.Stack())
			}
		}()
		code = main(args, &stdout, &stderr)
	}()
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// llmrun and llmc run the two commands in-process.
func llmrun(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, llmruncmd.Run, args...)
}

func llmc(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, cli.Llmc, args...)
}

// requireOK fails the test unless r is a successful run.
func requireOK(t *testing.T, r result) {
	t.Helper()
	require.Zerof(t, r.code, "exit status; stderr:\n%s", r.stderr)
}

// model returns the path of a shared test model (skips without ../shared).
func model(t *testing.T, name string) string {
	t.Helper()
	return testshared.Path(t, "models", name)
}

// refCase is one case of a ../shared/reference file (see its README).
type refCase struct {
	Name          string      `json:"name"`
	Prompt        []int       `json:"prompt"`
	Greedy        []int       `json:"greedy"`
	LastLogits    []float64   `json:"last_logits"`
	StepLogits    [][]float64 `json:"step_logits"`
	GreedyMargins []float64   `json:"greedy_margins"`
	PromptLogits  [][]float64 `json:"prompt_logits"`
}

// referenceCase loads the case named name from reference/<model>.json.
func referenceCase(t *testing.T, modelName, name string) refCase {
	t.Helper()
	data, err := os.ReadFile(testshared.Path(t, "reference", modelName+".json"))
	require.NoError(t, err)
	var ref struct {
		Cases []refCase `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(data, &ref))
	for _, c := range ref.Cases {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("reference %s has no case %q", modelName, name)
	return refCase{}
}

// fairGreedyLen is how many greedy tokens a free-running greedy decode can
// fairly be required to reproduce: those before the first near tie
// (greedy_margins below 1e-3), where float32 rounding may pick either token.
func fairGreedyLen(c refCase) int {
	for k, m := range c.GreedyMargins {
		if m < 1e-3 {
			return k
		}
	}
	return len(c.Greedy)
}

// idList formats ids for --ids.
func idList(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}

// copyModel copies the files of a shared model folder into a fresh
// temporary folder, writable, so that a test can damage them.
func copyModel(t *testing.T, name string) string {
	t.Helper()
	src := model(t, name)
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644))
	}
	return dst
}
