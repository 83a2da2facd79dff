package engine

import (
	"fmt"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/native"
)

// avx512Operand matches what only AVX-512 code has: zmm registers, the
// upper sixteen xmm/ymm registers and mask registers.
var avx512Operand = regexp.MustCompile(`%zmm|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|%k[0-7]\b`)

// TestLLVMISACap compiles stories260K (Q8_0, so the integer dots are in
// it too) for the LLVM backend with LLMC_ISA=avx2 and without, and checks
// that the capped artifact says so (manifest isa avx2, int dot avx2, no
// AVX-512 feature required, so it loads on an AVX2 CPU), that its shared
// object has no AVX-512 instruction where the uncapped one has, and that
// both decode the same logits to rounding (their prefill within
// TestIntDot's bound: the uncapped one's is VNNI's).
func TestLLVMISACap(t *testing.T) {
	requireLLVM(t)
	feats, err := native.HostFeatures()
	if err != nil || !feats["avx512f"] {
		t.Skip("this CPU has no AVX-512 to take away")
	}
	objdump := requireObjdump(t)
	model := testshared.Path(t, "models", "stories260K")
	build := func(isa string) (*Engine, string) {
		t.Setenv(runtime.ISAEnv, isa)
		art := filepath.Join(t.TempDir(), "s-"+isa+".llmc")
		_, err := compiler.Compile(model, art, compiler.Options{Backend: "llvm", KV: passes.Static, MaxSeq: 64, PrefillChunk: 8,
			Weights: compiler.WeightOptions{Format: "q8_0"}})
		require.NoError(t, err)
		out, err := exec.Command(objdump, "-d", "--no-show-raw-insn", filepath.Join(art, compiler.LLVMLibrary)).Output()
		require.NoError(t, err)
		e, err := Open(art, Options{Threads: 2})
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		return e, string(out)
	}
	capped, capDis := build(runtime.ISAAVX2)
	full, fullDis := build("")
	require.Equal(t, runtime.ISAAVX2, capped.Manifest.Backends.ISA)
	require.Equal(t, string(llvm.DotAVX2), capped.Manifest.Backends.IntDot)
	for _, f := range capped.Manifest.Backends.Features {
		require.False(t, strings.HasPrefix(f, "avx512"), "the capped artifact requires %s", f)
	}
	require.Equal(t, runtime.ISAAVX512, full.Manifest.Backends.ISA)
	require.Regexp(t, avx512Operand, fullDis, "the uncapped code uses AVX-512 registers (else this test checks nothing)")
	if m := avx512Operand.FindString(capDis); m != "" {
		t.Fatalf("LLMC_ISA=avx2 code uses %s", m)
	}
	seq := []int{1, 403, 407, 261, 378, 300, 290, 438, 261, 1}
	for _, e := range []*Engine{capped, full} {
		require.NoError(t, e.Decoder.Rewind(0))
	}
	// Decode, one token a step: the same kernel IR, so the same logits to
	// rounding.
	var a, b []float32
	for _, tok := range seq {
		a, err = capped.Decoder.Forward([]int{tok}, false)
		require.NoError(t, err)
		b, err = full.Decoder.Forward([]int{tok}, false)
		require.NoError(t, err)
		require.Len(t, a, len(b))
		for i := range a {
			require.InDelta(t, b[i], a[i], 1e-3, "token %d: logit %d", tok, i)
		}
	}
	// Prefill: VNNI's is lowered apart (kir.Options.VNNI), so an input on
	// the other side of a rounding step can quantise to another int8;
	// TestIntDot bounds that difference over whole texts.
	for _, e := range []*Engine{capped, full} {
		require.NoError(t, e.Decoder.Rewind(0))
	}
	a, err = capped.Decoder.Forward(seq, true)
	require.NoError(t, err)
	b, err = full.Decoder.Forward(seq, true)
	require.NoError(t, err)
	require.Len(t, a, len(b))
	for i := range a {
		require.InDelta(t, b[i], a[i], intDotBounds[0].maxLogitDiff/2, "prefill logit %d", i)
	}
}

// TestLLVMWide compiles a small TinyLlama-shaped model (its down
// projection's rows are 1,024 long) in f32 and bf16 for the LLVM backend
// with LLMC_ISA=avx2 and without: on an AVX-512 CPU the uncapped artifact's
// float linears take sixteen-lane dot products (manifest lanes 16) and
// the capped one's eight, and both compute the same logits, decode and
// prefill, to float rounding (the sums are added in another order).
func TestLLVMWide(t *testing.T) {
	requireLLVM(t)
	feats, err := native.HostFeatures()
	if err != nil || !feats["avx512f"] {
		t.Skip("this CPU has no AVX-512: the LLVM backend keeps eight lanes")
	}
	shape, err := synth.LookupShape("tinyllama-1.1b")
	require.NoError(t, err)
	for _, dtype := range []synth.DType{"f32", "bf16"} {
		t.Run(string(dtype), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			_, err = synth.Write(dir, synth.Options{Shape: shape.Small(), Seed: 5, DType: dtype})
			require.NoError(t, err)
			build := func(isa string) *Engine {
				t.Setenv(runtime.ISAEnv, isa)
				art := filepath.Join(t.TempDir(), "m-"+isa+".llmc")
				_, err := compiler.Compile(dir, art, compiler.Options{Backend: "llvm", KV: passes.Static, MaxSeq: 64, PrefillChunk: 16})
				require.NoError(t, err)
				e, err := Open(art, Options{Threads: 2})
				require.NoError(t, err)
				t.Cleanup(func() { e.Close() })
				return e
			}
			narrow, wide := build(runtime.ISAAVX2), build("")
			require.Zero(t, narrow.Manifest.Backends.Lanes)
			require.Equal(t, 16, wide.Manifest.Backends.Lanes)
			// A bf16 model's prefill tiles take vdpbf16ps where the CPU
			// has it (kir.Options.BF16Dot), on inputs rounded to bfloat16:
			// 1.55e-3 apart at most here, logits of RMS 0.44.
			bf16Dot := dtype == "bf16" && feats["avx512_bf16"]
			require.False(t, narrow.Manifest.Backends.BF16Dot)
			require.Equal(t, bf16Dot, wide.Manifest.Backends.BF16Dot)
			seq := []int{1, 403, 407, 261, 378, 300, 290, 438, 261, 1}
			compare := func(what string, a, b []float32) {
				t.Helper()
				require.Len(t, a, len(b))
				bound := 1e-3
				if bf16Dot && what == "prefill" {
					bound = 1e-2
				}
				for i := range a {
					require.InDelta(t, a[i], b[i], bound*max(1, math.Abs(float64(a[i]))), "%s: logit %d", what, i)
				}
			}
			for _, e := range []*Engine{narrow, wide} {
				require.NoError(t, e.Decoder.Rewind(0))
			}
			for _, tok := range seq {
				a, err := narrow.Decoder.Forward([]int{tok}, false)
				require.NoError(t, err)
				b, err := wide.Decoder.Forward([]int{tok}, false)
				require.NoError(t, err)
				compare(fmt.Sprintf("decode of %d", tok), a, b)
			}
			for _, e := range []*Engine{narrow, wide} {
				require.NoError(t, e.Decoder.Rewind(0))
			}
			a, err := narrow.Decoder.Forward(seq, true)
			require.NoError(t, err)
			b, err := wide.Decoder.Forward(seq, true)
			require.NoError(t, err)
			compare("prefill", a, b)
		})
	}
}

// TestGoWide is TestLLVMWide for the Go backend: on a CPU with AVX-512
// the uncapped artifact's float linears take sixteen-lane dots
// (archsimd.Float32x16, manifest lanes 16) and the one compiled with
// LLMC_ISA=avx2 eight. The logits of every position of a sequence (three
// prefill chunks, the last a single token) agree between the two to float
// rounding, and the wide artifact's portable kernels (LLMC_ISA=scalar at
// run time: sixteen lanes emulated) agree with its AVX-512 ones.
func TestGoWide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four executables")
	}
	feats, err := native.HostFeatures()
	if err != nil || !feats["avx512f"] || !feats["avx512bw"] || !feats["avx512dq"] || !feats["avx512vl"] || !feats["avx512cd"] {
		t.Skip("this CPU has no AVX-512: the Go backend keeps eight lanes")
	}
	shape, err := synth.LookupShape("tinyllama-1.1b")
	require.NoError(t, err)
	seq := []int{1, 403, 407, 261, 378, 300, 290, 438, 261, 1, 52, 77, 300, 12, 9, 400, 3}
	for _, dtype := range []synth.DType{"f32", "bf16"} {
		t.Run(string(dtype), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "m")
			_, err = synth.Write(dir, synth.Options{Shape: shape.Small(), Seed: 5, DType: dtype})
			require.NoError(t, err)
			build := func(isa string) (art string, lanes int) {
				t.Setenv(runtime.ISAEnv, isa)
				art = filepath.Join(t.TempDir(), "m-"+isa+".llmc")
				res, err := compiler.Compile(dir, art, compiler.Options{Backend: "go", KV: passes.Static, MaxSeq: 64, PrefillChunk: 8})
				require.NoError(t, err)
				return art, res.Manifest.Backends.Lanes
			}
			narrow, nl := build(runtime.ISAAVX2)
			wide, wl := build("")
			require.Zero(t, nl)
			require.Equal(t, 16, wl)
			run := func(art, isa string) [][]float32 {
				t.Setenv(runtime.ISAEnv, isa)
				bin := filepath.Join(art, compiler.GoBinary)
				require.Equal(t, isa, binaryISA(t, bin, art), "LLMC_ISA=%s", isa)
				return scoreWithBinary(t, bin, art, seq)
			}
			ref := run(narrow, runtime.ISAAVX2)
			for _, isa := range []string{runtime.ISAAVX512, runtime.ISAScalar} {
				got := run(wide, isa)
				for p := range ref {
					for i := range ref[p] {
						require.InDelta(t, ref[p][i], got[p][i], 1e-3*max(1, math.Abs(float64(ref[p][i]))), "%s: position %d, logit %d", isa, p, i)
					}
				}
			}
		})
	}
}
