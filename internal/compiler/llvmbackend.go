package compiler

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/native"
)

// hasIntDot reports whether p has integer dot products (kir.DotI8, or
// kir.DotCols of interleaved Q4_0 rows).
func hasIntDot(p *kir.Program) bool {
	return anyExpr(p, func(x kir.Expr) bool {
		switch x.(type) {
		case *kir.DotI8, *kir.DotCols:
			return true
		}
		return false
	})
}

// hasWide reports whether p has sixteen-lane vectors (kir.Options.Wide).
func hasWide(p *kir.Program) bool {
	return anyExpr(p, func(x kir.Expr) bool { return x.Type() == kir.F32x16 })
}

// anyExpr reports whether an expression of p satisfies f.
func anyExpr(p *kir.Program, f func(kir.Expr) bool) bool {
	for _, e := range p.Entries {
		for _, k := range e.Kernels {
			for _, ph := range k.Phases {
				found := false
				kir.Walk(ph.Body, func(x kir.Expr) { found = found || f(x) }, nil)
				if found {
					return true
				}
			}
		}
	}
	return false
}

// Files of an LLVM-backend artifact (model.ll is also written by
// Options.EmitLLVM for any backend).
const (
	LLVMModule  = "model.ll"
	LLVMLibrary = "model.so"

	maxParts = 16 // modules compiled in parallel
)

// emitLLVM writes the kernels as a target-independent LLVM module, for
// inspection (--emit llvm with another backend).
func emitLLVM(b *targetBuild) error {
	ll, err := llvm.Options{BuildID: b.man.BuildID}.Emit(b.prog)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.dir, LLVMModule), []byte(ll), 0o644); err != nil {
		return err
	}
	b.sources = append(b.sources, emittedSource{LLVMModule, []byte(ll)})
	return nil
}

// llvmEmitted is what emitLLVMTarget hands buildLLVM.
type llvmEmitted struct {
	tc    *llvm.Toolchain
	opts  llvm.Options
	parts []string // model.ll split for parallel compilation
	limit string   // runtime.ISALimit when the module was emitted
}

// llvmDotForm is the integer-dot form the LLVM backend prints here: the
// best llc -mcpu=native can run, at most what LLMC_ISA allows.
func llvmDotForm() llvm.DotForm {
	feats, err := native.HostFeatures()
	if err != nil {
		feats = nil // no features known: the portable form
	}
	return llvm.ChooseDotForm(goruntime.GOARCH, feats, runtime.ISALimit())
}

// llvmWide reports whether the LLVM backend's linears take sixteen-lane
// dot products here (kir.Options.Wide): where llc -mcpu=native may use
// AVX-512 F, which LLMC_ISA=avx2 forbids. On a CPU whose AVX-512 units
// are full width (AMD Zen 5, Intel Xeon) that is twice the multiply-adds
// an instruction; code for an AVX2 machine keeps eight. With VNNI dots
// the prefill tiles then take 512-bit vpdpbusd, which needs AVX-512 VNNI:
// a CPU with AVX-512 F whose VNNI were AVX-VNNI's only keeps eight lanes.
func llvmWide() bool {
	feats, err := native.HostFeatures()
	if err != nil {
		return false
	}
	return nativeISA(feats, runtime.ISALimit()) == runtime.ISAAVX512 && (feats["avx512_vnni"] || !feats["avx_vnni"])
}

// llvmBF16Dot reports whether the LLVM backend's bf16 prefill tiles take
// AVX-512 BF16's vdpbf16ps here (kir.Options.BF16Dot): on a CPU that has
// it. lowerKIR asks only when the linears take sixteen lanes (llvmWide),
// which LLMC_ISA=avx2 turns off.
func llvmBF16Dot() bool {
	feats, err := native.HostFeatures()
	return err == nil && feats["avx512_bf16"]
}

// hasBF16Dot reports whether p has vdpbf16ps dots (kir.Options.BF16Dot).
func hasBF16Dot(p *kir.Program) bool {
	return anyExpr(p, func(x kir.Expr) bool { _, ok := x.(*kir.DotBF16); return ok })
}

// emitLLVMTarget writes the kernels as an LLVM module for this machine
// into tmp/model.ll, and splits it into parts to compile in parallel. The
// toolchain is found first: the module is emitted for its target triple.
func emitLLVMTarget(b *targetBuild) error {
	tc, err := llvm.FindToolchain()
	if err != nil {
		return err
	}
	o := llvm.Options{BuildID: b.man.BuildID, Triple: tc.Triple, DataLayout: llvm.DataLayout(tc.Triple)}
	// LLMC_ISA caps the vector instruction set llc may use and the
	// integer-dot form, so that code for a lower ISA is built and
	// measured on one machine.
	limit := runtime.ISALimit()
	feats, err := native.HostFeatures()
	if err != nil {
		feats = nil // no features known: the portable forms
	}
	tc.MAttr = llvm.MAttrFor(limit)
	b.man.Backends.ISA = nativeISA(feats, limit)
	if hasWide(b.prog) {
		b.man.Backends.Lanes = 16
	}
	b.man.Backends.BF16Dot = hasBF16Dot(b.prog)
	if hasIntDot(b.prog) {
		// The best form llc -mcpu=native can run here, at most what
		// LLMC_ISA allows.
		o.DotForm = llvmDotForm()
		b.man.Backends.IntDot = string(o.DotForm)
		b.progress("integer dot products: %s form", o.DotForm)
	}
	b.progress("emitting %s", LLVMModule)
	// opt and llc are single-threaded: the module is compiled in parts, one
	// per core, whose objects are linked together.
	ll, parts, err := o.EmitSplit(b.prog, min(goruntime.NumCPU(), maxParts))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.dir, LLVMModule), []byte(ll), 0o644); err != nil {
		return err
	}
	b.sources = append(b.sources, emittedSource{LLVMModule, []byte(ll)})
	b.state = &llvmEmitted{tc: tc, opts: o, parts: parts, limit: limit}
	b.files = append(b.files, LLVMModule)
	return nil
}

// buildLLVM compiles the parts emitLLVMTarget made with opt -O3 and
// llc -O3 -mcpu=native into tmp/model.so, and records in the manifest the
// CPU and features the code may use (llmrun refuses the artifact on a CPU
// without them) and the tools' versions. layout.json tells runtime/native
// how to run it.
func buildLLVM(b *targetBuild) error {
	e := b.state.(*llvmEmitted)
	tc, man := e.tc, b.man
	build, err := os.MkdirTemp(b.dir, "build")
	if err != nil {
		return err
	}
	defer os.RemoveAll(build)
	var paths []string
	for i, part := range e.parts {
		p := filepath.Join(build, fmt.Sprintf("part%d.ll", i))
		if err := os.WriteFile(p, []byte(part), 0o644); err != nil {
			return err
		}
		paths = append(paths, p)
	}
	if err := tc.BuildContext(b.ctx, filepath.Join(b.dir, LLVMLibrary), paths, b.progress); err != nil {
		return err
	}
	lay := e.opts.Layout(b.prog)
	lay.GOARCH, lay.MaxSeq, lay.Vocab, lay.Slots = goruntime.GOARCH, man.MaxSeq, b.vocab, max(1, man.Slots)
	if err := lay.Write(filepath.Join(b.dir, artifact.LayoutName)); err != nil {
		return fmt.Errorf("writing %s: %w", artifact.LayoutName, err)
	}
	man.Backends.Library = LLVMLibrary
	man.Backends.TargetCPU = tc.HostCPU
	man.Backends.Features = native.CapFeatures(native.TargetFeatures(), e.limit)
	man.Backends.Tools = tc.Versions
	b.files = append(b.files, LLVMLibrary, artifact.LayoutName)
	return nil
}

// nativeISA names the widest vector instruction set code compiled for a
// CPU with feats under LLMC_ISA limit uses: the CPU's best (AVX-512 F,
// AVX2) at most limit; "scalar" stands for code below AVX2
// (llvm.MAttrFor).
func nativeISA(feats map[string]bool, limit string) string {
	switch {
	case goruntime.GOARCH != "amd64" || limit == runtime.ISAScalar:
		return runtime.ISAScalar
	case feats["avx512f"] && limit != runtime.ISAAVX2:
		return runtime.ISAAVX512
	case feats["avx2"]:
		return runtime.ISAAVX2
	}
	return runtime.ISAScalar
}
