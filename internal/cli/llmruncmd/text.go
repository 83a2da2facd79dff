package llmruncmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/tokenizer"
)

// tokenizerDir returns the folder holding the tokenizer files of dir: dir
// itself when it has tokenizer.json, else, for an artifact compiled before
// artifacts carried the tokenizer, its model folder.
func tokenizerDir(dir string) (string, bool) {
	if fileExists(filepath.Join(dir, "tokenizer.json")) {
		return dir, true
	}
	if artifact.IsArtifact(dir) {
		if man, err := artifact.Read(dir); err == nil && man.Model.Dir != "" &&
			fileExists(filepath.Join(man.Model.Dir, "tokenizer.json")) {
			return man.Model.Dir, true
		}
	}
	return dir, false
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// loadTokenizer loads the tokenizer of DIR: a model folder, an artifact, a
// folder with just the tokenizer files, or a tokenizer.json file.
func loadTokenizer(path string) (*tokenizer.Tokenizer, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: want a model folder, an artifact, a folder with the tokenizer files or a tokenizer.json", path)
	}
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return tokenizer.Load(path)
	}
	dir, ok := tokenizerDir(path)
	if !ok {
		return nil, fmt.Errorf("%s has no tokenizer.json: want a model folder, an artifact or a folder with the tokenizer files", path)
	}
	return tokenizer.Load(dir)
}

// loadTemplate loads the chat template of DIR, naming the folder in errors.
func loadTemplate(path string) (*chattemplate.Template, error) {
	dir, _ := tokenizerDir(path)
	t, err := chattemplate.Load(dir)
	if errors.Is(err, chattemplate.ErrNoTemplate) {
		return nil, fmt.Errorf("%s has no chat template (chat_template.jinja, or \"chat_template\" in tokenizer_config.json)", path)
	}
	if err != nil {
		return nil, err // names the file
	}
	return t, nil
}

// templateFile names the file the chat template of DIR comes from, as
// chattemplate.Load chooses it.
func templateFile(path string) string {
	dir, _ := tokenizerDir(path)
	if f := filepath.Join(dir, "chat_template.jinja"); fileExists(f) {
		return f
	}
	return filepath.Join(dir, "tokenizer_config.json")
}

// templateError names the template file, and the line of a
// raise_exception call, in a rendering error.
func templateError(dir string, err error) error {
	var raise *chattemplate.RaiseError
	if errors.As(err, &raise) {
		return fmt.Errorf("%s: chat template line %d refuses the conversation: %w", templateFile(dir), raise.Line, err)
	}
	return fmt.Errorf("%s: %w", templateFile(dir), err)
}

// textModel is what turns text into a model's token ids and back.
type textModel struct {
	tok  *tokenizer.Tokenizer
	dir  string // where the tokenizer came from
	tmpl *chattemplate.Template
}

// openText loads the tokenizer (and, for chat, the chat template) for the
// model at modelPath: from --tokenizer when given, else from the model.
// hint ends the error for a model without a tokenizer.
func openText(modelPath, tokenizerFlag string, cfg *hf.Config, chat bool, hint string) (*textModel, error) {
	dir := tokenizerFlag
	if dir == "" {
		dir = modelPath
		if _, ok := tokenizerDir(dir); !ok {
			return nil, cmdline.Usagef("%s has no tokenizer (tokenizer.json): pass --tokenizer DIR with the model's tokenizer files%s", modelPath, hint)
		}
	}
	tok, err := loadTokenizer(dir)
	if err != nil && tokenizerFlag != "" {
		return nil, fmt.Errorf("--tokenizer: %w", err)
	}
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > cfg.VocabSize {
		return nil, fmt.Errorf("the tokenizer of %s has %d tokens, more than the %d of the model's vocabulary: is it this model's tokenizer?",
			dir, tok.VocabSize(), cfg.VocabSize)
	}
	tm := &textModel{tok: tok, dir: dir}
	if chat {
		if tm.tmpl, err = loadTemplate(dir); err != nil {
			return nil, err
		}
	}
	return tm, nil
}

// checkUTF8 reports where s stops being valid UTF-8.
func checkUTF8(flagName, s string) error {
	if utf8.ValidString(s) {
		return nil
	}
	off := 0
	for off < len(s) {
		r, n := utf8.DecodeRuneInString(s[off:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		off += n
	}
	return cmdline.Usagef("%s is not valid UTF-8: ill-formed byte 0x%02x at byte offset %d", flagName, s[off], off)
}

// encodeChat renders messages with the chat template and encodes the text
// as transformers' apply_chat_template does: without adding special tokens
// (the template writes them).
func (tm *textModel) encodeChat(msgs []chattemplate.Message, addGenerationPrompt bool) (string, []int, error) {
	rendered, err := tm.tmpl.Render(msgs, addGenerationPrompt)
	if err != nil {
		return "", nil, templateError(tm.dir, err)
	}
	ids, err := tm.tok.Encode(rendered, false)
	return rendered, ids, err
}

// turnEnds are special tokens that end an assistant's turn in common chat
// formats (ChatML, Phi-3, Llama 3, Gemma).
var turnEnds = []string{"<|im_end|>", "<|end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>"}

// stopIDs are the ids that end a generation: the model's EOS ids
// (generation_config.json over config.json) and the tokenizer's EOS, its
// BOS ids, and for chat the tokenizer's turn-ending special tokens. Those end a reply even
// where generation_config.json names only the end of text (gemma-2b-it's
// eos_token_id 1 leaves out <end_of_turn>, after which the model would
// start another turn itself).
func (tm *textModel) stopIDs(cfg *hf.Config, chat bool) []int {
	ids := slices.Clone(cfg.EOS)
	add := func(id int) {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	// A generated BOS begins a new text, so it ends this one, as
	// llama2.c's run.c ends there (stories260K writes story after story
	// otherwise).
	for _, id := range cfg.BOS {
		add(id)
	}
	if tm != nil {
		if e, ok := tm.tok.EOS(); ok {
			add(e.ID)
		}
		if b, ok := tm.tok.BOS(); ok {
			add(b.ID)
		}
		if chat {
			for _, name := range turnEnds {
				if id, ok := tm.tok.ID(name); ok && tm.tok.IsSpecial(id) {
					add(id)
				}
			}
		}
	}
	return ids
}

// textStream turns generated ids into text as they arrive and writes it to
// w: never a partial UTF-8 sequence (the tokenizer's StreamDecoder holds
// those back), never an EOS token or other special token, and nothing from the first stop string
// on. Text that might be the start of a stop string waits until the next
// tokens decide.
type textStream struct {
	dec     *tokenizer.StreamDecoder
	vocab   int
	eos     []int
	stops   []string
	w       io.Writer
	flush   func() error
	pending string          // decoded, not yet written: could start a stop string
	text    strings.Builder // everything written
	stopped bool            // a stop string was found
	stop    string          // the stop string found
}

// newStream returns a textStream for the ids generated after prompt. The
// text is the exact continuation of the prompt's: Decode(prompt) + text ==
// Decode(prompt + generated), with special tokens left out as transformers'
// batch_decode(..., skip_special_tokens=True) does. (Decoding the generated
// ids alone would drop the leading space of the first one with a
// SentencePiece tokenizer.) A nil prompt decodes the generated ids on their
// own, as a chat reply is.
func (tm *textModel) newStream(prompt, eos []int, stops []string, w io.Writer, flush func() error) (*textStream, error) {
	dec, err := tm.tok.NewContinuationDecoder(prompt, true)
	if err != nil {
		return nil, err
	}
	return &textStream{dec: dec, vocab: tm.tok.VocabSize(), eos: eos, stops: stops, w: w, flush: flush}, nil
}

// add decodes the next generated id; stop is set when a stop string
// appeared.
func (s *textStream) add(id int) (stop bool, err error) {
	if s.stopped || slices.Contains(s.eos, id) {
		return s.stopped, nil
	}
	if id >= s.vocab {
		return false, fmt.Errorf("the model generated token %d, which the tokenizer does not have (it has %d tokens)", id, s.vocab)
	}
	piece, err := s.dec.Add(id)
	if err != nil {
		return false, err
	}
	return s.push(piece)
}

func (s *textStream) push(piece string) (bool, error) {
	s.pending += piece
	if i, stop := s.stopIndex(); i >= 0 {
		s.stopped, s.stop = true, stop
		err := s.write(s.pending[:i])
		s.pending = ""
		return true, err
	}
	keep := s.holdBack()
	err := s.write(s.pending[:len(s.pending)-keep])
	s.pending = s.pending[len(s.pending)-keep:]
	return false, err
}

// finish writes the rest of the text after the generation ended.
func (s *textStream) finish() error {
	if s.stopped {
		return nil
	}
	if _, err := s.push(s.dec.Flush()); err != nil || s.stopped {
		return err
	}
	err := s.write(s.pending)
	s.pending = ""
	return err
}

func (s *textStream) write(t string) error {
	if t == "" {
		return nil
	}
	s.text.WriteString(t)
	if s.w == nil {
		return nil
	}
	if _, err := io.WriteString(s.w, t); err != nil {
		return err
	}
	if s.flush != nil {
		return s.flush()
	}
	return nil
}

// stopIndex is where the first stop string starts in pending, or -1, and
// which it is.
func (s *textStream) stopIndex() (int, string) {
	first, which := -1, ""
	for _, stop := range s.stops {
		if i := strings.Index(s.pending, stop); i >= 0 && (first < 0 || i < first) {
			first, which = i, stop
		}
	}
	return first, which
}

// holdBack is the length of the longest end of pending that begins some
// stop string.
func (s *textStream) holdBack() int {
	keep := 0
	for _, stop := range s.stops {
		for k := min(len(stop)-1, len(s.pending)); k > keep; k-- {
			if strings.HasSuffix(s.pending, stop[:k]) {
				keep = k
				break
			}
		}
	}
	return keep
}

// stopsFlag is the repeatable --stop flag. It reads the escapes \n, \t,
// \r and \\, since a newline is awkward to type in a shell argument.
type stopsFlag []string

func (l *stopsFlag) String() string { return strings.Join(*l, ", ") }
func (l *stopsFlag) Set(s string) error {
	s = stopEscapes.Replace(s)
	if s == "" {
		return errors.New("a stop string must not be empty")
	}
	*l = append(*l, s)
	return nil
}

var stopEscapes = strings.NewReplacer(`\\`, `\`, `\n`, "\n", `\t`, "\t", `\r`, "\r")

// joinIDs formats ids as --ids takes them: 1,403,407.
func joinIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(id)
	}
	return strings.Join(s, ",")
}
