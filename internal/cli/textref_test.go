package cli_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
// rounding decides differently here. The same holds with the KV cache
// stored in f16 (backend/f16: llmc compile --kv-dtype f16), whose rounding
// of keys and values moves no greedy choice of these texts; bf16's moves
// two (TestKVDtypeBF16Score).
func TestGreedyTextMatchesRunC(t *testing.T) {
	t.Parallel()
	cases := readTextRefs(t)
	m := model(t, "stories260K")
	for _, name := range []string{"eager", "interp", "go", "llvm", "go/f16", "llvm/f16"} {
		backend, kv, _ := strings.Cut(name, "/")
		t.Run(name, func(t *testing.T) {
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
				args := []string{"compile", m, "--backend", backend, "-o", target, "--quiet"}
				if kv != "" {
					args = append(args, "--kv-dtype", kv)
				}
				requireOK(t, llmc(t, args...))
			}
			for i, c := range cases {
				// run.c stops at a generated BOS (id 1, not printed), and so
				// does llmrun: its ids end with it.
				want, reason := c.GreedyIDs, "length"
				if c.Stop == "bos" {
					want, reason = append(slices.Clone(c.GreedyIDs), 1), "eos"
					require.Less(t, len(c.GreedyIDs), c.MaxNewTokens, "case %d: %s", i+1, c.Stop)
				} else {
					require.Len(t, c.GreedyIDs, c.MaxNewTokens, "case %d: %s", i+1, c.Stop)
				}
				args := []string{"generate", target, "--prompt", c.Prompt, "--max-new-tokens", strconv.Itoa(c.MaxNewTokens), "--temperature", "0"}
				g := parseTextGeneration(t, llmrun(t, append(args, "--format", "json")...))
				assert.Equal(t, len(c.PromptIDs), g.Prompt, "%q: prompt tokens (with BOS)", c.Prompt)
				if !assert.Equal(t, want, g.IDs, "%q: greedy ids", c.Prompt) {
					continue
				}
				assert.Equal(t, c.GreedyText, *g.Text, "%q: greedy text", c.Prompt)
				assert.Equal(t, reason, g.StopReason, c.Prompt)
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

// TestKVDtypeBF16Score checks stories260K with its KV cache stored in
// bf16, where the greedy texts do not all stay run.c's (bf16 keeps 8
// mantissa bits; two of the seven reference texts reach a near tie that
// the rounding decides the other way, measured on the LLVM and Go
// backends alike): the Go and LLVM artifacts generate the same greedy ids
// as each other (their rounding is the same, kir.Machine's), at least
// five of the seven texts stay run.c's, and the mean NLL llmrun score
// reports over the reference texts (prompt and greedy continuation,
// teacher-forced) is within 0.1% of the f32 cache's (measured: 0.63348
// nats f32, 0.63354 bf16, +0.009%).
func TestKVDtypeBF16Score(t *testing.T) {
	t.Parallel()
	cases := readTextRefs(t)
	m := model(t, "stories260K")
	var te *llvm.ToolError
	if _, err := llvm.FindToolchain(); errors.As(err, &te) && !testshared.InCI() {
		t.Skipf("skipping: %v", err)
	}
	arts := map[string]string{}
	for _, name := range []string{"llvm/f32", "llvm/bf16", "go/bf16"} {
		backend, kv, _ := strings.Cut(name, "/")
		arts[name] = filepath.Join(t.TempDir(), backend+"-"+kv+".llmc")
		requireOK(t, llmc(t, "compile", m, "--backend", backend, "--kv-dtype", kv, "-o", arts[name], "--quiet"))
	}
	nll := map[string]float64{}
	tokens := 0
	same := 0
	for _, c := range cases {
		n := c.MaxNewTokens
		if c.Stop == "bos" {
			n = len(c.GreedyIDs)
		}
		var ids [][]int
		for _, name := range []string{"llvm/bf16", "go/bf16"} {
			args := []string{"generate", arts[name], "--prompt", c.Prompt, "--max-new-tokens", strconv.Itoa(n), "--temperature", "0", "--format", "json"}
			ids = append(ids, parseTextGeneration(t, llmrun(t, args...)).IDs)
		}
		assert.Equal(t, ids[0], ids[1], "%q: the LLVM and Go bf16 caches generate alike", c.Prompt)
		if assert.ObjectsAreEqual(c.GreedyIDs, ids[0]) {
			same++
		}
		seq := append(append([]int{}, c.PromptIDs...), c.GreedyIDs...)
		for _, name := range []string{"llvm/f32", "llvm/bf16", "go/bf16"} {
			r := llmrun(t, "score", arts[name], "--ids", idList(seq), "--format", "json")
			requireOK(t, r)
			var rep struct {
				MeanNLL float64 `json:"mean_nll"`
			}
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
			nll[name] += rep.MeanNLL * float64(len(seq)-1)
		}
		tokens += len(seq) - 1

	}
	f32 := nll["llvm/f32"] / float64(tokens)
	for _, name := range []string{"llvm/bf16", "go/bf16"} {
		mean := nll[name] / float64(tokens)
		t.Logf("%s: mean NLL %.5f over %d tokens (f32 cache %.5f, %+.4f%%)", name, mean, tokens, f32, 100*(mean-f32)/f32)
		assert.Less(t, math.Abs(mean-f32)/f32, 0.001, name)
	}
	t.Logf("bf16 cache: %d of %d greedy texts are run.c's", same, len(cases))
	assert.GreaterOrEqual(t, same, 5)
}
