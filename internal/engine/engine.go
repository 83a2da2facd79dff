// Package engine opens what llmrun is pointed at (a Hugging Face model
// folder today, a compiled artifact later) as a runtime.Decoder.
package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/artifact"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/runtime"
)

// Entry points of an eagerly interpreted model.
const (
	EntryLast = "forward"     // logits of the last new token
	EntryAll  = "forward_all" // logits of every new token
)

// Options configure Open.
type Options struct {
	// Threads is the number of worker threads kernels may use; 0 means one
	// per core.
	Threads int
}

// Engine is an opened model, ready to decode.
type Engine struct {
	Path    string
	Kind    string // "model folder" or "artifact"
	// Manifest is set for artifacts.
	Manifest *artifact.Manifest
	Config  *hf.Config
	Decoder runtime.Decoder
	closers []func() error
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
		return openArtifact(path, opts)
	}
	if _, err := os.Stat(filepath.Join(path, "config.json")); err != nil {
		return nil, fmt.Errorf("%s has no config.json or manifest.json: want a Hugging Face model folder or an llmc artifact", path)
	}
	return openEager(path, opts)
}

// openArtifact loads a compiled artifact: checks its manifest and model
// files, reads its optimised IR and runs it.
func openArtifact(dir string, opts Options) (*Engine, error) {
	man, err := artifact.Read(dir)
	if err != nil {
		return nil, err
	}
	if err := man.CheckModel(); err != nil {
		return nil, err
	}
	cfg, err := hf.ReadConfig(dir)
	if err != nil {
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
	prog, err := runtime.NewProgram(graphs, m, nil)
	if err != nil {
		m.Close()
		return nil, err
	}
	var dec runtime.Decoder
	if man.KV == "static" {
		dec, err = runtime.NewStatic(prog, runtime.StaticEntries{
			Decode: compiler.EntryDecode, Prefill: compiler.EntryPrefill, PrefillAll: compiler.EntryPrefillAll,
			Chunk: man.PrefillChunk,
		}, cfg.VocabSize, man.MaxSeq)
	} else {
		dec, err = runtime.NewInterpreted(prog, compiler.EntryForward, compiler.EntryForwardAll, cfg.VocabSize, man.MaxSeq)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return &Engine{Path: dir, Kind: "artifact", Config: cfg, Manifest: man, Decoder: dec, closers: []func() error{m.Close}}, nil
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

func openEager(dir string, opts Options) (*Engine, error) {
	m, err := hf.Open(dir)
	if err != nil {
		return nil, err
	}
	graphs, err := EagerGraphs(m)
	if err != nil {
		m.Close()
		return nil, err
	}
	prog, err := runtime.NewProgram(graphs, m, nil)
	if err != nil {
		m.Close()
		return nil, err
	}
	dec, err := runtime.NewInterpreted(prog, EntryLast, EntryAll, m.Config.VocabSize, m.Config.MaxPositions)
	if err != nil {
		m.Close()
		return nil, err
	}
	return &Engine{Path: dir, Kind: "model folder", Config: m.Config, Decoder: dec, closers: []func() error{m.Close}}, nil
}
