package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stopReport is the part of generate --format json that says why it
// stopped and with which seed.
type stopReport struct {
	IDs        []int   `json:"ids"`
	Text       *string `json:"text"`
	StopReason string  `json:"stop_reason"`
	EOSID      *int    `json:"eos_id"`
	StopString *string `json:"stop_string"`
	Seed       *uint64 `json:"seed"`
}

func parseStop(t *testing.T, r result) stopReport {
	t.Helper()
	requireOK(t, r)
	var s stopReport
	require.NoErrorf(t, json.Unmarshal([]byte(r.stdout), &s), "stdout:\n%s", r.stdout)
	require.NotNil(t, s.Seed, "no \"seed\" in %s", r.stdout)
	return s
}

// TestGenerateStopsAtEOSIDs: generation stops at the model's EOS ids,
// which config.json and generation_config.json give as a number or a list
// (generation_config.json's win, as in transformers), keeps the EOS id in
// the ids and says which one ended it; --ignore-eos runs to the token
// limit.
func TestGenerateStopsAtEOSIDs(t *testing.T) {
	t.Parallel()
	// Greedy stories260K after "Once upon a time" (ids 1,403,407,261,378):
	// 432 383 286 261 376 ... (../shared/reference/stories260K_text.jsonl).
	const prompt = "1,403,407,261,378"
	greedy := []int{432, 383, 286, 261, 376, 298, 315, 421, 395, 317}
	for _, tc := range []struct {
		name              string
		config, genConfig string // eos_token_id in each ("" leaves the file as it is, or absent)
		wantN             int    // generated ids
		wantEOS           int
	}{
		{"config list", "[383, 2]", "", 2, 383},
		{"config number", "286", "", 3, 286},
		{"generation_config list", "2", "[286, 261]", 3, 286},
		{"generation_config overrides config", "[383]", "[376]", 5, 376},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := copyModel(t, "stories260K")
			setEOS(t, filepath.Join(dir, "config.json"), tc.config)
			if tc.genConfig != "" {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "generation_config.json"),
					[]byte(`{"eos_token_id": `+tc.genConfig+`}`), 0o644))
			}
			args := []string{"generate", dir, "--ids", prompt, "--max-new-tokens", "10", "--temperature", "0", "--format", "json"}
			g := parseStop(t, llmrun(t, args...))
			assert.Equal(t, greedy[:tc.wantN], g.IDs, "the EOS id ends the ids")
			assert.Equal(t, "eos", g.StopReason)
			require.NotNil(t, g.EOSID)
			assert.Equal(t, tc.wantEOS, *g.EOSID)
			assert.Nil(t, g.StopString)

			ig := parseStop(t, llmrun(t, append(args, "--ignore-eos")...))
			assert.Equal(t, greedy, ig.IDs, "--ignore-eos")
			assert.Equal(t, "length", ig.StopReason)
			assert.Nil(t, ig.EOSID)
		})
	}
}

func setEOS(t *testing.T, path, eos string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var cfg map[string]any
	require.NoError(t, json.Unmarshal(data, &cfg))
	var v any
	require.NoError(t, json.Unmarshal([]byte(eos), &v))
	cfg["eos_token_id"] = v
	data, err = json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

// TestGenerateStopReasons: the stop reason names a --stop string, the
// token limit, and the end of the context when the default token limit
// would have run past it.
func TestGenerateStopReasons(t *testing.T) {
	t.Parallel()
	m := model(t, "stories260K")
	base := []string{"generate", m, "--temperature", "0", "--format", "json"}

	s := parseStop(t, llmrun(t, append(base, "--prompt", "Once upon a time", "--max-new-tokens", "40", "--stop", "Lily")...))
	assert.Equal(t, "stop", s.StopReason)
	require.NotNil(t, s.StopString)
	assert.Equal(t, "Lily", *s.StopString)
	assert.Equal(t, ", there was a little girl named ", *s.Text)

	l := parseStop(t, llmrun(t, append(base, "--ids", "1", "--max-new-tokens", "5")...))
	assert.Equal(t, "length", l.StopReason)
	assert.Len(t, l.IDs, 5)

	// 505 prompt tokens in 512 positions leave room for 8 new tokens, fewer
	// than the default 64: the generation ends with the context.
	long := strings.Repeat("403,", 504) + "407"
	c := parseStop(t, llmrun(t, append(base, "--ids", long)...))
	assert.Equal(t, "context_full", c.StopReason)
	assert.Len(t, c.IDs, 8)
	// An explicit --max-new-tokens past the context is refused.
	r := llmrun(t, append(base, "--ids", long, "--max-new-tokens", "9")...)
	assert.Equal(t, 2, r.code, r.stderr)
}

// TestGenerateSeedDefault: without --seed, sampling is random per run (the
// seed is reported); passing the reported seed repeats the run.
func TestGenerateSeedDefault(t *testing.T) {
	t.Parallel()
	m := model(t, "stories260K")
	args := []string{"generate", m, "--ids", "1,403,407", "--max-new-tokens", "30", "--temperature", "1", "--format", "json"}
	a := parseStop(t, llmrun(t, args...))
	b := parseStop(t, llmrun(t, args...))
	assert.NotEqual(t, *a.Seed, *b.Seed, "two runs without --seed use different seeds")
	again := parseStop(t, llmrun(t, append(args, "--seed", strconv.FormatUint(*a.Seed, 10))...))
	assert.Equal(t, *a.Seed, *again.Seed)
	assert.Equal(t, a.IDs, again.IDs, "--seed with the reported seed repeats the run")

	// Over a few runs without --seed, the samples differ too (30 tokens at
	// temperature 1 from a 512-token vocabulary).
	distinct := map[string]bool{}
	for range 4 {
		g := parseStop(t, llmrun(t, args...))
		distinct[idList(g.IDs)] = true
	}
	assert.Greater(t, len(distinct), 1, "runs without --seed all sampled the same ids")

	s := parseStop(t, llmrun(t, append(args, "--seed", "7")...))
	assert.Equal(t, uint64(7), *s.Seed)
}
