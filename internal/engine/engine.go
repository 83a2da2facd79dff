// Package engine opens what llmrun is pointed at (a Hugging Face model
// folder today, a compiled artifact later) as a runtime.Decoder.
package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/sysmem"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/pool"
	"github.com/llmc-dev/llmc/wformat"
)

// Entry points of an eagerly interpreted model: those of an artifact with
// a dynamic KV cache.
const (
	EntryLast = artifact.EntryForward    // logits of the last new token
	EntryAll  = artifact.EntryForwardAll // logits of every new token
)

// Options configure Open.
type Options struct {
	// Threads is the number of worker threads kernels may use; 0 means one
	// per core.
	Threads int
	// Linked is the generated program linked into this binary, if any (the
	// Go backend's artifact executable).
	Linked *runtime.LinkedProgram
	// HandedOff says that this process was started by a hand-off (see
	// HandoffEnv): it must run the artifact itself or fail, never hand
	// off again.
	HandedOff bool
	// DebugNaN checks every op's result for NaN and ±Inf as the model
	// runs and names the first op that produced one. Only the interpreter
	// can check op by op, so an artifact is not run itself: its model
	// folder (recorded in the manifest) is run eagerly instead, and
	// Engine.DebugNaNOf says so.
	DebugNaN bool
	// WeightsInPlace has a compiled program read each weight that is one
	// checkpoint tensor stored as the program keeps it in place, from the
	// mapped safetensors file (the page cache), instead of a copy in huge
	// pages. Either way the process holds the weights once: copied
	// tensors are released from the mapping as they are copied. In place
	// starts faster and shares the page cache, but where the page cache
	// holds the file in small pages (how it was written or read decides)
	// decode streams the weights slower: on a 2-core EPYC, Gemma-2B's
	// decode fell from 3.7 to 2.6 tok/s (0.7 of 2.4 GB in place was in
	// huge pages). So copying is the default.
	WeightsInPlace bool
}

// HandoffEnv is set in the environment of an artifact executable that
// llmrun handed an artifact to. A process that sees it never hands off
// again, so a foreign or swapped executable cannot start itself in a loop.
const HandoffEnv = "LLMRUN_HANDED_OFF"

// ExternalError says that an artifact runs in its own executable: the
// caller should run Binary with the same arguments.
type ExternalError struct {
	Artifact, Binary string
}

func (e *ExternalError) Error() string {
	return fmt.Sprintf("artifact %s runs in its own executable %s", e.Artifact, e.Binary)
}

// Engine is an opened model, ready to decode.
type Engine struct {
	Path string
	Kind string // "model folder" or "artifact"
	// Manifest is set for artifacts.
	Manifest *artifact.Manifest
	// WeightBytes is how many bytes of weights one decode step reads.
	WeightBytes int64
	// WeightFormat names the formats those weights are read in, most
	// bytes first: "f32", "bf16+f32", "q8_0+f32".
	WeightFormat string
	// KVFormat is how the KV cache stores its elements: the manifest's
	// kv_dtype for an artifact, f32 for a model folder.
	KVFormat wformat.Format
	Config   *hf.Config
	Decoder  runtime.Decoder
	// DebugNaNOf is the artifact whose model folder Path is, when
	// Options.DebugNaN ran that folder eagerly in the artifact's place.
	DebugNaNOf string
	closers    []func() error
	// fork makes another decoder over the same weights with an empty
	// cache of its own, for Slots; nil when the backend cannot.
	fork func() (runtime.Decoder, error)
	// slots are the sequences of a program compiled with --slots > 1;
	// Decoder is the first.
	slots *runtime.StaticSlots
}

// Slots returns n independent sequences over the model, each with its own
// KV cache (a server's slots); the first is the Engine's Decoder. An
// artifact compiled with --slots N holds up to N, whose decode steps run
// together (one batched call); otherwise they run one after another
// (runtime.SequentialSlots) on forks of the program.
func (e *Engine) Slots(n int) (runtime.Slots, error) {
	if n < 1 {
		return nil, fmt.Errorf("%d slots, want at least 1", n)
	}
	if e.slots != nil {
		if n > e.slots.Len() {
			return nil, fmt.Errorf("artifact %s holds %d sequences, not %d: compile it again with --slots %d", e.Path, e.slots.Len(), n, n)
		}
		return e.slots.First(n)
	}
	ds := []runtime.Decoder{e.Decoder}
	for len(ds) < n {
		if e.fork == nil {
			return nil, fmt.Errorf("%s %s runs one sequence at a time, not %d: compile it with --slots %d", e.Kind, e.Path, n, n)
		}
		d, err := e.fork()
		if err != nil {
			return nil, fmt.Errorf("slot %d: %w", len(ds), err)
		}
		ds = append(ds, d)
	}
	return runtime.SequentialSlots(ds)
}

// Close releases the model's files.
func (e *Engine) Close() error {
	var first error
	for _, c := range e.closers {
		if err := c(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Open opens path: an llmc artifact (manifest.json), or a Hugging Face
// model folder (config.json and safetensors), which is run by the
// interpreter with a dynamic KV cache.
func Open(path string, opts Options) (*Engine, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder: want a Hugging Face model folder or an llmc artifact", path)
	}
	if artifact.IsArtifact(path) {
		if opts.DebugNaN {
			return openDebugNaN(path, opts)
		}
		return openArtifact(path, opts)
	}
	if name, ok := artifact.OwnFile(path); ok {
		return nil, fmt.Errorf("%s looks like an llmc artifact (it has %s) without its %s: compile it again with llmc compile",
			path, name, artifact.ManifestName)
	}
	if _, err := os.Stat(filepath.Join(path, "config.json")); err != nil {
		return nil, fmt.Errorf("%s has no config.json or manifest.json: want a Hugging Face model folder or an llmc artifact", path)
	}
	return openEager(path, opts, 0)
}

// openDebugNaN opens the model folder an artifact was compiled from,
// eagerly and checking every op, in the artifact's place: compiled
// kernels cannot be checked one by one.
func openDebugNaN(dir string, opts Options) (*Engine, error) {
	man, err := artifact.Read(dir)
	if err != nil {
		return nil, err
	}
	if err := man.CheckModel(false); err != nil {
		return nil, err
	}
	e, err := openEager(man.Model.Dir, opts, man.MaxSeq)
	if err != nil {
		return nil, fmt.Errorf("--debug-nan runs artifact %s's model folder %s with the interpreter: %w", dir, man.Model.Dir, err)
	}
	e.DebugNaNOf = dir
	return e, nil
}

// openArtifact loads a compiled artifact: checks its manifest and model
// files, reads its optimised IR and runs it with the loader of its backend.
func openArtifact(dir string, opts Options) (*Engine, error) {
	man, err := artifact.Read(dir)
	if err != nil {
		return nil, err
	}
	ld, known := loaders[man.Backend]
	if known && ld.handOff != nil {
		if err := ld.handOff(dir, man, opts); err != nil {
			return nil, err
		}
	}
	// The artifact's own files are checked before anything of theirs is
	// read or run.
	if err := man.CheckContents(dir); err != nil {
		return nil, err
	}
	if err := man.CheckModel(false); err != nil {
		return nil, err
	}
	cfg, err := hf.ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	if err := checkMemory(dir, man, cfg); err != nil {
		return nil, err
	}
	src, err := os.ReadFile(filepath.Join(dir, man.IR))
	if err != nil {
		return nil, err
	}
	graphs, err := ir.ParseModule(string(src))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, man.IR), err)
	}
	m, err := hf.Open(man.Model.Dir)
	if err != nil {
		return nil, fmt.Errorf("opening the artifact's model: %w", err)
	}
	for _, g := range graphs {
		if err := m.CheckWeights(g); err != nil {
			m.Close()
			return nil, err
		}
	}
	st, err := artifact.OpenStoredWeights(dir, man)
	if err != nil {
		m.Close()
		return nil, err
	}
	if err := checkStored(st, graphs); err != nil {
		st.Close()
		m.Close()
		return nil, fmt.Errorf("artifact %s: %w", dir, err)
	}
	var ws runtime.WeightSource = m
	if st != nil {
		ws = storedSource{Model: m, st: st}
	}
	par := pool.New(opts.Threads)
	closers := []func() error{m.Close, st.Close, func() error { par.Close(); return nil }}
	fail := func(err error) (*Engine, error) {
		for _, c := range closers {
			c()
		}
		return nil, err
	}
	if !known {
		return fail(fmt.Errorf("artifact %s: backend %q is not supported by this llmrun", dir, man.Backend))
	}
	gathered := ws
	if !opts.WeightsInPlace {
		gathered = runtime.CopyWeights(ws)
	}
	ld2, err := ld.load(&loadInput{dir: dir, man: man, graphs: graphs, model: m, source: ws, weights: gathered, par: par, linked: opts.Linked})
	if err != nil {
		return fail(err)
	}
	if ld2.close != nil {
		// First: the runner may read weights in place from the model.
		closers = append([]func() error{ld2.close}, closers...)
	}
	entries := runtime.StaticEntries{
		Decode: artifact.EntryDecode, Prefill: artifact.EntryPrefill, PrefillAll: artifact.EntryPrefillAll,
		Chunk: man.PrefillChunk, SafeRewind: safeRewind(graphs, man.PrefillChunk),
	}
	decoder := func(runner runtime.Runner) (runtime.Decoder, error) {
		if man.KV == "static" {
			return runtime.NewStatic(runner, entries, cfg.VocabSize, man.MaxSeq)
		}
		prog, ok := runner.(*runtime.Program)
		if !ok {
			return nil, fmt.Errorf("artifact %s: a dynamic KV cache needs the interpreter", dir)
		}
		return runtime.NewInterpreted(prog, artifact.EntryForward, artifact.EntryForwardAll, cfg.VocabSize, man.MaxSeq)
	}
	eng := &Engine{Path: dir, Kind: "artifact", Config: cfg, Manifest: man, KVFormat: man.KVDtype}
	if rr, ok := ld2.runner.(runtime.RowRunner); ok && man.Slots > 1 {
		if rr.Slots() != man.Slots {
			return fail(fmt.Errorf("artifact %s: its program holds %d sequences, its manifest says %d: compile the artifact again", dir, rr.Slots(), man.Slots))
		}
		entries.DecodeBatch, entries.BatchRows = artifact.EntryDecodeBatch, man.Slots
		for _, me := range man.Entries {
			if me.Name == artifact.EntryPrefillBatch {
				entries.PrefillBatch, entries.PrefillBatchRows = me.Name, me.Seq
			}
		}
		eng.slots, err = runtime.NewStaticSlots(rr, entries, cfg.VocabSize, man.MaxSeq)
		if err != nil {
			return fail(err)
		}
		eng.Decoder = eng.slots.Slot(0)
	} else if eng.Decoder, err = decoder(ld2.runner); err != nil {
		return fail(err)
	}
	if ld2.fork != nil && eng.slots == nil {
		eng.fork = func() (runtime.Decoder, error) {
			r, closer, err := ld2.fork()
			if err != nil {
				return nil, err
			}
			if closer != nil {
				// Before the first runner's: forks share its weights.
				eng.closers = append([]func() error{closer}, eng.closers...)
			}
			return decoder(r)
		}
	}
	var wb int64
	var wf string
	formats := programFormats(man)
	if p, ok := ld2.runner.(*runtime.Program); ok {
		formats = p.WeightFormats()
	}
	for _, g := range graphs {
		if g.Name == artifact.EntryDecode || g.Name == artifact.EntryForward {
			wb, wf = weightBytes(g, formats)
		}
	}
	eng.WeightBytes, eng.WeightFormat, eng.closers = wb, wf, closers
	return eng, nil
}

// programFormats are the formats the artifact's compiled program keeps
// its weights in, as the compiler recorded them (nil for the
// interpreter, which says itself: runtime.Program.WeightFormats).
func programFormats(man *artifact.Manifest) map[string]wformat.Format {
	fs := map[string]wformat.Format{}
	for _, w := range man.ProgramWeights {
		fs[w.Name] = w.Fmt()
	}
	return fs
}

// weightBytes is how many weight bytes one step of g reads, and in which
// formats: every weight a linear or norm reads in full, one row of an
// embedding table, as the program stores it (formats, by weight name:
// bf16 or a block format the compiled program keeps; float32 otherwise).
func weightBytes(g *ir.Graph, formats map[string]wformat.Format) (int64, string) {
	need := map[*ir.Value]int64{} // bytes read of each weight: the most any use reads
	format := map[*ir.Value]wformat.Format{}
	g.Walk(func(n *ir.Node) {
		if n.Op == ir.OpKernel {
			return // its body's ops are visited too
		}
		for i, a := range n.Args {
			if a.Kind != ir.KindWeight {
				continue
			}
			shape, _ := a.Type.Shape.Eval(nil)
			rows, cols := int64(1), int64(shape[len(shape)-1])
			for _, d := range shape[:len(shape)-1] {
				rows *= int64(d)
			}
			if n.Op == ir.OpEmbedding && i == 0 {
				rows = 1 // one row per token
			}
			f := wformat.F32 // weights not in formats are float32 when loaded
			if pf, ok := formats[a.Name]; ok {
				f = pf
			}
			format[a] = f
			need[a] = max(need[a], rows*int64(f.RowBytes(int(cols))))
		}
	})
	var total int64
	by := map[wformat.Format]int64{}
	for v, b := range need {
		total += b
		by[format[v]] += b
	}
	return total, weightFormats(by)
}

// EagerGraphs builds the two entry points of an interpreted model.
func EagerGraphs(m *hf.Model) ([]*ir.Graph, error) {
	last, err := m.Build(hf.BuildOptions{Name: EntryLast})
	if err != nil {
		return nil, err
	}
	all, err := m.Build(hf.BuildOptions{Name: EntryAll, AllLogits: true})
	if err != nil {
		return nil, err
	}
	return []*ir.Graph{last, all}, nil
}

// openEager runs a model folder with the interpreter and a dynamic KV
// cache of up to context positions (0: max_position_embeddings).
func openEager(dir string, opts Options, context int) (*Engine, error) {
	m, err := hf.Open(dir)
	if err != nil {
		return nil, err
	}
	graphs, err := EagerGraphs(m)
	if err != nil {
		m.Close()
		return nil, err
	}
	par := pool.New(opts.Threads)
	prog, err := runtime.NewProgram(graphs, m, par)
	if err != nil {
		par.Close()
		m.Close()
		return nil, err
	}
	prog.SetDebugNaN(opts.DebugNaN)
	if context <= 0 || context > m.Config.MaxPositions {
		context = m.Config.MaxPositions
	}
	dec, err := runtime.NewInterpreted(prog, EntryLast, EntryAll, m.Config.VocabSize, context)
	if err != nil {
		par.Close()
		m.Close()
		return nil, err
	}
	wb, wf := weightBytes(graphs[0], prog.WeightFormats())
	return &Engine{Path: dir, Kind: "model folder", Config: m.Config, Decoder: dec, WeightBytes: wb, WeightFormat: wf,
		closers: []func() error{m.Close, func() error { par.Close(); return nil }},
		fork:    func() (runtime.Decoder, error) { return dec.Fork(), nil }}, nil
}

// KVReadBytes is how many bytes of KV cache a decode step at ctx cached
// positions reads: every cached key and value of each layer (those of a
// sliding window only), at the bytes of the format the cache stores.
func (e *Engine) KVReadBytes(ctx int) int64 {
	return e.Config.KVBytes(ctx, e.KVFormat.BlockBytes())
}

// safeRewind is how far back a static decoder may rewind without
// recomputing: unlimited (0) unless some cache is a ring (window-kv), whose
// rows hold window + chunk - 1 positions.
func safeRewind(graphs []*ir.Graph, chunk int) int {
	ring := false
	for _, g := range graphs {
		g.Walk(func(n *ir.Node) { ring = ring || n.Op.Info().HasAttr("ring") && n.IntAttr("ring") > 0 })
	}
	if ring {
		return chunk
	}
	return 0
}

// checkMemory refuses an artifact whose static KV cache and buffers need
// more memory than this machine has (it may have been compiled on a
// larger one), before anything is allocated.
func checkMemory(dir string, man *artifact.Manifest, cfg *hf.Config) error {
	if man.KV != "static" {
		return nil
	}
	need := cfg.StaticKVBytes(man.MaxSeq, man.PrefillChunk, man.KVDtype.BlockBytes()) * int64(max(1, man.Slots))
	for _, p := range man.BufferPlan {
		need += int64(p.ArenaBytes)
	}
	what := fmt.Sprintf("artifact %s: its static KV cache for %d positions and its buffers", dir, man.MaxSeq)
	return sysmem.Check(need, what, "compile it again with a smaller --max-seq (llmc kv MODEL --max-seq N prints the cache size)")
}
