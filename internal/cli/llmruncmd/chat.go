package llmruncmd

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

func chatCommand(stdin io.Reader, stdout, stderr io.Writer, lp *runtime.LinkedProgram) *cmdline.Command {
	return &cmdline.Command{
		Name: "chat", Args: "MODEL [--system S] [flags]",
		Summary: `Chat with a model: one user message per line of stdin, replies streamed to stdout.

The conversation goes through the model's chat template every turn, and the
KV cache is kept across turns: only the tokens after what the cache already
holds are prefilled (if the new rendering differs earlier, the cache is
rewound to where they agree). When the conversation no longer fits in the
model's context, llmrun says so; /reset starts a new conversation (with the
same --system message), /exit (or end of input) quits.

Works with piped input too: llmrun chat MODEL < questions.txt. Sampling
defaults come from generation_config.json, as for generate. On a terminal,
a summary line follows each reply on stderr (always with --stats).`,
		Examples: []string{
			`llmrun chat ~/models/SmolLM2-135M-Instruct --system "You are a terse assistant." --temperature 0.7`,
			`printf 'Hi!\nWhat is 2+2?\n' | llmrun chat ~/models/Phi-3.5-mini-instruct --max-new-tokens 100 --stats`,
		},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			var sf samplingFlags
			var tf textFlags
			sf.register(fs)
			tf.register(fs)
			maxNew := fs.Int("max-new-tokens", 512, "the most tokens of one reply")
			stats := fs.Bool("stats", false, "print the summary line after each reply also when stderr is not a terminal")
			format := fs.String("format", "text", "output format: text (replies streamed) or json (one JSON line per turn: reply, token counts, speeds)")
			common := registerCommon(fs)
			common.linked = lp
			return func(pos []string) error {
				path, err := cmdline.OnePositional(pos, "MODEL")
				if err != nil {
					return err
				}
				if *format != "text" && *format != "json" {
					return cmdline.Usagef("--format is %q, want text or json", *format)
				}
				if *maxNew <= 0 {
					return cmdline.Usagef("--max-new-tokens is %d, want > 0", *maxNew)
				}
				if err := tf.check(); err != nil {
					return err
				}
				if err := sf.checkFlags(fs); err != nil {
					return err
				}
				e, err := common.open(path)
				if err != nil {
					return err
				}
				defer e.Close()
				tm, err := openText(path, tf.tokenizer, e.Config, true, "")
				if err != nil {
					return err
				}
				sampler, err := sf.sampler(fs, e.Config.Generation)
				if err != nil {
					return err
				}
				c := &chatSession{
					e: e, tm: tm, sampler: sampler, seed: sf.seed, eos: tm.stopIDs(e.Config, true), stops: tf.stops, maxNew: *maxNew,
					stdout: stdout, stderr: stderr, stats: *stats || (!*common.quiet && cmdline.IsTerminal(stderr)), json: *format == "json",
				}
				set := cmdline.SetFlags(fs)
				if set["system"] {
					c.system = &chattemplate.Message{Role: "system", Content: tf.system}
				}
				c.reset()
				return c.loop(stdin, isTerminalFile(stdin) && !*common.quiet)
			}
		},
	}
}

// chatSession is one conversation and the KV cache that holds it.
type chatSession struct {
	e       *engine.Engine
	tm      *textModel
	sampler *sample.Sampler
	seed    uint64 // the sampler's, reported
	eos     []int
	stops   []string
	maxNew  int
	system  *chattemplate.Message
	stdout  io.Writer
	stderr  io.Writer
	stats   bool
	json    bool

	msgs   []chattemplate.Message
	cached []int // the ids in the decoder's cache, positions 0..len-1
	turns  int
}

// contextFullError says that the next turn does not fit in the context,
// or that a reply was cut short by its end.
type contextFullError struct {
	need, context int
	reply         bool
}

func (e *contextFullError) Error() string {
	if e.reply {
		return fmt.Sprintf("the context is full: the reply reached the end of the model's %d positions", e.context)
	}
	return fmt.Sprintf("the context is full: the conversation needs %d positions and the model holds %d", e.need, e.context)
}

const chatHelp = "type /reset to start a new conversation, or /exit to quit"

func (c *chatSession) reset() {
	c.msgs = c.msgs[:0]
	if c.system != nil {
		c.msgs = append(c.msgs, *c.system)
	}
	c.turns = 0
}

func (c *chatSession) loop(stdin io.Reader, interactive bool) error {
	if interactive {
		fmt.Fprintf(c.stderr, "chatting with %s (%d positions); %s\n", c.e.Path, c.e.Decoder.Context(), chatHelp)
	}
	in := bufio.NewReader(stdin)
	for {
		if interactive {
			fmt.Fprint(c.stdout, "> ")
		}
		line, err := in.ReadString('\n')
		if errors.Is(err, io.EOF) && line == "" {
			if interactive {
				fmt.Fprintln(c.stdout)
			}
			return nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		line = strings.TrimRight(line, "\r\n")
		switch strings.TrimSpace(line) {
		case "":
			continue
		case "/exit", "/quit", "/bye":
			return nil
		case "/reset", "/clear":
			c.reset()
			fmt.Fprintln(c.stderr, "(new conversation)")
			continue
		}
		if err := checkUTF8("the message", line); err != nil {
			fmt.Fprintf(c.stderr, "llmrun: %v\n", err)
			continue
		}
		err = c.turn(line)
		var full *contextFullError
		if errors.As(err, &full) {
			fmt.Fprintf(c.stderr, "llmrun: %v; %s\n", full, chatHelp)
			if c.json {
				if err := writeJSON(c.stdout, map[string]string{"error": full.Error()}); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return err
		}
	}
}

// turn answers one user message, streaming the reply.
func (c *chatSession) turn(user string) error {
	dec := c.e.Decoder
	msgs := append(slices.Clone(c.msgs), chattemplate.Message{Role: "user", Content: user})
	_, ids, err := c.tm.encodeChat(msgs, true)
	if err != nil {
		return err
	}
	// Reuse the cache up to the first id where it and the new rendering
	// differ; at least one token must be run to get logits.
	p := min(commonPrefix(c.cached, ids), dec.Pos())
	if p == len(ids) {
		p--
	}
	if len(ids) >= dec.Context() {
		return &contextFullError{need: len(ids) + 1, context: dec.Context()}
	}
	if p < dec.Pos() {
		if err := dec.Rewind(p); err != nil {
			return err
		}
	}
	c.cached = c.cached[:p]
	maxNew := min(c.maxNew, dec.Context()+1-len(ids))

	out := bufio.NewWriter(c.stdout)
	defer out.Flush()
	var w io.Writer = out
	if c.json {
		w = nil
	}
	// The reply is decoded on its own: it is the assistant's message
	// content, without the leading space a SentencePiece decoder strips.
	stream, err := c.tm.newStream(nil, c.eos, c.stops, w, out.Flush)
	if err != nil {
		return err
	}
	res, err := runtime.Generate(dec, ids[p:], runtime.GenerateOptions{
		MaxNewTokens: maxNew, Sampler: c.sampler, EOS: c.eos, OnToken: stream.add, Context: ids[:p],
	})
	if res != nil {
		// The prompt and every generated token but the last went through.
		c.cached = append(slices.Clone(ids), res.IDs[:max(len(res.IDs)-1, 0)]...)
		if len(c.cached) != dec.Pos() {
			c.cached = c.cached[:min(len(c.cached), dec.Pos())]
		}
	}
	if err == nil {
		err = stream.finish()
	}
	if !c.json {
		fmt.Fprintln(out)
	}
	out.Flush()
	if err != nil {
		return err
	}
	stop := describeStop(res, stream, maxNew < c.maxNew, dec.Context())
	c.msgs = append(msgs, chattemplate.Message{Role: "assistant", Content: stream.text.String()})
	c.turns++
	if c.json {
		rep := chatTurnReport{Turn: c.turns, Reply: stream.text.String(), ConversationTokens: len(ids), CachedTokens: p,
			generationReport: generateJSON(res, stop, c.seed)}
		if err := writeJSON(out, rep); err != nil {
			return err
		}
		out.Flush()
	}
	if c.stats {
		fmt.Fprintf(c.stderr, "turn %d: %d tokens, %d from the cache | prefill %d tokens, %.1f tok/s | generated %d tokens, %.1f tok/s | stop: %s\n",
			c.turns, len(ids), p, res.PromptTokens, res.PrefillTokensPerSecond(), len(res.IDs), res.DecodeTokensPerSecond(), stop)
	}
	if stop.Reason == stopContextFull {
		return &contextFullError{context: dec.Context(), reply: true}
	}
	return nil
}

// chatTurnReport is a turn of chat --format json.
type chatTurnReport struct {
	Turn  int    `json:"turn"`
	Reply string `json:"reply"`
	// ConversationTokens is the length of the rendered conversation,
	// CachedTokens how many of them the cache already held: the prompt
	// tokens (prefilled) are the rest.
	ConversationTokens int `json:"conversation_tokens"`
	CachedTokens       int `json:"cached_tokens"`
	generationReport
}

func commonPrefix(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}
