package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/cli/llmruncmd"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// llmrunIn runs llmrun in-process with stdin.
func llmrunIn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return run(t, func(args []string, stdout, stderr io.Writer) int {
		return llmruncmd.RunIO(args, strings.NewReader(stdin), stdout, stderr)
	}, args...)
}

// tokenizerDirs are the shared tokenizers, each with a cases.jsonl.
func tokenizerDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(testshared.Path(t, "tokenizers"), "*", "cases.jsonl"))
	require.NoError(t, err)
	require.NotEmpty(t, dirs)
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

// jsonLines splits the JSON lines of s.
func jsonLines(t *testing.T, s string) []string {
	t.Helper()
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	return lines
}

// marshal writes v as compact JSON without HTML escapes, as llmrun does.
func marshal(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	require.NoError(t, enc.Encode(v))
	return strings.TrimSuffix(b.String(), "\n")
}

// TestTokenizeCases puts every line of every cases.jsonl through
// tokenize --jsonl, and the expected ids back through detokenize --jsonl,
// with and without special tokens.
func TestTokenizeCases(t *testing.T) {
	t.Parallel()
	for _, dir := range tokenizerDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(filepath.Join(dir, "cases.jsonl"))
			require.NoError(t, err)
			type tcase struct {
				Text               string `json:"text"`
				AddSpecialTokens   bool   `json:"add_special_tokens"`
				IDs                []int  `json:"ids"`
				Decoded            string `json:"decoded"`
				DecodedSkipSpecial string `json:"decoded_skip_special"`
			}
			var cases []tcase
			var detok strings.Builder
			for _, line := range jsonLines(t, string(data)) {
				var c tcase
				require.NoError(t, json.Unmarshal([]byte(line), &c))
				cases = append(cases, c)
				detok.WriteString(marshal(t, map[string]any{"ids": c.IDs, "skip_special_tokens": false}) + "\n")
				detok.WriteString(marshal(t, map[string]any{"ids": c.IDs, "skip_special_tokens": true}) + "\n")
			}
			require.NotEmpty(t, cases)

			// The case lines go in as they are: extra fields are ignored.
			r := llmrunIn(t, string(data), "tokenize", dir, "--jsonl")
			requireOK(t, r)
			got := jsonLines(t, r.stdout)
			require.Len(t, got, len(cases))
			for i, c := range cases {
				want := marshal(t, map[string][]int{"ids": c.IDs})
				assert.Equal(t, want, got[i], "line %d: encode(%q, add_special_tokens=%v)", i+1, c.Text, c.AddSpecialTokens)
			}

			r = llmrunIn(t, detok.String(), "detokenize", dir, "--jsonl")
			requireOK(t, r)
			got = jsonLines(t, r.stdout)
			require.Len(t, got, 2*len(cases))
			for i, c := range cases {
				var a, b struct{ Text string }
				require.NoError(t, json.Unmarshal([]byte(got[2*i]), &a))
				require.NoError(t, json.Unmarshal([]byte(got[2*i+1]), &b))
				assert.Equal(t, c.Decoded, a.Text, "line %d: decode(%v)", i+1, c.IDs)
				assert.Equal(t, c.DecodedSkipSpecial, b.Text, "line %d: decode(%v, skip_special_tokens)", i+1, c.IDs)
				assert.Equal(t, marshal(t, map[string]string{"text": c.Decoded}), got[2*i])
			}
		})
	}
}

// TestRenderChatCases puts every line of every chat.jsonl through
// render-chat --jsonl.
func TestRenderChatCases(t *testing.T) {
	t.Parallel()
	n, refused := 0, 0
	for _, dir := range tokenizerDirs(t) {
		data, err := os.ReadFile(filepath.Join(dir, "chat.jsonl"))
		if os.IsNotExist(err) {
			continue // gpt2 has no chat template
		}
		require.NoError(t, err)
		r := llmrunIn(t, string(data), "render-chat", dir, "--jsonl")
		requireOK(t, r)
		want := jsonLines(t, string(data))
		got := jsonLines(t, r.stdout)
		require.Len(t, got, len(want))
		for i := range want {
			var w struct {
				Rendered string `json:"rendered"`
				IDs      []int  `json:"ids"`
				Error    string `json:"error"`
			}
			require.NoError(t, json.Unmarshal([]byte(want[i]), &w))
			if w.Error != "" {
				// The template refuses this conversation: the answer is
				// that refusal, in the template's words.
				assert.Equal(t, marshal(t, map[string]string{"error": w.Error}), got[i], "%s line %d", filepath.Base(dir), i+1)
				refused++
			} else {
				assert.Equal(t, marshal(t, struct {
					Rendered string `json:"rendered"`
					IDs      []int  `json:"ids"`
				}{w.Rendered, w.IDs}), got[i], "%s line %d", filepath.Base(dir), i+1)
			}
			n++
		}
	}
	assert.Equal(t, 32, n, "four chat templates, eight conversations each")
	assert.Positive(t, refused, "the fixtures include conversations a template refuses (Gemma: no system role)")
}

func TestTokenizeSingleShot(t *testing.T) {
	t.Parallel()
	gpt2 := testshared.Path(t, "tokenizers", "gpt2")
	r := llmrun(t, "tokenize", gpt2, "--text", "Hello world")
	requireOK(t, r)
	assert.Equal(t, "15496,995\n", r.stdout)
	r = llmrun(t, "tokenize", gpt2, "--text", "Hello world", "--tokens")
	requireOK(t, r)
	assert.Equal(t, "15496,995\n15496\t\"Hello\"\n995\t\"Ġworld\"\n", r.stdout)
	r = llmrun(t, "detokenize", gpt2, "--ids", "15496,995")
	requireOK(t, r)
	assert.Equal(t, "Hello world\n", r.stdout)

	tl := testshared.Path(t, "tokenizers", "tinyllama-1.1b-chat-v1.0")
	with := llmrun(t, "tokenize", tl, "--text", "Hi")
	without := llmrun(t, "tokenize", tl, "--text", "Hi", "--add-special-tokens=false")
	requireOK(t, with)
	requireOK(t, without)
	assert.Equal(t, "1,"+without.stdout, with.stdout, "BOS <s> is added by default")
	r = llmrun(t, "detokenize", tl, "--ids", "1,"+strings.TrimSpace(without.stdout), "--skip-special-tokens")
	requireOK(t, r)
	assert.Equal(t, "Hi\n", r.stdout)

	smol := testshared.Path(t, "tokenizers", "smollm2-135m-instruct")
	r = llmrun(t, "render-chat", smol, "--user", "What is 2+2?", "--system", "Be brief.")
	requireOK(t, r)
	assert.Equal(t, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", r.stdout)
}

// textModel writes a random-weight model whose vocabulary is the smollm2
// tokenizer's (49,152 tokens, ChatML template), in the stories260K shape.
func textModel(t *testing.T, opts synth.Options) string {
	t.Helper()
	if opts.Shape.Name == "" {
		s, err := synth.LookupShape("stories260K")
		require.NoError(t, err)
		opts.Shape = s
	}
	if opts.Tokenizer == "" {
		opts.Tokenizer = testshared.Path(t, "tokenizers", "smollm2-135m-instruct")
	} else if opts.Tokenizer == "none" {
		opts.Tokenizer = ""
	}
	dir := filepath.Join(t.TempDir(), "model")
	_, err := synth.Write(dir, opts)
	require.NoError(t, err)
	return dir
}

// textGeneration is generate --format json's report with --prompt.
type textGeneration struct {
	Text       *string `json:"text"`
	IDs        []int   `json:"ids"`
	Prompt     int     `json:"prompt_tokens"`
	StopReason string  `json:"stop_reason"`
}

func parseTextGeneration(t *testing.T, r result) textGeneration {
	t.Helper()
	requireOK(t, r)
	var g textGeneration
	require.NoErrorf(t, json.Unmarshal([]byte(r.stdout), &g), "stdout:\n%s", r.stdout)
	require.NotNil(t, g.Text, "no \"text\" in %s", r.stdout)
	return g
}

// decode runs detokenize on ids.
func decode(t *testing.T, dir string, ids []int) string {
	t.Helper()
	r := llmrun(t, "detokenize", dir, "--ids", idList(ids))
	requireOK(t, r)
	return strings.TrimSuffix(r.stdout, "\n")
}

func TestGenerateText(t *testing.T) {
	t.Parallel()
	m := textModel(t, synth.Options{Seed: 1})
	args := []string{"generate", m, "--prompt", "What is 2+2?", "--max-new-tokens", "24", "--temperature", "1", "--seed", "3"}
	g := parseTextGeneration(t, llmrun(t, append(args, "--format", "json")...))
	require.Len(t, g.IDs, 24)
	assert.Equal(t, "length", g.StopReason)
	assert.Equal(t, decode(t, m, g.IDs), *g.Text, "the text is the decoded ids")
	assert.True(t, utf8.ValidString(*g.Text))
	prompt := llmrun(t, "tokenize", m, "--text", "What is 2+2?")
	assert.Equal(t, strings.Count(prompt.stdout, ",")+1, g.Prompt)

	// The text format streams the same text, then a newline.
	r := llmrun(t, args...)
	requireOK(t, r)
	assert.Equal(t, *g.Text+"\n", r.stdout)
	assert.Empty(t, r.stderr, "no summary when stderr is not a terminal")

	// --chat puts the prompt through the ChatML template.
	chat := parseTextGeneration(t, llmrun(t, "generate", m, "--prompt", "What is 2+2?", "--chat", "--system", "Be brief.",
		"--max-new-tokens", "4", "--format", "json"))
	rc := llmrun(t, "render-chat", m, "--user", "What is 2+2?", "--system", "Be brief.")
	requireOK(t, rc)
	ids := llmrun(t, "tokenize", m, "--text", rc.stdout, "--add-special-tokens=false")
	assert.Equal(t, strings.Count(ids.stdout, ",")+1, chat.Prompt)

	// A stop string from the middle of the text: the output ends just
	// before it, and generation stops there.
	text := []rune(*g.Text)
	require.Greater(t, len(text), 20)
	stop := string(text[10:13])
	want := (*g.Text)[:strings.Index(*g.Text, stop)]
	s := parseTextGeneration(t, llmrun(t, append(args, "--format", "json", "--stop", stop, "--stop", "never in it")...))
	assert.Equal(t, want, *s.Text)
	assert.Equal(t, "stop", s.StopReason)
	assert.Less(t, len(s.IDs), 24)
	assert.Equal(t, g.IDs[:len(s.IDs)], s.IDs)
	r = llmrun(t, append(args, "--stop", stop)...)
	requireOK(t, r)
	assert.Equal(t, want+"\n", r.stdout)

	// --ids keeps printing ids.
	r = llmrun(t, "generate", m, "--ids", "1,2,3", "--max-new-tokens", "3")
	requireOK(t, r)
	assert.Regexp(t, `^\d+ \d+ \d+ \n$`, r.stdout)
}

// TestGenerateTokenizerFlag pairs a model that has no tokenizer files with
// one through --tokenizer.
func TestGenerateTokenizerFlag(t *testing.T) {
	t.Parallel()
	smol := testshared.Path(t, "tokenizers", "smollm2-135m-instruct")
	bare := textModel(t, synth.Options{Tokenizer: "none", Vocab: 49152, Seed: 1})
	r := llmrun(t, "generate", bare, "--prompt", "Hello")
	require.Equal(t, 2, r.code, r.stderr)
	assert.Contains(t, r.stderr, "has no tokenizer")
	assert.Contains(t, r.stderr, "--tokenizer")
	assert.Contains(t, r.stderr, "--ids")

	withTok := textModel(t, synth.Options{Seed: 1})
	a := parseTextGeneration(t, llmrun(t, "generate", bare, "--tokenizer", smol, "--prompt", "Hello", "--chat", "--max-new-tokens", "8", "--format", "json"))
	b := parseTextGeneration(t, llmrun(t, "generate", withTok, "--prompt", "Hello", "--chat", "--max-new-tokens", "8", "--format", "json"))
	assert.Equal(t, b, a, "same seed, same weights: the same text whether the tokenizer is in the folder or not")

	// A tokenizer larger than the model's vocabulary is refused.
	small := textModel(t, synth.Options{Tokenizer: "none", Seed: 1})
	r = llmrun(t, "generate", small, "--tokenizer", smol, "--prompt", "Hello")
	require.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "49152 tokens, more than the 512")
}

// chatStats are the --stats lines of llmrun chat.
var statsLine = regexp.MustCompile(`turn (\d+): (\d+) tokens, (\d+) from the cache \| prefill (\d+) tokens`)

type turnStats struct{ turn, tokens, cached, prefilled int }

func chatStats(t *testing.T, stderr string) []turnStats {
	t.Helper()
	var s []turnStats
	for _, m := range statsLine.FindAllStringSubmatch(stderr, -1) {
		var n [4]int
		for i := range n {
			n[i], _ = strconv.Atoi(m[i+1])
		}
		s = append(s, turnStats{n[0], n[1], n[2], n[3]})
	}
	return s
}

// chatTurn is a line of chat --format json.
type chatTurn struct {
	Turn               int    `json:"turn"`
	Reply              string `json:"reply"`
	IDs                []int  `json:"ids"`
	ConversationTokens int    `json:"conversation_tokens"`
	CachedTokens       int    `json:"cached_tokens"`
	PromptTokens       int    `json:"prompt_tokens"`
	StopReason         string `json:"stop_reason"`
	Error              string `json:"error"`
}

func chatTurns(t *testing.T, r result) []chatTurn {
	t.Helper()
	requireOK(t, r)
	var turns []chatTurn
	for _, line := range jsonLines(t, r.stdout) {
		var c chatTurn
		require.NoError(t, json.Unmarshal([]byte(line), &c), line)
		turns = append(turns, c)
	}
	return turns
}

func TestChat(t *testing.T) {
	t.Parallel()
	questions := []string{"Hi!", "What is 2+2?", "And 3+3?"}
	// Seed 2's replies are newlines, which byte-level BPE merges with the
	// newline before them when the next turn re-encodes the conversation:
	// the cache must be rewound a little. Seed 1's re-encode as generated.
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			m := textModel(t, synth.Options{Seed: seed})
			in := questions[0] + "\n\n" + questions[1] + "\n" + questions[2] + "\n"
			turns := chatTurns(t, llmrunIn(t, in, "chat", m, "--max-new-tokens", "12", "--format", "json", "--system", "You are terse."))
			require.Len(t, turns, 3, "three turns (the blank line is skipped)")
			assert.Equal(t, 0, turns[0].CachedTokens)
			assert.Equal(t, turns[0].ConversationTokens, turns[0].PromptTokens)
			msgs := []map[string]string{{"role": "system", "content": "You are terse."}}
			for k, turn := range turns {
				assert.Equal(t, k+1, turn.Turn)
				assert.Equal(t, turn.ConversationTokens, turn.CachedTokens+turn.PromptTokens)
				if k > 0 {
					// The cache holds the conversation so far: only the new
					// turn is prefilled.
					prev := turns[k-1]
					assert.GreaterOrEqual(t, turn.CachedTokens, prev.ConversationTokens-1, "turn %d reuses the cache", k+1)
					assert.Less(t, turn.PromptTokens, turn.ConversationTokens, "turn %d prefills only the new part", k+1)
					if seed == 1 {
						assert.Equal(t, prev.ConversationTokens+len(prev.IDs)-1, turn.CachedTokens, "everything but the reply's last token is reused")
					}
				}
				// The reply is what a fresh greedy generation after the whole
				// rendered conversation gives.
				msgs = append(msgs, map[string]string{"role": "user", "content": questions[k]})
				rc := llmrunIn(t, marshal(t, map[string]any{"messages": msgs, "add_generation_prompt": true})+"\n", "render-chat", m, "--jsonl")
				requireOK(t, rc)
				var rendered struct{ IDs []int }
				require.NoError(t, json.Unmarshal([]byte(rc.stdout), &rendered))
				assert.Len(t, rendered.IDs, turn.ConversationTokens)
				fresh := parseGeneration(t, llmrun(t, "generate", m, "--ids", idList(rendered.IDs), "--max-new-tokens", "12", "--format", "json"))
				assert.Equal(t, fresh.IDs, turn.IDs, "turn %d: the cached conversation generates what a fresh one does", k+1)
				msgs = append(msgs, map[string]string{"role": "assistant", "content": turn.Reply})
			}

			// The text format streams the same replies.
			r := llmrunIn(t, in, "chat", m, "--max-new-tokens", "12", "--system", "You are terse.")
			requireOK(t, r)
			assert.Equal(t, turns[0].Reply+"\n"+turns[1].Reply+"\n"+turns[2].Reply+"\n", r.stdout)
			assert.Empty(t, r.stderr)
		})
	}

	// --stats prints a summary line per turn; /reset starts over (the
	// system prompt stays cached), /exit ends.
	m := textModel(t, synth.Options{Seed: 1})
	r := llmrunIn(t, "Hi!\n/reset\nHi!\n/exit\nnever read\n", "chat", m, "--max-new-tokens", "4", "--stats")
	requireOK(t, r)
	st := chatStats(t, r.stderr)
	require.Len(t, st, 2)
	assert.Equal(t, 1, st[1].turn)
	assert.Equal(t, st[0].tokens, st[1].tokens)
	assert.Greater(t, st[1].cached, 0)
	assert.Contains(t, r.stderr, "new conversation")
}

func TestChatContextFull(t *testing.T) {
	t.Parallel()
	m := textModel(t, synth.Options{Seed: 2, MaxPositions: 64})
	// SmolLM2's template adds a 30-token system prompt: the first turn
	// fits, the second does not; after /reset a turn fits again.
	in := "Hi!\nTell me a long story about a dragon and a knight, please, with many details.\n/reset\nHi!\n"
	r := llmrunIn(t, in, "chat", m, "--max-new-tokens", "16", "--stats")
	requireOK(t, r)
	assert.Contains(t, r.stderr, "the context is full")
	assert.Contains(t, r.stderr, "/reset")
	assert.Contains(t, r.stderr, "/exit")
	st := chatStats(t, r.stderr)
	require.Len(t, st, 2, "stderr:\n%s", r.stderr)
	assert.Equal(t, 1, st[1].turn)
	turns := chatTurns(t, llmrunIn(t, in, "chat", m, "--max-new-tokens", "16", "--format", "json"))
	require.Len(t, turns, 3)
	assert.Contains(t, turns[1].Error, "the context is full")

	// A reply that runs into the end of the context says so too.
	r = llmrunIn(t, "Hi!\n", "chat", m, "--max-new-tokens", "100", "--stats")
	requireOK(t, r)
	assert.Contains(t, r.stderr, "the reply reached the end of the model's 64 positions")
}

// TestTextArtifact compiles the synthetic model and runs text through the
// artifact, which carries the tokenizer and chat template.
func TestTextArtifact(t *testing.T) {
	t.Parallel()
	m := textModel(t, synth.Options{Seed: 4})
	art := filepath.Join(t.TempDir(), "art")
	_, err := compiler.Compile(m, art, compiler.Options{Backend: "interp", MaxSeq: 128, PrefillChunk: 16})
	require.NoError(t, err)
	args := []string{"--prompt", "What is 2+2?", "--chat", "--max-new-tokens", "16", "--format", "json"}
	a := parseTextGeneration(t, llmrun(t, append([]string{"generate", art}, args...)...))
	b := parseTextGeneration(t, llmrun(t, append([]string{"generate", m}, args...)...))
	assert.Equal(t, b.IDs, a.IDs, "greedy: the artifact generates what the model folder does")
	assert.Equal(t, *b.Text, *a.Text)

	for _, cmd := range [][]string{{"tokenize", art, "--text", "Hello"}, {"render-chat", art, "--user", "Hello"}} {
		x, y := llmrun(t, cmd...), llmrun(t, append([]string{cmd[0], m}, cmd[2:]...)...)
		requireOK(t, x)
		assert.Equal(t, y.stdout, x.stdout, cmd[0])
	}

	r := llmrunIn(t, "Hi!\nWhat is 2+2?\n", "chat", art, "--max-new-tokens", "8", "--stats")
	requireOK(t, r)
	st := chatStats(t, r.stderr)
	require.Len(t, st, 2, r.stderr)
	assert.Less(t, st[1].prefilled, st[1].tokens/2, "the static cache is kept across turns")
}

func TestTextBadInput(t *testing.T) {
	t.Parallel()
	m := textModel(t, synth.Options{Seed: 1})
	smol := testshared.Path(t, "tokenizers", "smollm2-135m-instruct")

	// Tokenizer folders with broken chat templates, and one with an
	// unsupported tokenizer type.
	withTemplate := func(tmpl string) string {
		dir := t.TempDir()
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
			data, err := os.ReadFile(filepath.Join(smol, f))
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, f), data, 0o644))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte(tmpl), 0o644))
		return dir
	}
	badTmpl := withTemplate("{% for m in messages %}\n{{ m.content | nosuchfilter }}\n{% endfor %}")
	badRender := withTemplate("{% for m in messages %}\n{{ m.content.nosuchmethod() }}\n{% endfor %}")
	raises := withTemplate("{% for m in messages %}\n{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% endfor %}")
	badType := t.TempDir()
	data, err := os.ReadFile(filepath.Join(smol, "tokenizer.json"))
	require.NoError(t, err)
	var tj map[string]any
	require.NoError(t, json.Unmarshal(data, &tj))
	tj["model"].(map[string]any)["type"] = "WordPiece"
	data, err = json.Marshal(tj)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(badType, "tokenizer.json"), data, 0o644))

	bare := textModel(t, synth.Options{Tokenizer: "none", Vocab: 50257})
	gpt2 := testshared.Path(t, "tokenizers", "gpt2")

	tests := []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  []string
	}{
		{"invalid UTF-8 prompt", "", []string{"generate", m, "--prompt", "abc\xff"}, 2, []string{"--prompt is not valid UTF-8", "byte offset 3"}},
		{"invalid UTF-8 text", "", []string{"tokenize", m, "--text", "\xc3("}, 2, []string{"--text is not valid UTF-8", "byte offset 0"}},
		{"prompt and ids", "", []string{"generate", m, "--prompt", "a", "--ids", "1"}, 2, []string{"not both"}},
		{"chat without prompt", "", []string{"generate", m, "--ids", "1", "--chat"}, 2, []string{"--prompt"}},
		{"system without chat", "", []string{"generate", m, "--prompt", "a", "--system", "s"}, 2, []string{"--system needs --chat"}},
		{"empty stop", "", []string{"generate", m, "--prompt", "a", "--stop", ""}, 2, []string{"stop string must not be empty"}},
		{"empty prompt", "", []string{"generate", m, "--prompt", ""}, 2, []string{"encodes to no tokens"}},
		{"template error", "", []string{"generate", m, "--tokenizer", badTmpl, "--prompt", "a", "--chat"}, 1,
			[]string{"line 2", "nosuchfilter"}},
		{"template error when loading", "", []string{"render-chat", badTmpl, "--user", "a"}, 1, []string{"line 2", "chat_template.jinja"}},
		{"template error when rendering", "", []string{"generate", m, "--tokenizer", badRender, "--prompt", "a", "--chat"}, 1,
			[]string{"chat_template.jinja", "line 2", "nosuchmethod"}},
		{"template raises", "", []string{"render-chat", raises, "--system", "a", "--user", "b"}, 1,
			[]string{"chat_template.jinja", "chat template line 2 refuses the conversation: System role not supported"}},
		{"unsupported tokenizer", "", []string{"tokenize", badType, "--text", "a"}, 1, []string{`"WordPiece"`}},
		{"no chat template", "", []string{"render-chat", testshared.Path(t, "tokenizers", "gpt2"), "--user", "a"}, 1,
			[]string{"has no chat template"}},
		{"no tokenizer", "", []string{"tokenize", t.TempDir(), "--text", "a"}, 1, []string{"has no tokenizer.json"}},
		{"chat without a tokenizer", "Hi\n", []string{"chat", bare}, 2, []string{"has no tokenizer", "--tokenizer DIR"}},
		{"chat without a template", "Hi\n", []string{"chat", bare, "--tokenizer", gpt2}, 1, []string{"has no chat template"}},
		{"--chat without a template", "", []string{"generate", bare, "--tokenizer", gpt2, "--prompt", "Hi", "--chat"}, 1,
			[]string{"has no chat template"}},
		{"tokenize needs a mode", "", []string{"tokenize", m}, 2, []string{"--text TEXT or --jsonl"}},
		{"bad JSON line", "{\"text\": \"a\"}\nnot json\n", []string{"tokenize", m, "--jsonl"}, 1, []string{"stdin line 2"}},
		{"missing field", "{\"txt\": \"a\"}\n", []string{"tokenize", m, "--jsonl"}, 1, []string{"stdin line 1", `"text" is missing`}},
		{"id outside the vocabulary", "", []string{"detokenize", m, "--ids", "1,999999"}, 2, []string{"999999"}},
		{"id outside the vocabulary (jsonl)", "{\"ids\": [999999]}\n", []string{"detokenize", m, "--jsonl"}, 1, []string{"stdin line 1", "999999"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r result
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panic: %v\n%s", p, debug.Stack())
					}
				}()
				r = llmrunIn(t, tc.stdin, tc.args...)
			}()
			assert.Equal(t, tc.code, r.code, "stderr:\n%s", r.stderr)
			for _, w := range tc.want {
				assert.Contains(t, r.stderr, w)
			}
		})
	}
}

func TestSynthCommand(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "m")
	r := llmc(t, "synth", "--shape", "stories260K", "-o", dir, "--dtype", "bf16", "--seed", "3",
		"--tokenizer", testshared.Path(t, "tokenizers", "tinyllama-1.1b-chat-v1.0"), "--tied=false")
	requireOK(t, r)
	cfg, err := os.ReadFile(filepath.Join(dir, "config.json"))
	require.NoError(t, err)
	assert.Contains(t, string(cfg), `"vocab_size": 32000`)
	assert.Contains(t, string(cfg), `"tie_word_embeddings": false`)
	assert.Contains(t, string(cfg), `"torch_dtype": "bfloat16"`)
	g := parseTextGeneration(t, llmrun(t, "generate", dir, "--prompt", "Hello", "--chat", "--max-new-tokens", "4", "--format", "json"))
	assert.Len(t, g.IDs, 4)

	r = llmc(t, "synth", "--shape", "stories260K", "-o", dir)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stderr, "not empty")
	r = llmc(t, "synth", "--shape", "nope", "-o", dir)
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "tinyllama-1.1b")
	r = llmc(t, "synth", "--help")
	assert.Zero(t, r.code)
	for _, s := range []string{"stories15M", "stories110M", "tinyllama-1.1b", "5632"} {
		assert.Contains(t, r.stderr, s)
	}
}
