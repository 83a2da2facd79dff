// Package compiler drives llmc compile: it builds a model's entry points,
// runs the pass pipeline on each and writes the artifact.
package compiler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/sysmem"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
)

// DefaultPrefillChunk is the prefill entry point's token count when not set.
const DefaultPrefillChunk = 16

// DefaultMaxSeq caps the static KV cache when --max-seq is not given. A
// static cache is allocated in full when the artifact loads, and models
// allow far more positions than a session on a CPU uses (Llama 3.1 allows
// 131072); 4096 is llama.cpp's default context too.
const DefaultMaxSeq = 4096

// Options configure a compilation.
type Options struct {
	MaxSeq       int // 0: the model's max_position_embeddings, at most DefaultMaxSeq
	KV           passes.KVMode
	PrefillChunk int // 0: DefaultPrefillChunk (capped at MaxSeq)
	// Backend is "interp" (the runtime interprets the optimised IR), "go"
	// (generated Go kernels built into an executable) or "llvm" (LLVM IR
	// compiled by opt and llc into a shared object llmrun loads).
	Backend string
	Passes  passes.Options
	EmitDot bool
	EmitKIR bool // write the kernel IR as program.kir
	// EmitLLVM writes the kernels as an LLVM module, model.ll, whatever
	// the backend (the llvm backend always does).
	EmitLLVM bool
	// PrintKIR prints the kernel IR to Passes.Log after lowering.
	PrintKIR bool
	// Progress, when not nil, receives progress lines.
	Progress io.Writer
	// Source is the llmc module's own sources (llmc.Source), which the go
	// backend builds generated code against when neither $LLMC_SOURCE nor
	// the checkout this binary was built from is there. Nil: no fallback.
	Source fs.FS
}

// Result is what Compile did.
type Result struct {
	// KV describes the KV cache the artifact allocates, for --stats.
	KV       string
	Manifest *artifact.Manifest
	Reports  []*passes.Report
	Graphs   []*ir.Graph
}

// Backends lists the code generators llmc compile knows.
var Backends = []string{"interp", "go", "llvm"}

// Compile compiles the model in modelDir into an artifact folder outDir.
func Compile(modelDir, outDir string, o Options) (*Result, error) {
	return CompileContext(context.Background(), modelDir, outDir, o)
}

// CompileContext is Compile stopped when ctx is done: between its steps,
// and by killing the tools a backend runs (go build, opt, llc, cc). It then
// leaves outDir as it was, removes its temporary folder and returns an
// error wrapping context.Cause(ctx).
func CompileContext(ctx context.Context, modelDir, outDir string, o Options) (*Result, error) {
	res, err := compile(ctx, modelDir, outDir, o)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("compiling %s into %s: %w", modelDir, outDir, context.Cause(ctx))
	}
	return res, err
}

func compile(ctx context.Context, modelDir, outDir string, o Options) (*Result, error) {
	m, err := hf.Open(modelDir)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	cfg := m.Config
	if o.KV == "" {
		o.KV = passes.Static
	}
	if o.Backend == "" {
		o.Backend = "interp"
	}
	if !contains(Backends, o.Backend) {
		return nil, passes.OptionErrorf("--backend %q is not supported; supported: %s", o.Backend, strings.Join(Backends, ", "))
	}
	defaulted := o.MaxSeq == 0
	if defaulted {
		o.MaxSeq = min(cfg.MaxPositions, DefaultMaxSeq)
	}
	if o.MaxSeq < 0 || o.MaxSeq > cfg.MaxPositions {
		return nil, passes.OptionErrorf("--max-seq %d is outside 1..%d (the model's max_position_embeddings in %s)", o.MaxSeq, cfg.MaxPositions, cfg.Path)
	}
	kv, err := planKV(cfg, o.KV, o.MaxSeq, defaulted)
	if err != nil {
		return nil, err
	}
	progress(o.Progress, "%s", kv)
	if o.PrefillChunk < 0 {
		return nil, passes.OptionErrorf("--prefill-chunk %d must be positive", o.PrefillChunk)
	}
	if o.PrefillChunk == 0 {
		o.PrefillChunk = DefaultPrefillChunk
	}
	o.PrefillChunk = min(o.PrefillChunk, o.MaxSeq)
	o.Passes.KV, o.Passes.MaxSeq, o.Passes.MaxTokens = o.KV, o.MaxSeq, o.PrefillChunk
	if err := passes.CheckOptions(&o.Passes); err != nil {
		return nil, err
	}

	type spec struct {
		name string
		seq  int
		all  bool
	}
	specs := []spec{{artifact.EntryDecode, 1, false}, {artifact.EntryPrefill, o.PrefillChunk, false}, {artifact.EntryPrefillAll, o.PrefillChunk, true}}
	if o.KV == passes.Dynamic {
		specs = []spec{{artifact.EntryForward, 0, false}, {artifact.EntryForwardAll, 0, true}}
	}
	res := &Result{KV: kv}
	man := &artifact.Manifest{
		Format: artifact.Format, Version: artifact.Version, Created: time.Now().UTC(),
		KV: string(o.KV), MaxSeq: o.MaxSeq, Backend: o.Backend, IR: artifact.IRName,
	}
	if o.KV == passes.Static {
		man.PrefillChunk = o.PrefillChunk
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	man.BuildID = hex.EncodeToString(id[:])
	if o.Backend != "interp" && o.KV != passes.Static {
		return nil, passes.OptionErrorf("--backend %s needs a static KV cache (--kv static): generated kernels are specialised to constant shapes", o.Backend)
	}
	for _, s := range specs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		g, err := m.Build(hf.BuildOptions{Name: s.name, AllLogits: s.all})
		if err != nil {
			return nil, err
		}
		progress(o.Progress, "optimising %s", s.name)
		rep, err := passes.Run(&passes.Entry{Name: s.name, Graph: g, Seq: s.seq}, &o.Passes)
		if err != nil {
			return nil, err
		}
		res.Reports = append(res.Reports, rep)
		res.Graphs = append(res.Graphs, g)
		logits := "last"
		if s.all {
			logits = "all"
		}
		man.Entries = append(man.Entries, artifact.Entry{Name: s.name, Seq: s.seq, Logits: logits})
		describeGraph(man, g)
	}

	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var prog *kir.Program
	if o.Backend != "interp" || o.EmitKIR || o.PrintKIR || o.EmitLLVM {
		if prog, err = kir.LowerWith(res.Graphs, kir.Options{MaxSeq: o.MaxSeq, KeepBF16: o.Backend == "go" || o.Backend == "llvm"}); err != nil {
			return nil, err
		}
		if o.PrintKIR && o.Passes.Log != nil {
			fmt.Fprintf(o.Passes.Log, "# kernel IR after lower\n%s\n", kir.Print(prog))
		}
	}

	abs, err := filepath.Abs(modelDir)
	if err != nil {
		return nil, err
	}
	man.Model = artifact.Model{Dir: abs, Architecture: cfg.Architecture}
	for _, f := range m.Tensors.Files() {
		name, err := filepath.Rel(abs, mustAbs(f))
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		progress(o.Progress, "hashing %s", name)
		d, err := artifact.DescribeFile(abs, name, nil)
		if err != nil {
			return nil, err
		}
		man.Model.Files = append(man.Model.Files, d)
	}

	err = artifact.WriteDir(outDir, func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, artifact.IRName), []byte(ir.PrintModule(res.Graphs)), 0o644); err != nil {
			return err
		}
		for _, name := range copiedFiles {
			data, err := os.ReadFile(filepath.Join(modelDir, name))
			if os.IsNotExist(err) {
				continue
			}
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
				return err
			}
			man.Files = append(man.Files, name)
		}
		if o.EmitKIR {
			if err := os.WriteFile(filepath.Join(tmp, "program.kir"), []byte(kir.Print(prog)), 0o644); err != nil {
				return err
			}
			man.Files = append(man.Files, "program.kir")
		}
		if o.Backend == "go" {
			if err := buildGo(ctx, tmp, prog, man, o.Source, func(f string, a ...any) { progress(o.Progress, f, a...) }); err != nil {
				return err
			}
		}
		if o.Backend == "llvm" {
			if err := buildLLVM(ctx, tmp, prog, man, cfg.VocabSize, func(f string, a ...any) { progress(o.Progress, f, a...) }); err != nil {
				return err
			}
		} else if o.EmitLLVM {
			if err := emitLLVM(tmp, prog, man); err != nil {
				return err
			}
		}
		if o.EmitDot {
			if err := os.WriteFile(filepath.Join(tmp, "program.dot"), []byte(Dot(res.Graphs)), 0o644); err != nil {
				return err
			}
			man.Files = append(man.Files, "program.dot")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return man.Seal(tmp)
	})
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", outDir, err)
	}
	res.Manifest = man
	return res, nil
}

// copiedFiles are the model's small files an artifact carries, so that it
// runs (and tokenizes) without reading them from the model folder.
var copiedFiles = []string{
	"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
	"special_tokens_map.json", "chat_template.jinja",
}

// describeGraph adds g's kernels, buffer plan and weights to the manifest.
func describeGraph(man *artifact.Manifest, g *ir.Graph) {
	plan := artifact.EntryPlan{Entry: g.Name}
	for _, n := range g.Nodes {
		if n.Op != ir.OpKernel {
			continue
		}
		k := artifact.Kernel{Entry: g.Name, Kind: n.Attrs.String("name", "")}
		if n.Result != nil {
			k.Value = n.Result.Ref()
		}
		for _, b := range n.Body.Nodes {
			k.Ops = append(k.Ops, b.Op.String())
		}
		man.Kernels = append(man.Kernels, k)
		if off := n.Attrs.Int("offset", -1); off >= 0 && n.Result != nil {
			size := 4
			for _, d := range n.Result.Type.Shape {
				size *= d.N
			}
			plan.Buffers = append(plan.Buffers, artifact.Buffer{Value: n.Result.Ref(), Offset: off, Bytes: size})
			plan.ArenaBytes = max(plan.ArenaBytes, off+size)
		}
	}
	man.BufferPlan = append(man.BufferPlan, plan)
	seen := map[string]bool{}
	for _, w := range man.Weights {
		seen[w] = true
	}
	for _, d := range man.Derived {
		seen["derived:"+d.Name] = true
	}
	for _, w := range g.Weights {
		if w.Derive != nil {
			if !seen["derived:"+w.Name] {
				info := artifact.DerivedInfo{Name: w.Name, Op: w.Derive.Op}
				for _, a := range w.Derive.Args {
					info.Args = append(info.Args, a.Name)
				}
				man.Derived = append(man.Derived, info)
				seen["derived:"+w.Name] = true
			}
			continue
		}
		if !seen[w.Name] {
			man.Weights = append(man.Weights, w.Name)
			seen[w.Name] = true
		}
	}
	sort.Strings(man.Weights)
}

// describeProgram records in the manifest the weights a compiled program
// reads, as it stores them (the run side counts the bytes a step reads
// from them).
func describeProgram(man *artifact.Manifest, prog *kir.Program) {
	for _, w := range prog.Weights {
		man.ProgramWeights = append(man.ProgramWeights, *w)
	}
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "llmc: "+format+"\n", args...)
	}
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// planKV describes the KV cache of a compilation and refuses one that does
// not fit in this machine's memory: a static cache is allocated in full
// when the artifact loads.
func planKV(cfg *hf.Config, kv passes.KVMode, maxSeq int, defaulted bool) (string, error) {
	if kv != passes.Static {
		return fmt.Sprintf("dynamic KV cache: grows with the sequence, up to %d positions", maxSeq), nil
	}
	bytes := cfg.KVBytes(maxSeq, 4)
	desc := fmt.Sprintf("static KV cache: %d positions, %s", maxSeq, sysmem.Human(bytes))
	if defaulted && maxSeq < cfg.MaxPositions {
		desc += fmt.Sprintf(" (default; the model allows %d: --max-seq N to change)", cfg.MaxPositions)
	}
	what := fmt.Sprintf("the static KV cache for %d positions (llmc kv %s --max-seq %d)", maxSeq, filepath.Dir(cfg.Path), maxSeq)
	if err := sysmem.Check(bytes, what, "pass a smaller --max-seq"); err != nil {
		return "", err
	}
	return desc, nil
}
