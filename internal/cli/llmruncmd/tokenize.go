package llmruncmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/internal/cli/cmdline"
)

const dirDoc = "DIR is a model folder, an artifact, or a folder with just the tokenizer files\n(tokenizer.json, tokenizer_config.json and the chat template)."

func tokenizeCommand(stdin io.Reader, stdout io.Writer) *cmdline.Command {
	return &cmdline.Command{
		Name: "tokenize", Args: "DIR (--text TEXT | --jsonl) [flags]",
		Summary: `Encode text to token ids with a model's tokenizer.

` + dirDoc + `

--text prints the ids, comma-separated (as --ids takes them); --tokens adds
one line per token with its vocabulary entry. --jsonl reads JSON lines
{"text": "...", "add_special_tokens": true} from stdin (add_special_tokens
defaults to true, as in transformers) and writes {"ids": [...]} lines.`,
		Examples: []string{
			`llmrun tokenize ~/models/SmolLM2-135M-Instruct --text "Hello world"`,
			`echo '{"text": "Hello world", "add_special_tokens": false}' | llmrun tokenize ../shared/tokenizers/gpt2 --jsonl`,
		},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			text := fs.String("text", "", "the text to encode")
			jsonl := fs.Bool("jsonl", false, "read JSON lines from stdin, write JSON lines")
			special := fs.Bool("add-special-tokens", true, "with --text: let the post-processor add its special tokens (such as BOS)")
			tokens := fs.Bool("tokens", false, "with --text: also print each token")
			return func(pos []string) error {
				dir, err := cmdline.OnePositional(pos, "DIR")
				if err != nil {
					return err
				}
				set := cmdline.SetFlags(fs)
				if set["text"] == *jsonl {
					return cmdline.Usagef("give --text TEXT or --jsonl (exactly one)")
				}
				if set["text"] {
					if err := checkUTF8("--text", *text); err != nil {
						return err
					}
				}
				tok, err := loadTokenizer(dir)
				if err != nil {
					return err
				}
				if *jsonl {
					return jsonLines(stdin, stdout, func(line []byte) (any, error) {
						var in struct {
							Text             *string `json:"text"`
							AddSpecialTokens *bool   `json:"add_special_tokens"`
						}
						if err := json.Unmarshal(line, &in); err != nil {
							return nil, err
						}
						if in.Text == nil {
							return nil, errors.New(`"text" is missing`)
						}
						ids, err := tok.Encode(*in.Text, in.AddSpecialTokens == nil || *in.AddSpecialTokens)
						if ids == nil {
							ids = []int{}
						}
						return struct {
							IDs []int `json:"ids"`
						}{ids}, err
					})
				}
				ids, err := tok.Encode(*text, *special)
				if err != nil {
					return err
				}
				w := bufio.NewWriter(stdout)
				defer w.Flush()
				fmt.Fprintln(w, joinIDs(ids))
				if *tokens {
					for _, id := range ids {
						fmt.Fprintf(w, "%d\t%s\n", id, strconv.Quote(tok.Token(id)))
					}
				}
				return nil
			}
		},
	}
}

func detokenizeCommand(stdin io.Reader, stdout io.Writer) *cmdline.Command {
	return &cmdline.Command{
		Name: "detokenize", Args: "DIR (--ids IDS | --jsonl) [flags]",
		Summary: `Decode token ids to text with a model's tokenizer.

` + dirDoc + `

--ids prints the text. --jsonl reads JSON lines {"ids": [...],
"skip_special_tokens": false} from stdin and writes {"text": "..."} lines.
Like the tokenizers library's decode, no clean_up_tokenization_spaces.`,
		Examples: []string{
			"llmrun detokenize ~/models/TinyLlama-1.1B --ids 1,15043,3186",
			`echo '{"ids": [15496, 995]}' | llmrun detokenize ../shared/tokenizers/gpt2 --jsonl`,
		},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			idsFlag := fs.String("ids", "", "comma-separated token ids to decode")
			jsonl := fs.Bool("jsonl", false, "read JSON lines from stdin, write JSON lines")
			skip := fs.Bool("skip-special-tokens", false, "with --ids: leave out special tokens")
			return func(pos []string) error {
				dir, err := cmdline.OnePositional(pos, "DIR")
				if err != nil {
					return err
				}
				set := cmdline.SetFlags(fs)
				if set["ids"] == *jsonl {
					return cmdline.Usagef("give --ids IDS or --jsonl (exactly one)")
				}
				var ids []int
				if set["ids"] {
					if ids, err = parseIDs(*idsFlag); err != nil {
						return err
					}
				}
				tok, err := loadTokenizer(dir)
				if err != nil {
					return err
				}
				if *jsonl {
					return jsonLines(stdin, stdout, func(line []byte) (any, error) {
						var in struct {
							IDs               *[]int `json:"ids"`
							SkipSpecialTokens bool   `json:"skip_special_tokens"`
						}
						if err := json.Unmarshal(line, &in); err != nil {
							return nil, err
						}
						if in.IDs == nil {
							return nil, errors.New(`"ids" is missing`)
						}
						text, err := tok.Decode(*in.IDs, in.SkipSpecialTokens)
						return struct {
							Text string `json:"text"`
						}{text}, err
					})
				}
				text, err := tok.Decode(ids, *skip)
				if err != nil {
					return cmdline.Usagef("--ids: %v", err)
				}
				_, err = fmt.Fprintln(stdout, text)
				return err
			}
		},
	}
}

func renderChatCommand(stdin io.Reader, stdout io.Writer) *cmdline.Command {
	return &cmdline.Command{
		Name: "render-chat", Args: "DIR (--jsonl | --user TEXT [--system S]) [flags]",
		Summary: `Render conversations with a model's chat template and encode them.

` + dirDoc + `

--jsonl reads JSON lines {"messages": [{"role": "user", "content": "..."}],
"add_generation_prompt": true} from stdin and writes {"rendered": "...",
"ids": [...]} lines, where ids encode the rendering without adding special
tokens, as transformers' apply_chat_template does; a conversation the
template refuses (raise_exception) is answered by {"error": "..."} with the
template's own message, and the next lines are still answered. --user (and --system)
render one exchange and print the text.`,
		Examples: []string{
			`llmrun render-chat ~/models/SmolLM2-135M-Instruct --user "What is 2+2?"`,
			`echo '{"messages": [{"role": "user", "content": "Hi"}], "add_generation_prompt": true}' | llmrun render-chat ../shared/tokenizers/smollm2-135m-instruct --jsonl`,
		},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			jsonl := fs.Bool("jsonl", false, "read JSON lines from stdin, write JSON lines")
			user := fs.String("user", "", "a user message to render")
			system := fs.String("system", "", "with --user: a system message before it")
			genPrompt := fs.Bool("add-generation-prompt", true, "with --user: end with the header of the assistant's reply")
			return func(pos []string) error {
				dir, err := cmdline.OnePositional(pos, "DIR")
				if err != nil {
					return err
				}
				set := cmdline.SetFlags(fs)
				if set["user"] == *jsonl {
					return cmdline.Usagef("give --user TEXT or --jsonl (exactly one)")
				}
				tok, err := loadTokenizer(dir)
				if err != nil {
					return err
				}
				tmpl, err := loadTemplate(dir)
				if err != nil {
					return err
				}
				tm := &textModel{tok: tok, tmpl: tmpl, dir: dir}
				if *jsonl {
					return jsonLines(stdin, stdout, func(line []byte) (any, error) {
						var in struct {
							Messages            *[]chattemplate.Message `json:"messages"`
							AddGenerationPrompt bool                    `json:"add_generation_prompt"`
						}
						if err := json.Unmarshal(line, &in); err != nil {
							return nil, err
						}
						if in.Messages == nil {
							return nil, errors.New(`"messages" is missing`)
						}
						rendered, ids, err := tm.encodeChat(*in.Messages, in.AddGenerationPrompt)
						var raise *chattemplate.RaiseError
						if errors.As(err, &raise) {
							// The template refused this conversation: that is
							// its answer, in its own words, and the next line
							// still gets one.
							return struct {
								Error string `json:"error"`
							}{raise.Message}, nil
						}
						if ids == nil {
							ids = []int{}
						}
						return struct {
							Rendered string `json:"rendered"`
							IDs      []int  `json:"ids"`
						}{rendered, ids}, err
					})
				}
				var msgs []chattemplate.Message
				if set["system"] {
					msgs = append(msgs, chattemplate.Message{Role: "system", Content: *system})
				}
				msgs = append(msgs, chattemplate.Message{Role: "user", Content: *user})
				rendered, err := tmpl.Render(msgs, *genPrompt)
				if err != nil {
					return templateError(dir, err)
				}
				_, err = io.WriteString(stdout, rendered)
				if err == nil && !strings.HasSuffix(rendered, "\n") {
					_, err = io.WriteString(stdout, "\n")
				}
				return err
			}
		},
	}
}

// jsonLines runs do on every non-blank line of in and writes each result as
// a JSON line to out, flushed at once (so a program can talk to llmrun line
// by line). The first failure stops it, naming the line.
func jsonLines(in io.Reader, out io.Writer, do func(line []byte) (any, error)) error {
	r := bufio.NewReaderSize(in, 1<<16)
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			v, derr := do(line)
			if derr != nil {
				return fmt.Errorf("stdin line %d: %w", n, derr)
			}
			if err := enc.Encode(v); err != nil {
				return err
			}
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// isTerminalFile reports whether f is an *os.File on a terminal.
func isTerminalFile(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
