package cli_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// textRefCase is one line of ../shared/reference/stories260K_text.jsonl:
// llama2.c run.c -t 0 on a prompt (see the reference README).
type textRefCase struct {
	Prompt       string `json:"prompt"`
	MaxNewTokens int    `json:"max_new_tokens"`
	GreedyText   string `json:"greedy_text"`
	GreedyIDs    []int  `json:"greedy_ids"`
	PromptIDs    []int  `json:"prompt_ids"`
	Stop         string `json:"stop"` // "length" or "bos"
}

func readTextRefs(t *testing.T) []textRefCase {
	t.Helper()
	f, err := os.Open(testshared.Path(t, "reference", "stories260K_text.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var cases []textRefCase
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c textRefCase
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c), "line %d", len(cases)+1)
		cases = append(cases, c)
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, cases)
	return cases
}

// TestGreedyTextMatchesRunC: llmrun generate --prompt prints, greedy, the
// text llama2.c's run.c prints after the prompt, for the eager path and
// for artifacts of every backend (LLVM skips without its toolchain, except
// under CI). run.c ends a story when the model emits BOS, which it does
// not print; llmrun stops at EOS (id 2) instead, so the case that ends
// with BOS asks for exactly the tokens before it. The comparison is exact:
// the greedy runs have no near tie within their length that float32
// rounding decides differently here.
func TestGreedyTextMatchesRunC(t *testing.T) {
	t.Parallel()
	cases := readTextRefs(t)
	m := model(t, "stories260K")
	for _, backend := range []string{"eager", "interp", "go", "llvm"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			target := m
			if backend != "eager" {
				if backend == "llvm" {
					var te *llvm.ToolError
					if _, err := llvm.FindToolchain(); errors.As(err, &te) && !testshared.InCI() {
						t.Skipf("skipping: %v", err)
					}
				}
				target = filepath.Join(t.TempDir(), "stories.llmc")
				requireOK(t, llmc(t, "compile", m, "--backend", backend, "-o", target, "--quiet"))
			}
			for i, c := range cases {
				n := c.MaxNewTokens
				if c.Stop == "bos" {
					n = len(c.GreedyIDs)
				}
				require.Len(t, c.GreedyIDs, n, "case %d: %s", i+1, c.Stop)
				args := []string{"generate", target, "--prompt", c.Prompt, "--max-new-tokens", strconv.Itoa(n), "--temperature", "0"}
				g := parseTextGeneration(t, llmrun(t, append(args, "--format", "json")...))
				assert.Equal(t, len(c.PromptIDs), g.Prompt, "%q: prompt tokens (with BOS)", c.Prompt)
				if !assert.Equal(t, c.GreedyIDs, g.IDs, "%q: greedy ids", c.Prompt) {
					continue
				}
				assert.Equal(t, c.GreedyText, *g.Text, "%q: greedy text", c.Prompt)
				assert.Equal(t, "length", g.StopReason, c.Prompt)
				if i == 0 {
					// The text format prints the same, then a newline.
					r := llmrun(t, args...)
					requireOK(t, r)
					assert.Equal(t, c.GreedyText+"\n", r.stdout)
				}
			}
		})
	}
}
