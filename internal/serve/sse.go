package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// sse writes Server-Sent Events: "data: JSON\n\n", flushed each time.
type sse struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	err error
}

func (e *sse) send(v any) {
	if e.err != nil {
		return
	}
	var b bytes.Buffer
	b.WriteString("data: ")
	enc := json.NewEncoder(&b) // ends with a newline
	enc.SetEscapeHTML(false)
	if e.err = enc.Encode(v); e.err != nil {
		return
	}
	b.WriteString("\n")
	e.raw(b.Bytes())
}

func (e *sse) raw(b []byte) {
	if e.err != nil {
		return
	}
	if _, e.err = e.w.Write(b); e.err == nil {
		e.err = e.rc.Flush()
	}
}

// stream writes j's output as OpenAI's streamed chunks: for chat, a first
// chunk with the assistant's role, one chunk per piece of text, a last
// chunk with the finish reason, a usage chunk with
// stream_options.include_usage, then data: [DONE]. An error after the
// stream started is sent as an error event, and the stream ends without
// [DONE].
func (s *Server) stream(w http.ResponseWriter, ctx context.Context, j *job, pr *request, id string) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	e := &sse{w: w, rc: http.NewResponseController(w)}
	created := time.Now().Unix()
	chunk := func(text string, finish *string, role bool) map[string]any {
		if pr.chat {
			delta := map[string]any{}
			if role {
				delta["role"] = "assistant"
				delta["content"] = ""
			} else if finish == nil {
				delta["content"] = text
			}
			return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": pr.model,
				"choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}}}
		}
		return map[string]any{"id": id, "object": "text_completion", "created": created, "model": pr.model,
			"choices": []map[string]any{{"index": 0, "text": text, "finish_reason": finish, "logprobs": nil}}}
	}
	if pr.chat {
		e.send(chunk("", nil, true))
	} else {
		e.rc.Flush()
	}
	for e.err == nil {
		select {
		case <-j.notify:
		case <-ctx.Done():
			// The client is gone, or the request timed out: the scheduler
			// frees the slot at its next step.
			e.send(map[string]any{"error": jobError(context.Cause(ctx))})
			return
		}
		if t := j.take(); t != "" {
			e.send(chunk(t, nil, false))
		}
		select {
		case <-j.done:
		default:
			continue
		}
		if t := j.take(); t != "" {
			e.send(chunk(t, nil, false))
		}
		res := j.result()
		if res.err != nil {
			e.send(map[string]any{"error": jobError(res.err)})
			return
		}
		finish := res.finish
		e.send(chunk("", &finish, false))
		if pr.usage {
			e.send(map[string]any{"id": id, "object": chunk("", nil, false)["object"], "created": created, "model": pr.model,
				"choices": []any{}, "usage": makeUsage(res)})
		}
		e.raw([]byte("data: [DONE]\n\n"))
		return
	}
}
