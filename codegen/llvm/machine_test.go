package llvm_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	goruntime "runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/runtime/native"
	"github.com/llmc-dev/llmc/runtime/pool"
	"github.com/llmc-dev/llmc/wformat"
)

// toolchain finds opt, llc and cc, or skips (fails under CI).
func toolchain(t *testing.T) *llvm.Toolchain {
	t.Helper()
	tc, err := llvm.FindToolchain()
	var te *llvm.ToolError
	if errors.As(err, &te) && !testshared.InCI() {
		t.Skipf("skipping: %v", err)
	}
	require.NoError(t, err)
	return tc
}

// build compiles p into a shared object and loads it.
func build(t *testing.T, tc *llvm.Toolchain, p *kir.Program, weights [][]float32, threads int, maxSeq, vocab int) *native.Program {
	t.Helper()
	so, lay := compileSO(t, tc, p, maxSeq, vocab)
	return load(t, so, lay, weights, threads)
}

// compileSO compiles p into a shared object, returning it and its layout.
func compileSO(t *testing.T, tc *llvm.Toolchain, p *kir.Program, maxSeq, vocab int) (string, *artifact.Layout) {
	t.Helper()
	return compileSOWith(t, tc, llvm.Options{}, p, maxSeq, vocab)
}

// compileSOWith is compileSO with emitter options o (its build ID and
// target are set here).
func compileSOWith(t *testing.T, tc *llvm.Toolchain, o llvm.Options, p *kir.Program, maxSeq, vocab int) (string, *artifact.Layout) {
	t.Helper()
	o.BuildID, o.Triple, o.DataLayout = "test", tc.Triple, llvm.DataLayout(tc.Triple)
	// Three parts: linking split modules is what llmc compile does.
	parts, err := o.Split(p, 3)
	require.NoError(t, err)
	require.Len(t, parts, 3)
	dir := t.TempDir()
	var paths []string
	for i, ll := range parts {
		path := filepath.Join(dir, fmt.Sprintf("model.%d.ll", i))
		require.NoError(t, os.WriteFile(path, []byte(ll), 0o644))
		paths = append(paths, path)
	}
	so := filepath.Join(dir, "model.so")
	require.NoError(t, tc.Build(so, paths, nil))
	lay := o.Layout(p)
	lay.MaxSeq, lay.Vocab, lay.GOARCH = maxSeq, vocab, goruntime.GOARCH
	return so, lay
}

// load loads a shared object to run on threads threads.
func load(t *testing.T, so string, lay *artifact.Layout, weights [][]float32, threads int) *native.Program {
	t.Helper()
	par := pool.New(threads)
	t.Cleanup(par.Close)
	prog, err := native.New(so, lay, weights, par)
	require.NoError(t, err)
	require.Equal(t, threads, prog.Threads())
	t.Cleanup(func() { require.NoError(t, prog.Close()) })
	return prog
}

func randomWeights(p *kir.Program, seed uint64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	ws := make([][]float32, len(p.Weights))
	for i, w := range p.Weights {
		ws[i] = make([]float32, w.Rows*w.Cols)
		for j := range ws[i] {
			ws[i][j] = float32(r.NormFloat64() * 0.5)
		}
	}
	return ws
}

// TestMatchesMachine compiles the tiny models with random weights and
// checks that the native code computes what the kernel IR's reference
// evaluator computes, step by step: partial and full prefill chunks, then
// decode steps past the sliding window's ring.
func TestMatchesMachine(t *testing.T) {
	tc := toolchain(t)
	const maxSeq, chunk = 32, 4
	for model := range tinyConfigs {
		t.Run(model, func(t *testing.T) {
			t.Parallel()
			p, cfg := tinyProgram(t, model, maxSeq, chunk)
			ws := randomWeights(p, 7)
			so, lay := compileSO(t, tc, p, maxSeq, cfg.VocabSize)
			// One thread, and two: llama-wide's matmuls are split across
			// the team, the others' run on the caller.
			for _, threads := range []int{1, 2} {
				t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
					matchesMachine(t, p, ws, load(t, so, lay, ws, threads), cfg.VocabSize, chunk)
				})
			}
		})
	}
}

// TestMatchesMachineKV16 is TestMatchesMachine with the KV cache stored in
// f16 and bf16: the models' keys and values, rounded as written, must read
// back as kir.Machine's do, through prefill chunks and decode steps (past
// gemma2's sliding-window ring).
func TestMatchesMachineKV16(t *testing.T) {
	tc := toolchain(t)
	const maxSeq, chunk = 32, 4
	for _, model := range []string{"llama", "gemma2"} {
		for _, kv := range []wformat.Format{wformat.F16, wformat.BF16} {
			t.Run(model+"/"+kv.String(), func(t *testing.T) {
				t.Parallel()
				p, cfg := tinyProgramKV(t, model, maxSeq, chunk, kv)
				ws := randomWeights(p, 7)
				so, lay := compileSO(t, tc, p, maxSeq, cfg.VocabSize)
				require.Equal(t, artifact.ABIVersionKV16, lay.ABI)
				matchesMachine(t, p, ws, load(t, so, lay, ws, 1), cfg.VocabSize, chunk)
			})
		}
	}
}

// matchesMachine runs partial and full prefill chunks, then decode steps
// past the sliding window's ring, natively and in kir.Machine, and
// compares the outputs.
func matchesMachine(t *testing.T, p *kir.Program, ws [][]float32, prog *native.Program, vocab, chunk int) {
	t.Helper()
	m := kir.NewMachine(p, ws)
	r := rand.New(rand.NewPCG(3, 4))
	tokens := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(r.IntN(vocab))
		}
		return out
	}
	type step struct {
		entry string
		n     int
	}
	steps := []step{{"prefill", 3}, {"prefill", 4}}
	for range 16 {
		steps = append(steps, step{"decode", 1})
	}
	pos := 0
	for si, s := range steps {
		toks := tokens(s.n)
		seq := chunk
		if s.entry == "decode" {
			seq = 1
		}
		padded := make([]int32, seq)
		copy(padded, toks)
		want, err := m.Run(s.entry, padded, pos, s.n)
		require.NoError(t, err)
		got, shape, err := prog.Run(s.entry, toks, pos)
		require.NoError(t, err)
		require.Len(t, got, len(want))
		rows := shape[0]
		if rows > 1 {
			rows = s.n // padding rows of a chunk are not compared
		}
		closeTo(t, want[:rows*shape[1]], got[:rows*shape[1]], "step %d (%s of %d tokens at %d)", si, s.entry, s.n, pos)
		pos += s.n
	}
}

func closeTo(t *testing.T, want, got []float32, format string, args ...any) {
	t.Helper()
	for i := range want {
		d := math.Abs(float64(want[i] - got[i]))
		if d > 1e-4*max(1, math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) != math.IsNaN(float64(want[i])) {
			args = append(args, i, want[i], got[i])
			t.Fatalf(format+": element %d: machine %g, native %g", args...)
		}
	}
}

// TestOpsMatchMachine runs the golden ops program (every kind of
// expression) natively and in the evaluator, and compares every arena and
// state element it wrote.
func TestOpsMatchMachine(t *testing.T) {
	tc := toolchain(t)
	p := caseProgram(t, "ops")
	ws := randomWeights(p, 11)
	prog := build(t, tc, p, ws, 2, 8, 8)
	m := kir.NewMachine(p, ws)
	for _, step := range []struct {
		tokens []int32
		pos    int
	}{{[]int32{3, 5}, 0}, {[]int32{1}, 2}, {[]int32{7, 0}, 3}} {
		padded := make([]int32, 2)
		copy(padded, step.tokens)
		want, err := m.Run("step", padded, step.pos, len(step.tokens))
		require.NoError(t, err)
		got, _, err := prog.Run("step", step.tokens, step.pos)
		require.NoError(t, err)
		closeTo(t, want, got, "step at %d", step.pos)
	}
}

// TestStepMatchesMachine runs the golden step program on teams of one to
// three threads: its split phases (one of grain 2, two in a row) read what
// other threads wrote, so a missing barrier or a wrong range shows.
func TestStepMatchesMachine(t *testing.T) {
	tc := toolchain(t)
	p := caseProgram(t, "step")
	so, lay := compileSO(t, tc, p, 8, 8)
	m := kir.NewMachine(p, nil)
	for _, threads := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			prog := load(t, so, lay, nil, threads)
			for rep := range 50 {
				for n := 1; n <= 4; n++ {
					toks := make([]int32, n)
					padded := make([]int32, 4)
					want, err := m.Run("step", padded, 0, n)
					require.NoError(t, err)
					got, _, err := prog.Run("step", toks, 0)
					require.NoError(t, err)
					closeTo(t, want, got, "repetition %d, %d tokens", rep, n)
				}
			}
		})
	}
}

// kv16Weights are values whose rounding to bf16 and f16 tells correct
// rounding (to nearest, ties to even) from truncation or ties away from
// zero: halfway cases both ways, just above and below halfway, f16
// subnormals, overflow to infinity, signed zero, NaN, infinities; the rest
// random.
func kv16Weights() [][]float32 {
	bits := []uint32{
		0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, // bf16: 1+2^-8 (to 1), 1+3·2^-8 (up), above, below
		0x3f801000, 0x3f803000, 0x3f801001, 0x3f800fff, // f16: 1+2^-11 (to 1), 1+3·2^-11 (up), above, below
		0x477ff000, 0x477fefff, 0x33800000, 0x3727c5ac, // f16: 65520 (inf), 65519.99 (65504), 2^-24, 1e-5 (subnormals)
		0x80000000, 0x7fc00001, 0x7f800000, 0xff800000, // -0, NaN, ±inf
		0x40490fdb, 0xc02df854, 0x7149f2ca, 0x00000001, // pi, -e, 1e30 (f16 inf), the smallest f32 subnormal
		0xbf808000, 0xbf818000, 0x33000001, 0x32ffffff, // negative ties; just above and below half of 2^-24
	}
	w := make([]float32, 48)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range w {
		if i < len(bits) {
			w[i] = math.Float32frombits(bits[i])
		} else {
			w[i] = float32(r.NormFloat64() * 3)
		}
	}
	// The second half repeats the special values, so that each is written
	// by both vector and scalar stores.
	copy(w[24:], w[:24])
	return [][]float32{w}
}

// checkKV16 compares the output of testdata/kv16's program (each weight
// written into a bf16 and an f16 state and read back, see its arena
// layout) with kir.Machine bit for bit (NaN with NaN), and with
// wformat.Round; and checks that the values do round differently from
// truncation, so that a cache that truncated (or stayed f32) would fail.
func checkKV16(t *testing.T, w, got []float32) {
	t.Helper()
	p := caseProgram(t, "kv16")
	want, err := kir.NewMachine(p, [][]float32{w}).Run("step", []int32{0}, 0, 1)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	same := func(a, b float32) bool {
		return math.Float32bits(a) == math.Float32bits(b) || math.IsNaN(float64(a)) && math.IsNaN(float64(b))
	}
	// Arena element of weight j read back from state s (0: bf16, 1: f16).
	at := func(s, j int) int { return 48*s + j }
	truncated := 0
	for s, f := range []wformat.Format{wformat.BF16, wformat.F16} {
		for j := range 48 {
			if !same(want[at(s, j)], wformat.Round(f, w[j])) {
				t.Fatalf("kir.Machine: weight %d (%#08x) in %s reads %g, wformat.Round %g", j, math.Float32bits(w[j]), f, want[at(s, j)], wformat.Round(f, w[j]))
			}
			if !same(got[at(s, j)], want[at(s, j)]) {
				t.Errorf("weight %d (%#08x) in %s: native %g (%#08x), kir.Machine %g (%#08x)", j, math.Float32bits(w[j]), f,
					got[at(s, j)], math.Float32bits(got[at(s, j)]), want[at(s, j)], math.Float32bits(want[at(s, j)]))
			}
			if f == wformat.BF16 && !math.IsNaN(float64(w[j])) && math.Float32bits(want[at(s, j)]) != math.Float32bits(w[j])&0xffff0000 {
				truncated++
			}
		}
	}
	require.Greater(t, truncated, 8, "the values must round differently from truncation")
	// The scalar-only phase's reads (arena 96..111: elements 32..39).
	for j := range 8 {
		require.True(t, same(got[96+j], want[at(0, 32+j)]) && same(got[104+j], want[at(1, 32+j)]), "scalar read of element %d", 32+j)
	}
}

// TestKV16MatchesMachine runs testdata/kv16 natively: the rounding of
// 16-bit KV cache stores and the widening of their loads must be
// kir.Machine's (wformat's) exactly.
func TestKV16MatchesMachine(t *testing.T) {
	tc := toolchain(t)
	p := caseProgram(t, "kv16")
	ws := kv16Weights()
	prog := build(t, tc, p, ws, 1, 8, 8)
	got, _, err := prog.Run("step", []int32{0}, 0)
	require.NoError(t, err)
	checkKV16(t, ws[0], got)
	for i, s := range prog.States() {
		require.Equal(t, p.States[i].Dtype, s.Dtype)
	}
}

// TestWideMatchesMachine runs testdata/wide (f32x16 loads of f32, bf16 and
// f16 buffers, broadcasts, arithmetic and hsum) natively and in
// kir.Machine: sixteen-lane code must compute what the evaluator does, in
// the same order of additions, on any x86 CPU (llc splits the vectors
// without AVX-512).
func TestWideMatchesMachine(t *testing.T) {
	tc := toolchain(t)
	p := caseProgram(t, "wide")
	ws := randomWeights(p, 13)
	// The bf16 weight: kir.Machine reads its values widened, the native
	// program takes its bits, two to a float32 slot.
	packed := make([]float32, len(ws[1])/2)
	for i, x := range ws[1] {
		ws[1][i] = wformat.Round(wformat.BF16, x)
		bits := math.Float32bits(ws[1][i]) >> 16
		packed[i/2] = math.Float32frombits(math.Float32bits(packed[i/2]) | bits<<(16*(i%2)))
	}
	prog := build(t, tc, p, [][]float32{ws[0], packed}, 2, 8, 8)
	want, err := kir.NewMachine(p, ws).Run("step", []int32{0}, 0, 1)
	require.NoError(t, err)
	got, _, err := prog.Run("step", []int32{0}, 0)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := 32; i < 40; i++ {
		require.Equal(t, want[i], got[i], "arena element %d: sums of sixteen lanes", i)
	}
	closeTo(t, want, got, "wide step")
}

// TestBF16DotMatchesMachine runs the golden bf16-dot program (store8bf16
// and dotbf16, vdpbf16ps) natively against kir.Machine, bit for bit: the
// rounding to bfloat16, the pairs' order within a lane (odd element
// first) and each sum's single rounding are the instruction's. It needs a
// CPU with AVX-512 BF16.
func TestBF16DotMatchesMachine(t *testing.T) {
	tc := toolchain(t)
	if feats, err := native.HostFeatures(); err != nil || !feats["avx512_bf16"] || !feats["avx512f"] {
		t.Skip("this CPU has no AVX-512 BF16")
	}
	p := caseProgram(t, "bf16-dot")
	ws := randomWeights(p, 17)
	// Inputs of every magnitude, and ties to round: x·2^k and values
	// with a set bit 15 (halfway between two bfloat16s).
	for i := range ws[1] {
		switch i % 4 {
		case 1:
			ws[1][i] *= 1e-3
		case 2:
			ws[1][i] *= 1e3
		case 3:
			ws[1][i] = math.Float32frombits(math.Float32bits(ws[1][i])&^0xffff | 0x8000)
		}
	}
	packed := make([]float32, len(ws[0])/2)
	for i, x := range ws[0] {
		ws[0][i] = wformat.Round(wformat.BF16, x)
		bits := math.Float32bits(ws[0][i]) >> 16
		packed[i/2] = math.Float32frombits(math.Float32bits(packed[i/2]) | bits<<(16*(i%2)))
	}
	prog := build(t, tc, p, [][]float32{packed, ws[1]}, 2, 8, 8)
	want, err := kir.NewMachine(p, ws).Run("step", []int32{0}, 0, 1)
	require.NoError(t, err)
	got, _, err := prog.Run("step", []int32{0}, 0)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i], got[i], "element %d", i)
	}
}
