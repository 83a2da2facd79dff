package llmruncmd

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unsafe"

	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/native"
	"github.com/llmc-dev/llmc/runtime/pool"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// benchFlags are llmrun bench's settings.
type benchFlags struct {
	prompt, gen, runs int
	batch             int // sequences decoded side by side (Engine.Slots)
	format            string
	noBandwidth       bool
	cpuprofile        string
	common            *commonFlags
	stderr            io.Writer // where an artifact's executable writes its errors
}

func benchCommand(stdout, stderr io.Writer, lp *runtime.LinkedProgram) *cmdline.Command {
	return &cmdline.Command{
		Name: "bench", Args: "MODEL_OR_ART... [--prompt N --gen N --threads T --runs R]",
		Summary: `Measure prefill and decode speed, side by side.

Each MODEL_OR_ART (a model folder, run eagerly with a dynamic KV cache, or a
compiled artifact) prefills a random prompt of --prompt tokens and then decodes
--gen tokens greedily (EOS ignored), --runs times; runs of different models are
interleaved so machine noise hits them alike. It reports prefill tokens/s, decode
tokens/s and ms per token (median, min–max over runs), the start-up time to the
first token (from opening the model or artifact to its first generated token, with
the page cache warm after the first run), peak RSS (each model's own, where Linux
lets the peak be reset between runs), the ratio to the first model, and, from a
read-bandwidth test on this machine in the same run, each model's share of the
memory-bandwidth roofline (bytes read per token × tokens/s ÷ bandwidth: the
weights, and the KV cache at the mean decode position in the format it is stored
in, KV/token).

With --batch B, each run prefills B random prompts into B slots (sequences with
caches of their own) and decodes them side by side: decode tokens/s is then the
aggregate of the B sequences, and ms/token the time of a step of all of them. An
artifact compiled with --slots B steps them in one call that reads each weight
once; model folders and Go and interp artifacts step them one after another,
and an LLVM artifact of one sequence refuses --batch (compile it with --slots).`,
		Examples: []string{
			"llmrun bench ../shared/models/stories260K /tmp/stories.llmc --gen 256",
			"llmrun bench /tmp/m110 /tmp/m110-go.llmc /tmp/m110-llvm.llmc --threads 2 --runs 5 --format json",
			"llmc compile /tmp/m110 --slots 4 -o /tmp/m110-s4.llmc && llmrun bench /tmp/m110-s4.llmc --batch 4",
		},
		Flags: func(fs *flag.FlagSet) func([]string) error {
			b := &benchFlags{stderr: stderr}
			fs.IntVar(&b.prompt, "prompt", 32, "prompt tokens to prefill")
			fs.IntVar(&b.gen, "gen", 128, "tokens to decode")
			fs.IntVar(&b.runs, "runs", 3, "runs per model")
			fs.IntVar(&b.batch, "batch", 1, "sequences to decode side by side (an artifact compiled with --slots B batches them)")
			fs.StringVar(&b.format, "format", "text", "output: text or json")
			fs.BoolVar(&b.noBandwidth, "no-bandwidth", false, "skip the memory bandwidth test")
			fs.StringVar(&b.cpuprofile, "cpuprofile", "", "write a CPU profile of the runs to this file")
			b.common = registerCommon(fs)
			b.common.linked = lp
			return func(pos []string) error { return b.run(pos, stdout, stderr) }
		},
	}
}

// BenchResult is one model's measurements.
type BenchResult struct {
	Model          string    `json:"model"`
	Kind           string    `json:"kind"`
	ISA            string    `json:"isa,omitempty"` // the kernels' instruction set (runtime.PickISA), when known
	CPU            string    `json:"cpu"`           // the machine's CPU model (native.HostModel)
	Threads        int       `json:"threads"`
	PromptTokens   int       `json:"prompt_tokens"`
	GenTokens      int       `json:"gen_tokens"`
	Batch          int       `json:"batch,omitempty"`   // sequences decoded side by side (--batch)
	Batched        bool      `json:"batched,omitempty"` // in one call per step`
	PrefillTokPerS []float64 `json:"prefill_tokens_per_second"`
	DecodeTokPerS  []float64 `json:"decode_tokens_per_second"`
	MsPerToken     []float64 `json:"ms_per_token"` // every decode step of every run
	// FirstToken is, per run, the seconds from opening the model (its
	// weights mapped or read, the program loaded) to the first generated
	// token: what a user waits for at start-up, the page cache warm
	// after the first run.
	FirstToken   []float64 `json:"start_to_first_token_seconds,omitempty"`
	PeakRSSBytes int64     `json:"peak_rss_bytes"`
	WeightBytes  int64     `json:"weight_bytes_per_token"`
	WeightFormat string    `json:"weight_format,omitempty"` // formats the weights are read in, most bytes first: "q8_0+f32"
	// KVBytes is the KV cache a decode step reads at the run's mean decode
	// position (every cached key and value, at the bytes the cache stores),
	// and KVFormat that format (f32, f16, bf16).
	KVBytes       int64   `json:"kv_bytes_per_token"`
	KVFormat      string  `json:"kv_format,omitempty"`
	BandwidthGBps float64 `json:"read_bandwidth_gb_per_s,omitempty"`
	RooflineShare float64 `json:"roofline_share,omitempty"`
}

func (b *benchFlags) run(pos []string, stdout, stderr io.Writer) error {
	if len(pos) == 0 {
		return cmdline.Usagef("missing MODEL_OR_ART")
	}
	switch {
	case b.prompt < 1:
		return cmdline.Usagef("--prompt is %d, want >= 1 prompt tokens", b.prompt)
	case b.gen < 2:
		return cmdline.Usagef("--gen is %d, want >= 2 tokens to decode", b.gen)
	case b.runs < 1:
		return cmdline.Usagef("--runs is %d, want >= 1", b.runs)
	case b.batch < 1:
		return cmdline.Usagef("--batch is %d, want >= 1 sequences", b.batch)
	}
	if err := b.common.check(); err != nil {
		return err
	}
	if b.format != "text" && b.format != "json" {
		return cmdline.Usagef("--format is %q, want text or json", b.format)
	}
	if b.cpuprofile != "" {
		f, err := os.Create(b.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	threads := *b.common.threads
	if threads == 0 {
		threads = pool.New(0).Threads()
	}
	// On a terminal, a line says which run of which model is going: a
	// benchmark of several large models takes minutes.
	progress, shown := func(string, ...any) {}, false
	if !*b.common.quiet && cmdline.IsTerminal(stderr) {
		progress = func(format string, args ...any) {
			fmt.Fprintf(stderr, "\rllmrun bench: "+format+"\x1b[K", args...)
			shown = true
		}
	}
	clearProgress := func() {
		if shown {
			fmt.Fprint(stderr, "\r\x1b[K")
			shown = false
		}
	}
	defer clearProgress()
	results := make([]*BenchResult, len(pos))
	for run := 0; run < b.runs; run++ {
		for i, path := range pos {
			progress("run %d of %d: %s", run+1, b.runs, path)
			r, err := b.once(path, threads)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if results[i] == nil {
				results[i] = r
			} else {
				acc := results[i]
				acc.PrefillTokPerS = append(acc.PrefillTokPerS, r.PrefillTokPerS...)
				acc.DecodeTokPerS = append(acc.DecodeTokPerS, r.DecodeTokPerS...)
				acc.MsPerToken = append(acc.MsPerToken, r.MsPerToken...)
				acc.FirstToken = append(acc.FirstToken, r.FirstToken...)
				acc.PeakRSSBytes = max(acc.PeakRSSBytes, r.PeakRSSBytes)
			}
		}
	}
	// Measured after the models, so that its buffers do not count in their
	// memory use.
	var bw float64
	if !b.noBandwidth {
		progress("measuring the read bandwidth")
		bw = MeasureReadBandwidth(threads)
	}
	clearProgress()
	for _, r := range results {
		if bw > 0 && r.WeightBytes > 0 {
			r.BandwidthGBps = bw
			r.RooflineShare = float64(r.WeightBytes+r.KVBytes) * median(r.DecodeTokPerS) / (bw * 1e9)
		}
	}
	if b.format == "json" {
		return writeJSON(stdout, results)
	}
	return writeBenchTable(stdout, results, bw)
}

// once benchmarks one model once: in-process, or through an artifact's own
// executable.
func (b *benchFlags) once(path string, threads int) (*BenchResult, error) {
	debug.FreeOSMemory() // the last model's heap, out of this one's peak
	resetPeakRSS()
	opened := time.Now()
	e, err := engine.Open(path, b.common.options(threads))
	var ext *engine.ExternalError
	if errors.As(err, &ext) {
		return b.external(ext.Binary, path, threads)
	}
	if err != nil {
		return nil, err
	}
	defer e.Close()
	if b.batch > 1 {
		return b.onceBatch(e, path, threads)
	}
	d := e.Decoder
	if b.prompt+b.gen > d.Context() {
		return nil, cmdline.Usagef("--prompt %d + --gen %d exceed the %d positions of %s", b.prompt, b.gen, d.Context(), path)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	prompt := make([]int, b.prompt)
	for i := range prompt {
		prompt[i] = rng.IntN(d.VocabSize())
	}
	var stamps []time.Time
	res, err := runtime.Generate(d, prompt, runtime.GenerateOptions{
		MaxNewTokens: b.gen,
		OnToken:      func(int) (bool, error) { stamps = append(stamps, time.Now()); return false, nil },
	})
	if err != nil {
		return nil, err
	}
	r := b.result(e, path, threads)
	r.PrefillTokPerS, r.DecodeTokPerS = []float64{res.PrefillTokensPerSecond()}, []float64{res.DecodeTokensPerSecond()}
	r.FirstToken = []float64{stamps[0].Sub(opened).Seconds()}
	for i := 1; i < len(stamps); i++ {
		r.MsPerToken = append(r.MsPerToken, float64(stamps[i].Sub(stamps[i-1]).Microseconds())/1000)
	}
	return r, nil
}

// result is the part of a BenchResult that describes the model.
func (b *benchFlags) result(e *engine.Engine, path string, threads int) *BenchResult {
	r := &BenchResult{Model: path, CPU: native.HostModel(), Kind: e.Kind, Threads: threads, PromptTokens: b.prompt, GenTokens: b.gen,
		PeakRSSBytes: peakRSS(), WeightBytes: e.WeightBytes, WeightFormat: e.WeightFormat,
		// Decode steps see prompt+1 ... prompt+gen-1 cached positions.
		KVBytes: e.KVReadBytes(b.prompt + b.gen/2), KVFormat: e.KVFormat.String()}
	if e.Manifest != nil {
		r.Kind = "artifact (" + e.Manifest.Backend + ")"
		if lp := b.common.linked; lp != nil && lp.ISA != nil {
			// The kernels the executable chose; sixteen-lane dots when they
			// are its AVX-512 ones.
			r.ISA = lp.ISA()
			if n := e.Manifest.Backends.Lanes; n > 8 && r.ISA == runtime.ISAAVX512 {
				r.ISA = fmt.Sprintf("%s (%d-lane dots)", r.ISA, n)
			}
		}
		if r.ISA == "" {
			// The native code's instruction set, and which integer dot
			// products it makes (Q8_0, Q4_0).
			var parts []string
			if isa := e.Manifest.Backends.ISA; isa != "" {
				if n := e.Manifest.Backends.Lanes; n > 8 {
					isa = fmt.Sprintf("%s (%d-lane dots)", isa, n)
				}
				if e.Manifest.Backends.BF16Dot {
					isa += ", bf16 dot"
				}
				parts = append(parts, isa)
			}
			if f := e.Manifest.Backends.IntDot; f != "" {
				parts = append(parts, "int dot "+f)
			}
			r.ISA = strings.Join(parts, ", ")
		}
	} else {
		r.Kind = "eager (dynamic cache)"
		r.ISA = runtime.EagerISA()
	}
	return r
}

// onceBatch prefills b.batch random prompts into as many slots, then
// decodes them side by side, greedily, b.gen steps.
func (b *benchFlags) onceBatch(e *engine.Engine, path string, threads int) (*BenchResult, error) {
	slots, err := e.Slots(b.batch)
	if err != nil {
		return nil, err
	}
	if b.prompt+b.gen > slots.Slot(0).Context() {
		return nil, cmdline.Usagef("--prompt %d + --gen %d exceed the %d positions of %s", b.prompt, b.gen, slots.Slot(0).Context(), path)
	}
	vocab := slots.Slot(0).VocabSize()
	rng := rand.New(rand.NewPCG(1, 2))
	ids, next := make([]int, b.batch), make([]int, b.batch)
	start := time.Now()
	for i := range ids {
		d := slots.Slot(i)
		if err := d.Rewind(0); err != nil {
			return nil, err
		}
		prompt := make([]int, b.prompt)
		for j := range prompt {
			prompt[j] = rng.IntN(vocab)
		}
		logits, err := d.Forward(prompt, false)
		if err != nil {
			return nil, fmt.Errorf("slot %d: prefill: %w", i, err)
		}
		ids[i], next[i] = i, sample.Argmax(logits)
	}
	prefill := time.Since(start)
	r := b.result(e, path, threads)
	r.Batch, r.Batched = b.batch, slots.Batched()
	r.PrefillTokPerS = []float64{float64(b.batch*b.prompt) / prefill.Seconds()}
	start = time.Now()
	last := start
	for step := 1; step < b.gen; step++ {
		logits, err := slots.Step(ids, next)
		if err != nil {
			return nil, fmt.Errorf("decode step %d: %w", step, err)
		}
		for j := range ids {
			next[j] = sample.Argmax(logits[j*vocab : (j+1)*vocab])
		}
		now := time.Now()
		r.MsPerToken = append(r.MsPerToken, float64(now.Sub(last).Microseconds())/1000)
		last = now
	}
	r.DecodeTokPerS = []float64{float64(b.batch*(b.gen-1)) / time.Since(start).Seconds()}
	r.PeakRSSBytes = peakRSS()
	return r, nil
}

// external runs the artifact's executable for one run and reads its JSON.
func (b *benchFlags) external(bin, path string, threads int) (*BenchResult, error) {
	cmd := exec.Command(bin, "bench", path, "--format", "json", "--runs", "1", "--no-bandwidth",
		"--prompt", strconv.Itoa(b.prompt), "--gen", strconv.Itoa(b.gen), "--threads", strconv.Itoa(threads), "--batch", strconv.Itoa(b.batch),
		"--weights-in-place="+strconv.FormatBool(*b.common.inPlace))
	cmd.Stderr = b.stderr
	cmd.Env = append(os.Environ(), engine.HandoffEnv+"=1")
	out, err := cmd.Output()
	if err := childExit(bin, err); err != nil {
		return nil, err
	}
	var rs []*BenchResult
	if err := json.Unmarshal(out, &rs); err != nil || len(rs) != 1 {
		return nil, fmt.Errorf("%s printed no benchmark result", bin)
	}
	return rs[0], nil
}

func writeBenchTable(w io.Writer, rs []*BenchResult, bw float64) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "model\tkind\tweights\tbytes/token\tKV/token\tprefill tok/s\tdecode tok/s (min–max)\tms/token median (min–max)\tvs first\tfirst token\tpeak RSS\troofline\n")
	base := median(rs[0].DecodeTokPerS)
	for _, r := range rs {
		dec := median(r.DecodeTokPerS)
		roof := "-"
		if r.RooflineShare > 0 {
			roof = fmt.Sprintf("%.0f%%", 100*r.RooflineShare)
		}
		kind := r.Kind
		if r.ISA != "" {
			kind += ", " + r.ISA
		}
		if r.Batch > 1 {
			how := "one call per step"
			if !r.Batched {
				how = "one after another"
			}
			kind += fmt.Sprintf(", %d sequences %s", r.Batch, how)
		}
		wf := r.WeightFormat
		if wf == "" {
			wf = "-"
		}
		first := "-"
		if len(r.FirstToken) > 0 {
			first = fmt.Sprintf("%.3f s", median(r.FirstToken))
		}
		kv := "-"
		if r.KVBytes > 0 {
			kv = cmdline.HumanBytes(int(r.KVBytes)) + " " + r.KVFormat
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%.1f (%.1f–%.1f)\t%.3f (%.3f–%.3f)\t%.2fx\t%s\t%s\t%s\n",
			r.Model, kind, wf, cmdline.HumanBytes(int(r.WeightBytes)), kv, median(r.PrefillTokPerS), dec, slices.Min(r.DecodeTokPerS), slices.Max(r.DecodeTokPerS),
			median(r.MsPerToken), slices.Min(r.MsPerToken), slices.Max(r.MsPerToken), dec/base,
			first, cmdline.HumanBytes(int(r.PeakRSSBytes)), roof)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if bw > 0 {
		fmt.Fprintf(w, "read bandwidth: %.2f GB/s (%d threads); roofline = (weight + KV cache bytes per token) × decode tok/s ÷ bandwidth\n", bw, rs[0].Threads)
	}
	fmt.Fprintf(w, "prompt %d tokens, %d decoded, %d runs each, %d threads\n", rs[0].PromptTokens, rs[0].GenTokens, len(rs[0].DecodeTokPerS), rs[0].Threads)
	fmt.Fprintf(w, "cpu: %s\n", native.HostModel())
	return nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// peakRSS is the process's peak resident set size since the last
// resetPeakRSS: /proc/self/status's VmHWM, or getrusage's maximum where
// there is no /proc.
func peakRSS() int64 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err == nil {
					return kb * 1024
				}
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

// resetPeakRSS sets the peak resident set size to the current one (Linux:
// writing 5 to /proc/self/clear_refs), so that each model's run reports
// its own peak, not the largest model's before it. Where it cannot, the
// peaks are the process's so far.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// MeasureReadBandwidth reads a 1 GiB buffer with all threads and returns
// the best of three passes in GB/s. It sums 64-bit words with four
// independent accumulators, so the loop is bound by memory, not by
// arithmetic (a scalar float sum is not, on a fast machine). The buffer
// comes from runtime.AllocFloats, as compiled programs' weights do, so
// both read memory backed by the same kind of pages.
//
// It also reads a buffer from the Go heap and reports the better of the
// two, so that the roofline is an upper bound, never flattered by a slow
// measurement.
func MeasureReadBandwidth(threads int) float64 {
	const n = 128 << 20 // uint64s: 1 GiB
	best := readBandwidth(make([]uint64, n), threads)
	mem, free, err := runtime.AllocFloats(2 * n)
	if err == nil {
		defer free()
		best = max(best, readBandwidth(unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(mem))), n), threads))
	}
	return best
}

func readBandwidth(buf []uint64, threads int) float64 {
	n := len(buf)
	for i := range buf {
		buf[i] = uint64(i)
	}
	p := pool.New(threads)
	defer p.Close()
	sums := make([]uint64, threads*8)
	best := 0.0
	for pass := 0; pass < 3; pass++ {
		start := time.Now()
		chunk := n / threads
		p.ParallelFor(threads, func(lo, hi int) {
			for t := lo; t < hi; t++ {
				sums[t*8] = sumWords(buf[t*chunk : (t+1)*chunk])
			}
		})
		secs := time.Since(start).Seconds()
		best = max(best, float64(8*n)/secs/1e9)
	}
	return best
}

func sumWords(xs []uint64) uint64 {
	var s0, s1, s2, s3 uint64
	for i := 0; i+8 <= len(xs); i += 8 {
		s0 += xs[i] ^ xs[i+4]
		s1 += xs[i+1] ^ xs[i+5]
		s2 += xs[i+2] ^ xs[i+6]
		s3 += xs[i+3] ^ xs[i+7]
	}
	return s0 + s1 + s2 + s3
}
