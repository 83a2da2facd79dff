// Package golang prints a kernel IR program as Go source: one package
// with a Program type whose entry points run the model's kernels,
// specialised to the program's constant shapes.
//
// Every phase is printed twice. The generic version, always compiled,
// emulates f32x8 (and f32x16) lane by lane. The vector version, in a file
// built only with GOEXPERIMENT=simd on amd64, maps f32x8 to
// simd/archsimd.Float32x8 (VFMADD, VMOVUPS, broadcasts); it is selected at
// run time when the CPU has AVX2 and FMA and LLMC_ISA does not ask for less
// (runtime.PickISA), so an artifact still runs on an older CPU. Both call
// helpers of package runtime/vec (vec.Fma8, vec.Exp8, vec.Doti4 ...) for
// what is more than one operator or method; the kernel IR's names for them
// are the helpers' (vecFn).
//
// A program lowered with kir.Options.Wide has sixteen-lane dot products
// in its float linears. The vector file then maps f32x16 to
// archsimd.Float32x16 (EVEX: VFMADD213PS on ZMM registers) and is an
// AVX-512 file: it runs where the CPU has AVX-512 F, CD, BW, DQ and VL
// (archsimd.X86.AVX512) and LLMC_ISA allows avx512, and the generic
// kernels run elsewhere. Everything but the linears' dots and attention's
// value sums stays on eight lanes, and a scalar value is still a uniform
// Float32x8.
//
// # No AVX-SSE transitions
//
// Go compiles scalar float code (float32 arithmetic, conversions, math.Exp,
// a float32 load or store, zeroing a float register) to legacy SSE
// encodings: MOVSS, ADDSS, MULSS, MOVD, PXOR, XORPS, CVTSS2SD ... not their
// VEX forms (golang/go#80835). On Intel CPUs a legacy SSE instruction
// executed while the upper halves of the YMM/ZMM registers hold data from
// 256-bit code pays either a state transition of tens of cycles (before
// Skylake) or a false dependency on the whole register on every such
// instruction (Skylake and later); AMD Zen pays nothing, which hides it.
// The rule the vector file keeps, so that no legacy SSE instruction runs
// with dirty upper halves:
//
//   - A phase with vector code computes its scalar float values in vector
//     registers too ("uniform" vectors: every lane holds the value; see
//     uexpr): scalar loads are VBROADCASTSS, arithmetic is VADDPS and
//     friends on the splat, exp is vec.Exp8, sqrt VSQRTPS, a comparison
//     VCMPPS and VMOVMSKPS, a scalar store goes through a general
//     register, and a reduction (vec.Hsum8, vec.Hmax8) stays a vector.
//     Only integer code runs on scalar registers.
//   - A KV cache kept in 16 bits (--kv-dtype) widens f16 in integer vector
//     code (vec.Loadh8; archsimd has no VCVTPH2PS) and rounds what it stores
//     lane by lane in general registers (wformat's integer rounding of the
//     lanes' bits, extracted with VPEXTRD), never with float scalar code.
//   - What has no vector form (tanh, sin, cos) runs in vec.Scalar8, which
//     executes VZEROUPPER (archsimd.ClearAVXUpperBits) before its scalar
//     code.
//   - Every vector phase ends with VZEROUPPER, so the scalar Go that runs
//     after it (the runtime, the pool, the next scalar phase) starts clean.
//   - A phase without vector code is printed as plain scalar Go; it never
//     dirties the upper halves.
//
// internal/engine's TestNoAVXSSETransitions disassembles a built artifact
// and fails when a legacy SSE instruction follows 256-bit code in a kernel
// without a VZEROUPPER between them.
package golang

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"go/format"
	"math"
	"sort"
	"strings"

	"github.com/dave/jennifer/jen"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/wformat"
)

// kvFormats name the wformat constants of the 16-bit KV cache formats.
var kvFormats = map[wformat.Format]string{wformat.F16: "F16", wformat.BF16: "BF16"}

// halfStates reports whether a KV cache state is kept in 16 bits
// (--kv-dtype f16 or bf16): only then does Program have them, in sh.
func (g *gen) halfStates() bool {
	for _, s := range g.p.States {
		if s.Dtype != wformat.F32 {
			return true
		}
	}
	return false
}

// blockFormats name the wformat constants of the formats the artifact
// stores weights in (wformat.Format.Converted) that the generated code
// reads.
var blockFormats = map[wformat.Format]string{wformat.F16: "F16", wformat.Q8_0: "Q8_0", wformat.Q4_0: "Q4_0", wformat.Q4_K: "Q4_K"}

// Paths of the packages generated code imports.
const (
	runtimePkg  = "github.com/llmc-dev/llmc/runtime"
	artifactPkg = "github.com/llmc-dev/llmc/artifact"
	wformatPkg  = "github.com/llmc-dev/llmc/wformat"
	vecPkg      = "github.com/llmc-dev/llmc/runtime/vec"
	simdPkg     = "simd/archsimd"
)

// vecFn is the runtime/vec helper that the kernel IR's name stands for:
// hsum8 is vec.Hsum8, load8u4log vec.Load8u4log.
func vecFn(name string) *jen.Statement {
	return jen.Qual(vecPkg, strings.ToUpper(name[:1])+name[1:])
}

// Header is the first line of every generated file.
const Header = "Code generated by llmc compile --backend go. DO NOT EDIT."

// Emit returns the generated files of package pkg (name → gofmt'ed
// source). id identifies the artifact the code was generated for.
//
// Emit expects a program that kir.Verify accepts; what this backend cannot
// print (a math function other than exp on eight lanes) is an error.
func Emit(p *kir.Program, pkg, id string) (out map[string][]byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(emitError)
			if !ok {
				panic(r)
			}
			out, err = nil, fmt.Errorf("golang: %w", e.err)
		}
	}()
	g := &gen{p: p}
	g.collect()
	files := map[string]*jen.File{
		"program.go":      g.programFile(pkg, id),
		"kernels.go":      g.kernelFile(pkg, false),
		"kernels_simd.go": g.kernelFile(pkg, true),
		"nosimd.go":       g.noSIMDFile(pkg),
	}
	out = map[string][]byte{}
	for name, f := range files {
		var buf bytes.Buffer
		if err := f.Render(&buf); err != nil {
			return nil, fmt.Errorf("rendering %s: %w", name, err)
		}
		src, err := format.Source(buf.Bytes())
		if err != nil {
			return nil, fmt.Errorf("formatting %s: %w", name, err)
		}
		out[name] = src
	}
	return out, nil
}

// emitError carries an error out of the recursive emitters.
type emitError struct{ err error }

type phaseRef struct {
	k     *kir.Kernel
	ph    *kir.Phase
	index int // in Program.ph
	name  string
}

type gen struct {
	p      *kir.Program
	phases []phaseRef
	byPh   map[*kir.Phase]int
	// wide: the program has f32x16 values (kir.Options.Wide), so its
	// vector file is AVX-512's and the generic one emulates sixteen lanes.
	wide bool
	// unrolledVars holds the value of each loop variable of the unrolled
	// loop bodies being printed (see unrolled).
	unrolledVars map[*kir.Var]int
	// loops are the loops of the vector file being printed, innermost
	// last, and hoists counts the variables they hoisted (see loopScope).
	loops  []*loopScope
	hoists int
}

func (g *gen) collect() {
	g.byPh = map[*kir.Phase]int{}
	for _, e := range g.p.Entries {
		for _, k := range e.Kernels {
			for i, ph := range k.Phases {
				ref := phaseRef{k: k, ph: ph, index: len(g.phases), name: fmt.Sprintf("%s_p%d", k.Name, i)}
				g.byPh[ph] = ref.index
				g.phases = append(g.phases, ref)
				kir.Walk(ph.Body, func(e kir.Expr) { g.wide = g.wide || e.Type() == kir.F32x16 }, nil)
			}
		}
	}
}

func newFile(pkg string) *jen.File {
	f := jen.NewFile(pkg)
	f.HeaderComment(Header)
	return f
}

// programFile holds the Program type, its constructor, the entry points
// and the weight and state descriptions the runtime needs to feed it.
func (g *gen) programFile(pkg, id string) *jen.File {
	f := newFile(pkg)
	f.Comment("Program is the compiled model: its weights, KV cache and activation memory.")
	fields := []jen.Code{
		jen.Id("w").Index().Index().Float32(),
		jen.Id("wh").Index().Index().Uint16(), // weights kept in bfloat16
		jen.Id("wq").Index().Index().Byte(),   // weights in a block format (Q8_0, Q4_0, Q4_K)
		jen.Id("wf").Index().Index().Uint16(), // weights stored in f16
		jen.Id("s").Index().Index().Float32(),
	}
	if g.halfStates() {
		fields = append(fields, jen.Id("sh").Index().Index().Uint16()) // states kept in f16 or bf16 (--kv-dtype), by the same index
	}
	f.Type().Id("Program").Struct(append(fields,
		jen.Id("arena").Index().Float32(),
		jen.Id("scratch").Index().Float32(),
		jen.Id("tok").Index().Int32(),
		jen.Id("pos").Int(),
		jen.Id("len").Int(),
		jen.Id("par").Qual(runtimePkg, "Parallel"),
		jen.Id("ph").Index().Func().Params(jen.Int(), jen.Int()),
	)...)

	// Linked describes the program to the runtime.
	var weights, states, entries []jen.Code
	for _, w := range g.p.Weights {
		concat := jen.Nil()
		if len(w.Concat) > 0 {
			var names []jen.Code
			for _, c := range w.Concat {
				names = append(names, jen.Lit(c))
			}
			concat = jen.Index().String().Values(names...)
		}
		d := jen.Dict{
			jen.Id("Name"): jen.Lit(w.Name), jen.Id("Rows"): jen.Lit(w.Rows), jen.Id("Cols"): jen.Lit(w.Cols), jen.Id("Concat"): concat, jen.Id("BF16"): jen.Lit(w.BF16),
		}
		if w.Format.Converted() {
			name, ok := blockFormats[w.Format]
			if !ok {
				panic(emitError{fmt.Errorf("weight %s: no loads of %s weights", w.Name, w.Format)})
			}
			d[jen.Id("Format")] = jen.Qual(wformatPkg, name)
		}
		weights = append(weights, jen.Values(d))
	}
	for _, s := range g.p.States {
		d := jen.Dict{jen.Id("Name"): jen.Lit(s.Name), jen.Id("Rows"): jen.Lit(s.Rows), jen.Id("RowSize"): jen.Lit(s.RowSize)}
		if s.Dtype != wformat.F32 {
			d[jen.Id("Dtype")] = jen.Qual(wformatPkg, kvFormats[s.Dtype])
		}
		states = append(states, jen.Values(d))
	}
	for _, e := range g.p.Entries {
		entries = append(entries, jen.Values(jen.Dict{jen.Id("Name"): jen.Lit(e.Name), jen.Id("Seq"): jen.Lit(e.Seq)}))
	}
	f.Comment("Linked is what the runtime needs to load and run this program.")
	f.Var().Id("Linked").Op("=").Qual(runtimePkg, "LinkedProgram").Values(jen.Dict{
		jen.Id("ID"):      jen.Lit(id),
		jen.Id("Weights"): jen.Index().Qual(artifactPkg, "Weight").Values(weights...),
		jen.Id("States"):  jen.Index().Qual(artifactPkg, "State").Values(states...),
		jen.Id("Entries"): jen.Index().Qual(runtimePkg, "LinkedEntry").Values(entries...),
		jen.Id("New"):     jen.Id("newRunner"),
		jen.Id("SIMD"):    jen.Id("simdAvailable"),
		jen.Id("ISA"):     jen.Id("isa"),
	})

	arena, scratch, tok := 0, 0, 0
	for _, e := range g.p.Entries {
		arena, scratch, tok = max(arena, e.ArenaLen), max(scratch, e.ScratchLen), max(tok, artifact.RowFields*e.Seq)
	}
	// A state is allocated in its own format: float32 in p.s, 16-bit in
	// p.sh (the other slice's entry is nil).
	var stateAllocs, halfAllocs []jen.Code
	for _, st := range g.p.States {
		if st.Dtype != wformat.F32 {
			stateAllocs = append(stateAllocs, jen.Nil())
			halfAllocs = append(halfAllocs, jen.Make(jen.Index().Uint16(), jen.Lit(st.Rows*st.RowSize)))
			continue
		}
		stateAllocs = append(stateAllocs, jen.Make(jen.Index().Float32(), jen.Lit(st.Rows*st.RowSize)))
		halfAllocs = append(halfAllocs, jen.Nil())
	}
	var halfInit []jen.Code
	if g.halfStates() {
		halfInit = append(halfInit, jen.Id("p").Dot("sh").Op("=").Index().Index().Uint16().Values(halfAllocs...))
	}
	var phaseInit []jen.Code
	for _, ph := range g.phases {
		phaseInit = append(phaseInit, jen.Id("p").Dot(ph.name))
	}
	f.Func().Id("newRunner").Params(jen.Id("w").Op("*").Qual(runtimePkg, "Weights"), jen.Id("par").Qual(runtimePkg, "Parallel")).Qual(runtimePkg, "Runner").Block(
		jen.Id("p").Op(":=").Op("&").Id("Program").Values(jen.Dict{
			jen.Id("w"):       jen.Id("w").Dot("F32"),
			jen.Id("wh"):      jen.Id("w").Dot("BF16"),
			jen.Id("wq"):      jen.Id("w").Dot("Blocks"),
			jen.Id("wf"):      jen.Id("w").Dot("F16"),
			jen.Id("arena"):   jen.Make(jen.Index().Float32(), jen.Lit(arena+8)),
			jen.Id("scratch"): jen.Make(jen.Index().Float32(), jen.Lit(scratch+8)),
			jen.Id("tok"):     jen.Make(jen.Index().Int32(), jen.Lit(tok)),
			jen.Id("par"):     jen.Id("par"),
		}),
		jen.Id("p").Dot("s").Op("=").Index().Index().Float32().Values(stateAllocs...),
		jen.Add(halfInit...),
		jen.Id("p").Dot("ph").Op("=").Index().Func().Params(jen.Int(), jen.Int()).Values(phaseInit...),
		jen.Id("p").Dot("useSIMD").Call(),
		jen.Return(jen.Id("p")),
	)

	// RunRows dispatches to the entry points.
	var cases []jen.Code
	for _, e := range g.p.Entries {
		cases = append(cases, jen.Case(jen.Lit(e.Name)).Block(
			jen.If(jen.Id("n").Op(">").Lit(e.Seq)).Block(
				jen.Return(jen.Nil(), jen.Nil(), jen.Qual("fmt", "Errorf").Call(jen.Lit(fmt.Sprintf("entry point %s takes at most %d tokens, got %%d", e.Name, e.Seq)), jen.Id("n"))),
			),
			jen.Id("p").Dot("load").Call(jen.Lit(e.Seq), jen.Id("tokens"), jen.Id("positions"), jen.Id("slots")),
			jen.List(jen.Id("p_len"), jen.Id("p_pos")).Op("=").List(jen.Id("p").Dot("len"), jen.Id("p").Dot("pos")),
			jen.Id("p").Dot("run_"+e.Name).Call(),
			jen.Id("off").Op(":=").Add(g.expr(e.OutOffset, false)),
			jen.Return(jen.Append(jen.Index().Float32().Values(), jen.Id("p").Dot("arena").Index(jen.Id("off").Op(":").Id("off").Op("+").Lit(prod(e.OutShape))).Op("...")),
				jen.Index().Int().Values(intLits(e.OutShape)...), jen.Nil()),
		))
	}
	cases = append(cases, jen.Default().Block(jen.Return(jen.Nil(), jen.Nil(), jen.Qual("fmt", "Errorf").Call(jen.Lit("no entry point %q"), jen.Id("entry")))))
	f.Comment("Run executes an entry point on tokens at positions pos, pos+1, ... of slot 0.")
	f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id("Run").Params(jen.Id("entry").String(), jen.Id("tokens").Index().Int32(), jen.Id("pos").Int()).
		Params(jen.Index().Float32(), jen.Index().Int(), jen.Error()).Block(
		jen.Return(jen.Id("p").Dot("RunRows").Call(jen.Id("entry"), jen.Id("tokens"),
			jen.Qual(artifactPkg, "Consecutive").Call(jen.Id("pos"), jen.Len(jen.Id("tokens"))), jen.Nil())),
	)
	f.Comment("RunRows executes an entry point on tokens, each at its own position in its own slot (nil: slot 0).")
	f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id("RunRows").Params(jen.Id("entry").String(), jen.List(jen.Id("tokens"), jen.Id("positions"), jen.Id("slots")).Index().Int32()).
		Params(jen.Index().Float32(), jen.Index().Int(), jen.Error()).Block(
		jen.Id("n").Op(":=").Len(jen.Id("tokens")),
		jen.If(jen.Id("n").Op("==").Lit(0).Op("||").Len(jen.Id("positions")).Op("!=").Id("n").Op("||").Id("slots").Op("!=").Nil().Op("&&").Len(jen.Id("slots")).Op("!=").Id("n")).Block(
			jen.Return(jen.Nil(), jen.Nil(), jen.Qual("fmt", "Errorf").Call(jen.Lit("entry point %s: %d tokens, %d positions, %d slots"), jen.Id("entry"), jen.Id("n"), jen.Len(jen.Id("positions")), jen.Len(jen.Id("slots")))),
		),
		jen.Var().List(jen.Id("p_len"), jen.Id("p_pos")).Int(),
		jen.List(jen.Id("_"), jen.Id("_")).Op("=").List(jen.Id("p_len"), jen.Id("p_pos")),
		jen.Switch(jen.Id("entry")).Block(cases...),
	)
	f.Comment("Slots is how many sequences the KV cache states hold.")
	f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id("Slots").Params().Int().Block(jen.Return(jen.Lit(max(1, g.p.Slots))))
	f.Comment("load writes a step's rows for an entry point of seq rows; pos is the largest position.")
	f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id("load").Params(jen.Id("seq").Int(), jen.List(jen.Id("tokens"), jen.Id("positions"), jen.Id("slots")).Index().Int32()).Block(
		jen.Qual(artifactPkg, "FillRows").Call(jen.Id("p").Dot("tok"), jen.Id("seq"), jen.Id("tokens"), jen.Id("positions"), jen.Id("slots")),
		jen.List(jen.Id("p").Dot("pos"), jen.Id("p").Dot("len")).Op("=").List(jen.Int().Call(jen.Qual("slices", "Max").Call(jen.Id("positions"))), jen.Len(jen.Id("tokens"))),
	)
	// parallel runs a phase on the pool when it has enough work.
	f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id("parallel").Params(jen.Id("n"), jen.Id("work").Int(), jen.Id("fn").Func().Params(jen.Int(), jen.Int())).Block(
		jen.If(jen.Id("n").Op("<").Lit(2).Op("||").Id("work").Op("<").Lit(kir.ParallelMinWork)).Block(
			jen.If(jen.Id("n").Op(">").Lit(0)).Block(jen.Id("fn").Call(jen.Lit(0), jen.Id("n"))),
			jen.Return(),
		),
		jen.Id("p").Dot("par").Dot("ParallelFor").Call(jen.Id("n"), jen.Id("fn")),
	)
	for _, e := range g.p.Entries {
		calls := []jen.Code{
			jen.List(jen.Id("p_len"), jen.Id("p_pos")).Op(":=").List(jen.Id("p").Dot("len"), jen.Id("p").Dot("pos")),
			jen.List(jen.Id("_"), jen.Id("_")).Op("=").List(jen.Id("p_len"), jen.Id("p_pos")),
		}
		for _, k := range e.Kernels {
			calls = append(calls, jen.Comment(fmt.Sprintf("%s %s = %s", k.Name, k.Value, joinOps(k.Ops))))
			for _, ph := range k.Phases {
				fn := jen.Id("p").Dot("ph").Index(jen.Lit(g.byPh[ph]))
				if ph.Parallel {
					calls = append(calls, jen.Id("p").Dot("parallel").Call(g.expr(ph.N, false), g.expr(ph.Work, false), fn))
				} else {
					calls = append(calls, fn.Call(jen.Lit(0), jen.Lit(1)))
				}
			}
		}
		f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id("run_" + e.Name).Params().Block(calls...)
	}
	for _, t := range g.p.Tables {
		if len(t.Data) <= 256 {
			var vals []jen.Code
			for _, x := range t.Data {
				vals = append(vals, f32Lit(x))
			}
			f.Var().Id(t.Name).Op("=").Index(jen.Lit(len(t.Data))).Float32().Values(vals...)
			continue
		}
		// Large tables (RoPE's cosines) travel as their little-endian bytes:
		// a string literal compiles far faster than thousands of floats.
		raw := make([]byte, 4*len(t.Data))
		for i, x := range t.Data {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
		}
		f.Var().Id(t.Name).Op("=").Id("tableFromBytes").Call(jen.Lit(string(raw)))
	}
	f.Func().Id("tableFromBytes").Params(jen.Id("s").String()).Index().Float32().Block(
		jen.Id("b").Op(":=").Index().Byte().Call(jen.Id("s")),
		jen.Id("t").Op(":=").Make(jen.Index().Float32(), jen.Len(jen.Id("b")).Op("/").Lit(4)),
		jen.For(jen.Id("i").Op(":=").Range().Id("t")).Block(
			jen.Id("t").Index(jen.Id("i")).Op("=").Qual("math", "Float32frombits").Call(
				jen.Qual("encoding/binary", "LittleEndian").Dot("Uint32").Call(jen.Id("b").Index(jen.Lit(4).Op("*").Id("i").Op(":")))),
		),
		jen.Return(jen.Id("t")),
	)
	return f
}

func joinOps(ops []string) string {
	s := ""
	for i, o := range ops {
		if i > 0 {
			s += " → "
		}
		s += o
	}
	return s
}

func intLits(xs []int) []jen.Code {
	var out []jen.Code
	for _, x := range xs {
		out = append(out, jen.Lit(x))
	}
	return out
}

func prod(xs []int) int {
	p := 1
	for _, x := range xs {
		p *= x
	}
	return p
}

// noSIMDFile is compiled where the vector file is not: no vector phases.
func (g *gen) noSIMDFile(pkg string) *jen.File {
	f := newFile(pkg)
	f.HeaderComment("//go:build !(goexperiment.simd && amd64)")
	f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id("useSIMD").Params().Block()
	f.Func().Id("simdAvailable").Params().Bool().Block(jen.Return(jen.False()))
	f.Func().Id("isa").Params().String().Block(jen.Return(jen.Qual(runtimePkg, "ISAScalar")))
	return f
}

// kernelFile prints every phase, generic or vector.
func (g *gen) kernelFile(pkg string, simd bool) *jen.File {
	f := newFile(pkg)
	suffix := ""
	if simd {
		f.HeaderComment("//go:build goexperiment.simd && amd64")
		isa, name, has := "ISAAVX2", "AVX2", jen.Qual(simdPkg, "X86").Dot("AVX2").Call().Op("&&").Qual(simdPkg, "X86").Dot("FMA").Call()
		if g.wide {
			isa, name, has = "ISAAVX512", "AVX-512", has.Op("&&").Qual(simdPkg, "X86").Dot("AVX512").Call()
		}
		suffix = "_" + strings.ToLower(strings.TrimPrefix(isa, "ISA"))
		var swaps []jen.Code
		for _, ph := range g.phases {
			swaps = append(swaps, jen.Id("p").Dot("ph").Index(jen.Lit(ph.index)).Op("=").Id("p").Dot(ph.name+suffix))
		}
		f.Comment(fmt.Sprintf("useSIMD switches every phase to its %s version when isa chose %s.", name, name))
		f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id("useSIMD").Params().Block(
			jen.If(jen.Id("isa").Call().Op("!=").Qual(runtimePkg, isa)).Block(jen.Return()),
			jen.Block(swaps...),
		)
		f.Func().Id("simdAvailable").Params().Bool().Block(jen.Return(has))
		if g.wide {
			f.Comment("isa is the instruction set the kernels run with: AVX-512 when the CPU has AVX-512")
			f.Comment("(F, CD, BW, DQ, VL), AVX2 and FMA, unless LLMC_ISA (or LLMC_NO_SIMD) asks for less,")
			f.Comment("which is the portable kernels: the vector ones have sixteen-lane dots.")
		} else {
			f.Comment("isa is the instruction set the kernels run with: AVX2 when the CPU has AVX2 and FMA,")
			f.Comment("unless LLMC_ISA (or LLMC_NO_SIMD) asks for the portable kernels.")
		}
		f.Func().Id("isa").Params().String().Block(
			jen.If(jen.Id("simdAvailable").Call()).Block(jen.Return(jen.Qual(runtimePkg, "PickISA").Call(jen.Qual(runtimePkg, isa)))),
			jen.Return(jen.Qual(runtimePkg, "ISAScalar")),
		)
	}
	for _, ph := range g.phases {
		f.Comment(fmt.Sprintf("%s: phase %s of kernel %s (%s)", ph.name+suffix, phaseKind(ph.ph), ph.k.Value, ph.k.Kind))
		f.Func().Params(jen.Id("p").Op("*").Id("Program")).Id(ph.name+suffix).Params(jen.Id("lo"), jen.Id("hi").Int()).Block(g.phaseBody(ph.ph, simd)...)
	}
	return f
}

func phaseKind(ph *kir.Phase) string {
	if ph.Parallel {
		return "parallel"
	}
	return "serial"
}

// phaseBody declares the buffers the phase touches, then its statements.
//
// In the vector file (simd) a phase without vector code is printed as
// scalar Go; one with vector code keeps its scalar floats in vector
// registers and ends with VZEROUPPER (see the package comment).
func (g *gen) phaseBody(ph *kir.Phase, simd bool) []jen.Code {
	simd = simd && hasVectors(ph.Body)
	bufs := map[string]*kir.Buffer{}
	vecBufs := map[string]bool{}
	params := map[string]bool{}
	kir.Walk(ph.Body, func(e kir.Expr) {
		switch e := e.(type) {
		case *kir.Load:
			bufs[e.Buf.Name] = e.Buf
			vecBufs[e.Buf.Name] = vecBufs[e.Buf.Name] || e.Vec
		case *kir.LoadQ:
			bufs[e.Buf.Name] = e.Buf
			vecBufs[e.Buf.Name] = vecBufs[e.Buf.Name] || e.Vec
		case kir.Param:
			params[e.Name] = true
		}
	}, func(st *kir.Store) {
		bufs[st.Buf.Name] = st.Buf
		vecBufs[st.Buf.Name] = vecBufs[st.Buf.Name] || st.Val.Type().IsVector()
	})
	// Integer dots and int8 stores address their buffers as bytes: by
	// pointer in the vector file, through a byte view of the scratch in
	// the generic one.
	byteBufs := map[string]bool{}
	kir.Walk(ph.Body, func(e kir.Expr) {
		if d, ok := e.(*kir.DotI8); ok {
			bufs[d.W.Name], bufs[d.X.Name] = d.W, d.X
			vecBufs[d.W.Name], vecBufs[d.X.Name] = true, true
			byteBufs[d.X.Name] = true
		}
	}, nil)
	eachStmt(ph.Body, func(st kir.Stmt) {
		if s, ok := st.(*kir.StoreI8); ok {
			bufs[s.Buf.Name] = s.Buf
			vecBufs[s.Buf.Name] = true
			byteBufs[s.Buf.Name] = true
		}
	})
	var out []jen.Code
	names := make([]string, 0, len(bufs))
	for n := range bufs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := bufs[n]
		var src jen.Code
		switch b.Kind {
		case kir.Arena:
			src = jen.Id("p").Dot("arena")
		case kir.Scratch:
			src = jen.Id("p").Dot("scratch")
		case kir.Weight:
			src = jen.Id("p").Dot("w").Index(jen.Lit(b.Index))
			switch {
			case b.IsBF16():
				src = jen.Id("p").Dot("wh").Index(jen.Lit(b.Index))
			case b.IsF16():
				src = jen.Id("p").Dot("wf").Index(jen.Lit(b.Index))
			case b.Format.Blocked():
				src = jen.Id("p").Dot("wq").Index(jen.Lit(b.Index))
			}
		case kir.State:
			src = jen.Id("p").Dot("s").Index(jen.Lit(b.Index))
			if b.Is16() {
				src = jen.Id("p").Dot("sh").Index(jen.Lit(b.Index))
			}
		case kir.Tokens:
			src = jen.Id("p").Dot("tok")
		case kir.Local:
			// kir.Options.VNNI's tables; the Go backend's dots are AVX2's.
			panic(emitError{fmt.Errorf("local buffer %s: the Go backend prints no local tables", b.Name)})
		case kir.Table:
			src = jen.Id(b.Name).Index(jen.Op(":"))
			if b.Len > 256 {
				src = jen.Id(b.Name)
			}
		}
		out = append(out, jen.Id(b.Name).Op(":=").Add(src))
		if !simd && byteBufs[b.Name] {
			out = append(out, jen.Id(b.Name+"_b").Op(":=").Qual("unsafe", "Slice").Call(
				jen.Parens(jen.Op("*").Byte()).Call(jen.Qual("unsafe", "Pointer").Call(jen.Qual("unsafe", "SliceData").Call(jen.Id(b.Name)))),
				jen.Lit(4).Op("*").Len(jen.Id(b.Name))))
		}
		if simd && vecBufs[b.Name] {
			// Vector loads and stores address the buffer without bounds
			// checks; the kernel IR's indices are checked by tests that run
			// kir.Machine, which does check them, at the extreme positions.
			out = append(out, jen.Id(b.Name+"_p").Op(":=").Qual("unsafe", "Pointer").Call(jen.Qual("unsafe", "SliceData").Call(jen.Id(b.Name))))
		}
	}
	for _, n := range []string{"len", "pos"} {
		if params[n] {
			out = append(out, jen.Id("p_"+n).Op(":=").Id("p").Dot(n))
		}
	}
	if ph.Parallel {
		out = append(out, jen.For(jen.Id(ph.Var.Name).Op(":=").Id("lo"), jen.Id(ph.Var.Name).Op("<").Id("hi"), jen.Id(ph.Var.Name).Op("++")).Block(g.stmts(ph.Body, simd)...))
	} else {
		out = append(out, g.stmts(ph.Body, simd)...)
	}
	if simd {
		out = append(out, jen.Comment("VZEROUPPER: the scalar code after this phase starts clean."),
			jen.Qual(simdPkg, "ClearAVXUpperBits").Call())
	}
	return out
}

// hasVectors reports whether ss computes on eight or sixteen lanes
// anywhere.
func hasVectors(ss []kir.Stmt) bool {
	vec := false
	kir.Walk(ss, func(e kir.Expr) { vec = vec || e.Type().IsVector() }, nil)
	return vec
}

func (g *gen) stmts(ss []kir.Stmt, simd bool) []jen.Code {
	var out []jen.Code
	for _, s := range ss {
		switch s := s.(type) {
		case *kir.Decl:
			out = append(out, jen.Id(s.Var.Name).Op(":=").Add(g.expr(s.Init, simd)))
		case *kir.Assign:
			out = append(out, jen.Id(s.Var.Name).Op("=").Add(g.expr(s.Val, simd)))
		case *kir.Store:
			idx := g.expr(s.Index, simd)
			if s.Buf.Is16() {
				out = append(out, g.store16(s, idx, simd))
			} else if n := lanesOf(s.Val.Type()); n > 1 {
				if simd {
					out = append(out, g.expr(s.Val, simd).Dot("Store").Call(vecPtr(s.Buf.Name, idx, n)))
				} else {
					out = append(out, vecFn(fmt.Sprint("store", n)).Call(jen.Id(s.Buf.Name), idx, g.expr(s.Val, simd)))
				}
			} else if simd && s.Val.Type() == kir.F32 {
				out = append(out, vecFn("storef").Call(jen.Id(s.Buf.Name), idx, g.expr(s.Val, simd)))
			} else {
				out = append(out, jen.Id(s.Buf.Name).Index(idx).Op("=").Add(g.expr(s.Val, simd)))
			}
		case *kir.IfGreater:
			if simd && s.X.Type() == kir.F32 {
				out = append(out, jen.If(vecFn("gt8").Call(g.expr(s.X, simd), g.expr(s.Y, simd))).Block(g.stmts(s.Then, simd)...))
				break
			}
			out = append(out, jen.If(g.expr(s.X, simd).Op(">").Add(g.expr(s.Y, simd))).Block(g.stmts(s.Then, simd)...))
		case *kir.For:
			if n, ok := unrollTrips(s); ok && simd {
				out = append(out, g.unrolled(s, n, simd)...)
				break
			}
			v := jen.Id(s.Var.Name)
			step := jen.Id(s.Var.Name).Op("++")
			if s.Step != 1 {
				step = jen.Id(s.Var.Name).Op("+=").Lit(s.Step)
			}
			head := jen.For(jen.Id(s.Var.Name).Op(":=").Add(g.expr(s.Lo, simd)), v.Op("<").Add(g.expr(s.Hi, simd)), step)
			if simd {
				out = append(out, g.loop(s, head, simd)...)
				break
			}
			out = append(out, head.Block(g.stmts(s.Body, simd)...))
		case *kir.StoreI8:
			off, val := g.expr(s.Off, simd), g.expr(s.Val, simd)
			switch {
			case simd && s.Val.Type() == kir.F32x8:
				out = append(out, vecFn("storei8x8").Call(jen.Id(s.Buf.Name+"_p"), off, val))
			case simd:
				out = append(out, vecFn("storei8x1").Call(jen.Id(s.Buf.Name+"_p"), off, val))
			case s.Val.Type() == kir.F32x8:
				out = append(out, vecFn("storei8g").Call(jen.Id(s.Buf.Name+"_b"), off, val))
			default:
				out = append(out, jen.Id(s.Buf.Name+"_b").Index(off).Op("=").Byte().Call(jen.Qual(wformatPkg, "QuantI8").Call(val)))
			}
		case *kir.Prefetch:
			// A hint; Go has no portable prefetch.
		case *kir.StoreBF16:
			panic(emitError{fmt.Errorf("store8bf16 %s: %s", s.Buf.Name, noAVX512Dots)})
		default:
			panic(emitError{fmt.Errorf("unknown statement %T", s)})
		}
	}
	return out
}

// Loops unrolled by the vector file: at most unrollMax trips of at most
// unrollStmts statements in all.
const (
	unrollMax   = 8
	unrollStmts = 64
)

// unrollTrips reports the trip count of a loop with constant bounds that
// the vector file unrolls. The Go compiler neither unrolls loops nor hoists
// their invariant address arithmetic, so a short loop of vector FMAs (a
// dot product's 64 columns, the 8 keys of an attention block) spends as
// much on the counter, the bounds check and recomputing each row's offset
// as on the FMAs. Unrolled, every offset is a constant displacement from a
// row base computed once, and the values stay in registers.
func unrollTrips(f *kir.For) (int, bool) {
	lo, ok1 := f.Lo.(kir.IntConst)
	hi, ok2 := f.Hi.(kir.IntConst)
	if !ok1 || !ok2 || f.Step <= 0 || hi.N <= lo.N {
		return 0, false
	}
	n := (hi.N - lo.N + f.Step - 1) / f.Step
	stmts := 0
	eachStmt(f.Body, func(kir.Stmt) { stmts++ })
	return n, n <= unrollMax && n*stmts <= unrollStmts
}

// unrolled prints n copies of a loop's body, each a block in which the
// loop variable is its value, folded into the offsets (see linearise).
// The statements run in the loop's order, so the results are the loop's
// to the bit.
func (g *gen) unrolled(f *kir.For, n int, simd bool) []jen.Code {
	if g.unrolledVars == nil {
		g.unrolledVars = map[*kir.Var]int{}
	}
	defer delete(g.unrolledVars, f.Var)
	lo := f.Lo.(kir.IntConst).N
	var out []jen.Code
	for i := 0; i < n; i++ {
		g.unrolledVars[f.Var] = lo + i*f.Step
		out = append(out, jen.Block(g.stmts(f.Body, simd)...))
	}
	return out
}

// store16 prints a store into a state kept in 16 bits (f16 or bf16),
// rounded to nearest even by wformat's integer rounding: eight lanes by a
// helper, a scalar in a vector phase through a general register (its
// bits, VMOVD), a scalar elsewhere by wformat's float32 functions.
func (g *gen) store16(s *kir.Store, idx *jen.Statement, simd bool) jen.Code {
	f := "H"
	if s.Buf.IsBF16() {
		f = "BF"
	}
	val := g.expr(s.Val, simd)
	switch {
	case s.Val.Type() == kir.F32x8 && simd:
		return vecFn("store"+strings.ToLower(f)+"8").Call(jen.Id(s.Buf.Name+"_p"), idx, val)
	case s.Val.Type() == kir.F32x8:
		return vecFn("store8"+strings.ToLower(f)).Call(jen.Id(s.Buf.Name), idx, val)
	case simd:
		name := map[string]string{"H": "F16FromBits", "BF": "BF16FromBits"}[f]
		return jen.Id(s.Buf.Name).Index(idx).Op("=").Qual(wformatPkg, name).Call(vecFn("bits0").Call(val))
	}
	name := map[string]string{"H": "F32ToF16", "BF": "F32ToBF16"}[f]
	return jen.Id(s.Buf.Name).Index(idx).Op("=").Qual(wformatPkg, name).Call(val)
}

// dotHelpers are the helpers of each kir.DotQuants (the vector file's;
// the generic file's end in g).
var dotHelpers = map[kir.DotQuants]string{kir.DotInt8: "doti8", kir.DotQ4_0: "doti4", kir.DotLow: "doti4lo", kir.DotHigh: "doti4hi"}

// eachStmt calls f on every statement of ss, loop bodies included.
func eachStmt(ss []kir.Stmt, f func(kir.Stmt)) {
	for _, s := range ss {
		f(s)
		switch s := s.(type) {
		case *kir.For:
			eachStmt(s.Body, f)
		case *kir.IfGreater:
			eachStmt(s.Then, f)
		}
	}
}

// f16Bits is the float16 at byte off of a block-format weight, widened to
// float32 bits in integer arithmetic (wformat.F16Bits, which inlines).
func f16Bits(buf string, off *jen.Statement) *jen.Statement {
	return jen.Qual(wformatPkg, "F16Bits").Call(jen.Qual("encoding/binary", "LittleEndian").Dot("Uint16").Call(jen.Id(buf).Index(off.Op(":"))))
}

// quantLoads are the helpers that load eight quants of each part (the
// vector file's; the generic file's end in g).
var quantLoads = map[kir.QPart]string{kir.QInt8: "load8i8", kir.QU4Lo: "load8u4lo", kir.QU4Hi: "load8u4hi"}

// quantInt is the quant part p of byte b as an integer expression: int8,
// or a nibble masked or shifted out (integer code, in general registers).
func quantInt(p kir.QPart, b *jen.Statement) *jen.Statement {
	switch p {
	case kir.QInt8:
		return jen.Int8().Call(b)
	case kir.QU4Lo:
		return jen.Parens(b.Op("&").Lit(0xf))
	case kir.QU4Hi:
		return jen.Parens(b.Op(">>").Lit(4))
	}
	panic(emitError{fmt.Errorf("no loads of quant part %d", p)})
}

// vecPtr addresses n floats (8 or 16) at element idx of a buffer,
// unchecked.
func vecPtr(buf string, idx *jen.Statement, n int) *jen.Statement {
	return jen.Parens(jen.Op("*").Index(jen.Lit(n)).Float32()).Call(
		jen.Qual("unsafe", "Add").Call(jen.Id(buf+"_p"), jen.Lit(4).Op("*").Parens(idx)))
}

// lanesOf is how many lanes a value of type t has: 1, 8 or 16.
func lanesOf(t kir.Type) int {
	switch t {
	case kir.F32x8:
		return 8
	case kir.F32x16:
		return 16
	}
	return 1
}

func f32Lit(x float32) jen.Code {
	switch {
	case math.IsInf(float64(x), 1):
		return jen.Float32().Call(jen.Qual("math", "Inf").Call(jen.Lit(1)))
	case math.IsInf(float64(x), -1):
		return jen.Float32().Call(jen.Qual("math", "Inf").Call(jen.Lit(-1)))
	}
	return jen.Lit(x)
}

var goBin = map[kir.BinOp]string{kir.Add: "+", kir.Sub: "-", kir.Mul: "*", kir.Div: "/", kir.Rem: "%"}
var simdBin = map[kir.BinOp]string{kir.Add: "Add", kir.Sub: "Sub", kir.Mul: "Mul", kir.Div: "Div", kir.Max: "Max", kir.Min: "Min"}
var emuBin = map[kir.BinOp]string{kir.Add: "add8", kir.Sub: "sub8", kir.Mul: "mul8", kir.Div: "div8", kir.Max: "max8"}
var emuBin16 = map[kir.BinOp]string{kir.Add: "add16", kir.Sub: "sub16", kir.Mul: "mul16"}

func (g *gen) expr(e kir.Expr, simd bool) *jen.Statement {
	if simd && e.Type() == kir.F32 {
		return g.uexpr(e)
	}
	switch e := e.(type) {
	case kir.IntConst:
		return jen.Lit(e.N)
	case kir.F32Const:
		return jen.Add(f32Lit(e.F))
	case *kir.Var:
		if v, ok := g.unrolledVars[e]; ok {
			return jen.Lit(v)
		}
		return jen.Id(e.Name)
	case kir.Param:
		return jen.Id("p_" + e.Name)
	case *kir.Load:
		idx := g.expr(e.Index, simd)
		n := lanesOf(e.Type())
		// Vector loads are named by their lanes: the vector file's by the
		// format then the lanes (loadbf8, loadh16), the generic file's by
		// the lanes then the format (load8bf, load16h).
		vec := func(format string) *jen.Statement {
			if simd {
				return vecFn(fmt.Sprint("load", format, n)).Call(jen.Id(e.Buf.Name+"_p"), idx)
			}
			return vecFn(fmt.Sprint("load", n, format)).Call(jen.Id(e.Buf.Name), idx)
		}
		switch {
		case e.Buf.Kind == kir.Tokens:
			return jen.Int().Call(jen.Id(e.Buf.Name).Index(idx))
		case e.Buf.IsBF16() && !e.Vec:
			return jen.Qual(wformatPkg, "BF16ToF32").Call(jen.Id(e.Buf.Name).Index(idx))
		case e.Buf.IsBF16():
			return vec("bf")
		case e.Buf.IsF16() && !e.Vec:
			return jen.Qual(wformatPkg, "F16ToF32").Call(jen.Id(e.Buf.Name).Index(idx))
		case e.Buf.IsF16():
			return vec("h")
		case !e.Vec:
			return jen.Id(e.Buf.Name).Index(idx)
		case simd:
			return jen.Qual(simdPkg, fmt.Sprint("LoadFloat32x", n)).Call(vecPtr(e.Buf.Name, idx, n))
		default:
			return vecFn(fmt.Sprint("load", n)).Call(jen.Id(e.Buf.Name), idx)
		}
	case *kir.LoadQ:
		off := g.expr(e.Off, simd)
		switch {
		case e.Part == kir.QU8:
			return jen.Int().Call(jen.Id(e.Buf.Name).Index(off))
		case e.Part == kir.QF16:
			return jen.Qual("math", "Float32frombits").Call(f16Bits(e.Buf.Name, off))
		case !e.Vec:
			return jen.Float32().Call(quantInt(e.Part, jen.Id(e.Buf.Name).Index(off)))
		case simd:
			return vecFn(quantLoads[e.Part]).Call(jen.Id(e.Buf.Name+"_p"), off)
		default:
			return vecFn(quantLoads[e.Part]+"g").Call(jen.Id(e.Buf.Name), off)
		}
	case *kir.Bin:
		if isLinearOp(e) {
			return g.linearExpr(e, simd)
		}
		a, b := g.expr(e.A, simd), g.expr(e.B, simd)
		switch {
		case e.Type().IsVector() && simd:
			return a.Dot(simdBin[e.Op]).Call(b)
		case e.Type() == kir.F32x8:
			return vecFn(emuBin[e.Op]).Call(a, b)
		case e.Type() == kir.F32x16:
			return vecFn(emuBin16[e.Op]).Call(a, b)
		case e.Op == kir.Max:
			return jen.Max(a, b)
		case e.Op == kir.Min:
			return jen.Min(a, b)
		}
		return jen.Parens(a.Op(goBin[e.Op]).Add(b))
	case *kir.FMA:
		a, b, c := g.expr(e.A, simd), g.expr(e.B, simd), g.expr(e.C, simd)
		switch {
		case e.Type().IsVector() && simd:
			return a.Dot("MulAdd").Call(b, c)
		case e.Type().IsVector():
			return vecFn(fmt.Sprint("fma", lanesOf(e.Type()))).Call(a, b, c)
		}
		// Fused, as kir.FMA is (and kir.Machine computes it): Go does not
		// fuse a*b + c on amd64 below GOAMD64=v3.
		return vecFn("fmaf").Call(a, b, c)
	case *kir.Call:
		arg := g.expr(e.Arg, simd)
		if e.Type() == kir.F32x8 {
			switch {
			case e.Fn == kir.RoundEven && simd:
				return arg.Dot("RoundToEven").Call() // VROUNDPS
			case e.Fn == kir.RoundEven:
				return vecFn("roundeven8g").Call(arg)
			case e.Fn != kir.Exp:
				panic(emitError{fmt.Errorf("%s on eight lanes: the Go backend computes only exp and roundeven lane-wise", e.Fn)})
			case simd:
				return vecFn("exp8").Call(arg)
			}
			return vecFn("exp8g").Call(arg)
		}
		var fn string
		switch e.Fn {
		case kir.Exp:
			return jen.Qual(runtimePkg, "Expf").Call(arg)
		case kir.Sqrt:
			fn = "Sqrt"
		case kir.Tanh:
			fn = "Tanh"
		case kir.Cos:
			fn = "Cos"
		case kir.Sin:
			fn = "Sin"
		case kir.RoundEven:
			fn = "RoundToEven"
		default:
			panic(emitError{fmt.Errorf("unknown function %s", e.Fn)})
		}
		return jen.Float32().Call(jen.Qual("math", fn).Call(jen.Float64().Call(arg)))
	case *kir.Select:
		return vecFn("selgt").Call(g.expr(e.X, simd), g.expr(e.Y, simd), g.expr(e.A, simd), g.expr(e.B, simd))
	case *kir.Broadcast:
		switch {
		case simd && e.Wide:
			if c, ok := e.X.(kir.F32Const); ok && c.F == 0 && !math.Signbit(float64(c.F)) {
				return jen.Qual(simdPkg, "Float32x16").Values() // VPXORD
			}
			return g.uexpr(e.X).Dot("GetLo").Call().Dot("Broadcast1To16").Call() // VBROADCASTSS
		case simd:
			return g.uexpr(e.X) // already in every lane
		case e.Wide:
			return vecFn("splat16").Call(g.expr(e.X, simd))
		}
		return vecFn("splat8").Call(g.expr(e.X, simd))
	case *kir.HSum:
		// In a vector phase a sum is a uniform vector (uexpr, above).
		return vecFn(fmt.Sprintf("hsum%dg", lanesOf(e.X.Type()))).Call(g.expr(e.X, simd))
	case *kir.HMax:
		if simd {
			return vecFn("hmax8").Call(g.expr(e.X, simd))
		}
		return vecFn("hmax8g").Call(g.expr(e.X, simd))
	case *kir.HSums:
		var args []jen.Code
		for _, x := range e.Xs {
			args = append(args, g.expr(x, simd))
		}
		if simd {
			return vecFn("hsums8").Call(args...)
		}
		return vecFn("hsums8g").Call(args...)
	case *kir.ToF32:
		return jen.Float32().Call(g.expr(e.X, simd))
	}
	if d, ok := e.(*kir.DotI8); ok {
		name, ok := dotHelpers[d.Quants]
		if d.Type() != kir.F32x8 {
			panic(emitError{fmt.Errorf("%s: %s", d, noAVX512Dots)})
		}
		if !ok {
			panic(emitError{fmt.Errorf("unknown integer dot %s", d)})
		}
		if simd {
			return vecFn(name).Call(jen.Id(d.W.Name+"_p"), g.expr(d.WOff, simd), jen.Id(d.X.Name+"_p"), g.expr(d.XOff, simd))
		}
		return vecFn(name+"g").Call(jen.Id(d.W.Name), g.expr(d.WOff, simd), jen.Id(d.X.Name+"_b"), g.expr(d.XOff, simd))
	}
	switch e.(type) {
	case *kir.DotBF16, *kir.DotCols, *kir.ColScales, *kir.ColBits, *kir.Halves:
		panic(emitError{fmt.Errorf("%s: %s", e, noAVX512Dots)})
	}
	panic(emitError{fmt.Errorf("unknown expression %T (%v)", e, e)})
}

// noAVX512Dots says why a program with the LLVM backend's AVX-512 dot
// products is refused.
const noAVX512Dots = "the Go backend has no AVX-512 BF16 or VNNI dot products (archsimd has no vdpbf16ps; lower without kir.Options.BF16Dot and VNNI)"

// uexpr prints a scalar float expression of a vector phase as a uniform
// archsimd.Float32x8 (the value in every lane), so that it compiles to VEX
// instructions only: see the package comment.
func (g *gen) uexpr(e kir.Expr) *jen.Statement {
	bcast := func(x jen.Code) *jen.Statement { return jen.Qual(simdPkg, "BroadcastFloat32x8").Call(x) }
	switch e := e.(type) {
	case kir.F32Const:
		if e.F == 0 && !math.Signbit(float64(e.F)) {
			return jen.Qual(simdPkg, "Float32x8").Values() // VPXOR, not PXOR
		}
		return bcast(f32Lit(e.F))
	case *kir.Var:
		return jen.Id(e.Name)
	case *kir.Load:
		idx := g.expr(e.Index, true)
		if e.Buf.IsBF16() {
			return vecFn("bf16u").Call(jen.Id(e.Buf.Name).Index(idx))
		}
		if e.Buf.IsF16() {
			// Widened in a general register (wformat.F16Bits), then
			// broadcast: no F16C in archsimd, no legacy SSE.
			return jen.Qual(simdPkg, "BroadcastUint32x8").Call(jen.Qual(wformatPkg, "F16Bits").Call(jen.Id(e.Buf.Name).Index(idx))).Dot("AsFloat32x8").Call()
		}
		return bcast(jen.Id(e.Buf.Name).Index(idx))
	case *kir.LoadQ:
		// Widened in general registers, then broadcast (VMOVD,
		// VPBROADCASTD): no CVTSI2SS, no F16C (archsimd has no vcvtph2ps).
		off := g.expr(e.Off, true)
		if e.Part == kir.QF16 {
			return jen.Qual(simdPkg, "BroadcastUint32x8").Call(f16Bits(e.Buf.Name, off)).Dot("AsFloat32x8").Call()
		}
		return jen.Qual(simdPkg, "BroadcastInt32x8").Call(jen.Int32().Call(quantInt(e.Part, jen.Id(e.Buf.Name).Index(off)))).Dot("ConvertToFloat32").Call()
	case *kir.Bin:
		return g.uexpr(e.A).Dot(simdBin[e.Op]).Call(g.uexpr(e.B))
	case *kir.FMA:
		return g.uexpr(e.A).Dot("MulAdd").Call(g.uexpr(e.B), g.uexpr(e.C))
	case *kir.Call:
		arg := g.uexpr(e.Arg)
		switch e.Fn {
		case kir.Exp:
			return vecFn("exp8").Call(arg)
		case kir.Sqrt:
			return arg.Dot("Sqrt").Call()
		case kir.RoundEven:
			return arg.Dot("RoundToEven").Call()
		case kir.Tanh, kir.Cos, kir.Sin:
			fn := map[kir.MathFn]string{kir.Tanh: "Tanh", kir.Cos: "Cos", kir.Sin: "Sin"}[e.Fn]
			return vecFn("scalar8").Call(arg, jen.Qual("math", fn))
		}
		panic(emitError{fmt.Errorf("unknown function %s", e.Fn)})
	case *kir.Select:
		return vecFn("selgt8").Call(g.uexpr(e.X), g.uexpr(e.Y), g.uexpr(e.A), g.uexpr(e.B))
	case *kir.HSum:
		return vecFn(fmt.Sprint("hsum", lanesOf(e.X.Type()))).Call(g.expr(e.X, true))
	case *kir.HMax:
		return vecFn("hmax8").Call(g.expr(e.X, true))
	case *kir.ToF32:
		return jen.Qual(simdPkg, "BroadcastInt32x8").Call(jen.Int32().Call(g.expr(e.X, true))).Dot("ConvertToFloat32").Call()
	}
	panic(emitError{fmt.Errorf("unknown scalar float expression %T (%v)", e, e)})
}
