// Package llmruncmd implements the llmrun command, which runs models (Hugging
// Face folders and llmc artifacts). It is all an artifact's own executable
// links of the command line: nothing of the compiler.
package llmruncmd

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// Run runs the llmrun command with args (without the program name) and
// returns its exit status. Commands that read input (chat, the --jsonl
// forms) read os.Stdin.
func Run(args []string, stdout, stderr io.Writer) int {
	return llmrun(args, os.Stdin, stdout, stderr, nil)
}

// RunIO is Run reading stdin instead of os.Stdin.
func RunIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return llmrun(args, stdin, stdout, stderr, nil)
}

// RunLinked is Run in a binary that has a generated program linked in
// (a Go-backend artifact's executable).
func RunLinked(args []string, stdout, stderr io.Writer, lp *runtime.LinkedProgram) int {
	return llmrun(args, os.Stdin, stdout, stderr, lp)
}

func llmrun(args []string, stdin io.Reader, stdout, stderr io.Writer, lp *runtime.LinkedProgram) int {
	p := &cmdline.Program{Name: "llmrun", Commands: llmrunCommands(stdin, stdout, stderr, lp), Handle: handOff, Hint: nonFiniteHint}
	return p.Run(args, stdout, stderr)
}

func llmrunCommands(stdin io.Reader, stdout, stderr io.Writer, lp *runtime.LinkedProgram) []*cmdline.Command {
	return []*cmdline.Command{
		benchCommand(stdout, stderr, lp),
		{
			Name: "generate", Args: "MODEL (--prompt TEXT [--chat] | --ids IDS) [flags]",
			Summary: `Generate text (or tokens) after a prompt.

MODEL is a Hugging Face model folder (config.json and *.safetensors) or an
llmc artifact. With --prompt, the text is encoded with the model's tokenizer
(tokenizer.json, or the one in --tokenizer DIR) and the generated text is
streamed to stdout as it is decoded; with --chat the prompt is a user message
put through the model's chat template first. With --ids, the prompt is token
ids and the output is token ids. Generation ends at an EOS token (config.json,
generation_config.json, the tokenizer's, and with --chat the template's
end-of-turn token) or a BOS token (which begins a new text, as llama2.c's
run.c stops there) unless --ignore-eos, at a --stop string (which is not
printed), after --max-new-tokens tokens, or when the context is full. The
printed text is the exact continuation of the prompt, special tokens left
out (as transformers' batch_decode(..., skip_special_tokens=True)).

Sampling defaults come from the model's generation_config.json when it has
one, else greedy. Without --seed each run samples with a new random seed.
On a terminal (or with --stats), a summary line follows on stderr: prompt tokens and prefill
speed, generated tokens and decode speed, why it stopped (eos id N, stop
string, max tokens, context full) and the seed (--seed repeats the run);
--format json reports them as stop_reason, eos_id, stop_string and seed (a
BOS that ends the text is reported as eos, its id as eos_id).`,
			Examples: []string{
				`llmrun generate ~/models/SmolLM2-135M-Instruct --prompt "What is 2+2?" --chat --temperature 0.7 --max-new-tokens 64`,
				`llmrun generate ~/models/TinyLlama-1.1B --prompt "Once upon a time" --stop "\n\n" --seed 1`,
				"llmrun generate ../shared/models/stories260K --ids 1,403,407 --max-new-tokens 200 --temperature 0",
				"llmrun generate ~/models/my-llama --ids 1,15043 --temperature 0.7 --top-p 0.9 --seed 42 --format json",
			},
			Flags: func(fs *flag.FlagSet) func([]string) error {
				g := &generateFlags{}
				g.register(fs)
				g.common.linked = lp
				return func(pos []string) error { return g.run(fs, pos, stdout, stderr) }
			},
		},
		chatCommand(stdin, stdout, stderr, lp),
		serveCommand(stdout, stderr, lp),
		loadgenCommand(stdout),
		tokenizeCommand(stdin, stdout),
		detokenizeCommand(stdin, stdout),
		renderChatCommand(stdin, stdout),
		verifyCommand(stdout),
		{
			Name: "score", Args: "MODEL --ids IDS [--logits FILE]",
			Summary: "Run a whole sequence through the model: mean negative log-likelihood and perplexity.\n\nWith --logits, write the logits after each position to FILE as JSON Lines (one array per position).",
			Examples: []string{
				"llmrun score ../shared/models/stories260K --ids 1,403,407,261,378 --logits /tmp/logits.jsonl",
			},
			Flags: func(fs *flag.FlagSet) func([]string) error {
				ids := fs.String("ids", "", "comma-separated token ids of the sequence (at least 2)")
				logits := fs.String("logits", "", "write the logits after each position to this JSON Lines file")
				format := fs.String("format", "text", "output format: text or json")
				common := registerCommon(fs)
				common.linked = lp
				return func(pos []string) error {
					return runScore(pos, *ids, *logits, *format, common, stdout)
				}
			},
		},
	}
}

// commonFlags are shared by the subcommands that run a model.
type commonFlags struct {
	threads  *int
	quiet    *bool
	debugNaN *bool
	inPlace  *bool
	linked   *runtime.LinkedProgram
	fs       *flag.FlagSet // for its output, stderr
}

func registerCommon(fs *flag.FlagSet) *commonFlags {
	return &commonFlags{
		threads: fs.Int("threads", 0, fmt.Sprintf("worker threads for kernels: 0 (one per core) to %d", cmdline.MaxThreads())),
		quiet:   fs.Bool("quiet", false, "print no progress or summary lines"),
		debugNaN: fs.Bool("debug-nan", false, "check every op's result for NaN and Inf and name the first op that produced one "+
			"(slow; runs the model with the interpreter: for an artifact, the model folder it was compiled from)"),
		inPlace: fs.Bool("weights-in-place", false, "a compiled artifact reads its weights in place from the mapped model files (the page cache) "+
			"instead of a copy in huge pages: starts far faster for a large model, may decode slower where the page cache holds the files in small pages"),
		fs: fs,
	}
}

// check refuses what the common flags and the environment say before a
// model is opened: --threads out of range (cmdline.CheckThreads), an
// unknown LLMC_ISA.
func (c *commonFlags) check() error {
	if err := cmdline.CheckThreads(*c.threads); err != nil {
		return err
	}
	return runtime.CheckISAEnv()
}

func (c *commonFlags) open(path string) (*engine.Engine, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	e, err := engine.Open(path, c.options(*c.threads))
	if err == nil && e.DebugNaNOf != "" && !*c.quiet {
		fmt.Fprintf(c.fs.Output(), "llmrun: --debug-nan: running %s, the model folder artifact %s was compiled from, "+
			"with the interpreter, checking every op; if it stays finite, the artifact's compiled program is what goes wrong\n",
			e.Path, e.DebugNaNOf)
	}
	return e, err
}

// options are the engine options the flags ask for, with threads threads.
func (c *commonFlags) options(threads int) engine.Options {
	return engine.Options{Threads: threads, Linked: c.linked, HandedOff: os.Getenv(engine.HandoffEnv) != "",
		DebugNaN: *c.debugNaN, WeightsInPlace: *c.inPlace}
}

// samplingFlags are the sampling flags of generate and chat.
type samplingFlags struct {
	temperature, topP float64
	minP, repPenalty  float64
	topK              int
	seed              uint64
}

func (g *samplingFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&g.temperature, "temperature", 0, "sampling temperature; 0 is greedy (default: generation_config.json, else 0)")
	fs.IntVar(&g.topK, "top-k", 0, "keep the k most likely tokens; 0 keeps all (default: generation_config.json, else 0)")
	fs.Float64Var(&g.topP, "top-p", 1, "nucleus sampling: keep the smallest set with this much probability; 1 keeps all (default: generation_config.json, else 1)")
	fs.Float64Var(&g.minP, "min-p", 0, "keep tokens at least this fraction as likely as the best; 0 is off (default: generation_config.json, else 0)")
	fs.Float64Var(&g.repPenalty, "repetition-penalty", 1, "penalise tokens already seen; 1 is off (default: generation_config.json, else 1)")
	fs.Uint64Var(&g.seed, "seed", 0, "random seed for sampling (default: a new random seed each run, reported so that the run can be repeated)")
}

// resolveSeed sets the seed of a run without --seed to a random one, as
// transformers and llama.cpp sample differently on each run, and returns
// the seed the run uses.
func (g *samplingFlags) resolveSeed(fs *flag.FlagSet) (uint64, error) {
	if cmdline.SetFlags(fs)["seed"] {
		return g.seed, nil
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("choosing a random seed: %w (pass --seed)", err)
	}
	// Below 2^53, so that the seed reads back exactly from JSON in any
	// language.
	g.seed = binary.LittleEndian.Uint64(b[:]) >> 11
	return g.seed, nil
}

// samplingFields names each sample.Options field as a flag and as a
// generation_config.json field, so that an error says where the value
// came from.
var samplingFields = map[string]struct{ flag, field string }{
	"Temperature":       {"--temperature", "temperature"},
	"TopK":              {"--top-k", "top_k"},
	"TopP":              {"--top-p", "top_p"},
	"MinP":              {"--min-p", "min_p"},
	"RepetitionPenalty": {"--repetition-penalty", "repetition_penalty"},
}

// samplingOptions merges the flags the user set over the model's
// generation_config.json, as transformers' generate does. fromFile tells
// which options came from gen (by sample.Options field name).
func (g *samplingFlags) samplingOptions(fs *flag.FlagSet, gen *hf.GenerationConfig) (o sample.Options, fromFile map[string]bool) {
	set := cmdline.SetFlags(fs)
	fromFile = map[string]bool{}
	if gen != nil && gen.DoSample != nil && *gen.DoSample {
		o.Temperature = 1
		if gen.Temperature != nil {
			o.Temperature, fromFile["Temperature"] = *gen.Temperature, true
		}
		if gen.TopK != nil {
			o.TopK, fromFile["TopK"] = *gen.TopK, true
		}
		if gen.TopP != nil {
			o.TopP, fromFile["TopP"] = *gen.TopP, true
		}
		if gen.MinP != nil {
			o.MinP, fromFile["MinP"] = *gen.MinP, true
		}
	}
	if gen != nil && gen.RepetitionPenalty != nil {
		o.RepetitionPenalty, fromFile["RepetitionPenalty"] = *gen.RepetitionPenalty, true
	}
	if set["temperature"] {
		o.Temperature, fromFile["Temperature"] = g.temperature, false
	}
	if set["top-k"] {
		o.TopK, fromFile["TopK"] = g.topK, false
	}
	if set["top-p"] {
		o.TopP, fromFile["TopP"] = g.topP, false
	}
	if set["min-p"] {
		o.MinP, fromFile["MinP"] = g.minP, false
	}
	if set["repetition-penalty"] {
		o.RepetitionPenalty, fromFile["RepetitionPenalty"] = g.repPenalty, false
	}
	o.Seed = g.seed
	return o, fromFile
}

// checkFlags refuses sampling flags out of range before any model is
// opened: a usage error naming the flag.
func (g *samplingFlags) checkFlags(fs *flag.FlagSet) error {
	o, _ := g.samplingOptions(fs, nil)
	return samplingError(o.Validate(), nil, nil)
}

// sampler is a Sampler for the flags over gen, also for greedy decoding
// (temperature 0): it validates every option and applies the repetition
// penalty before the argmax, as transformers does.
func (g *samplingFlags) sampler(fs *flag.FlagSet, gen *hf.GenerationConfig) (*sample.Sampler, error) {
	if _, err := g.resolveSeed(fs); err != nil {
		return nil, err
	}
	o, fromFile := g.samplingOptions(fs, gen)
	s, err := sample.New(o)
	if err != nil {
		return nil, samplingError(err, gen, fromFile)
	}
	return s, nil
}

// samplingError words a sample.OptionError as the flag, or the field of
// generation_config.json, that the value came from: a bad flag is a usage
// error, a bad file is not.
func samplingError(err error, gen *hf.GenerationConfig, fromFile map[string]bool) error {
	if err == nil {
		return nil
	}
	var oe *sample.OptionError
	if !errors.As(err, &oe) {
		return err
	}
	names, ok := samplingFields[oe.Name]
	if !ok {
		return cmdline.Usagef("%v", err)
	}
	if fromFile[oe.Name] && gen != nil {
		path := gen.Path
		if path == "" {
			path = "generation_config.json"
		}
		return fmt.Errorf("%s: field %q is %v: %s; fix the file, or override it with %s",
			path, names.field, oe.Value, oe.Why, names.flag)
	}
	return cmdline.Usagef("%s is %v: %s", names.flag, oe.Value, oe.Why)
}

// textFlags are the text flags of generate and chat.
type textFlags struct {
	tokenizer string
	system    string
	stops     stopsFlag
}

func (t *textFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.tokenizer, "tokenizer", "", "folder with the tokenizer files (tokenizer.json, tokenizer_config.json, chat template) when MODEL has none")
	fs.StringVar(&t.system, "system", "", "system message at the start of the conversation")
	fs.Var(&t.stops, "stop", "stop when the generated text contains this string, which is not printed (repeatable; \\n, \\t, \\r and \\\\ are escapes)")
}

func (t *textFlags) check() error {
	if err := checkUTF8("--system", t.system); err != nil {
		return err
	}
	for _, s := range t.stops {
		if err := checkUTF8("--stop", s); err != nil {
			return err
		}
	}
	return nil
}

type generateFlags struct {
	ids       string
	prompt    string
	chat      bool
	maxNew    int
	ignoreEOS bool
	format    string
	stats     bool // the summary line also when stderr is not a terminal
	samplingFlags
	text   textFlags
	common *commonFlags
}

func (g *generateFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.prompt, "prompt", "", "the prompt as text (needs a tokenizer)")
	fs.BoolVar(&g.chat, "chat", false, "put --prompt through the model's chat template as a user message")
	fs.StringVar(&g.ids, "ids", "", "the prompt as comma-separated token ids")
	fs.IntVar(&g.maxNew, "max-new-tokens", 64, "the most tokens to generate (default: generation_config.json's max_new_tokens, else 64; at most what the context holds)")
	fs.BoolVar(&g.ignoreEOS, "ignore-eos", false, "do not stop at the model's EOS tokens: generate --max-new-tokens tokens (unless a --stop string ends the text)")
	g.samplingFlags.register(fs)
	g.text.register(fs)
	fs.StringVar(&g.format, "format", "text", "output format: text (the text, or with --ids the ids, as they are generated) or json")
	fs.BoolVar(&g.stats, "stats", false, "print the summary line (speeds, stop reason, seed) on stderr also when it is not a terminal")
	g.common = registerCommon(fs)
}

func (g *generateFlags) run(fs *flag.FlagSet, pos []string, stdout, stderr io.Writer) error {
	path, err := cmdline.OnePositional(pos, "MODEL")
	if err != nil {
		return err
	}
	if g.format != "text" && g.format != "json" {
		return cmdline.Usagef("--format is %q, want text or json", g.format)
	}
	set := cmdline.SetFlags(fs)
	isText := set["prompt"]
	switch {
	case isText && set["ids"]:
		return cmdline.Usagef("give the prompt as --prompt TEXT or as --ids IDS, not both")
	case !isText && g.ids == "" && !set["ids"]:
		return cmdline.Usagef("--ids is required, or --prompt: the prompt as token ids (--ids 1,403,407) or as text (--prompt \"Once upon a time\")")
	case !isText && (g.chat || set["system"] || len(g.text.stops) > 0 || set["tokenizer"]):
		return cmdline.Usagef("--chat, --system, --stop and --tokenizer work on text: give the prompt with --prompt")
	case set["system"] && !g.chat:
		return cmdline.Usagef("--system needs --chat (the system message goes through the chat template)")
	}
	var prompt []int
	if isText {
		if err := checkUTF8("--prompt", g.prompt); err != nil {
			return err
		}
		if err := g.text.check(); err != nil {
			return err
		}
	} else if prompt, err = parseIDs(g.ids); err != nil {
		return err
	}
	if g.maxNew < 0 {
		return cmdline.Usagef("--max-new-tokens is %d, want >= 0", g.maxNew)
	}
	if err := g.checkFlags(fs); err != nil {
		return err
	}
	e, err := g.common.open(path)
	if err != nil {
		return err
	}
	defer e.Close()
	cfg := e.Config
	var tm *textModel
	if isText {
		if tm, err = openText(path, g.text.tokenizer, cfg, g.chat, ", or give the prompt as token ids with --ids"); err != nil {
			return err
		}
		if g.chat {
			var msgs []chattemplate.Message
			if set["system"] {
				msgs = append(msgs, chattemplate.Message{Role: "system", Content: g.text.system})
			}
			msgs = append(msgs, chattemplate.Message{Role: "user", Content: g.prompt})
			_, prompt, err = tm.encodeChat(msgs, true)
		} else {
			prompt, err = tm.tok.Encode(g.prompt, true)
		}
		if err != nil {
			return err
		}
		if len(prompt) == 0 {
			return cmdline.Usagef("--prompt %q encodes to no tokens", g.prompt)
		}
	}
	for i, id := range prompt {
		if id >= cfg.VocabSize {
			return cmdline.Usagef("--ids: token id %d (item %d) is outside the vocabulary 0..%d", id, i+1, cfg.VocabSize-1)
		}
	}
	if gen := cfg.Generation; !set["max-new-tokens"] && gen != nil && gen.MaxNewTokens != nil && *gen.MaxNewTokens > 0 {
		// generation_config.json's default, as transformers uses it.
		g.maxNew = *gen.MaxNewTokens
	}
	// A default never runs past the context: the generation then stops
	// there, and says so. An explicit --max-new-tokens that does not fit
	// is refused.
	contextCap := false
	if room := e.Decoder.Context() + 1 - len(prompt); !set["max-new-tokens"] && room >= 1 && g.maxNew > room {
		g.maxNew, contextCap = room, true
	}
	if n := len(prompt) + g.maxNew; n > e.Decoder.Context()+1 {
		return cmdline.Usagef("the prompt (%d tokens) plus --max-new-tokens %d needs %d positions; %s holds %d",
			len(prompt), g.maxNew, n-1, path, e.Decoder.Context())
	}
	sampler, err := g.sampler(fs, cfg.Generation)
	if err != nil {
		return err
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	eos := tm.stopIDs(cfg, g.chat)
	if g.ignoreEOS {
		eos = nil
	}
	var stream *textStream
	onToken := func(id int) (bool, error) {
		if g.format != "text" {
			return false, nil
		}
		fmt.Fprintf(out, "%d ", id)
		return false, out.Flush()
	}
	if isText {
		w := io.Writer(out)
		if g.format != "text" {
			w = nil
		}
		if stream, err = tm.newStream(prompt, eos, g.text.stops, w, out.Flush); err != nil {
			return err
		}
		onToken = stream.add
	}
	res, err := runtime.Generate(e.Decoder, prompt, runtime.GenerateOptions{
		MaxNewTokens: g.maxNew, Sampler: sampler, EOS: eos, OnToken: onToken,
	})
	if err == nil && stream != nil {
		err = stream.finish()
	}
	if err != nil {
		return err
	}
	stop := describeStop(res, stream, contextCap, e.Decoder.Context())
	if g.format == "json" {
		rep := generateJSON(res, stop, g.seed)
		if stream != nil {
			text := stream.text.String()
			rep.Text = &text
		}
		return writeJSON(out, rep)
	}
	fmt.Fprintln(out)
	if !*g.common.quiet && (g.stats || cmdline.IsTerminal(stderr)) {
		out.Flush()
		fmt.Fprintf(stderr, "prompt %d tokens, %.1f tok/s | generated %d tokens, %.1f tok/s | stop: %s | seed %d\n",
			res.PromptTokens, res.PrefillTokensPerSecond(), len(res.IDs), res.DecodeTokensPerSecond(), stop, g.seed)
	}
	return nil
}

// Stop reasons, as --format json's stop_reason says them.
const (
	stopEOS         = "eos"          // the model generated one of its EOS ids
	stopString      = "stop"         // the text reached a --stop string
	stopLength      = "length"       // --max-new-tokens tokens
	stopContextFull = "context_full" // the context holds no more positions
)

// stopInfo is why a generation ended.
type stopInfo struct {
	Reason  string
	EOSID   *int    // with stopEOS
	Stop    *string // with stopString
	MaxNew  int     // with stopLength
	Context int     // with stopContextFull
}

// describeStop says why res ended: contextCap tells that the token limit
// was the room left in the context (of context positions), not a number
// the user chose.
func describeStop(res *runtime.Generation, stream *textStream, contextCap bool, context int) stopInfo {
	switch {
	case res.StopReason == "eos" && len(res.IDs) > 0:
		id := res.IDs[len(res.IDs)-1]
		return stopInfo{Reason: stopEOS, EOSID: &id}
	case res.StopReason == "stop" && stream != nil && stream.stop != "":
		s := stream.stop
		return stopInfo{Reason: stopString, Stop: &s}
	case contextCap && len(res.IDs) > 0:
		return stopInfo{Reason: stopContextFull, Context: context}
	}
	return stopInfo{Reason: stopLength, MaxNew: len(res.IDs)}
}

// String is the summary line's wording: "eos id 2", "stop string "\n"",
// "max tokens (64)", "context full (512 positions)".
func (s stopInfo) String() string {
	switch {
	case s.EOSID != nil:
		return fmt.Sprintf("eos id %d", *s.EOSID)
	case s.Stop != nil:
		return fmt.Sprintf("stop string %q", *s.Stop)
	case s.Reason == stopContextFull:
		return fmt.Sprintf("context full (%d positions)", s.Context)
	}
	return fmt.Sprintf("max tokens (%d)", s.MaxNew)
}

type generationReport struct {
	Text              *string `json:"text,omitempty"` // with --prompt
	IDs               []int   `json:"ids"`
	PromptTokens      int     `json:"prompt_tokens"`
	GeneratedTokens   int     `json:"generated_tokens"`
	StopReason        string  `json:"stop_reason"`           // eos, stop, length or context_full
	EOSID             *int    `json:"eos_id,omitempty"`      // the EOS id that ended it
	StopString        *string `json:"stop_string,omitempty"` // the --stop string that ended it
	Seed              uint64  `json:"seed"`                  // the sampling seed: --seed repeats the run
	PrefillMS         float64 `json:"prefill_ms"`
	DecodeMS          float64 `json:"decode_ms"`
	PrefillTokensPerS float64 `json:"prefill_tokens_per_second"`
	DecodeTokensPerS  float64 `json:"decode_tokens_per_second"`
}

func generateJSON(res *runtime.Generation, stop stopInfo, seed uint64) generationReport {
	ids := res.IDs
	if ids == nil {
		ids = []int{}
	}
	return generationReport{
		IDs: ids, PromptTokens: res.PromptTokens, GeneratedTokens: len(res.IDs),
		StopReason: stop.Reason, EOSID: stop.EOSID, StopString: stop.Stop, Seed: seed,
		PrefillMS: ms(res.PrefillTime.Seconds()), DecodeMS: ms(res.DecodeTime.Seconds()),
		PrefillTokensPerS: round3(res.PrefillTokensPerSecond()), DecodeTokensPerS: round3(res.DecodeTokensPerSecond()),
	}
}

func ms(s float64) float64 { return round3(s * 1000) }

func round3(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 3, 64), 64)
	return v
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func runScore(pos []string, idsFlag, logitsPath, format string, common *commonFlags, stdout io.Writer) error {
	path, err := cmdline.OnePositional(pos, "MODEL")
	if err != nil {
		return err
	}
	if format != "text" && format != "json" {
		return cmdline.Usagef("--format is %q, want text or json", format)
	}
	if idsFlag == "" {
		return cmdline.Usagef("--ids is required")
	}
	ids, err := parseIDs(idsFlag)
	if err != nil {
		return err
	}
	if len(ids) < 2 {
		return cmdline.Usagef("--ids: scoring needs at least 2 tokens, got %d", len(ids))
	}
	e, err := common.open(path)
	if err != nil {
		return err
	}
	defer e.Close()
	for i, id := range ids {
		if id >= e.Config.VocabSize {
			return cmdline.Usagef("--ids: token id %d (item %d) is outside the vocabulary 0..%d", id, i+1, e.Config.VocabSize-1)
		}
	}
	if len(ids) > e.Decoder.Context() {
		return cmdline.Usagef("--ids has %d tokens; %s holds %d positions", len(ids), path, e.Decoder.Context())
	}
	s, err := runtime.ScoreSequence(e.Decoder, ids)
	if err != nil {
		return err
	}
	if logitsPath != "" {
		if err := writeLogits(logitsPath, s.Logits); err != nil {
			return err
		}
	}
	if math.IsNaN(s.NLL) || math.IsInf(s.NLL, 0) {
		// Finite logits give a finite NLL; this is a guard, so that no
		// NaN is ever printed as a score.
		return fmt.Errorf("the mean NLL of %d tokens is %g", len(ids), s.NLL)
	}
	if format == "json" {
		// exp(NLL) overflows float64 past NLL ≈ 709: JSON has no Inf, so
		// the perplexity is null then.
		var ppl any = s.Perplexity
		if math.IsInf(s.Perplexity, 0) {
			ppl = nil
		}
		return writeJSON(stdout, map[string]any{"tokens": len(ids), "mean_nll": s.NLL, "perplexity": ppl})
	}
	_, err = fmt.Fprintf(stdout, "tokens: %d  mean NLL: %.6f nats  perplexity: %.4f\n", len(ids), s.NLL, s.Perplexity)
	return err
}

// writeLogits writes one JSON array per position, atomically: to a
// temporary file in the same folder, renamed into place when complete.
func writeLogits(path string, rows [][]float32) error {
	return writeFileAtomic(path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		buf := make([]byte, 0, 64)
		for _, row := range rows {
			bw.WriteByte('[')
			for i, v := range row {
				if i > 0 {
					bw.WriteByte(',')
				}
				buf = strconv.AppendFloat(buf[:0], float64(v), 'g', -1, 32)
				bw.Write(buf)
			}
			bw.WriteString("]\n")
		}
		return bw.Flush()
	})
}

// writeFileAtomic writes a file through a temporary file and a rename, so
// that a failure leaves nothing half-written.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
