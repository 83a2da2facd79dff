package serve

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/llmc-dev/llmc/runtime/sample"
)

// Config are a Server's settings; the zero value of a field is its
// default.
type Config struct {
	// APIKey, when set, is the bearer token every /v1 request must carry
	// (Authorization: Bearer KEY). /health and /metrics stay open.
	APIKey string
	// QueueSize is how many requests may wait for a slot (default 64);
	// more are refused with 429.
	QueueSize int
	// RequestTimeout ends a request that has not finished in this long,
	// waiting included (0: no limit).
	RequestTimeout time.Duration
	// ReadHeaderTimeout (default 10s), BodyTimeout (reading the request
	// body, default 30s) and IdleTimeout (a keep-alive connection between
	// requests, default 120s) bound slow or idle clients.
	ReadHeaderTimeout, BodyTimeout, IdleTimeout time.Duration
	// MaxBodyBytes bounds a request body (default 8 MiB).
	MaxBodyBytes int64
	// Log, when set, receives one line per request.
	Log func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 64
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.BodyTimeout, 30*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 8 << 20
	}
	return c
}

// Server serves one Model over the OpenAI API. It answers /health with
// 503 until SetModel gives it the model.
type Server struct {
	cfg      Config
	metrics  *metrics
	ready    atomic.Pointer[loaded]
	draining atomic.Bool
	created  int64

	// base is cancelled when in-flight requests must stop (the end of a
	// shutdown's grace period); every job's context follows it.
	base       context.Context
	cancelBase context.CancelCauseFunc

	http     *http.Server
	serveErr chan error
	once     sync.Once
}

// loaded is a model with its scheduler running.
type loaded struct {
	m       *Model
	sched   *scheduler
	context int // positions a slot holds
	vocab   int
}

// New returns a Server with cfg; it serves nothing until SetModel.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	base, cancel := context.WithCancelCause(context.Background())
	s := &Server{cfg: cfg, metrics: newMetrics(0), created: time.Now().Unix(), base: base, cancelBase: cancel}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// No ReadTimeout or WriteTimeout: they would cut streams short.
		// The body has its own deadline (BodyTimeout) and a request its
		// timeout (RequestTimeout).
		BaseContext: func(net.Listener) context.Context { return context.Background() },
	}
	return s
}

// SetModel starts serving m: its scheduler starts, and /health turns 200.
func (s *Server) SetModel(m *Model) error {
	if m == nil || m.Slots == nil || m.Slots.Len() == 0 {
		return errors.New("serve: no model slots")
	}
	if m.Text == nil {
		return errors.New("serve: the model has no tokenizer")
	}
	if s.ready.Load() != nil {
		return errors.New("serve: the model is set already")
	}
	s.metrics.slots = m.Slots.Len()
	l := &loaded{m: m, sched: newScheduler(m.Slots, s.cfg.QueueSize, s.metrics),
		context: m.Slots.Slot(0).Context(), vocab: m.Slots.Slot(0).VocabSize()}
	go l.sched.run()
	s.ready.Store(l)
	return nil
}

// Start serves HTTP on ln in the background; Shutdown stops it, and Err
// reports why it stopped by itself.
func (s *Server) Start(ln net.Listener) {
	s.serveErr = make(chan error, 1)
	go func() {
		err := s.http.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr <- err
	}()
}

// Err is closed-over Serve's error: it receives when the HTTP server
// stopped (nil after a Shutdown).
func (s *Server) Err() <-chan error { return s.serveErr }

// Shutdown stops accepting requests, lets in-flight ones finish within
// grace, then cancels those still running, and stops the scheduler. It
// reports how many requests it had to cancel.
func (s *Server) Shutdown(grace time.Duration) (cancelled int, err error) {
	s.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err = s.http.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		if l := s.ready.Load(); l != nil {
			cancelled = int(s.metrics.busy.Load()) + len(l.sched.queue)
		}
		s.cancelBase(errShuttingDown)
		// The handlers see their jobs end between two decode steps.
		ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel2()
		if err = s.http.Shutdown(ctx2); err != nil {
			err = s.http.Close()
		}
	}
	s.cancelBase(errShuttingDown)
	if l := s.ready.Load(); l != nil {
		s.once.Do(func() { close(l.sched.stop) })
		<-l.sched.exited
	}
	return cancelled, err
}

// Handler is the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("GET /metrics", s.serveMetrics)
	mux.Handle("GET /v1/models", s.api("models", s.models))
	mux.Handle("GET /v1/models/{id...}", s.api("models", s.model))
	mux.Handle("POST /v1/chat/completions", s.api("chat", s.chat))
	mux.Handle("POST /v1/completions", s.api("completions", s.completions))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: "invalid_request_error",
			Message: fmt.Sprintf("no route %s %s: this server has POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health and GET /metrics", r.Method, r.URL.Path)})
	})
	return mux
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	switch {
	case s.draining.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	case s.ready.Load() == nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "loading"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	s.metrics.write(w)
}

// api wraps a /v1 handler: the API key, the model being loaded, the
// request count by status, and a log line.
func (s *Server) api(endpoint string, h func(w http.ResponseWriter, r *http.Request, l *loaded)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			status := sw.status
			if status == 0 {
				status = 499 // the client went away before anything was written
			}
			s.metrics.request(endpoint, status)
			if s.cfg.Log != nil {
				s.cfg.Log("%s %s %d %.3fs", r.Method, r.URL.Path, status, time.Since(start).Seconds())
			}
		}()
		if s.cfg.APIKey != "" && !s.authorized(r) {
			writeError(sw, &apiError{Status: http.StatusUnauthorized, Type: "invalid_request_error", Code: str("invalid_api_key"),
				Message: "missing or wrong API key: send it as Authorization: Bearer KEY"})
			return
		}
		if s.draining.Load() {
			writeError(sw, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: str("shutting_down"),
				Message: "the server is shutting down", RetryAfter: 1})
			return
		}
		l := s.ready.Load()
		if l == nil {
			writeError(sw, &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: str("loading"),
				Message: "the model is still loading", RetryAfter: 1})
			return
		}
		h(sw, r, l)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(key)), []byte(s.cfg.APIKey)) == 1
}

// statusWriter records the status written, and passes Flush and the
// ResponseController's deadlines through.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func (s *Server) entry(l *loaded) modelEntry {
	return modelEntry{ID: l.m.Name, Object: "model", Created: s.created, OwnedBy: "llmc"}
}

func (s *Server) models(w http.ResponseWriter, r *http.Request, l *loaded) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []modelEntry{s.entry(l)}})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request, l *loaded) {
	if id := r.PathValue("id"); id != l.m.Name {
		writeError(w, unknownModel(id, l))
		return
	}
	writeJSON(w, http.StatusOK, s.entry(l))
}

func unknownModel(name string, l *loaded) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "invalid_request_error", Param: str("model"), Code: str("model_not_found"),
		Message: fmt.Sprintf("the model %q does not exist: this server serves %q", name, l.m.Name)}
}

// readBody decodes the request body into v within the body timeout.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, v any) *apiError {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout)) // unsupported in tests' recorders
	defer rc.SetReadDeadline(time.Time{})
	return decodeBody(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), v)
}

// request is a parsed request, ready to queue.
type request struct {
	chat        bool
	prompt      []int
	streamAfter []int // the ids the text continues (nil for chat)
	stops       []string
	opts        sample.Options
	maxNew      int
	stream      bool
	usage       bool // stream_options.include_usage
	ignoreEOS   bool
	model       string
	promptParam string
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, l *loaded) {
	var req chatRequest
	if err := s.readBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := req.check(); err != nil {
		writeError(w, err)
		return
	}
	if req.Model != l.m.Name {
		writeError(w, s.modelError(req.Model, l))
		return
	}
	if err := l.m.Text.ChatError(); err != nil {
		writeError(w, invalid("messages", "%v: /v1/chat/completions needs one; use /v1/completions with a prompt", err))
		return
	}
	msgs, aerr := req.messages()
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	for i, m := range msgs {
		if aerr := checkText(fmt.Sprintf("messages[%d].content", i), m.Content); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	ids, err := l.m.Text.EncodeChat(msgs)
	if err != nil {
		writeError(w, invalid("messages", "%v", err))
		return
	}
	pr := &request{chat: true, prompt: ids, model: req.Model, promptParam: "messages"}
	if aerr := s.finishRequest(pr, &req.samplingFields, l); aerr != nil {
		writeError(w, aerr)
		return
	}
	s.run(w, r, l, pr)
}

func (s *Server) completions(w http.ResponseWriter, r *http.Request, l *loaded) {
	var req completionRequest
	if err := s.readBody(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	if err := req.check(); err != nil {
		writeError(w, err)
		return
	}
	if req.Model != l.m.Name {
		writeError(w, s.modelError(req.Model, l))
		return
	}
	text, ids, aerr := req.prompt()
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if ids == nil {
		if aerr := checkText("prompt", text); aerr != nil {
			writeError(w, aerr)
			return
		}
		var err error
		if ids, err = l.m.Text.Encode(text); err != nil {
			writeError(w, invalid("prompt", "%v", err))
			return
		}
		if len(ids) == 0 {
			writeError(w, invalid("prompt", "the prompt %q encodes to no tokens", text))
			return
		}
	}
	for k, id := range ids {
		if id < 0 || id >= l.vocab {
			writeError(w, invalid("prompt", "prompt token %d (item %d) is outside the vocabulary 0..%d", id, k, l.vocab-1))
			return
		}
	}
	pr := &request{prompt: ids, streamAfter: ids, model: req.Model, promptParam: "prompt"}
	if aerr := s.finishRequest(pr, &req.samplingFields, l); aerr != nil {
		writeError(w, aerr)
		return
	}
	s.run(w, r, l, pr)
}

func (s *Server) modelError(name string, l *loaded) *apiError {
	if name == "" {
		return invalid("model", "model is required: this server serves %q", l.m.Name)
	}
	return unknownModel(name, l)
}

// finishRequest reads the sampling fields and token limit into pr, and
// checks that the prompt fits the context.
func (s *Server) finishRequest(pr *request, f *samplingFields, l *loaded) *apiError {
	stops, aerr := parseStops(f.Stop)
	if aerr != nil {
		return aerr
	}
	for _, st := range stops {
		if aerr := checkText("stop", st); aerr != nil {
			return aerr
		}
	}
	pr.stops = stops
	o := l.m.Defaults
	if f.Temperature != nil {
		o.Temperature = *f.Temperature
	}
	if f.TopP != nil {
		o.TopP = *f.TopP
	}
	if f.TopK != nil {
		o.TopK = *f.TopK
	}
	if f.MinP != nil {
		o.MinP = *f.MinP
	}
	if f.RepetitionPen != nil {
		o.RepetitionPenalty = *f.RepetitionPen
	}
	if f.Seed != nil {
		o.Seed = uint64(*f.Seed)
	} else {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: fmt.Sprintf("choosing a random seed: %v", err)}
		}
		o.Seed = binary.LittleEndian.Uint64(b[:]) >> 11
	}
	if err := o.Validate(); err != nil {
		var oe *sample.OptionError
		if errors.As(err, &oe) {
			name := map[string]string{"Temperature": "temperature", "TopP": "top_p", "TopK": "top_k", "MinP": "min_p", "RepetitionPenalty": "repetition_penalty"}[oe.Name]
			return invalid(name, "%s is %v: %s", name, oe.Value, oe.Why)
		}
		return invalid("", "%v", err)
	}
	pr.opts = o
	pr.stream = f.Stream
	pr.ignoreEOS = f.IgnoreEOS
	pr.usage = f.StreamOptions != nil && f.StreamOptions.IncludeUsage

	n, ctx := len(pr.prompt), l.context
	if n >= ctx {
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: str(pr.promptParam), Code: str("context_length_exceeded"),
			Message: fmt.Sprintf("the prompt is %d tokens, but the model's context holds %d positions: at most %d prompt tokens leave room for one new token", n, ctx, ctx-1)}
	}
	room := ctx + 1 - n // the last token generated is never fed back
	switch {
	case f.MaxTokens != nil && *f.MaxTokens > room:
		return &apiError{Status: http.StatusBadRequest, Type: "invalid_request_error", Param: str("max_tokens"), Code: str("context_length_exceeded"),
			Message: fmt.Sprintf("the model's context holds %d positions, but the prompt (%d tokens) and max_tokens %d need %d: ask for at most %d tokens", ctx, n, *f.MaxTokens, n+*f.MaxTokens-1, room)}
	case f.MaxTokens != nil:
		pr.maxNew = *f.MaxTokens
	case l.m.DefaultMaxTokens > 0:
		pr.maxNew = min(l.m.DefaultMaxTokens, room)
	default:
		pr.maxNew = room
	}
	return nil
}

var errTimeout = errors.New("the request timed out")

// run queues pr and writes its response.
func (s *Server) run(w http.ResponseWriter, r *http.Request, l *loaded, pr *request) {
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(context.Canceled)
	stopBase := context.AfterFunc(s.base, func() { cancel(context.Cause(s.base)) })
	defer stopBase()
	if d := s.cfg.RequestTimeout; d > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeoutCause(ctx, d, fmt.Errorf("%w after %v", errTimeout, d))
		defer c2()
	}
	sampler, err := sample.New(pr.opts)
	if err != nil {
		writeError(w, invalid("", "%v", err))
		return
	}
	eos := l.m.Text.EOS(pr.chat)
	if pr.ignoreEOS {
		eos = nil
	}
	j := newJob(ctx, pr.prompt, pr.maxNew, sampler, eos, func(emit func(string)) (Stream, error) {
		return l.m.Text.NewStream(pr.streamAfter, eos, pr.stops, emit)
	})
	if err := l.sched.submit(j); err != nil {
		writeError(w, &apiError{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: str("queue_full"), RetryAfter: 1,
			Message: fmt.Sprintf("all %d slots are busy and %d requests wait already: try again shortly", l.m.Slots.Len(), s.cfg.QueueSize)})
		return
	}
	id := responseID(pr.chat)
	if pr.stream {
		s.stream(w, ctx, j, pr, id)
		return
	}
	var text strings.Builder
	for {
		select {
		case <-j.notify:
		case <-ctx.Done():
			writeError(w, jobError(context.Cause(ctx)))
			return
		}
		text.WriteString(j.take())
		select {
		case <-j.done:
		default:
			continue
		}
		text.WriteString(j.take())
		res := j.result()
		if res.err != nil {
			writeError(w, jobError(res.err))
			return
		}
		writeJSON(w, http.StatusOK, s.response(pr, id, text.String(), res))
		return
	}
}

// jobError is the API error of a job that failed.
func jobError(err error) *apiError {
	switch {
	case errors.Is(err, errTimeout):
		return &apiError{Status: http.StatusGatewayTimeout, Type: "timeout", Code: str("timeout"), Message: err.Error()}
	case errors.Is(err, errShuttingDown):
		return &apiError{Status: http.StatusServiceUnavailable, Type: "server_error", Code: str("shutting_down"), Message: err.Error(), RetryAfter: 1}
	case errors.Is(err, context.Canceled):
		return &apiError{Status: 499, Type: "cancelled", Message: "the request was cancelled"}
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()}
}

func responseID(chat bool) string {
	var b [12]byte
	rand.Read(b[:])
	if chat {
		return "chatcmpl-" + hex.EncodeToString(b[:])
	}
	return "cmpl-" + hex.EncodeToString(b[:])
}

// response is the body of a non-streamed response.
func (s *Server) response(pr *request, id, text string, res result) map[string]any {
	created := time.Now().Unix()
	if pr.chat {
		return map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": pr.model,
			"choices": []map[string]any{{
				"index": 0, "message": map[string]any{"role": "assistant", "content": text},
				"finish_reason": res.finish, "logprobs": nil,
			}},
			"usage": makeUsage(res),
		}
	}
	return map[string]any{
		"id": id, "object": "text_completion", "created": created, "model": pr.model,
		"choices": []map[string]any{{"index": 0, "text": text, "finish_reason": res.finish, "logprobs": nil}},
		"usage":   makeUsage(res),
	}
}
