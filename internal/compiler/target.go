package compiler

// This file is the target table: the one place in the compiler that knows
// the backends by name. Everything else reads a *Target's facts, and
// TestNoBackendNameComparisons keeps backend names out of comparisons in
// the rest of the module. To add a backend, add an entry here with its
// facts, its emitter and its toolchain step.

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/wformat"
)

// A Target is a backend llmc compile writes artifacts for: its name (the
// manifest's backend, which the run side finds its loader by), the facts
// passes and lowering read, and the steps that make its code.
type Target struct {
	Name string
	Doc  string // one line, for --backend's help

	// Lowers: the backend runs kernel IR, so Compile lowers the optimised
	// graphs (kir.LowerWith) for it, and the passes lowering needs cannot
	// be disabled (see RequiredPasses).
	Lowers bool
	// StaticKV: the backend's kernels are specialised to constant shapes,
	// so it needs a static KV cache (--kv static).
	StaticKV bool
	// Weights are the weight dtypes besides f32 the backend loads as the
	// checkpoint stores them (widened as they are read); lowering widens
	// the others to f32 when the artifact loads.
	Weights []ir.DType
	// KVDtypes are the 16-bit formats besides f32 the backend stores a
	// static KV cache in (--kv-dtype): its kernels round what they write
	// and widen what they read.
	KVDtypes []wformat.Format
	// VectorWidth is the f32 lanes of the backend's vector kernels, 0 for
	// a backend without any.
	VectorWidth int
	// TileColumns is kir.Options.TileColumns: how wide the register
	// tiles of prefill kernels are that its compiler keeps in registers.
	TileColumns int
	// IntDot: the backend prints kernel IR's integer dot products, so
	// block-format linears are lowered with them (kir.Options.IntDot) unless
	// --float-dot asks for the float path.
	IntDot bool
	// Speed ranks the targets by how fast their artifacts run, higher is
	// faster: a compile without --backend takes the fastest one this
	// machine can build (see DefaultTarget).
	Speed int

	// vnni reports whether the target prints integer dots as VNNI's
	// vpdpbusd on this machine (kir.Options.VNNI); nil for never.
	vnni func() bool
	// wide reports whether the target's float linears take sixteen-lane
	// dot products on this machine (kir.Options.Wide); nil for never.
	wide func() bool
	// bf16Dot reports whether the target's bf16 prefill tiles take
	// vdpbf16ps on this machine (kir.Options.BF16Dot); nil for never.
	bf16Dot func() bool

	// tools looks for the toolchain the target builds with on this
	// machine and says what is missing; nil for a target that needs none.
	tools func() error

	// emit writes the generated sources into the artifact's temporary
	// folder; toolchain builds them. Either is nil for a backend that has
	// nothing to do at that stage.
	emit      func(b *targetBuild) error
	toolchain func(b *targetBuild) error
}

// PassNeed is a pass a target cannot do without, and why.
type PassNeed struct{ Pass, Why string }

// loweringNeeds are the graph passes kir.LowerWith relies on.
func loweringNeeds() []PassNeed {
	return []PassNeed{
		{"fuse-attention", "lowering has no kernel for unfused attention scores"},
		{"form-kernels", "lowering takes kernels only, so every computing op must be in one"},
		{"plan-memory", "lowering places every kernel result at its planned arena offset"},
	}
}

// targets is the table, in --backend help order (slowest first).
func targets() []Target {
	return []Target{
		{Name: artifact.BackendInterp, Doc: "the runtime interprets the optimised graph IR (no toolchain needed)",
			// f16, q8_0, q4_0, q4_k: widened to float32 when the artifact loads,
			// the reference compiled block-format kernels are tested against.
			Weights: []ir.DType{ir.F16, ir.Q8_0, ir.Q4_0, ir.Q4_K}},
		{Name: artifact.BackendGo, Doc: "generated Go kernels (GOEXPERIMENT=simd) built with the Go toolchain into an executable",
			Lowers: true, StaticKV: true, Weights: []ir.DType{ir.BF16, ir.F16, ir.Q8_0, ir.Q4_0, ir.Q4_K}, VectorWidth: 8, TileColumns: 2, Speed: 1,
			// Integer dots: AVX2's vpmaddubsw/vpmaddwd, or portable Go.
			IntDot:   true,
			KVDtypes: []wformat.Format{wformat.F16, wformat.BF16},
			emit:     emitGo, toolchain: buildGo, tools: findGo,
			wide: goWide},
		{Name: artifact.BackendLLVM, Doc: "LLVM IR compiled by opt and llc (-mcpu=native) into a shared object llmrun loads",
			Lowers: true, StaticKV: true, Weights: []ir.DType{ir.BF16, ir.F16, ir.Q8_0, ir.Q4_0, ir.Q4_K}, VectorWidth: 8, TileColumns: 4, IntDot: true, Speed: 2,
			KVDtypes: []wformat.Format{wformat.F16, wformat.BF16},
			emit:     emitLLVMTarget, toolchain: buildLLVM, tools: findLLVM,
			vnni: func() bool { return llvmDotForm() == llvm.DotVNNI },
			wide: llvmWide, bf16Dot: llvmBF16Dot},
	}
}

func findGo() error {
	if _, err := exec.LookPath("go"); err != nil {
		return fmt.Errorf("no Go toolchain (go) on PATH")
	}
	return nil
}

func findLLVM() error {
	_, err := llvm.FindToolchain()
	return err
}

// Availability reports whether this machine can build target t: nil, or
// what is missing.
type Availability func(t *Target) error

// HostTools is the Availability of this machine: it looks for each
// target's toolchain (go on PATH; opt, llc and a C compiler).
func HostTools(t *Target) error {
	if t.tools == nil {
		return nil
	}
	return t.tools()
}

// DefaultTarget is the target of a compile without --backend: the fastest
// one that can hold a kv cache and that avail finds the toolchain of. Why
// says so, naming what the faster targets lack, for progress and --stats.
func DefaultTarget(kv passes.KVMode, avail Availability) (t *Target, why string, err error) {
	ts := targets()
	slices.SortStableFunc(ts, func(a, b Target) int { return b.Speed - a.Speed })
	var passed []string
	for i := range ts {
		c := &ts[i]
		if c.StaticKV && kv == passes.Dynamic {
			passed = append(passed, fmt.Sprintf("%s needs --kv static", c.Name))
			continue
		}
		if err := avail(c); err != nil {
			passed = append(passed, fmt.Sprintf("%s: %v", c.Name, err))
			continue
		}
		why = "the fastest backend this machine can build"
		if len(passed) > 0 {
			why += "; " + strings.Join(passed, "; ")
		}
		return c, why, nil
	}
	return nil, "", fmt.Errorf("no backend can be built on this machine: %s", strings.Join(passed, "; "))
}

// loadersOf names the targets that load weights of dtype d.
func loadersOf(d ir.DType) string {
	var names []string
	for _, t := range targets() {
		if t.Loads(d) {
			names = append(names, t.Name)
		}
	}
	return strings.Join(names, ", ")
}

// Targets returns the target table.
func Targets() []Target { return targets() }

// LookupTarget returns the target named name.
func LookupTarget(name string) (*Target, error) {
	ts := targets()
	for i := range ts {
		if ts[i].Name == name {
			return &ts[i], nil
		}
	}
	return nil, passes.OptionErrorf("--backend %q is not supported; supported: %s", name, strings.Join(Backends(), ", "))
}

// Backends lists the names of the code generators llmc compile knows.
func Backends() []string {
	var names []string
	for _, t := range targets() {
		names = append(names, t.Name)
	}
	return names
}

// BackendHelp describes the backends for --backend's help.
func BackendHelp() string {
	var b strings.Builder
	b.WriteString("code generator:")
	for _, t := range targets() {
		fmt.Fprintf(&b, "\n  %s: %s", t.Name, t.Doc)
	}
	b.WriteString("\n(default: the fastest this machine can build, by speed: ")
	ts := targets()
	slices.SortStableFunc(ts, func(a, b Target) int { return b.Speed - a.Speed })
	for i, t := range ts {
		if i > 0 {
			b.WriteString(", else ")
		}
		b.WriteString(t.Name)
	}
	b.WriteString(")")
	return b.String()
}

// Loads reports whether the target loads weights of dtype d as stored.
func (t *Target) Loads(d ir.DType) bool { return d == ir.F32 || slices.Contains(t.Weights, d) }

// StoresKV reports whether t stores a static KV cache in format f.
func (t *Target) StoresKV(f wformat.Format) bool {
	return f == wformat.F32 || slices.Contains(t.KVDtypes, f)
}

// kvStorers names the targets that store a KV cache in f, for errors.
func kvStorers(f wformat.Format) string {
	var names []string
	for _, t := range targets() {
		if t.StoresKV(f) {
			names = append(names, t.Name)
		}
	}
	return strings.Join(names, ", ")
}

// RequiredPasses are the graph passes, beyond the pipeline's Required
// ones, that the target cannot do without.
func (t *Target) RequiredPasses() []PassNeed {
	if !t.Lowers {
		return nil
	}
	return loweringNeeds()
}
