package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/ir"
)

// Llmc runs the llmc command with args (without the program name) and
// returns its exit status.
func Llmc(args []string, stdout, stderr io.Writer) int {
	return run("llmc", llmcCommands(stdout), args, stdout, stderr)
}

func llmcCommands(stdout io.Writer) []*command {
	return []*command{
		{
			name: "ir", args: "MODEL [--all-logits]",
			summary:  "Print the graph IR of one forward step of a Hugging Face model folder.",
			examples: []string{"llmc ir ../shared/models/stories260K | less"},
			flags: func(fs *flag.FlagSet) func([]string) error {
				all := fs.Bool("all-logits", false, "return logits for every new token (as scoring does), not only the last")
				return func(pos []string) error {
					path, err := onePositional(pos, "MODEL")
					if err != nil {
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
			name: "kv", args: "MODEL --max-seq N [--dtype D]",
			summary: `Print the KV cache size of a model for N positions, with its breakdown:
  2 (K and V) × layers × KV heads × head dim × positions × bytes per element.
The textbook formula, positions × layers × attention heads × head dim × bytes,
counts only one of K and V and ignores grouped-query attention (KV heads fewer
than attention heads). Layers with a sliding window of W positions need only
min(N, W) positions; the total accounts for that.`,
			examples: []string{"llmc kv ../shared/models/stories260K --max-seq 512", "llmc kv ~/models/gemma-2-2b --max-seq 8192 --dtype bf16"},
			flags: func(fs *flag.FlagSet) func([]string) error {
				maxSeq := fs.Int("max-seq", 0, "positions to hold (default: the model's max_position_embeddings)")
				dtype := fs.String("dtype", "f32", "element type of the cache: f32, f16 or bf16")
				return func(pos []string) error {
					path, err := onePositional(pos, "MODEL")
					if err != nil {
						return err
					}
					dt, err := ir.ParseDType(*dtype)
					if err != nil || !dt.IsFloat() {
						return usagef("--dtype is %q, want f32, f16 or bf16", *dtype)
					}
					cfg, err := hf.ReadConfig(path)
					if err != nil {
						return err
					}
					n := *maxSeq
					if n == 0 {
						n = cfg.MaxPositions
					}
					if n < 0 {
						return usagef("--max-seq is %d, want a positive number", n)
					}
					_, err = io.WriteString(stdout, KVReport(cfg, n, dt))
					return err
				}
			},
		},
	}
}

// KVReport describes the KV cache of cfg for n positions of dtype dt.
func KVReport(cfg *hf.Config, n int, dt ir.DType) string {
	var b strings.Builder
	bytes := dt.Size()
	perPos := 2 * cfg.NumKVHeads * cfg.HeadDim * bytes // one layer, one position, K and V
	full, windowed := 0, 0
	for l := 0; l < cfg.NumLayers; l++ {
		if cfg.IsLayerSliding(l) {
			windowed++
		} else {
			full++
		}
	}
	total := full * perPos * n
	fmt.Fprintf(&b, "KV cache for %d positions, %s:\n", n, dt)
	fmt.Fprintf(&b, "  2 (K and V) × %d layers × %d KV heads × %d head dim × %d positions × %d bytes = %s\n",
		cfg.NumLayers, cfg.NumKVHeads, cfg.HeadDim, n, bytes, humanBytes(2*cfg.NumLayers*cfg.NumKVHeads*cfg.HeadDim*n*bytes))
	if windowed > 0 {
		w := min(n, cfg.SlidingWindow)
		total += windowed * perPos * w
		fmt.Fprintf(&b, "  sliding window of %d: %d of the %d layers keep only %d positions:\n", cfg.SlidingWindow, windowed, cfg.NumLayers, w)
		fmt.Fprintf(&b, "    2 × %d full layers × %d × %d × %d positions × %d bytes\n", full, cfg.NumKVHeads, cfg.HeadDim, n, bytes)
		fmt.Fprintf(&b, "  + 2 × %d windowed layers × %d × %d × %d positions × %d bytes = %s\n", windowed, cfg.NumKVHeads, cfg.HeadDim, w, bytes, humanBytes(total))
	}
	textbook := n * cfg.NumLayers * cfg.NumHeads * cfg.HeadDim * bytes
	fmt.Fprintf(&b, "total: %s (%d bytes)\n", humanBytes(total), total)
	fmt.Fprintf(&b, "per position: %s\n", humanBytes(total/max(n, 1)))
	fmt.Fprintf(&b, "(the textbook positions × layers × attention heads × head dim × bytes = %s counts one of K and V", humanBytes(textbook))
	if cfg.NumKVHeads != cfg.NumHeads {
		fmt.Fprintf(&b, " and %d attention heads instead of %d KV heads", cfg.NumHeads, cfg.NumKVHeads)
	}
	b.WriteString(")\n")
	return b.String()
}

func humanBytes(n int) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, suffix := float64(n), []string{"KiB", "MiB", "GiB", "TiB"}
	i := -1
	for f >= unit && i < len(suffix)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.2f %s", f, suffix[i])
}
