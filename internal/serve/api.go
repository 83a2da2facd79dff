package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/llmc-dev/llmc/chattemplate"
)

// apiError is an error as the OpenAI API returns it, with its HTTP status.
type apiError struct {
	Status  int     `json:"-"`
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
	// RetryAfter, in seconds, is sent as Retry-After when > 0.
	RetryAfter int `json:"-"`
}

func (e *apiError) Error() string { return e.Message }

func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// invalid is a 400 about param.
func invalid(param, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...), Type: "invalid_request_error", Param: str(param)}
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.RetryAfter))
	}
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// samplingFields are the request fields both endpoints share.
type samplingFields struct {
	Model            string          `json:"model"`
	Temperature      *float64        `json:"temperature"`
	TopP             *float64        `json:"top_p"`
	TopK             *int            `json:"top_k"`              // llama.cpp's extension
	MinP             *float64        `json:"min_p"`              // llama.cpp's extension
	RepetitionPen    *float64        `json:"repetition_penalty"` // llama.cpp's extension
	MaxTokens        *int            `json:"max_tokens"`
	Stop             json.RawMessage `json:"stop"`
	Seed             *int64          `json:"seed"`
	Stream           bool            `json:"stream"`
	StreamOptions    *streamOptions  `json:"stream_options"`
	N                *int            `json:"n"`
	PresencePenalty  *float64        `json:"presence_penalty"`
	FrequencyPenalty *float64        `json:"frequency_penalty"`
	LogitBias        map[string]any  `json:"logit_bias"`
	IgnoreEOS        bool            `json:"ignore_eos"` // llama.cpp's extension, for benchmarks
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	samplingFields
	Messages            []chatMessage   `json:"messages"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Logprobs            *bool           `json:"logprobs"`
	Tools               json.RawMessage `json:"tools"`
	ResponseFormat      *struct {
		Type string `json:"type"`
	} `json:"response_format"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type completionRequest struct {
	samplingFields
	Prompt   json.RawMessage `json:"prompt"`
	Echo     bool            `json:"echo"`
	Suffix   *string         `json:"suffix"`
	Logprobs *int            `json:"logprobs"`
	BestOf   *int            `json:"best_of"`
}

// decodeBody reads a JSON request body into v: a malformed body, or a
// field of the wrong type, is a 400 naming the field.
func decodeBody(r io.Reader, v any) *apiError {
	data, err := io.ReadAll(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &apiError{Status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error",
				Message: fmt.Sprintf("the request body is larger than %d bytes", tooBig.Limit)}
		}
		return invalid("", "reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return invalid("", "the request body is empty: want a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			// Fields of the embedded struct are named by their path.
			field := strings.ReplaceAll(te.Field, "samplingFields.", "")
			return invalid(field, "field %q is a JSON %s, want %s", field, te.Value, jsonKind(te.Type.String()))
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return invalid("", "the request body is not valid JSON: %v (at byte %d)", err, se.Offset)
		}
		return invalid("", "the request body is not a JSON object of the expected shape: %v", err)
	}
	return nil
}

// jsonKind words a Go type as the JSON it decodes from.
func jsonKind(goType string) string {
	t := strings.TrimPrefix(goType, "*")
	switch {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "a boolean"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	}
	return "an object"
}

// stops parses "stop": a string or an array of at most 4 strings.
func parseStops(raw json.RawMessage) ([]string, *apiError) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		if one == "" {
			return nil, nil
		}
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, invalid("stop", "stop must be a string or an array of strings")
	}
	if len(list) > 4 {
		return nil, invalid("stop", "stop has %d strings, at most 4 are allowed", len(list))
	}
	var out []string
	for _, s := range list {
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// checkCommon refuses the shared fields the server does not implement or
// that are out of range.
func (f *samplingFields) check() *apiError {
	if f.N != nil && *f.N != 1 {
		return invalid("n", "n is %d: this server generates one choice per request (n = 1)", *f.N)
	}
	for _, p := range []struct {
		name string
		v    *float64
	}{{"presence_penalty", f.PresencePenalty}, {"frequency_penalty", f.FrequencyPenalty}} {
		if p.v != nil && *p.v != 0 {
			return invalid(p.name, "%s is not supported (repetition_penalty is)", p.name)
		}
	}
	if len(f.LogitBias) > 0 {
		return invalid("logit_bias", "logit_bias is not supported")
	}
	for _, p := range []struct {
		name string
		v    *float64
	}{{"temperature", f.Temperature}, {"top_p", f.TopP}, {"min_p", f.MinP}, {"repetition_penalty", f.RepetitionPen}} {
		if p.v != nil && (math.IsNaN(*p.v) || math.IsInf(*p.v, 0)) {
			return invalid(p.name, "%s must be a finite number", p.name)
		}
	}
	if f.Seed != nil && *f.Seed < 0 {
		return invalid("seed", "seed is %d, want a non-negative integer", *f.Seed)
	}
	if f.MaxTokens != nil && *f.MaxTokens < 1 {
		return invalid("max_tokens", "max_tokens is %d, want at least 1", *f.MaxTokens)
	}
	if f.StreamOptions != nil && !f.Stream {
		return invalid("stream_options", "stream_options is only allowed with stream: true")
	}
	return nil
}

func (c *chatRequest) check() *apiError {
	if err := c.samplingFields.check(); err != nil {
		return err
	}
	if c.MaxCompletionTokens != nil {
		if *c.MaxCompletionTokens < 1 {
			return invalid("max_completion_tokens", "max_completion_tokens is %d, want at least 1", *c.MaxCompletionTokens)
		}
		if c.MaxTokens == nil {
			c.MaxTokens = c.MaxCompletionTokens
		}
	}
	if c.Logprobs != nil && *c.Logprobs {
		return invalid("logprobs", "logprobs are not supported")
	}
	if len(c.Tools) > 0 && string(c.Tools) != "null" && string(c.Tools) != "[]" {
		return invalid("tools", "tools (function calling) are not supported")
	}
	if c.ResponseFormat != nil && c.ResponseFormat.Type != "" && c.ResponseFormat.Type != "text" {
		return invalid("response_format", "response_format %q is not supported (only text)", c.ResponseFormat.Type)
	}
	if len(c.Messages) == 0 {
		return invalid("messages", "messages is required: a non-empty array of {role, content}")
	}
	return nil
}

// messages turns the request's messages into the chat template's.
func (c *chatRequest) messages() ([]chattemplate.Message, *apiError) {
	out := make([]chattemplate.Message, 0, len(c.Messages))
	for i, m := range c.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		role := m.Role
		switch role {
		case "system", "user", "assistant", "tool":
		case "developer": // the newer name of system
			role = "system"
		case "":
			return nil, invalid(param+".role", "%s has no role", param)
		default:
			return nil, invalid(param+".role", "%s has role %q, want system, developer, user, assistant or tool", param, m.Role)
		}
		text, err := messageText(m.Content)
		if err != nil {
			return nil, invalid(param+".content", "%s: %s", param, err)
		}
		out = append(out, chattemplate.Message{Role: role, Content: text})
	}
	return out, nil
}

// messageText reads a message's content: a string, or an array of text
// parts ({"type": "text", "text": ...}) joined together.
func messageText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or an array of content parts")
	}
	var b strings.Builder
	for k, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part %d is of type %q: only text parts are supported", k, p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func (c *completionRequest) check() *apiError {
	if err := c.samplingFields.check(); err != nil {
		return err
	}
	switch {
	case c.Echo:
		return invalid("echo", "echo is not supported")
	case c.Suffix != nil && *c.Suffix != "":
		return invalid("suffix", "suffix (insertion) is not supported")
	case c.Logprobs != nil:
		return invalid("logprobs", "logprobs are not supported")
	case c.BestOf != nil && *c.BestOf != 1:
		return invalid("best_of", "best_of is %d: this server generates one choice per request", *c.BestOf)
	}
	return nil
}

// prompt reads "prompt": a string, an array of one string, an array of
// token ids, or an array of one array of token ids. Text is returned as
// text, ids as ids.
func (c *completionRequest) prompt() (text string, ids []int, err *apiError) {
	raw := c.Prompt
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil, invalid("prompt", "prompt is required: a string or an array of token ids")
	}
	if json.Unmarshal(raw, &text) == nil {
		return text, nil, nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		if len(texts) != 1 {
			return "", nil, invalid("prompt", "prompt holds %d strings: this server takes one prompt per request", len(texts))
		}
		return texts[0], nil, nil
	}
	if json.Unmarshal(raw, &ids) == nil {
		if len(ids) == 0 {
			return "", nil, invalid("prompt", "prompt is an empty array of token ids")
		}
		return "", ids, nil
	}
	var lists [][]int
	if json.Unmarshal(raw, &lists) == nil {
		if len(lists) != 1 || len(lists[0]) == 0 {
			return "", nil, invalid("prompt", "prompt holds %d token arrays: this server takes one non-empty prompt per request", len(lists))
		}
		return "", lists[0], nil
	}
	return "", nil, invalid("prompt", "prompt must be a string, an array of one string, or an array of token ids")
}

// checkText refuses text that is not UTF-8 (JSON strings are, unless they
// hold lone surrogates, which Go decodes to U+FFFD).
func checkText(param, s string) *apiError {
	if !utf8.ValidString(s) {
		return invalid(param, "%s is not valid UTF-8", param)
	}
	return nil
}

// usage is the token accounting of a response.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
	// PromptTokensDetails says how many prompt tokens a slot's cache held.
	PromptTokensDetails *struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details,omitempty"`
}

func makeUsage(r result) *usage {
	u := &usage{PromptTokens: r.promptTokens, CompletionTokens: r.ids, TotalTokens: r.promptTokens + r.ids}
	u.PromptTokensDetails = &struct {
		CachedTokens int `json:"cached_tokens"`
	}{r.cached}
	return u
}
