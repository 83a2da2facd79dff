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
