package chattemplate

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/tools/txtar"
)

// TestReferenceChats renders every conversation of the shared tokenizer
// fixtures and compares with the reference rendering byte for byte.
func TestReferenceChats(t *testing.T) {
	root := testshared.Path(t, "tokenizers")
	for _, model := range []string{"tinyllama-1.1b-chat-v1.0", "smollm2-135m-instruct", "phi-3.5-mini-instruct"} {
		t.Run(model, func(t *testing.T) {
			tmpl, err := Load(filepath.Join(root, model))
			require.NoError(t, err)
			f, err := os.Open(filepath.Join(root, model, "chat.jsonl"))
			require.NoError(t, err)
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<24)
			n := 0
			for sc.Scan() {
				n++
				var c struct {
					Messages            []Message `json:"messages"`
					AddGenerationPrompt bool      `json:"add_generation_prompt"`
					Rendered            string    `json:"rendered"`
				}
				require.NoError(t, json.Unmarshal(sc.Bytes(), &c), "line %d", n)
				t.Run(fmt.Sprintf("line%d", n), func(t *testing.T) {
					got, err := tmpl.Render(c.Messages, c.AddGenerationPrompt)
					require.NoError(t, err)
					assert.Equal(t, c.Rendered, got)
				})
			}
			require.NoError(t, sc.Err())
			assert.Positive(t, n)
		})
	}
}

// pinnedClock is the instant testdata/jinja2ref.py renders strftime_now at.
var pinnedClock = time.Date(2024, 7, 6, 15, 4, 5, 0, time.UTC)

var testTokens = SpecialTokens{BOS: "<s>", EOS: "</s>", UNK: "<unk>", PAD: "</s>"}

var testMessages = []Message{
	{Role: "system", Content: "  Be brief.  "},
	{Role: "user", Content: "Hi there"},
	{Role: "assistant", Content: "Hello!"},
	{Role: "user", Content: "Bye"},
}

// TestRender runs the cases in testdata/render, whose expected output was
// written by Python jinja2 (see testdata/README.md).
func TestRender(t *testing.T) {
	paths, err := filepath.Glob("testdata/render/*.txtar")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(path)
			require.NoError(t, err)
			files := map[string]string{}
			for _, f := range ar.Files {
				files[f.Name] = strings.TrimSuffix(string(f.Data), "\n")
			}
			src, ok := files["template"]
			require.True(t, ok, "no template file")
			msgs := testMessages
			if m, ok := files["messages.json"]; ok {
				msgs = nil
				require.NoError(t, json.Unmarshal([]byte(m), &msgs))
			}
			agp := !strings.Contains(string(ar.Comment), "add_generation_prompt: false")

			tmpl, err := New(src, testTokens)
			var got string
			if err == nil {
				tmpl.now = func() time.Time { return pinnedClock }
				got, err = tmpl.Render(msgs, agp)
			}
			if want, ok := files["error"]; ok {
				require.Error(t, err)
				assert.Contains(t, err.Error(), want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, files["want"], got)
		})
	}
}

func render(t *testing.T, src string) (string, error) {
	t.Helper()
	tmpl, err := New(src, testTokens)
	if err != nil {
		return "", err
	}
	return tmpl.Render(testMessages[1:2], true)
}

// TestWhitespace pins jinja2's whitespace rules with trim_blocks and
// lstrip_blocks; the expected values come from jinja2 3.1.6.
func TestWhitespace(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"trim_blocks drops the newline after a block tag", "{% if true %}\nA\n{% endif %}\nB", "A\nB"},
		{"trim_blocks drops the newline after a comment", "{# c #}\nB", "B"},
		{"trim_blocks keeps the newline after an expression", "{{ 'A' }}\nB", "A\nB"},
		{"trim_blocks removes one newline only", "{% if true %}\n\nA{% endif %}", "\nA"},
		{"+%} disables trim_blocks", "{% if true +%}\nA{% endif %}", "\nA"},
		{"lstrip_blocks strips indentation before a block tag", "A\n    {% if true %}\n    B\n    {% endif %}\nC", "A\n    B\nC"},
		{"lstrip_blocks strips tabs at the template start", "\t {% if true %}A{% endif %}", "A"},
		{"lstrip_blocks keeps text before a tag on the same line", "A  {% if true %}B{% endif %}  C", "A  B  C"},
		{"lstrip_blocks keeps spaces after an expression", "{{ 'A' }}  {% if true %}B{% endif %}", "A  B"},
		{"lstrip_blocks does not touch expression tags", "A\n  {{ 'B' }}", "A\n  B"},
		{"lstrip_blocks applies to comments", "A\n   {# c #}\nB", "A\nB"},
		{"{%+ disables lstrip_blocks", "A\n   {%+ if true %}\nB{% endif %}", "A\n   B"},
		{"{%- strips all whitespace before", "A \n\t {%- if true %}B{% endif %}", "AB"},
		{"-%} strips all whitespace after", "{% if true -%}  \n\n  B{% endif %}", "B"},
		{"{{- and -}} strip around an expression", "A \n {{- 'B' -}} \n C", "ABC"},
		{"{#- and -#} strip around a comment", "A  {#- c -#}  B", "AB"},
		{"CRLF is normalised before trim_blocks", "{% if true %}\r\nA\r\nB{% endif %}", "A\nB"},
		{"one trailing newline is dropped", "A\n", "A"},
		{"only one trailing newline is dropped", "A\n\n", "A\n"},
		{"raw keeps tags", "{% raw %}{{ x }} {% if %}{% endraw %}", "{{ x }} {% if %}"},
		{"zephyr-style template", "{% for m in messages %}\n{{ '<|' + m.role + '|>\n' + m.content + eos_token }}\n{% endfor %}\n", "<|user|>\nHi there</s>\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := render(t, tc.src)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"unknown filter", "A\n\n{{ messages | foo }}", `chat template line 3, column 15: unknown filter "foo"`},
		{"unknown test", "{% if x is blue %}{% endif %}", `chat template line 1, column 12: unknown test "blue"`},
		{"unclosed block", "{% for m in messages %}\n{{ m }}", `chat template line 1, column 1: unclosed "for" block: missing "endfor"`},
		{"unclosed expression", "A\n{{ 1 + ", `chat template line 2, column 1: unclosed tag: missing "}}"`},
		{"unknown tag", "{% frobnicate %}", `chat template line 1, column 4: unknown tag "frobnicate"`},
		{"stray end tag", "\n  {% endif %}", `chat template line 2, column 6: unexpected "endif"`},
		{"bad token", "{{ 1 $ 2 }}", `chat template line 1, column 6: unexpected character '$'`},
		{"unterminated string", "{{ 'abc }}", `chat template line 1, column 4: unterminated string`},
		{"break outside loop", "{% break %}", `chat template line 1, column 4: "break" outside a for loop`},
		{"undefined attribute of undefined", "{{ x }}\n{{ x.y }}", `chat template line 2, column 6: 'x' is undefined`},
		{"type error", "{% set n = 1 %}\n\n  {{ 'a' + n }}", `chat template line 3, column 10: unsupported operand type(s) for +: 'str' and 'int'`},
		{"calling a string", "{{ 'a'() }}", `chat template line 1, column 4: 'str' object is not callable`},
		{"mutating method", "{{ messages.append(1) }}", `access to attribute 'append' of 'list' object is unsafe`},
		{"division by zero", "{{ 1 // 0 }}", `integer division or modulo by zero`},
		{"range too big", "{% for i in range(1000000) %}{% endfor %}", `range too big`},
		{"exponential value", "{% set x = [1] * 1000 %}{% set y = [x] * 1000 %}{% set z = [y] * 1000 %}{{ z }}", `output larger than`},
		{"huge format width", "{{ '%99999d' % 1 }}", `width or precision too large`},
		{"runaway recursion", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", `maximum call depth`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.src)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			var te *Error
			assert.True(t, errors.As(err, &te), "%T is not *Error", err)
		})
	}
}

func TestRaiseException(t *testing.T) {
	tmpl, err := New("{% for m in messages %}\n{% if m.role == 'system' %}\n"+
		"  {{ raise_exception('System role not supported') }}\n{% endif %}{% endfor %}", testTokens)
	require.NoError(t, err)
	_, err = tmpl.Render(testMessages, true)
	var re *RaiseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "System role not supported", err.Error())
	assert.Equal(t, 3, re.Line)
	assert.Equal(t, 6, re.Col)

	out, err := tmpl.Render(testMessages[1:], true)
	require.NoError(t, err)
	assert.Empty(t, out)
}

func TestSpecialTokensUndefinedWhenEmpty(t *testing.T) {
	tmpl, err := New("{{ bos_token is defined }} {{ pad_token is defined }}", SpecialTokens{BOS: "<s>"})
	require.NoError(t, err)
	got, err := tmpl.Render(nil, false)
	require.NoError(t, err)
	assert.Equal(t, "True False", got)
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	return dir
}

func TestLoad(t *testing.T) {
	const tmpl = "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}"
	msgs := []Message{{Role: "user", Content: "hi"}}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"string template and string tokens", map[string]string{
			"tokenizer_config.json": `{"chat_template": ` + quote(tmpl) + `, "bos_token": "<s>", "eos_token": "</s>"}`,
		}, "<s>user:hi</s>"},
		{"AddedToken objects", map[string]string{
			"tokenizer_config.json": `{"chat_template": ` + quote(tmpl) + `,
				"bos_token": {"__type": "AddedToken", "content": "<|begin|>", "lstrip": false},
				"eos_token": {"content": "<|end|>"}, "pad_token": null}`,
		}, "<|begin|>user:hi<|end|>"},
		{"named templates take default", map[string]string{
			"tokenizer_config.json": `{"chat_template": [{"name": "tool_use", "template": "tools"},
				{"name": "default", "template": ` + quote(tmpl) + `}], "bos_token": "B", "eos_token": "E"}`,
		}, "Buser:hiE"},
		{"chat_template.jinja takes precedence", map[string]string{
			"tokenizer_config.json": `{"chat_template": "old", "bos_token": "B", "eos_token": "E"}`,
			"chat_template.jinja":   tmpl + "\n",
		}, "Buser:hiE"},
		{"chat_template.jinja without tokenizer_config.json", map[string]string{
			"chat_template.jinja": "{{ messages[0].content }}",
		}, "hi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := Load(writeFiles(t, tc.files))
			require.NoError(t, err)
			got, err := tm.Render(msgs, false)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestLoadErrors(t *testing.T) {
	t.Run("no template", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"tokenizer_config.json": `{"bos_token": "<s>"}`})
		_, err := Load(dir)
		require.ErrorIs(t, err, ErrNoTemplate)
		assert.EqualError(t, err, "no chat template in "+filepath.Join(dir, "tokenizer_config.json"))
	})
	t.Run("no files", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Load(dir)
		require.ErrorIs(t, err, ErrNoTemplate)
	})
	t.Run("no default among named templates", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"tokenizer_config.json": `{"chat_template": [{"name": "rag", "template": "x"}]}`})
		_, err := Load(dir)
		require.ErrorIs(t, err, ErrNoTemplate)
		assert.Contains(t, err.Error(), "rag")
	})
	t.Run("syntax error names the file and line", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"chat_template.jinja": "ok\n{% if %}"})
		_, err := Load(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), filepath.Join(dir, "chat_template.jinja")+": chat template line 2")
	})
	t.Run("bad json", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{"tokenizer_config.json": `{`})
		_, err := Load(dir)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "tokenizer_config.json")
	})
}

func TestRenderIsReentrant(t *testing.T) {
	tmpl, err := New("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}", testTokens)
	require.NoError(t, err)
	done := make(chan string)
	for range 4 {
		go func() {
			out, _ := tmpl.Render(testMessages, false)
			done <- out
		}()
	}
	for range 4 {
		assert.Equal(t, "4", <-done)
	}
}
