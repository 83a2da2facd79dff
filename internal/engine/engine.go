// Package engine opens what llmrun is pointed at (a Hugging Face model
// folder today, a compiled artifact later) as a runtime.Decoder.
package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/llmc-dev/llmc/frontends/hf"
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
	Kind    string // "model folder"
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

// Open opens path: a Hugging Face model folder (config.json and
// safetensors), run by the interpreter with a dynamic KV cache.
func Open(path string, opts Options) (*Engine, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder: want a Hugging Face model folder", path)
	}
	if _, err := os.Stat(filepath.Join(path, "config.json")); err != nil {
		return nil, fmt.Errorf("%s has no config.json: want a Hugging Face model folder", path)
	}
	return openEager(path, opts)
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
