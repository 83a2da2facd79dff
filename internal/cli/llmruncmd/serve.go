package llmruncmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/serve"
	"github.com/llmc-dev/llmc/internal/sysmem"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/wformat"
)

// serveFlags are llmrun serve's settings.
type serveFlags struct {
	addr, apiKey, name, tokenizer string
	slots, queue, maxTokens       int
	timeout, idle, grace          time.Duration
	common                        *commonFlags
}

// apiKeyEnv holds the API key when --api-key is not given, so that it
// does not show in the process list.
const apiKeyEnv = "LLMRUN_API_KEY"

func serveCommand(stdout, stderr io.Writer, lp *runtime.LinkedProgram) *cmdline.Command {
	return &cmdline.Command{
		Name: "serve", Args: "MODEL_OR_ART [--addr HOST:PORT] [--slots N] [--api-key K] [flags]",
		Summary: `Serve a model over HTTP with the OpenAI API.

Routes: POST /v1/chat/completions (messages through the model's chat
template), POST /v1/completions, GET /v1/models, GET /health (503 until the
model is loaded and while shutting down, then 200) and GET /metrics
(Prometheus text). Requests take temperature, top_p, max_tokens, stop
(a string or up to 4), seed and stream (Server-Sent Events ending with
data: [DONE]); also top_k, min_p and repetition_penalty. Fields a request
leaves out take the model's generation_config.json defaults, as llmrun
generate does (else greedy; without max_tokens, up to the context).

--slots sequences are decoded side by side, each with its own KV cache:
a request waits in a queue of --queue (429 with Retry-After when full)
until a slot is free, and is prefilled in the free slot whose cache shares
the longest prefix with its prompt. All decoding slots step together, one
model step at a time; a client that disconnects frees its slot at the next
step. With a seed, a request's output does not depend on the requests
beside it. SIGTERM or Ctrl-C stops accepting requests, lets in-flight ones
finish for --shutdown-timeout, cancels the rest and exits 0.

With --api-key (or $LLMRUN_API_KEY), /v1 requests need the header
Authorization: Bearer KEY.`,
		Examples: []string{
			"llmrun serve ../shared/models/stories260K --addr 127.0.0.1:8080 --slots 4",
			"llmrun serve ~/tinyllama.llmc --addr 0.0.0.0:8080 --api-key secret --threads 2",
			`curl -s localhost:8080/v1/completions -d '{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 32}'`,
		},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			f := registerServe(fs, lp)
			return func(pos []string) error {
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return f.run(ctx, fs, pos, stderr, nil)
			}
		},
	}
}

func registerServe(fs *flag.FlagSet, lp *runtime.LinkedProgram) *serveFlags {
	f := &serveFlags{}
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "address to listen on (HOST:PORT; port 0 picks a free one)")
	fs.IntVar(&f.slots, "slots", 4, "sequences decoded side by side, each with its own KV cache (default 4, or 1 where the model runs one at a time)")
	fs.StringVar(&f.apiKey, "api-key", "", "require this key as Authorization: Bearer KEY on /v1 requests (default $"+apiKeyEnv+")")
	fs.StringVar(&f.name, "model-name", "", "the model id requests name (default: the base name of MODEL_OR_ART)")
	fs.StringVar(&f.tokenizer, "tokenizer", "", "folder with the tokenizer files (tokenizer.json, tokenizer_config.json, chat template) when MODEL has none")
	fs.IntVar(&f.queue, "queue", 64, "requests that may wait for a slot; more get 429")
	fs.IntVar(&f.maxTokens, "max-tokens", 0, "tokens a request without max_tokens may generate (0: generation_config.json's max_new_tokens, else up to the context)")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "end a request not finished in this long, queueing included (0: never)")
	fs.DurationVar(&f.idle, "idle-timeout", 2*time.Minute, "close a keep-alive connection idle this long")
	fs.DurationVar(&f.grace, "shutdown-timeout", 30*time.Second, "on SIGTERM or Ctrl-C, how long in-flight requests may run before they are cancelled")
	f.common = registerCommon(fs)
	f.common.linked = lp
	return f
}

// checkAddr refuses an --addr that is not HOST:PORT with a port in
// 0..65535 (or a service name), before the model is loaded: a usage error.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return cmdline.Usagef("--addr is %q: want HOST:PORT, such as 127.0.0.1:8080 (port 0 picks a free one)", addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return cmdline.Usagef("--addr is %q: want a port number in 0..65535 (or a service name), not %q", addr, port)
	}
	return nil
}

// run serves until ctx is done (a signal), then shuts down. listening, if
// set, is told the address once the server listens.
func (f *serveFlags) run(ctx context.Context, fs *flag.FlagSet, pos []string, stderr io.Writer, listening func(addr string)) error {
	path, err := cmdline.OnePositional(pos, "MODEL_OR_ART")
	if err != nil {
		return err
	}
	set := cmdline.SetFlags(fs)
	switch {
	case f.slots < 1:
		return cmdline.Usagef("--slots is %d, want >= 1", f.slots)
	case f.queue < 1:
		return cmdline.Usagef("--queue is %d, want >= 1", f.queue)
	case f.maxTokens < 0:
		return cmdline.Usagef("--max-tokens is %d, want >= 0", f.maxTokens)
	case f.timeout < 0 || f.idle < 0 || f.grace < 0:
		return cmdline.Usagef("--timeout, --idle-timeout and --shutdown-timeout must not be negative")
	}
	if err := checkAddr(f.addr); err != nil {
		return err
	}
	if err := f.common.check(); err != nil {
		return err // before listening
	}
	if !set["api-key"] {
		f.apiKey = os.Getenv(apiKeyEnv)
	}
	name := f.name
	if name == "" {
		name = filepath.Base(filepath.Clean(path))
	}
	logf := func(format string, args ...any) {
		if !*f.common.quiet {
			fmt.Fprintf(stderr, "llmrun serve: "+format+"\n", args...)
		}
	}
	srv := serve.New(serve.Config{APIKey: f.apiKey, QueueSize: f.queue, RequestTimeout: f.timeout, IdleTimeout: f.idle,
		Log: func(format string, args ...any) { logf(format, args...) }})
	ln, err := net.Listen("tcp", f.addr)
	if _, ok := errors.AsType[*net.AddrError](err); ok {
		return cmdline.Usagef("--addr: %v", err) // an address no listener can take
	}
	if err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	srv.Start(ln)
	addr := ln.Addr().String()
	// An artifact's own executable, which the llmrun that said so runs in
	// its place, listens on the same address: it says so again only when
	// the port was left to the system (:0), which gives it another.
	if _, port, _ := net.SplitHostPort(f.addr); os.Getenv(engine.HandoffEnv) == "" || port == "0" {
		logf("listening on http://%s; loading %s", addr, path)
	}

	e, m, err := f.load(path, name, set, logf)
	if err != nil {
		// Also for an artifact that runs in its own executable: it listens
		// in this one's place (handOff runs it).
		srv.Shutdown(0)
		return err
	}
	defer e.Close()
	if err := srv.SetModel(m); err != nil {
		srv.Shutdown(0)
		return err
	}
	logf("ready: model %q on http://%s (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)", name, addr)
	if listening != nil {
		listening(addr)
	}
	select {
	case <-ctx.Done():
	case err := <-srv.Err():
		return fmt.Errorf("serving on %s: %w", addr, err)
	}
	logf("shutting down: finishing in-flight requests (up to %v)", f.grace)
	cancelled, err := srv.Shutdown(f.grace)
	if cancelled > 0 {
		logf("cancelled %d requests still running after %v", cancelled, f.grace)
	}
	if err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	logf("stopped")
	return nil
}

// load opens the model, its slots and its text, and reports them.
func (f *serveFlags) load(path, name string, set map[string]bool, logf func(string, ...any)) (*engine.Engine, *serve.Model, error) {
	e, err := f.common.open(path)
	if err != nil {
		return nil, nil, err
	}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	cfg := e.Config
	tm, err := openText(path, f.tokenizer, cfg, false, "; llmrun serve needs one to read prompts")
	if err != nil {
		return nil, nil, err
	}
	text := &serveText{tm: tm, cfg: cfg}
	if tmpl, err := loadTemplate(tm.dir); err != nil {
		text.chatErr = fmt.Errorf("%w: %v", serve.ErrNoChatTemplate, err)
		logf("%v: /v1/chat/completions answers 400, /v1/completions works", err)
	} else {
		tm.tmpl = tmpl
	}
	slots, err := e.Slots(f.slots)
	if err != nil && !set["slots"] && f.slots > 1 {
		logf("warning: %v; serving 1 slot (one request at a time)", err)
		slots, err = e.Slots(1)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("--slots %d: %w", f.slots, err)
	}
	n, ctx := slots.Len(), e.Decoder.Context()
	kv := cfg.KVBytes(ctx, e.KVFormat.BlockBytes())
	kind := e.Kind
	if e.Manifest != nil {
		kind = fmt.Sprintf("%s (%s, %s KV cache)", e.Kind, e.Manifest.Backend, e.Manifest.KV)
		if e.Manifest.KV == "static" {
			kv = cfg.StaticKVBytes(ctx, e.Manifest.PrefillChunk, e.KVFormat.BlockBytes()) // as allocated: rings of window + chunk - 1 rows
		}
		if e.KVFormat != wformat.F32 {
			kind = fmt.Sprintf("%s (%s, %s KV cache stored as %s)", e.Kind, e.Manifest.Backend, e.Manifest.KV, e.KVFormat)
		}
	}
	cache := "KV cache"
	if e.Manifest == nil || e.Manifest.KV != "static" {
		cache = "KV cache growing up to"
	}
	batched := "decode steps run the slots one after another"
	if slots.Batched() {
		batched = "decode steps are batched (the weights read once for all slots)"
	}
	plural := "s"
	if n == 1 {
		plural = ""
	}
	logf("%s %s: %d slot%s × %d positions, %s %s per slot (%s in all); %s",
		kind, path, n, plural, ctx, cache, sysmem.Human(kv), sysmem.Human(kv*int64(n)), batched)

	defaults, _ := (&samplingFlags{}).samplingOptions(flag.NewFlagSet("defaults", flag.ContinueOnError), cfg.Generation)
	maxTokens := f.maxTokens
	if gen := cfg.Generation; maxTokens == 0 && gen != nil && gen.MaxNewTokens != nil && *gen.MaxNewTokens > 0 {
		maxTokens = *gen.MaxNewTokens
	}
	if err := defaults.Validate(); err != nil {
		return nil, nil, samplingError(err, cfg.Generation, map[string]bool{"Temperature": true, "TopK": true, "TopP": true, "MinP": true, "RepetitionPenalty": true})
	}
	ok = true
	return e, &serve.Model{Name: name, Slots: slots, Text: text, Defaults: defaults, DefaultMaxTokens: maxTokens}, nil
}

// serveText is a textModel as the server uses it.
type serveText struct {
	tm      *textModel
	cfg     *hf.Config
	chatErr error
}

func (t *serveText) Encode(text string) ([]int, error) { return t.tm.tok.Encode(text, true) }

func (t *serveText) EncodeChat(msgs []chattemplate.Message) ([]int, error) {
	if t.chatErr != nil {
		return nil, t.chatErr
	}
	_, ids, err := t.tm.encodeChat(msgs, true)
	return ids, err
}

func (t *serveText) ChatError() error { return t.chatErr }

func (t *serveText) EOS(chat bool) []int { return t.tm.stopIDs(t.cfg, chat) }

func (t *serveText) NewStream(prompt, eos []int, stops []string, emit func(string)) (serve.Stream, error) {
	s, err := t.tm.newStream(prompt, eos, stops, emitWriter(emit), nil)
	if err != nil {
		return nil, err
	}
	return textStreamAdapter{s}, nil
}

type emitWriter func(string)

func (w emitWriter) Write(b []byte) (int, error) { w(string(b)); return len(b), nil }

type textStreamAdapter struct{ s *textStream }

func (a textStreamAdapter) Add(id int) (bool, error) { return a.s.add(id) }
func (a textStreamAdapter) Finish() error            { return a.s.finish() }

func loadgenCommand(stdout io.Writer) *cmdline.Command {
	return &cmdline.Command{
		Name: "loadgen", Args: "--url URL [--clients 1,2,4,8] [--requests R] [--max-tokens N] [flags]",
		Short: "Load a server that speaks the OpenAI API and measure its throughput and latency.",
		Summary: `Load a server that speaks the OpenAI API (llmrun serve, llama.cpp's
llama-server, ...) and measure it.

At each concurrency level of --clients, that many clients send --requests
streamed requests between them (each client sends its next request when
the last one ended). For each level: the completion tokens of all requests
over the level's wall time (aggregate decode tok/s), time to first token
(from sending to the first text chunk) and the time between two text
chunks of a request (per-token latency), p50 and p99. With --ignore-eos
every request generates --max-tokens tokens (llama.cpp's ignore_eos,
which llmrun serve takes too).`,
		Examples: []string{
			"llmrun loadgen --url http://127.0.0.1:8080 --clients 1,2,4,8 --requests 32 --max-tokens 64 --ignore-eos",
			"llmrun loadgen --url http://127.0.0.1:8080 --chat --prompt 'Tell me a story.' --format json",
		},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			var o serve.LoadOptions
			clients := fs.String("clients", "1,2,4,8", "comma-separated concurrency levels")
			format := fs.String("format", "text", "output: text or json")
			fs.StringVar(&o.URL, "url", "http://127.0.0.1:8080", "the server")
			fs.StringVar(&o.APIKey, "api-key", "", "send Authorization: Bearer KEY (default $"+apiKeyEnv+")")
			fs.StringVar(&o.Model, "model", "", "the model to ask for (default: the first GET /v1/models lists)")
			fs.IntVar(&o.Requests, "requests", 32, "requests per concurrency level")
			fs.IntVar(&o.MaxTokens, "max-tokens", 64, "max_tokens of each request")
			fs.StringVar(&o.Prompt, "prompt", "Once upon a time", "the prompt (the user message with --chat)")
			fs.BoolVar(&o.Unique, "unique", false, "start each prompt with the request's level and number, so that no server's prefix cache skips a prefill")
			fs.BoolVar(&o.Chat, "chat", false, "send chat completions instead of completions")
			fs.BoolVar(&o.IgnoreEOS, "ignore-eos", false, "ask for max_tokens tokens every time (ignore_eos)")
			fs.Float64Var(&o.Temperature, "temperature", 0, "temperature of each request")
			fs.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up on a request after this long")
			return func(pos []string) error {
				if len(pos) > 0 {
					return cmdline.Usagef("unexpected argument %q: loadgen takes flags only", pos[0])
				}
				if *format != "text" && *format != "json" {
					return cmdline.Usagef("--format is %q, want text or json", *format)
				}
				for i, f := range strings.Split(*clients, ",") {
					n, err := strconv.Atoi(strings.TrimSpace(f))
					if err != nil || n < 1 {
						return cmdline.Usagef("--clients: item %d is %q, want a positive integer", i+1, f)
					}
					o.Clients = append(o.Clients, n)
				}
				switch {
				case o.Requests < 1:
					return cmdline.Usagef("--requests is %d, want >= 1", o.Requests)
				case o.MaxTokens < 1:
					return cmdline.Usagef("--max-tokens is %d, want >= 1", o.MaxTokens)
				}
				if !cmdline.SetFlags(fs)["api-key"] {
					o.APIKey = os.Getenv(apiKeyEnv)
				}
				ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				levels, err := serve.Load(ctx, o)
				if err != nil {
					return err
				}
				if *format == "json" {
					return writeJSON(stdout, levels)
				}
				return serve.WriteLoadTable(stdout, levels)
			}
		},
	}
}
