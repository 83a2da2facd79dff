package compiler

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/wformat"
)

// Names of the compile stages, in order (see Stages).
const (
	StageBuild       = "build"
	StageGraphPasses = "graph-passes"
	StageQuantize    = "quantize"
	StageLower       = "lower"
	StageKIRPasses   = "kir-passes"
	StageEmit        = "emit"
	StageToolchain   = "toolchain"
	StageWrite       = "write"
)

// Stage describes one compile stage, for --list-stages.
type Stage struct {
	Name string
	Doc  string
	// Prints is what --print-after NAME prints, "" for a stage that
	// prints nothing.
	Prints string
}

// StageStat is what one stage of a compilation took.
type StageStat struct {
	Stage   string
	Time    time.Duration
	Skipped string // why it did nothing, if it did nothing
}

// stage is one entry of the stage table.
type stage struct {
	Stage
	// inArtifact stages run in the artifact's temporary folder (c.tb.dir),
	// which is renamed to the output folder when the last one succeeds.
	inArtifact bool
	// run does the stage's work; it returns a reason when there was none.
	run   func(c *compilation, ctx context.Context) (skipped string, err error)
	print func(c *compilation, w io.Writer)
}

// stages is the stage table in execution order: Compile is a loop over it.
func stages() []stage {
	return []stage{
		{Stage: Stage{StageBuild, "build each entry point's graph from the model (frontends/hf)", "each entry point's graph IR as built"},
			run: (*compilation).buildGraphs, print: printGraphs(StageBuild)},
		{Stage: Stage{StageGraphPasses, "run the pass pipeline (see --list-passes) on each entry point, verifying after every pass", "each entry point's optimised graph IR"},
			run: (*compilation).graphPasses, print: printGraphs(StageGraphPasses)},
		{Stage: Stage{StageQuantize, "with --weights q8_0, q4_0 or q4_k, retype the weights the policy picks to the block format (ir.Verify after) and quantize their tensors for the artifact's weights.bin", "each entry point's graph IR with quantized weights"},
			run: (*compilation).quantize, print: printGraphs(StageQuantize)},
		{Stage: Stage{StageLower, "lower the optimised graphs to kernel IR, for a backend that runs it, --emit kir or llvm, or --print-after of it", "the kernel IR"},
			run: (*compilation).lowerKIR, print: printKIR(StageLower)},
		{Stage: Stage{StageKIRPasses, "run the kernel-IR passes, each followed by kir.Verify (none yet: lowering ends with kir.Verify)", "the kernel IR"},
			run: (*compilation).kirPasses, print: printKIR(StageKIRPasses)},
		{Stage: Stage{StageEmit, "generate the backend's sources, and model.ll for --emit llvm", "the generated sources"},
			inArtifact: true, run: (*compilation).emit, print: printSources},
		{Stage: Stage{StageToolchain, "build the generated sources with the backend's tools (go build; opt, llc, cc)", ""},
			inArtifact: true, run: (*compilation).toolchain},
		{Stage: Stage{StageWrite, "take the model files' hashes (computed in the background since the first stage), write the IR, the --emit files and the manifest, and rename the folder to ART", ""},
			inArtifact: true, run: (*compilation).write},
	}
}

// Stages returns the compile stages in execution order.
func Stages() []Stage {
	var out []Stage
	for _, s := range stages() {
		out = append(out, s.Stage)
	}
	return out
}

// entrySpec is one entry point to build.
type entrySpec struct {
	name  string
	seq   int
	all   bool
	batch bool // rows of several sequences (passes.Entry.Batch)
	runs  int  // logits of the last row of each of this many runs (hf.BuildOptions.Runs)
}

// compilation is the state the stages share.
type compilation struct {
	o                Options
	target           *Target
	model            *hf.Model
	modelDir, outDir string
	specs            []entrySpec
	res              *Result
	man              *artifact.Manifest
	print            map[string]bool // stages to print after
	lower            bool            // whether the lower stage runs
	prog             *kir.Program
	tb               *targetBuild
	weights          wformat.Format // --weights, resolved
	kv               wformat.Format // --kv-dtype, resolved
	maxSeqDefaulted  bool           // --max-seq was not given
	stored           []storedTensor // quantized tensors for weights.bin
	extraFiles       []string       // --emit files that follow the backend's in the manifest
	// hashes waits for the model files' descriptions (hashModel), hashed
	// while the other stages run, and returns them.
	hashes func() ([]artifact.File, error)
}

// hashModel describes the model's files (sizes, times, SHA-256) in the
// background and delivers them once: hashing a multi-GB checkpoint reads
// it at disk or page-cache speed on one core, which the single-threaded
// stages (build to emit) leave free, so write does not wait for it after
// the toolchain. The file is read, not mapped: it occupies the page
// cache, not the compiler's memory.
func (c *compilation) hashModel(ctx context.Context, abs string) func() ([]artifact.File, error) {
	type result struct {
		files []artifact.File
		err   error
	}
	done := make(chan result, 1)
	paths := c.model.Tensors.Files()
	go func() {
		var r result
		for _, f := range paths {
			name, err := filepath.Rel(abs, mustAbs(f))
			if err == nil {
				err = ctx.Err()
			}
			var d artifact.File
			if err == nil {
				d, err = artifact.DescribeFile(abs, name, nil)
			}
			if err != nil {
				r.err = err
				break
			}
			r.files = append(r.files, d)
		}
		done <- r
	}()
	return sync.OnceValues(func() ([]artifact.File, error) {
		r := <-done
		return r.files, r.err
	})
}

// targetBuild is what a target's emit and toolchain steps work on.
type targetBuild struct {
	ctx      context.Context
	dir      string // the artifact's temporary folder
	prog     *kir.Program
	man      *artifact.Manifest
	vocab    int
	source   fs.FS
	progress func(string, ...any)
	// files are the artifact files the steps wrote, in manifest order.
	files []string
	// sources are the generated sources, for --print-after emit.
	sources []emittedSource
	// state is what emit hands its toolchain step.
	state any
}

type emittedSource struct {
	path string
	text []byte
}

// run runs the stages in order, timing each; the inArtifact ones run
// inside artifact.WriteDir, so that a failure leaves outDir as it was.
func (c *compilation) run(ctx context.Context) error {
	abs, err := filepath.Abs(c.modelDir)
	if err != nil {
		return err
	}
	hctx, stop := context.WithCancel(ctx)
	c.hashes = c.hashModel(hctx, abs)
	defer func() {
		stop()
		c.hashes() // the hashing goroutine has ended when run returns
	}()
	table := stages()
	i := 0
	for ; i < len(table) && !table[i].inArtifact; i++ {
		if err := c.runStage(ctx, table[i]); err != nil {
			return err
		}
	}
	var last time.Time
	err = artifact.WriteDir(c.outDir, func(tmp string) error {
		c.tb = &targetBuild{ctx: ctx, dir: tmp, prog: c.prog, man: c.man, vocab: c.model.Config.VocabSize, source: c.o.Source,
			progress: func(f string, a ...any) { progress(c.o.Progress, f, a...) }}
		for ; i < len(table); i++ {
			last = time.Now()
			if err := c.runStage(ctx, table[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %s: %w", c.outDir, err)
	}
	// The last stage's time includes the rename that ends WriteDir.
	if n := len(c.res.Stages); n > 0 && !last.IsZero() {
		c.res.Stages[n-1].Time = time.Since(last)
	}
	return nil
}

func (c *compilation) runStage(ctx context.Context, s stage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	start := time.Now()
	skipped, err := s.run(c, ctx)
	c.res.Stages = append(c.res.Stages, StageStat{Stage: s.Name, Time: time.Since(start), Skipped: skipped})
	if err != nil {
		return err
	}
	if c.print[s.Name] && s.print != nil && c.o.Passes.Log != nil {
		s.print(c, c.o.Passes.Log)
	}
	return nil
}

func (c *compilation) buildGraphs(ctx context.Context) (string, error) {
	for _, s := range c.specs {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		g, err := c.model.Build(hf.BuildOptions{Name: s.name, AllLogits: s.all, Runs: s.runs})
		if err != nil {
			return "", err
		}
		c.res.Graphs = append(c.res.Graphs, g)
		logits := "last"
		switch {
		case s.runs > 0:
			logits = "runs"
		case s.all:
			logits = "all"
		}
		c.man.Entries = append(c.man.Entries, artifact.Entry{Name: s.name, Seq: s.seq, Logits: logits})
	}
	return "", nil
}

func (c *compilation) graphPasses(ctx context.Context) (string, error) {
	for i, s := range c.specs {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		g := c.res.Graphs[i]
		progress(c.o.Progress, "optimising %s", s.name)
		rep, err := passes.Run(&passes.Entry{Name: s.name, Graph: g, Seq: s.seq, Batch: s.batch}, &c.o.Passes)
		if err != nil {
			return "", err
		}
		c.res.Reports = append(c.res.Reports, rep)
		describeGraph(c.man, g)
	}
	if c.o.KV == passes.Static && len(c.res.Graphs) > 0 {
		// The cache as the passes shaped it (window-kv's rings), which is
		// what the artifact allocates.
		cfg := c.model.Config
		c.res.KVBytes = int64(passes.StateBytes(c.res.Graphs[0], c.kv)) * int64(c.o.Slots)
		c.res.KV = describeKV(cfg, &c.o, c.kv, c.res.KVBytes, c.maxSeqDefaulted)
	}
	return "", nil
}

func (c *compilation) lowerKIR(context.Context) (string, error) {
	if !c.lower {
		return fmt.Sprintf("backend %s runs the graph IR", c.target.Name), nil
	}
	keep := c.target.Loads(ir.BF16) && c.weights != wformat.F32
	intDot := c.target.IntDot && !c.o.Weights.FloatDot
	vnni := intDot && c.target.vnni != nil && c.target.vnni()
	wide := c.target.wide != nil && c.target.wide()
	bf16Dot := wide && c.target.bf16Dot != nil && c.target.bf16Dot()
	prog, err := kir.LowerWith(c.res.Graphs, kir.Options{MaxSeq: c.o.MaxSeq, KeepBF16: keep, Slots: c.o.Slots, KVFormat: c.kv, TileColumns: c.target.TileColumns, IntDot: intDot, VNNI: vnni, Wide: wide, BF16Dot: bf16Dot})
	if err != nil {
		return "", err
	}
	c.prog = prog
	return "", nil
}

func (c *compilation) kirPasses(context.Context) (string, error) {
	if c.prog == nil {
		return "no kernel IR", nil
	}
	// kir.LowerWith ends with kir.Verify, so the program is checked as it
	// enters this stage. Kernel-IR passes, when there are any, run here,
	// each followed by kir.Verify(c.prog).
	return "no kernel-IR passes yet; verified after lowering", nil
}

func (c *compilation) emit(context.Context) (string, error) {
	b := c.tb
	if c.target.emit != nil {
		if err := c.target.emit(b); err != nil {
			return "", err
		}
		describeProgram(c.man, c.prog)
	}
	if c.o.EmitLLVM && !slices.Contains(b.files, LLVMModule) {
		if err := emitLLVM(b); err != nil {
			return "", err
		}
		c.extraFiles = append(c.extraFiles, LLVMModule)
	}
	if len(b.sources) == 0 {
		return fmt.Sprintf("backend %s generates no code", c.target.Name), nil
	}
	return "", nil
}

func (c *compilation) toolchain(context.Context) (string, error) {
	if c.target.toolchain == nil {
		return fmt.Sprintf("backend %s builds nothing", c.target.Name), nil
	}
	return "", c.target.toolchain(c.tb)
}

// write describes the model in the manifest, writes the program IR, the
// model's small files and the --emit files, and seals the manifest.
func (c *compilation) write(ctx context.Context) (string, error) {
	man, tmp, modelDir := c.man, c.tb.dir, c.modelDir
	abs, err := filepath.Abs(modelDir)
	if err != nil {
		return "", err
	}
	man.Model = artifact.Model{Dir: abs, Architecture: c.model.Config.Architecture}
	progress(c.o.Progress, "waiting for the model files' hashes (started with the first stage)")
	if man.Model.Files, err = c.hashes(); err != nil {
		return "", err
	}

	if err := os.WriteFile(filepath.Join(tmp, artifact.IRName), []byte(ir.PrintModule(c.res.Graphs)), 0o644); err != nil {
		return "", err
	}
	for _, name := range copiedFiles {
		data, err := os.ReadFile(filepath.Join(modelDir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			return "", err
		}
		man.Files = append(man.Files, name)
	}
	if len(c.stored) > 0 {
		progress(c.o.Progress, "writing %s", artifact.StoredWeightsName)
		descs := make([]artifact.StoredTensor, len(c.stored))
		data := make([][]byte, len(c.stored))
		for i, s := range c.stored {
			descs[i], data[i] = s.desc, s.data
		}
		if man.StoredWeights, err = artifact.WriteStoredWeights(tmp, descs, data); err != nil {
			return "", err
		}
		man.Files = append(man.Files, artifact.StoredWeightsName)
	}
	if c.o.EmitKIR {
		if err := os.WriteFile(filepath.Join(tmp, "program.kir"), []byte(kir.Print(c.prog)), 0o644); err != nil {
			return "", err
		}
		man.Files = append(man.Files, "program.kir")
	}
	man.Files = append(man.Files, c.tb.files...)
	man.Files = append(man.Files, c.extraFiles...)
	if c.o.EmitDot {
		if err := os.WriteFile(filepath.Join(tmp, "program.dot"), []byte(Dot(c.res.Graphs)), 0o644); err != nil {
			return "", err
		}
		man.Files = append(man.Files, "program.dot")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	return "", man.Seal(tmp)
}

func printGraphs(after string) func(c *compilation, w io.Writer) {
	return func(c *compilation, w io.Writer) {
		for _, g := range c.res.Graphs {
			fmt.Fprintf(w, "# %s after %s\n%s\n", g.Name, after, ir.Print(g))
		}
	}
}

func printKIR(after string) func(c *compilation, w io.Writer) {
	return func(c *compilation, w io.Writer) {
		if c.prog != nil {
			fmt.Fprintf(w, "# kernel IR after %s\n%s\n", after, kir.Print(c.prog))
		}
	}
}

func printSources(c *compilation, w io.Writer) {
	for _, s := range c.tb.sources {
		fmt.Fprintf(w, "# %s after %s\n%s\n", s.path, StageEmit, s.text)
	}
}

// splitPrintAfter moves the pass names of o.PrintAfter to
// o.Passes.PrintAfter and returns the stages to print after; it refuses a
// name that is neither, and a stage that prints nothing.
func splitPrintAfter(o *Options) (map[string]bool, error) {
	print := map[string]bool{}
	if o.Passes.PrintAfterAll {
		print[StageLower] = true
	}
	table := stages()
	var printing []string
	for _, s := range table {
		if s.print != nil {
			printing = append(printing, s.Name)
		}
	}
	for _, name := range o.PrintAfter {
		if slices.Contains(passes.PassNames(), name) {
			o.Passes.PrintAfter = append(o.Passes.PrintAfter, name)
			continue
		}
		i := slices.IndexFunc(table, func(s stage) bool { return s.Name == name })
		switch {
		case i < 0:
			return nil, passes.OptionErrorf("--print-after: no pass or stage named %q; passes: %s; stages: %s",
				name, strings.Join(passes.PassNames(), ", "), strings.Join(printing, ", "))
		case table[i].print == nil:
			return nil, passes.OptionErrorf("--print-after: stage %s prints nothing; stages that print: %s", name, strings.Join(printing, ", "))
		}
		print[name] = true
	}
	return print, nil
}

// lowerFor names what asks for kernel IR besides the backend, for the
// errors of CheckOptions: "" when nothing does.
func lowerFor(o *Options, print map[string]bool) string {
	switch {
	case o.EmitKIR:
		return "--emit kir"
	case o.EmitLLVM:
		return "--emit llvm"
	case print[StageLower], print[StageKIRPasses]:
		return "--print-after of the kernel IR"
	}
	return ""
}

// WriteStageStats prints the stage times as a table.
func WriteStageStats(w io.Writer, stats []StageStat) {
	fmt.Fprintf(w, "stages\n")
	fmt.Fprintf(w, "  %-18s %9s  %s\n", "stage", "time", "")
	var total time.Duration
	for _, s := range stats {
		note := ""
		if s.Skipped != "" {
			note = "skipped: " + s.Skipped
		}
		fmt.Fprintf(w, "  %-18s %9s  %s\n", s.Stage, fmtDur(s.Time), note)
		total += s.Time
	}
	fmt.Fprintf(w, "  %-18s %9s\n", "total", fmtDur(total))
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000)
}

// describeProgram records in the manifest the weights a compiled program
// reads, as it stores them (the run side counts the bytes a step reads
// from them).
func describeProgram(man *artifact.Manifest, prog *kir.Program) {
	for _, w := range prog.Weights {
		man.ProgramWeights = append(man.ProgramWeights, *w)
	}
}
