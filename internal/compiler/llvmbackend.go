package compiler

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/runtime/native"
)

// Files of an LLVM-backend artifact (model.ll is also written by
// Options.EmitLLVM for any backend).
const (
	LLVMModule  = "model.ll"
	LLVMLibrary = "model.so"

	maxParts = 16 // modules compiled in parallel
)

// emitLLVM writes the kernels as a target-independent LLVM module, for
// inspection (--emit llvm with another backend).
func emitLLVM(tmp string, prog *kir.Program, man *artifact.Manifest) error {
	ll, err := llvm.Options{BuildID: man.BuildID}.Emit(prog)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, LLVMModule), []byte(ll), 0o644); err != nil {
		return err
	}
	man.Files = append(man.Files, LLVMModule)
	return nil
}

// buildLLVM writes the kernels as an LLVM module for this machine into
// tmp/model.ll, compiles it with opt -O3 and llc -O3 -mcpu=native into
// tmp/model.so, and records in the manifest the CPU and features the code
// may use (llmrun refuses the artifact on a CPU without them) and the
// tools' versions. layout.json tells runtime/native how to run it.
func buildLLVM(ctx context.Context, tmp string, prog *kir.Program, man *artifact.Manifest, vocab int, progress func(string, ...any)) error {
	tc, err := llvm.FindToolchain()
	if err != nil {
		return err
	}
	o := llvm.Options{BuildID: man.BuildID, Triple: tc.Triple, DataLayout: llvm.DataLayout(tc.Triple)}
	progress("emitting %s", LLVMModule)
	ll, err := o.Emit(prog)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, LLVMModule), []byte(ll), 0o644); err != nil {
		return err
	}
	// opt and llc are single-threaded: the module is compiled in parts, one
	// per core, whose objects are linked together.
	parts, err := o.Split(prog, min(goruntime.NumCPU(), maxParts))
	if err != nil {
		return err
	}
	build, err := os.MkdirTemp(tmp, "build")
	if err != nil {
		return err
	}
	defer os.RemoveAll(build)
	var paths []string
	for i, part := range parts {
		p := filepath.Join(build, fmt.Sprintf("part%d.ll", i))
		if err := os.WriteFile(p, []byte(part), 0o644); err != nil {
			return err
		}
		paths = append(paths, p)
	}
	if err := tc.BuildContext(ctx, filepath.Join(tmp, LLVMLibrary), paths, progress); err != nil {
		return err
	}
	lay := o.Layout(prog)
	lay.GOARCH, lay.MaxSeq, lay.Vocab = goruntime.GOARCH, man.MaxSeq, vocab
	if err := lay.Write(filepath.Join(tmp, artifact.LayoutName)); err != nil {
		return fmt.Errorf("writing %s: %w", artifact.LayoutName, err)
	}
	man.Backends.Library = LLVMLibrary
	describeProgram(man, prog)
	man.Backends.TargetCPU = tc.HostCPU
	man.Backends.Features = native.TargetFeatures()
	man.Backends.Tools = tc.Versions
	man.Files = append(man.Files, LLVMModule, LLVMLibrary, artifact.LayoutName)
	return nil
}
