package cli_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// generation is llmrun generate --format json's report.
type generation struct {
	IDs                    []int    `json:"ids"`
	PromptTokens           int      `json:"prompt_tokens"`
	GeneratedTokens        int      `json:"generated_tokens"`
	StopReason             string   `json:"stop_reason"`
	PrefillTokensPerSecond *float64 `json:"prefill_tokens_per_second"`
	DecodeTokensPerSecond  *float64 `json:"decode_tokens_per_second"`
}

func parseGeneration(t *testing.T, r result) generation {
	t.Helper()
	requireOK(t, r)
	var g generation
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	require.NoErrorf(t, dec.Decode(&g), "stdout:\n%s", r.stdout)
	require.False(t, dec.More(), "stdout holds more than one JSON value:\n%s", r.stdout)
	return g
}

// textIDs parses text-format generate output: one line of ids separated by
// spaces.
func textIDs(t *testing.T, r result) []int {
	t.Helper()
	requireOK(t, r)
	out := r.stdout
	require.True(t, strings.HasSuffix(out, "\n"), "output does not end in a newline: %q", out)
	line := strings.TrimRight(out, " \n")
	require.NotContains(t, line, "\n", "output is more than one line")
	if line == "" {
		return nil
	}
	var ids []int
	for i, f := range strings.Split(line, " ") {
		id, err := strconv.Atoi(f)
		require.NoErrorf(t, err, "item %d of %q is not a token id", i+1, line)
		ids = append(ids, id)
	}
	return ids
}

func TestGenerateGreedyMatchesReference(t *testing.T) {
	t.Parallel()
	ref := referenceCase(t, "stories260K", "short3")
	require.Equal(t, []int{1, 403, 407}, ref.Prompt)
	r := llmrun(t, "generate", model(t, "stories260K"), "--ids", "1,403,407",
		"--max-new-tokens", "200", "--temperature", "0", "--format", "json")
	g := parseGeneration(t, r)

	require.Len(t, g.IDs, 200)
	assert.Equal(t, 200, g.GeneratedTokens)
	assert.Equal(t, 3, g.PromptTokens)
	assert.Equal(t, "length", g.StopReason)
	// Only the part before the first near tie is a fair requirement (see
	// ../shared/reference/README.md); today all 200 match.
	n := fairGreedyLen(ref)
	require.Greater(t, n, 100, "the reference has an early near tie; pick another case")
	assert.Equal(t, ref.Greedy[:n], g.IDs[:n], "greedy ids before the first near tie at step %d", n)
	if !assert.ObjectsAreEqual(ref.Greedy, g.IDs) {
		t.Logf("greedy ids differ from the reference after the near tie at step %d (allowed)", n)
	}

	require.NotNil(t, g.PrefillTokensPerSecond, "JSON has no prefill_tokens_per_second")
	require.NotNil(t, g.DecodeTokensPerSecond, "JSON has no decode_tokens_per_second")
	assert.Greater(t, *g.PrefillTokensPerSecond, 0.0)
	assert.Greater(t, *g.DecodeTokensPerSecond, 0.0)
	assert.Empty(t, r.stderr)
}

func TestGenerateTextFormat(t *testing.T) {
	t.Parallel()
	m := model(t, "stories260K")
	ref := referenceCase(t, "stories260K", "short3")
	args := []string{"generate", m, "--ids", "1,403,407", "--max-new-tokens", "40", "--temperature", "0"}
	text := llmrun(t, args...)
	ids := textIDs(t, text)
	assert.Equal(t, ref.Greedy[:40], ids)
	assert.Empty(t, text.stderr, "no progress line when stderr is not a terminal")
	// --stats asks for the summary line anyway, and --quiet wins.
	stats := llmrun(t, append(args, "--stats")...)
	assert.Equal(t, ids, textIDs(t, stats))
	assert.Regexp(t, `^prompt 3 tokens, [\d.]+ tok/s \| generated 40 tokens, [\d.]+ tok/s \| stop: max tokens \(40\) \| seed \d+\n$`, stats.stderr)
	assert.Empty(t, llmrun(t, append(args, "--stats", "--quiet")...).stderr)

	// The default format is text, and it agrees with json.
	js := parseGeneration(t, llmrun(t, append(args, "--format", "json")...))
	assert.Equal(t, ids, js.IDs)

	// Flags may come before MODEL, and "--" ends the flags.
	before := llmrun(t, "generate", "--ids", "1,403,407", "--max-new-tokens", "40", "--temperature", "0", "--", m)
	assert.Equal(t, ids, textIDs(t, before))

	// --max-new-tokens 0 prints an empty line and an empty ids list.
	assert.Empty(t, textIDs(t, llmrun(t, "generate", m, "--ids", "1", "--max-new-tokens", "0")))
	zero := parseGeneration(t, llmrun(t, "generate", m, "--ids", "1", "--max-new-tokens", "0", "--format", "json"))
	assert.NotNil(t, zero.IDs, `"ids" is [] rather than null`)
	assert.Empty(t, zero.IDs)
}

// TestGenerateEOS checks that generation stops at the model's EOS token,
// and keeps it.
func TestGenerateEOS(t *testing.T) {
	t.Parallel()
	// Greedy llama-tiny after token 1 reaches EOS (2) well before 256 tokens.
	g := parseGeneration(t, llmrun(t, "generate", model(t, "llama-tiny"), "--ids", "1", "--max-new-tokens", "255", "--format", "json"))
	assert.Equal(t, "eos", g.StopReason)
	require.NotEmpty(t, g.IDs)
	assert.Less(t, len(g.IDs), 255)
	assert.Equal(t, 2, g.IDs[len(g.IDs)-1], "the EOS token ends the output")
	assert.NotContains(t, g.IDs[:len(g.IDs)-1], 2)
	assert.Equal(t, len(g.IDs), g.GeneratedTokens)
}

func TestGenerateSampling(t *testing.T) {
	t.Parallel()
	m := model(t, "stories260K")
	gen := func(t *testing.T, flags ...string) []int {
		t.Helper()
		args := append([]string{"generate", m, "--ids", "1,403,407", "--max-new-tokens", "30"}, flags...)
		return textIDs(t, llmrun(t, args...))
	}
	greedy := gen(t, "--temperature", "0")
	// stories260K is a confident model: at temperature 0.8 some seeds
	// reproduce the greedy 30 tokens. At temperature 1 a seed still may,
	// so the seed tests compare sampled runs with each other and the
	// distributional check below asks only that most seeds leave greedy.
	seed1 := gen(t, "--temperature", "1", "--seed", "1")
	// Top-k 1 after the repetition penalty: the argmax of the penalised
	// logits.
	penalised := gen(t, "--temperature", "1", "--top-k", "1", "--repetition-penalty", "1.3")

	tests := []struct {
		name  string
		flags []string
		same  []int // want exactly these ids
		other []int // want ids that differ from these
	}{
		{name: "same seed repeats", flags: []string{"--temperature", "1", "--seed", "1"}, same: seed1},
		{name: "flag order does not matter", flags: []string{"--seed", "1", "--temperature", "1"}, same: seed1},
		{name: "another seed differs", flags: []string{"--temperature", "1", "--seed", "2"}, other: seed1},
		{name: "top-k 1 is greedy", flags: []string{"--temperature", "1", "--top-k", "1", "--seed", "1"}, same: greedy},
		{name: "top-k 1 is greedy whatever the seed", flags: []string{"--temperature", "1", "--top-k", "1", "--seed", "12345"}, same: greedy},
		{name: "temperature 0 ignores the seed", flags: []string{"--temperature", "0", "--seed", "99"}, same: greedy},
		{name: "repetition penalty changes greedy", flags: []string{"--temperature", "1", "--top-k", "1", "--repetition-penalty", "1.3"}, other: greedy},
		{name: "greedy applies the repetition penalty", flags: []string{"--temperature", "0", "--repetition-penalty", "1.3", "--seed", "5"}, same: penalised},
		{name: "repetition penalty 1 is off", flags: []string{"--temperature", "0", "--repetition-penalty", "1"}, same: greedy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := gen(t, tt.flags...)
			require.Len(t, got, 30)
			if tt.same != nil {
				assert.Equal(t, tt.same, got)
			}
			if tt.other != nil {
				assert.NotEqual(t, tt.other, got)
			}
		})
	}

	// Sampling draws from the distribution instead of taking its argmax:
	// over eight seeds most runs leave the greedy path and the runs differ
	// from each other. (If sampling were greedy in disguise, all eight
	// would equal greedy; a sampler ignoring the seed gives one sequence.)
	t.Run("sampling differs from greedy", func(t *testing.T) {
		const seeds = 8
		left, distinct := 0, map[string]bool{}
		for seed := 1; seed <= seeds; seed++ {
			got := gen(t, "--temperature", "1", "--seed", strconv.Itoa(seed))
			require.Len(t, got, 30)
			if !slices.Equal(got, greedy) {
				left++
			}
			distinct[idList(got)] = true
		}
		assert.GreaterOrEqual(t, left, seeds/2, "runs that differ from greedy")
		assert.GreaterOrEqual(t, len(distinct), seeds/2, "distinct sampled sequences")
	})
}

// TestGenerateGenerationConfig checks that sampling defaults come from
// generation_config.json, and that flags override them.
func TestGenerateGenerationConfig(t *testing.T) {
	t.Parallel()
	plain := model(t, "stories260K")
	gen := func(t *testing.T, m string, flags ...string) []int {
		t.Helper()
		args := append([]string{"generate", m, "--ids", "1,403,407", "--max-new-tokens", "30"}, flags...)
		return textIDs(t, llmrun(t, args...))
	}
	greedy := gen(t, plain, "--temperature", "0")
	// Temperature 1.5, not transformers' default of 1, so that a
	// temperature read from the file is told apart from a default.
	sampled := gen(t, plain, "--temperature", "1.5", "--seed", "1")
	penalised := gen(t, plain, "--temperature", "1", "--top-k", "1", "--repetition-penalty", "1.3")
	require.NotEqual(t, greedy, sampled, "seed 1 must leave the greedy path for the temperature check to mean anything")
	require.NotEqual(t, gen(t, plain, "--temperature", "1", "--seed", "1"), sampled)
	require.NotEqual(t, greedy, penalised)

	withConfig := func(t *testing.T, cfg string) string {
		dir := copyModel(t, "stories260K")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(cfg), 0o644))
		return dir
	}
	sampling := withConfig(t, `{"do_sample": true, "temperature": 1.5, "bos_token_id": 1, "eos_token_id": 2}`)
	assert.Equal(t, sampled, gen(t, sampling, "--seed", "1"), "temperature from generation_config.json")
	assert.Equal(t, greedy, gen(t, sampling, "--seed", "1", "--temperature", "0"), "--temperature overrides it")

	topK := withConfig(t, `{"do_sample": true, "top_k": 1}`)
	assert.Equal(t, greedy, gen(t, topK, "--seed", "3"), "top_k 1 from generation_config.json")

	noSample := withConfig(t, `{"do_sample": false, "temperature": 0.8}`)
	assert.Equal(t, greedy, gen(t, noSample, "--seed", "1"), "do_sample false is greedy")

	// transformers applies repetition_penalty with or without do_sample.
	penalty := withConfig(t, `{"repetition_penalty": 1.3}`)
	assert.Equal(t, penalised, gen(t, penalty), "repetition_penalty from generation_config.json")
	assert.Equal(t, greedy, gen(t, penalty, "--repetition-penalty", "1"), "--repetition-penalty overrides it")

	short := withConfig(t, `{"max_new_tokens": 7}`)
	ids := textIDs(t, llmrun(t, "generate", short, "--ids", "1,403,407", "--temperature", "0"))
	assert.Equal(t, greedy[:7], ids, "max_new_tokens from generation_config.json")
	assert.Equal(t, greedy, gen(t, short, "--temperature", "0"), "--max-new-tokens overrides it")
}

func TestScore(t *testing.T) {
	t.Parallel()
	m := model(t, "stories260K")
	ref := referenceCase(t, "stories260K", "short3")
	const n = 20
	seq := append(append([]int{}, ref.Prompt...), ref.Greedy[:n-len(ref.Prompt)]...)
	dir := t.TempDir()
	logitsPath := filepath.Join(dir, "logits.jsonl")

	r := llmrun(t, "score", m, "--ids", idList(seq), "--logits", logitsPath, "--format", "json")
	requireOK(t, r)
	var report struct {
		Tokens     int     `json:"tokens"`
		MeanNLL    float64 `json:"mean_nll"`
		Perplexity float64 `json:"perplexity"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &report), r.stdout)
	assert.Equal(t, n, report.Tokens)

	rows := readLogits(t, logitsPath)
	require.Len(t, rows, n, "one row per position")
	for p, row := range rows {
		require.Lenf(t, row, 512, "row %d has vocab_size entries", p)
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "only the logits file is left in its folder")

	// Row p holds the logits after position p: prompt_logits[p] inside the
	// prompt, step_logits[k] after prompt + greedy[:k], i.e. at position
	// len(prompt)-1+k.
	compared := 0
	for p, row := range rows {
		var want [][]float64
		if p < len(ref.PromptLogits) {
			want = append(want, ref.PromptLogits[p])
		}
		if k := p - (len(ref.Prompt) - 1); k >= 0 && k < len(ref.StepLogits) {
			want = append(want, ref.StepLogits[k])
		}
		for _, w := range want {
			compared++
			require.Len(t, w, len(row))
			worst, at := 0.0, 0
			for i := range w {
				if d := math.Abs(row[i] - w[i]); d > worst {
					worst, at = d, i
				}
			}
			assert.LessOrEqualf(t, worst, 1e-4, "position %d: logit of token %d is %g, reference %g", p, at, row[at], w[at])
		}
	}
	assert.Equal(t, len(ref.PromptLogits)+len(ref.StepLogits), compared)

	// The reported NLL and perplexity follow from the written logits.
	nll := 0.0
	for p := 0; p+1 < n; p++ {
		nll += logSumExp(rows[p]) - rows[p][seq[p+1]]
	}
	nll /= n - 1
	assert.InEpsilon(t, nll, report.MeanNLL, 1e-6, "mean NLL")
	assert.InEpsilon(t, math.Exp(nll), report.Perplexity, 1e-6, "perplexity")

	// The text format prints the same numbers, rounded.
	text := llmrun(t, "score", m, "--ids", idList(seq))
	requireOK(t, text)
	var tokens int
	var textNLL, textPPL float64
	_, err = fmt.Sscanf(text.stdout, "tokens: %d mean NLL: %f nats perplexity: %f", &tokens, &textNLL, &textPPL)
	require.NoErrorf(t, err, "stdout: %q", text.stdout)
	assert.Equal(t, n, tokens)
	assert.InDelta(t, nll, textNLL, 1e-6+1e-6*nll)
	assert.InDelta(t, math.Exp(nll), textPPL, 5e-5+1e-6*math.Exp(nll))
}

func readLogits(t *testing.T, path string) [][]float64 {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var rows [][]float64
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var row []float64
		require.NoErrorf(t, json.Unmarshal(sc.Bytes(), &row), "line %d is not a JSON array of numbers", len(rows)+1)
		rows = append(rows, row)
	}
	require.NoError(t, sc.Err())
	return rows
}

func logSumExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	s := 0.0
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s)
}
