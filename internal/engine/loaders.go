package engine

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/native"
	"github.com/llmc-dev/llmc/runtime/pool"
	"github.com/llmc-dev/llmc/wformat"
)

// A loader runs the artifacts of one backend.
type loader struct {
	// handOff, if not nil, decides before anything of the artifact is
	// checked or loaded whether this process runs it: it returns an ExternalError
	// when the artifact's own executable should, or another error when
	// neither can.
	handOff func(dir string, man *artifact.Manifest, opts Options) error
	// load makes the artifact's runner.
	load func(in *loadInput) (*loaded, error)
	// verify, if not nil, checks what Verify cannot see in the files'
	// hashes: what the backend needs of them to run.
	verify func(dir string, man *artifact.Manifest) []artifact.Check
}

// loaded is what a loader made: the runner; close, if not nil, releases
// what the runner holds once it is done; fork, if not nil, makes another
// runner over the same weights with states (a KV cache) of its own, and
// what releases it.
type loaded struct {
	runner runtime.Runner
	close  func() error
	fork   func() (runtime.Runner, func() error, error)
}

// loadInput is what a loader loads from: the checked artifact, its parsed
// program, the model its weights come from and the worker pool.
type loadInput struct {
	dir    string
	man    *artifact.Manifest
	graphs []*ir.Graph
	model  *hf.Model
	// source is the model, with the tensors the artifact stores itself
	// (weights.bin) read from there; weights is source as a compiled
	// program's weights are gathered from it, copied or in place (see
	// Options.WeightsInPlace).
	source, weights runtime.WeightSource
	par             *pool.Pool
	linked          *runtime.LinkedProgram // Options.Linked
}

// loaders are the loaders by the backend a manifest records.
var loaders = map[string]loader{
	artifact.BackendInterp: {load: loadInterpreted},
	artifact.BackendGo:     {handOff: handOffLinked, load: loadLinked, verify: verifyLinked},
	artifact.BackendLLVM:   {load: loadNative},
}

// loadInterpreted runs the optimised IR with the interpreter.
func loadInterpreted(in *loadInput) (*loaded, error) {
	if in.man.KVDtype != wformat.F32 {
		return nil, fmt.Errorf("artifact %s records a KV cache stored as %s (--kv-dtype), which the interpreter does not store: it keeps float32; compile it again without --kv-dtype, or with --backend go or llvm", in.dir, in.man.KVDtype)
	}
	prog, err := runtime.NewProgram(in.graphs, in.source, in.par)
	if err != nil {
		return nil, err
	}
	fork := func() (runtime.Runner, func() error, error) { return prog.Fork(), nil, nil }
	return &loaded{runner: prog, fork: fork}, nil
}

// Verify checks an artifact in full (artifact.Verify: the manifest, and
// the hash of every file it holds and was compiled from), and what of
// running it can be told without loading it: its backend is one this
// llmrun knows, and a Go artifact's binary is an executable file. (An LLVM
// artifact's CPU features are checked when it loads, not here.)
func Verify(dir string) ([]artifact.Check, error) {
	man, checks, err := artifact.Verify(dir)
	if err != nil {
		return nil, err
	}
	what := filepath.Join(dir, artifact.ManifestName) + ", backend " + man.Backend
	ld, known := loaders[man.Backend]
	if !known {
		return append(checks, artifact.Check{What: what, Err: fmt.Errorf("backend %q is not supported by this llmrun", man.Backend)}), nil
	}
	checks = append(checks, artifact.Check{What: what})
	if ld.verify != nil {
		checks = append(checks, ld.verify(dir, man)...)
	}
	return checks, nil
}

// verifyLinked checks that a Go artifact's binary is executable.
func verifyLinked(dir string, man *artifact.Manifest) []artifact.Check {
	bin := filepath.Join(dir, man.Backends.Binary)
	c := artifact.Check{What: bin + ", executable"}
	switch st, err := os.Stat(bin); {
	case man.Backends.Binary == "":
		c.Err = fmt.Errorf("the manifest names no binary (backend_info.binary)")
	case err != nil:
		c.Err = err
	case !st.Mode().IsRegular():
		c.Err = fmt.Errorf("not a regular file (mode %v)", st.Mode())
	case st.Mode()&0o100 == 0:
		c.Err = fmt.Errorf("not executable (mode %v): llmrun runs it; chmod u+x it, or compile the artifact again", st.Mode().Perm())
	}
	return []artifact.Check{c}
}

// handOffLinked lets a Go-backend artifact run only in the executable
// built for it, which has its program linked in: any other process hands
// the artifact to that executable, which never hands it off again.
func handOffLinked(dir string, man *artifact.Manifest, opts Options) error {
	bin := filepath.Join(dir, man.Backends.Binary)
	switch lp := opts.Linked; {
	case lp == nil && opts.HandedOff:
		// Started to run this artifact, but no program is linked in:
		// the executable is not the one llmc built for it.
		return fmt.Errorf("artifact %s: %s has no compiled program linked in (it is not the executable llmc built for this artifact): compile the artifact again", dir, bin)
	case lp == nil:
		// The artifact's own executable runs it, and checks the rest;
		// hand over once it is known to be that executable.
		if err := man.CheckContents(dir, man.Backends.Binary); err != nil {
			return err
		}
		return &ExternalError{Artifact: dir, Binary: bin}
	case lp.ID != man.BuildID:
		// An executable never hands off: the program linked in is the
		// only one it can run.
		return fmt.Errorf("artifact %s: %s is from build %s, the artifact from build %s: compile the artifact again", dir, bin, lp.ID, man.BuildID)
	}
	return nil
}

// loadLinked runs the program linked into this executable (handOffLinked
// has checked that it is the artifact's) over weights gathered from the
// model.
func loadLinked(in *loadInput) (*loaded, error) {
	if err := checkStates(in.dir, in.man, in.linked.States); err != nil {
		return nil, err
	}
	ws, free, err := runtime.LinkedWeights(in.linked, in.weights)
	if err != nil {
		return nil, err
	}
	fork := func() (runtime.Runner, func() error, error) { return in.linked.New(ws, in.par), nil, nil }
	return &loaded{runner: in.linked.New(ws, in.par), close: free, fork: fork}, nil
}

// loadNative loads the artifact's shared object.
func loadNative(in *loadInput) (*loaded, error) {
	b := in.man.Backends
	np, err := native.Open(native.Artifact{Dir: in.dir, Library: b.Library, BuildID: in.man.BuildID, CPU: b.TargetCPU, Features: b.Features}, in.weights, in.par)
	if err != nil {
		return nil, err
	}
	if err := checkStates(in.dir, in.man, np.States()); err != nil {
		np.Close()
		return nil, err
	}
	return &loaded{runner: np, close: np.Close}, nil
}

// checkStates checks that a compiled program stores its KV cache states in
// the format the manifest records (kv_dtype), which the memory checks and
// figures count.
func checkStates(dir string, man *artifact.Manifest, states []artifact.State) error {
	for _, s := range states {
		if s.Dtype != man.KVDtype {
			return fmt.Errorf("artifact %s: its program stores KV cache state %s as %s, its manifest records kv_dtype %s: compile the artifact again", dir, s.Name, s.Dtype, man.KVDtype)
		}
	}
	return nil
}
