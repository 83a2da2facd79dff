// Package cli implements the llmc command, so that its main stays one line
// long and tests can run it in-process; llmrun's commands are in
// llmruncmd, what both share in cmdline.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
)

// Llmc runs the llmc command with args (without the program name) and
// returns its exit status.
func Llmc(args []string, stdout, stderr io.Writer) int {
	return LlmcWithSource(nil, args, stdout, stderr)
}

// LlmcWithSource is Llmc with src the llmc module's embedded sources
// (llmc.Source, which cmd/llmc passes), that compile --backend go builds
// against when it finds no checkout (see compiler.Options.Source).
func LlmcWithSource(src fs.FS, args []string, stdout, stderr io.Writer) int {
	p := &cmdline.Program{Name: "llmc", Commands: llmcCommands(src, stdout, stderr)}
	return p.Run(args, stdout, stderr)
}

// listFlag collects a comma-separated, repeatable flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

func llmcCommands(src fs.FS, stdout, stderr io.Writer) []*cmdline.Command {
	return []*cmdline.Command{
		{
			Name: "compile", Args: "MODEL -o ART [--max-seq N] [--kv static|dynamic] [flags]",
			Summary: `Compile a Hugging Face model folder into an artifact folder ART that llmrun runs.

With a static KV cache (the default) the cache is preallocated to --max-seq
positions, every shape of a decode step becomes a constant, and the pipeline
specialises and fuses the step into a few kernels per layer. Prompts are
prefilled by a second entry point compiled for --prefill-chunk tokens (the last
chunk padded and masked). With --kv dynamic the cache grows and the graph keeps
its symbolic shapes; specialisation and fusion are skipped, and --stats says why.

ART is written under a temporary name next to it and renamed when complete.
SIGINT (Ctrl-C) or SIGTERM stops the compile and the tools it runs, removes
the temporary folder and leaves ART as it was (exit status 1); a second one
ends llmc at once. Temporary folders left by a compile that was killed are
removed by the next compile to the same ART.`,
			Examples: []string{
				"llmc compile ../shared/models/stories260K --max-seq 512 -o /tmp/stories.llmc --stats",
				"llmc compile ../shared/models/stories260K -o /tmp/s.llmc --print-after=fuse-kernels,lower",
				"llmc compile ~/models/my-llama --max-seq 2048 --disable-pass=fuse-linears --dump-dir /tmp/dumps -o /tmp/my.llmc",
				"llmc compile ../shared/models/stories260K -o /tmp/s.llmc --emit dot && dot -Tsvg /tmp/s.llmc/program.dot > s.svg",
				"llmc compile ../shared/models/stories260K --slots 4 -o /tmp/s4.llmc && llmrun serve /tmp/s4.llmc --slots 4",
				"llmc compile ../shared/models/stories260K --kv-dtype bf16 -o /tmp/s-bf16.llmc --stats",
			},
			Flags: func(fs *flag.FlagSet) func([]string) error {
				o := compiler.Options{Source: src}
				var kv, out, backend string
				var printAfter, disable, emit listFlag
				var stats, list, listStages, quiet bool
				fs.StringVar(&out, "o", "", "output artifact folder (replaced if it is an artifact already)")
				fs.IntVar(&o.MaxSeq, "max-seq", 0, fmt.Sprintf("positions of the static KV cache (default: the model's max_position_embeddings, at most %d)", compiler.DefaultMaxSeq))
				fs.StringVar(&kv, "kv", "static", "KV cache: static (preallocated, specialised and fused) or dynamic")
				fs.IntVar(&o.PrefillChunk, "prefill-chunk", 0, compiler.PrefillChunkHelp())
				fs.IntVar(&o.Slots, "slots", 1, "sequences the static KV cache holds, each with --max-seq positions; with more than one, a decode_batch entry point steps them together, reading each weight once (for llmrun serve --slots)")
				fs.StringVar(&backend, "backend", "", compiler.BackendHelp())
				fs.Var(&printAfter, "print-after", "print the IR after these passes or stages (comma-separated; see --list-passes, --list-stages) to stderr")
				fs.BoolVar(&o.Passes.PrintAfterAll, "print-after-all", false, "print the IR after every pass, and the kernel IR after lower, to stderr")
				fs.Var(&disable, "disable-pass", "do not run these passes (comma-separated; required passes cannot be disabled)")
				fs.StringVar(&o.Passes.DumpDir, "dump-dir", "", "write the IR after every pass to DIR/ENTRY/NN__PASS.ir")
				fs.BoolVar(&stats, "stats", false, "print per-pass times and changes, op and kernel counts, the arena size and the stage times")
				fs.BoolVar(&list, "list-passes", false, "list the passes in pipeline order and exit")
				fs.BoolVar(&listStages, "list-stages", false, "list the compile stages in order and exit")
				fs.Var(&emit, "emit", "extra outputs (comma-separated): dot (Graphviz graph of the optimised program, kernels as clusters), kir (kernel IR as program.kir), llvm (LLVM IR as model.ll, which the llvm backend always writes), ir (the program IR, program.ir, which every artifact has)")
				fs.BoolVar(&quiet, "quiet", false, "no progress output")
				fs.StringVar(&o.KVDtype, "kv-dtype", "", "element type the static KV cache is stored in: f32, f16 or bf16 (half the bytes; keys and values rounded as written, widened as read, all compute in f32; backends go and llvm) (default: f16 beside block-format weights (--weights q8_0, q4_0, q4_k) where the backend stores it, else f32)")
				fs.StringVar(&o.Weights.Format, "weights", "", "weight format: f32 (widen all), bf16 (keep bfloat16 checkpoint tensors; the default where the backend loads them, and an f16 checkpoint's tensors stay f16), f16 (store the linear weights, the embedding table and the output projection as float16 in the artifact), q8_0, q4_0 or q4_k (llama.cpp's 8-bit and 4-bit blocks of 32, and its 4-bit blocks of 256 with a 6-bit scale and min for each 32: linear weights, the embedding table and the output projection; norms stay f32)")
				fs.BoolVar(&o.Weights.KeepEmbeddings, "keep-embeddings", false, "with a block format (--weights q8_0, q4_0, q4_k), keep the token embedding table (and an output projection tied to it) in f32")
				fs.BoolVar(&o.Weights.KeepOutput, "keep-output", false, "with a block format (--weights q8_0, q4_0, q4_k), keep an untied output projection (lm_head) in f32")
				fs.BoolVar(&o.Weights.FloatDot, "float-dot", false, "with a block format (--weights q8_0, q4_0, q4_k) and a backend with integer dot products (llvm), keep the float path: each quant widened and multiplied by the float activations, instead of the activations quantised per block of 32 and int8 products summed in int32 (VNNI, AVX2 or portable, by the CPU and LLMC_ISA)")
				return func(pos []string) error {
					if list {
						for _, p := range passes.Pipeline() {
							req := ""
							if p.Required {
								req = " (required)"
							}
							fmt.Fprintf(stdout, "%-18s %s%s\n", p.Name, p.Doc, req)
						}
						return nil
					}
					if listStages {
						for _, s := range compiler.Stages() {
							prints := ""
							if s.Prints != "" {
								prints = " (--print-after prints " + s.Prints + ")"
							}
							fmt.Fprintf(stdout, "%-18s %s%s\n", s.Name, s.Doc, prints)
						}
						return nil
					}
					path, err := cmdline.OnePositional(pos, "MODEL")
					if err != nil {
						return err
					}
					if out == "" {
						return cmdline.Usagef("-o ART is required: the artifact folder to write")
					}
					if err := runtime.CheckISAEnv(); err != nil {
						return err
					}
					if err := checkModelFolder(path, "compile"); err != nil {
						return err
					}
					set := cmdline.SetFlags(fs)
					if err := cmdline.CheckPositive(set, "max-seq", o.MaxSeq, "the model's max_position_embeddings"); err != nil {
						return err
					}
					if err := cmdline.CheckPositive(set, "prefill-chunk", o.PrefillChunk, "the backend's default"); err != nil {
						return err
					}
					if err := cmdline.CheckPositive(set, "slots", o.Slots, "one sequence"); err != nil {
						return err
					}
					// What the compile would find only at its end (-o), or
					// after printing IR (--dump-dir), checked first; and
					// what only llmrun would find (the tokenizer), said now.
					if err := checkOutput(out); err != nil {
						return err
					}
					if o.Passes.DumpDir != "" {
						if err := checkDumpDir(o.Passes.DumpDir); err != nil {
							return err
						}
					}
					for _, w := range checkText(path) {
						fmt.Fprintf(stderr, "llmc: warning: %s\n", w)
					}
					o.KV, o.Backend = passes.KVMode(kv), backend
					o.PrintAfter, o.Passes.Disabled = printAfter, disable
					o.Passes.Log = stderr
					// ir: the program IR, which every artifact has.
					emits := map[string]*bool{"dot": &o.EmitDot, "kir": &o.EmitKIR, "llvm": &o.EmitLLVM, "ir": new(bool)}
					for _, e := range emit {
						set, ok := emits[e]
						if !ok {
							return cmdline.Usagef("--emit %q: want dot, kir, llvm or ir", e)
						}
						*set = true
					}
					if !quiet && cmdline.IsTerminal(stderr) {
						o.Progress = stderr
					}
					ctx, stop := interruptible(context.Background())
					defer stop()
					res, err := compiler.CompileContext(ctx, path, out, o)
					err = leftAsItWas(ctx, err, out)
					var bad *passes.OptionError
					if errors.As(err, &bad) {
						return cmdline.Usagef("%v", err)
					}
					if err != nil {
						return err
					}
					if stats {
						fmt.Fprintf(stdout, "%s\n%s\n", res.Backend, res.KV)
						passes.WriteStats(stdout, res.Reports)
						compiler.WriteQuantStats(stdout, o.Weights.Format, res.Quant)
						compiler.WriteStageStats(stdout, res.Stages)
					}
					if !quiet && cmdline.IsTerminal(stderr) {
						fmt.Fprintf(stderr, "llmc: wrote %s (%d entry points, %d kernels)\n", out, len(res.Manifest.Entries), len(res.Manifest.Kernels))
					}
					return nil
				}
			},
		},
		{
			Name: "ir", Args: "MODEL [--all-logits]",
			Summary:  "Print the graph IR of one forward step of a Hugging Face model folder.",
			Examples: []string{"llmc ir ../shared/models/stories260K | less"},
			Flags: func(fs *flag.FlagSet) func([]string) error {
				all := fs.Bool("all-logits", false, "return logits for every new token (as scoring does), not only the last")
				return func(pos []string) error {
					path, err := cmdline.OnePositional(pos, "MODEL")
					if err != nil {
						return err
					}
					if err := checkModelFolder(path, "ir"); err != nil {
						return err
					}
					m, err := hf.Open(path)
					if err != nil {
						return err
					}
					defer m.Close()
					g, err := m.Build(hf.BuildOptions{AllLogits: *all})
					if err != nil {
						return err
					}
					return ir.Fprint(stdout, g)
				}
			},
		},
		{
			Name: "kv", Args: "MODEL --max-seq N [--dtype D --prefill-chunk C]",
			Short: "Print the KV cache size of a model for N positions, with its breakdown.",
			Summary: `Print the KV cache size of a model for N positions, with its breakdown:
  2 (K and V) × layers × KV heads × head dim × positions × bytes per element.
The textbook formula, positions × layers × attention heads × head dim × bytes,
counts only one of K and V and ignores grouped-query attention (KV heads fewer
than attention heads). Layers with a sliding window of W positions need only
min(N, W) positions; the total accounts for that. llmc compile's static cache
keeps a ring of W + C - 1 rows there (C: --prefill-chunk), which the line
"as compiled" counts; it is what llmc compile --stats reports and an artifact
allocates (with --kv-dtype D, at D's bytes).`,
			Examples: []string{"llmc kv ../shared/models/stories260K --max-seq 512", "llmc kv ~/models/gemma-2-2b --max-seq 8192 --dtype bf16"},
			Flags: func(fs *flag.FlagSet) func([]string) error {
				maxSeq := fs.Int("max-seq", 0, "positions to hold (default: the model's max_position_embeddings)")
				dtype := fs.String("dtype", "f32", "element type of the cache: f32, f16 or bf16 (llmc compile --kv-dtype)")
				chunk := fs.Int("prefill-chunk", compiler.DefaultPrefillChunk, "tokens per prefill call of llmc compile, which sizes sliding-window rings")
				return func(pos []string) error {
					path, err := cmdline.OnePositional(pos, "MODEL")
					if err != nil {
						return err
					}
					if err := cmdline.CheckPositive(cmdline.SetFlags(fs), "max-seq", *maxSeq, "the model's max_position_embeddings"); err != nil {
						return err
					}
					dt, err := ir.ParseDType(*dtype)
					if err != nil || !dt.IsFloat() {
						return cmdline.Usagef("--dtype is %q, want f32, f16 or bf16", *dtype)
					}
					if err := cmdline.CheckFolder(path, "a Hugging Face model folder"); err != nil {
						return err
					}
					cfg, err := hf.ReadConfig(path)
					if err != nil {
						return err
					}
					n := *maxSeq
					if !cmdline.SetFlags(fs)["max-seq"] {
						n = cfg.MaxPositions
					}
					if err := cmdline.CheckPositive(cmdline.SetFlags(fs), "prefill-chunk", *chunk, fmt.Sprintf("%d tokens", compiler.DefaultPrefillChunk)); err != nil {
						return err
					}
					if _, err := io.WriteString(stdout, KVReport(cfg, n, dt, min(*chunk, n))); err != nil {
						return err
					}
					if n > cfg.MaxPositions {
						fmt.Fprintf(stderr, "llmc kv: note: %d positions is more than the model's max_position_embeddings, %d, which llmc compile --max-seq does not go past\n", n, cfg.MaxPositions)
					}
					return nil
				}
			},
		},
		synthCommand(stdout, stderr),
	}
}

// checkModelFolder refuses a path that is not a folder (in llmrun's
// words), and an llmc artifact where llmc cmd wants a Hugging Face model
// folder, saying which folder to pass instead.
func checkModelFolder(path, cmd string) error {
	if err := cmdline.CheckFolder(path, "a Hugging Face model folder"); err != nil {
		return err
	}
	if artifact.IsArtifact(path) {
		man, err := artifact.Read(path)
		if err != nil || man.Model.Dir == "" {
			return fmt.Errorf("%s is an llmc artifact, not a Hugging Face model folder: pass llmc %s the model folder it was compiled from", path, cmd)
		}
		return fmt.Errorf("%s is an llmc artifact, compiled from %s: pass llmc %s that model folder instead", path, man.Model.Dir, cmd)
	}
	if name, ok := artifact.OwnFile(path); ok {
		return fmt.Errorf("%s looks like an llmc artifact (it has %s) without its %s, not a Hugging Face model folder: pass llmc %s the model folder it was compiled from",
			path, name, artifact.ManifestName, cmd)
	}
	return nil
}

// KVReport describes the KV cache of cfg for n positions of dtype dt, and
// the static cache llmc compile allocates for it with prefill chunks of
// chunk tokens.
func KVReport(cfg *hf.Config, n int, dt ir.DType, chunk int) string {
	var b strings.Builder
	bytes := dt.Size()
	full, windowed := 0, 0
	for l := 0; l < cfg.NumLayers; l++ {
		if cfg.IsLayerSliding(l) {
			windowed++
		} else {
			full++
		}
	}
	total := int(cfg.KVBytes(n, bytes))
	fmt.Fprintf(&b, "KV cache for %d positions, %s:\n", n, dt)
	fmt.Fprintf(&b, "  2 (K and V) × %d layers × %d KV heads × %d head dim × %d positions × %d bytes = %s\n",
		cfg.NumLayers, cfg.NumKVHeads, cfg.HeadDim, n, bytes, cmdline.HumanBytes(2*cfg.NumLayers*cfg.NumKVHeads*cfg.HeadDim*n*bytes))
	if windowed > 0 {
		w := min(n, cfg.SlidingWindow)
		fmt.Fprintf(&b, "  sliding window of %d: %d of the %d layers keep only %d positions:\n", cfg.SlidingWindow, windowed, cfg.NumLayers, w)
		fmt.Fprintf(&b, "    2 × %d full layers × %d × %d × %d positions × %d bytes\n", full, cfg.NumKVHeads, cfg.HeadDim, n, bytes)
		fmt.Fprintf(&b, "  + 2 × %d windowed layers × %d × %d × %d positions × %d bytes = %s\n", windowed, cfg.NumKVHeads, cfg.HeadDim, w, bytes, cmdline.HumanBytes(total))
	}
	textbook := n * cfg.NumLayers * cfg.NumHeads * cfg.HeadDim * bytes
	fmt.Fprintf(&b, "total: %s (%d bytes)\n", cmdline.HumanBytes(total), total)
	if compiled := int(cfg.StaticKVBytes(n, chunk, bytes)); compiled != total {
		fmt.Fprintf(&b, "as compiled (--prefill-chunk %d: windowed layers keep min(%d, %d + %d - 1) rows): %s (%d bytes)\n",
			chunk, n, cfg.SlidingWindow, chunk, cmdline.HumanBytes(compiled), compiled)
	}
	fmt.Fprintf(&b, "per position: %s\n", cmdline.HumanBytes(total/max(n, 1)))
	fmt.Fprintf(&b, "(the textbook positions × layers × attention heads × head dim × bytes = %s counts one of K and V", cmdline.HumanBytes(textbook))
	if cfg.NumKVHeads != cfg.NumHeads {
		fmt.Fprintf(&b, " and %d attention heads instead of %d KV heads", cfg.NumHeads, cfg.NumKVHeads)
	}
	b.WriteString(")\n")
	return b.String()
}
