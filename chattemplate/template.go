package chattemplate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// SpecialTokens are the token strings a template sees as bos_token,
// eos_token, unk_token and pad_token. An empty field is left undefined, so
// "pad_token is defined" is false, as in transformers when the tokenizer
// has no such token.
type SpecialTokens struct {
	BOS, EOS, UNK, PAD string
}

// Template is a parsed chat template. It is safe for concurrent use.
type Template struct {
	src    string // normalised source; positions index it
	body   []node
	tokens SpecialTokens
	now    func() time.Time

	maxOutput int
	maxSteps  int
}

// Error is a template syntax or render error at a position in the template.
type Error struct {
	Line, Col int // 1-based; Col counts characters
	Msg       string
}

func (e *Error) Error() string {
	return fmt.Sprintf("chat template line %d, column %d: %s", e.Line, e.Col, e.Msg)
}

// RaiseError is returned when a template calls raise_exception, typically
// because the conversation has a shape the model does not support. Its
// Error is the template's message unchanged.
type RaiseError struct {
	Message   string
	Line, Col int // where raise_exception was called
}

func (e *RaiseError) Error() string { return e.Message }

// ErrNoTemplate is matched (errors.Is) by the error of Load for a model
// directory without a chat template.
var ErrNoTemplate = errors.New("no chat template")

func newError(src string, pos int, msg string) *Error {
	line, col := lineCol(src, pos)
	return &Error{Line: line, Col: col, Msg: msg}
}

func lineCol(src string, pos int) (line, col int) {
	pos = min(max(pos, 0), len(src))
	before := src[:pos]
	line = strings.Count(before, "\n") + 1
	col = utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

// New parses a chat template. Newlines are normalised and one trailing
// newline is dropped, as jinja2 does.
func New(source string, tokens SpecialTokens) (*Template, error) {
	src := normalize(source)
	body, err := parse(src)
	if err != nil {
		return nil, err
	}
	return &Template{
		src:       src,
		body:      body,
		tokens:    tokens,
		now:       time.Now,
		maxOutput: defaultMaxOutput,
		maxSteps:  defaultMaxSteps,
	}, nil
}

// Render renders the conversation. With addGenerationPrompt the template
// appends the header that starts the assistant's reply.
func (t *Template) Render(messages []Message, addGenerationPrompt bool) (string, error) {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		d := newDict()
		d.set("role", m.Role)
		d.set("content", m.Content)
		msgs[i] = d
	}
	root := newScope(nil)
	root.vars["messages"] = msgs
	root.vars["add_generation_prompt"] = addGenerationPrompt
	// transformers always passes these, as None when not given.
	root.vars["tools"] = nil
	root.vars["documents"] = nil
	for name, tok := range map[string]string{
		"bos_token": t.tokens.BOS, "eos_token": t.tokens.EOS,
		"unk_token": t.tokens.UNK, "pad_token": t.tokens.PAD,
	} {
		if tok != "" {
			root.vars[name] = tok
		}
	}
	var out strings.Builder
	r := &renderer{t: t, out: &out}
	if _, err := r.exec(t.body, newScope(root)); err != nil {
		return "", err
	}
	return out.String(), nil
}

// Load reads the chat template of a Hugging Face model directory:
// chat_template.jinja if present (it takes precedence, as in transformers),
// else the "chat_template" of tokenizer_config.json, which is either a
// string or a list of {"name", "template"} from which "default" is taken.
// The special tokens come from tokenizer_config.json.
func Load(dir string) (*Template, error) {
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	var cfg struct {
		ChatTemplate json.RawMessage `json:"chat_template"`
		BOS          json.RawMessage `json:"bos_token"`
		EOS          json.RawMessage `json:"eos_token"`
		UNK          json.RawMessage `json:"unk_token"`
		PAD          json.RawMessage `json:"pad_token"`
	}
	data, err := os.ReadFile(cfgPath)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %v", cfgPath, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	var tokens SpecialTokens
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *string
	}{{"bos_token", cfg.BOS, &tokens.BOS}, {"eos_token", cfg.EOS, &tokens.EOS},
		{"unk_token", cfg.UNK, &tokens.UNK}, {"pad_token", cfg.PAD, &tokens.PAD}} {
		if *f.dst, err = tokenString(f.raw); err != nil {
			return nil, fmt.Errorf("%s: %s: %v", cfgPath, f.name, err)
		}
	}

	src, srcPath, err := readTemplate(dir, cfgPath, cfg.ChatTemplate)
	if err != nil {
		return nil, err
	}
	t, err := New(src, tokens)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", srcPath, err)
	}
	return t, nil
}

func readTemplate(dir, cfgPath string, raw json.RawMessage) (src, path string, err error) {
	path = filepath.Join(dir, "chat_template.jinja")
	data, err := os.ReadFile(path)
	if err == nil {
		return string(data), path, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	if len(raw) == 0 || string(raw) == "null" {
		return "", "", fmt.Errorf("%w in %s", ErrNoTemplate, cfgPath)
	}
	if err := json.Unmarshal(raw, &src); err == nil {
		return src, cfgPath, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", "", fmt.Errorf("%s: chat_template is neither a string nor a list of {name, template}", cfgPath)
	}
	var names []string
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, cfgPath, nil
		}
		names = append(names, n.Name)
	}
	return "", "", fmt.Errorf("%w named \"default\" in %s (it has %s)", ErrNoTemplate, cfgPath, strings.Join(names, ", "))
}

// tokenString reads a special token that is a string, an AddedToken object
// with a "content" field, or null.
func tokenString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", errors.New(`want a string or an object with "content"`)
	}
	return *obj.Content, nil
}
