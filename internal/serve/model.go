// Package serve is llmrun serve: an HTTP server speaking the OpenAI API
// (chat completions, completions, models) over a model's slots, with
// Server-Sent Events streaming, a bounded queue, Prometheus metrics, and a
// load generator that measures it.
//
// One scheduler goroutine owns the model: it prefills a new request in a
// free slot between decode steps, and runs every slot that is decoding
// through one runtime.Slots.Step (continuous batching: requests join and
// leave between steps). Handlers only parse, tokenize, queue and write.
package serve

import (
	"errors"

	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// Model is what a Server serves: a model's slots, how its text is turned
// into ids and back, and its defaults.
type Model struct {
	// Name is the model id requests name ("model": ...) and /v1/models
	// lists.
	Name  string
	Slots runtime.Slots
	Text  Text
	// Defaults are the sampling options for the fields a request leaves
	// out (the model's generation_config.json, as llmrun generate uses
	// it); Seed is ignored.
	Defaults sample.Options
	// DefaultMaxTokens is the token limit of a request without
	// max_tokens; 0 is whatever room the context has left.
	DefaultMaxTokens int
}

// Text turns a model's text into token ids and back. Its methods may be
// called concurrently.
type Text interface {
	// Encode encodes a completion prompt, with the tokenizer's special
	// tokens (such as a leading BOS).
	Encode(text string) ([]int, error)
	// EncodeChat renders messages through the chat template with the
	// assistant's generation prompt and encodes the result. It returns an
	// error wrapping ErrNoChatTemplate when the model has no template.
	EncodeChat(msgs []chattemplate.Message) ([]int, error)
	// ChatError is nil when EncodeChat can work, else why it cannot
	// (wrapping ErrNoChatTemplate).
	ChatError() error
	// EOS are the ids that end a generation; for chat also the template's
	// end-of-turn tokens.
	EOS(chat bool) []int
	// NewStream returns the decoder of the ids generated after prompt
	// (nil for a chat reply, which is decoded on its own): emit receives
	// the text as it becomes final, never a partial UTF-8 sequence, one of
	// eos or another special token, or anything from the first of stops
	// on.
	NewStream(prompt, eos []int, stops []string, emit func(string)) (Stream, error)
}

// Stream decodes one generation's ids into text.
type Stream interface {
	// Add decodes the next generated id; stop is set once a stop string
	// appeared in the text.
	Add(id int) (stop bool, err error)
	// Finish emits the text held back after the generation ended.
	Finish() error
}

// ErrNoChatTemplate says that a model has no chat template, so that only
// /v1/completions can serve it.
var ErrNoChatTemplate = errors.New("the model has no chat template")
