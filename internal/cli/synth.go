package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/internal/synth"
)

func synthCommand(stdout, stderr io.Writer) *cmdline.Command {
	// The shapes' tokenizers are folders of ../shared/tokenizers, the
	// project's test assets; the help names them as paths when they are
	// there.
	shared := filepath.Join("..", "shared", "tokenizers")
	_, err := os.Stat(shared)
	haveShared := err == nil
	var shapes strings.Builder
	tw := tabwriter.NewWriter(&shapes, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  shape\tarchitecture\thidden\tMLP\tlayers\theads\tKV heads\thead dim\tvocab\tpositions\tparameters\tdtype\ttokenizer\n")
	for _, s := range synth.Shapes() {
		arch := s.Arch
		if arch == "" {
			arch = synth.LlamaArch
		}
		dtype := string(s.DType)
		if dtype == "" {
			dtype = "f32"
		}
		tok := "-"
		if s.Tokenizer != "" {
			tok = s.Tokenizer
			if p := filepath.Join(shared, s.Tokenizer); haveShared && exists(p) {
				tok = p
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Name, strings.TrimSuffix(arch, "ForCausalLM"),
			s.Hidden, s.Intermediate, s.Layers, s.Heads, s.KVHeads, s.HeadDim(), s.Vocab, s.MaxPositions, humanCount(s.Params()), dtype, tok)
	}
	tw.Flush()
	tokNote := `The tokenizer column names the model's tokenizer as a folder of
../shared/tokenizers (the project's test assets, not here); pass such a
folder with --tokenizer.`
	if haveShared {
		tokNote = `The tokenizer column is the model's tokenizer in ../shared/tokenizers:
pass it with --tokenizer to generate text (it is not copied otherwise).`
	}
	return &cmdline.Command{
		Name: "synth", Args: "--shape NAME -o DIR [flags]",
		Summary: `Write a random-weight Hugging Face model folder of a named shape.

The folder has config.json (the published model's values, for its
architecture), model.safetensors (its tensor names and shapes) and
generation_config.json, so llmrun and llmc take it like a downloaded model.
Weights are N(0, σ²) with σ the config's initializer_range; norms make a
scale of 1 (Gemma stores the scale as 1 + w, so its norm weights are 0). The
same seed gives the same bytes. They are generated on all cores and written
as they are made, so memory stays small for any size and a multi-GB model
takes seconds (progress on a terminal). With --tokenizer, the tokenizer's
files are copied in and set the BOS and EOS ids (with its turn ends in
generation_config.json) and, unless the shape's vocabulary holds it, the
vocabulary size, so that llmrun can generate (meaningless) text with it.

DIR is written under a temporary name next to it and renamed when complete.
SIGINT (Ctrl-C) or SIGTERM stops the synth, removes the temporary folder and
leaves DIR as it was (exit status 1); a second one ends llmc at once.
Temporary folders left by a synth that was killed are removed by the next
synth to the same DIR.

shapes (dtype: the published checkpoint's, the default of --dtype):
` + strings.TrimRight(shapes.String(), "\n") + `

` + tokNote,
		Examples: []string{
			"llmc synth --shape stories110M -o /tmp/stories110M",
			"llmc synth --shape gemma-2b --tokenizer ../shared/tokenizers/gemma-2b-it -o /tmp/gemma-2b",
			"llmc synth --shape tinyllama-1.1b --dtype f32 -o /tmp/tinyllama --seed 1",
			"llmc synth --shape stories15M --tokenizer ../shared/tokenizers/smollm2-135m-instruct -o /tmp/smol15M",
		},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			var o synth.Options
			var shape, out, dtype string
			var tied, quiet bool
			fs.StringVar(&shape, "shape", "", "the model shape (see above)")
			fs.StringVar(&out, "o", "", "output model folder (must not exist or be empty, unless --force)")
			fs.Uint64Var(&o.Seed, "seed", 0, "random seed of the weights")
			fs.StringVar(&dtype, "dtype", "", "weight type: f32, f16 or bf16 (default: the shape's, as published)")
			fs.IntVar(&o.Vocab, "vocab", 0, "vocabulary size (default: the shape's, or the tokenizer's)")
			fs.IntVar(&o.MaxPositions, "max-positions", 0, "max_position_embeddings (default: the shape's)")
			fs.BoolVar(&tied, "tied", false, "tie the output layer to the embeddings (default: the shape's: tinyllama-1.1b is untied, the others tied)")
			fs.StringVar(&o.Tokenizer, "tokenizer", "", "copy this folder's tokenizer.json, tokenizer_config.json and chat template into the model")
			fs.BoolVar(&o.NoGenerationConfig, "no-generation-config", false, "do not write generation_config.json")
			fs.BoolVar(&o.Replace, "force", false, "replace DIR if it exists")
			fs.BoolVar(&quiet, "quiet", false, "no progress output")
			return func(pos []string) error {
				if len(pos) > 0 {
					return cmdline.Usagef("unexpected arguments: %s (the output folder is -o DIR)", strings.Join(pos, " "))
				}
				if shape == "" {
					return cmdline.Usagef("--shape is required")
				}
				s, err := synth.LookupShape(shape)
				if err != nil {
					return cmdline.Usagef("--shape: %v", err)
				}
				if out == "" {
					return cmdline.Usagef("-o DIR is required: the model folder to write")
				}
				switch dtype {
				case "", "f32", "f16", "bf16":
				default:
					return cmdline.Usagef("--dtype is %q, want f32, f16 or bf16", dtype)
				}
				set := cmdline.SetFlags(fs)
				if err := cmdline.CheckPositive(set, "vocab", o.Vocab, "the shape's, or the tokenizer's"); err != nil {
					return err
				}
				if err := cmdline.CheckPositive(set, "max-positions", o.MaxPositions, "the shape's"); err != nil {
					return err
				}
				if o.Tokenizer != "" {
					if _, err := os.Stat(o.Tokenizer); errors.Is(err, os.ErrNotExist) {
						return fmt.Errorf("--tokenizer: %s does not exist: want a folder with the tokenizer files (tokenizer.json, tokenizer_config.json)", o.Tokenizer)
					} else if err != nil {
						return fmt.Errorf("--tokenizer: %w", err)
					}
				}
				if set["tied"] {
					o.Tied = &tied
				}
				o.Shape, o.DType = s, synth.DType(dtype)
				show := !quiet && cmdline.IsTerminal(stderr)
				if show {
					o.Progress = stderr
				}
				ctx, stop := interruptible(context.Background())
				defer stop()
				res, err := synth.WriteContext(ctx, out, o)
				if err = leftAsItWas(ctx, err, out); err != nil {
					return err
				}
				if show {
					tiedNote := "untied"
					if res.Shape.Tied {
						tiedNote = "tied"
					}
					fmt.Fprintf(stderr, "llmc: wrote %s: %s, %s parameters, %s, %s embeddings, vocabulary %d, %s\n",
						out, res.Shape.Name, humanCount(res.Params), res.DType, tiedNote, res.Shape.Vocab, cmdline.HumanBytes(int(res.Bytes)))
				}
				return nil
			}
		},
	}
}

// humanCount writes a parameter count as 15.2M or 1.10B.
func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
