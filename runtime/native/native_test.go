package native_test

import (
	"errors"
	"fmt"
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

// lookup is a program with one entry point: out[i] = w[tok·4 + i] · (p+1)
// + state[i], which it then stores in state, for the 4 i of the last token
// and p its position (read from the step's rows, artifact.RowPositions).
func lookup() *kir.Program {
	w := &kir.Buffer{Name: "w_0", Kind: kir.Weight, Index: 0, Len: 32}
	st := &kir.Buffer{Name: "st_0", Kind: kir.State, Index: 0, Len: 4}
	arena := &kir.Buffer{Name: "arena", Kind: kir.Arena, Len: 8}
	tok := &kir.Buffer{Name: "tokens", Kind: kir.Tokens, Len: artifact.RowFields * 2}
	i, id := &kir.Var{Name: "i1", T: kir.Int}, &kir.Var{Name: "id2", T: kir.Int}
	length := kir.Param{Name: "len"}
	pos := kir.Ld(tok, kir.IAdd(kir.I(artifact.RowPositions*2), kir.ISub(length, kir.I(1))))
	val := kir.FAdd(kir.FMul(kir.Ld(w, kir.IAdd(kir.IMul(id, kir.I(4)), i)), &kir.ToF32{X: kir.IAdd(pos, kir.I(1))}), kir.Ld(st, i))
	body := []kir.Stmt{
		&kir.Decl{Var: id, Init: kir.Ld(tok, kir.ISub(length, kir.I(1)))},
		&kir.Store{Buf: arena, Index: kir.IAdd(kir.I(4), i), Val: val},
		&kir.Store{Buf: st, Index: i, Val: kir.Ld(arena, kir.IAdd(kir.I(4), i))},
	}
	k := &kir.Kernel{Name: "step_k0_lookup", Kind: "lookup", Value: "%out",
		Phases: []*kir.Phase{{Parallel: true, Var: i, N: kir.I(4), Work: kir.I(4), Grain: 1, Body: body}}}
	return &kir.Program{
		Weights: []*kir.WeightRef{{Name: "w", Rows: 8, Cols: 4}},
		States:  []*kir.StateRef{{Name: "st", Rows: 1, RowSize: 4}},
		Entries: []*kir.Entry{{Name: "step", Seq: 2, HasLen: true, Kernels: []*kir.Kernel{k}, ArenaLen: 8,
			Output: arena, OutOffset: kir.I(4), OutShape: []int{1, 4}}},
	}
}

// compile builds lookup into a shared object with build ID id.
func compile(t *testing.T, id string) (string, *artifact.Layout) {
	t.Helper()
	tc, err := llvm.FindToolchain()
	var te *llvm.ToolError
	if errors.As(err, &te) && !testshared.InCI() {
		t.Skipf("skipping: %v", err)
	}
	require.NoError(t, err)
	p := lookup()
	o := llvm.Options{BuildID: id, Triple: tc.Triple, DataLayout: llvm.DataLayout(tc.Triple)}
	ll, err := o.Emit(p)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "m.ll"), []byte(ll), 0o644))
	so := filepath.Join(dir, "m.so")
	require.NoError(t, tc.Build(so, []string{filepath.Join(dir, "m.ll")}, nil))
	lay := o.Layout(p)
	lay.GOARCH, lay.MaxSeq, lay.Vocab = goruntime.GOARCH, 3, 8
	return so, lay
}

func weights() [][]float32 {
	w := make([]float32, 32)
	for i := range w {
		w[i] = float32(i)
	}
	return [][]float32{w}
}

func TestRun(t *testing.T) {
	so, lay := compile(t, "b1")
	par := pool.New(2)
	defer par.Close()
	p, err := native.New(so, lay, weights(), par)
	require.NoError(t, err)
	out, shape, err := p.Run("step", []int32{5, 3}, 0) // token 3 at position 1: ×2
	require.NoError(t, err)
	require.Equal(t, []int{1, 4}, shape)
	require.Equal(t, []float32{24, 26, 28, 30}, out)
	goruntime.GC()                             // nothing the kernels hold is Go memory
	out, _, err = p.Run("step", []int32{2}, 2) // ×3, plus the state
	require.NoError(t, err)
	require.Equal(t, []float32{24 + 24, 26 + 27, 28 + 30, 30 + 33}, out)
	require.NoError(t, p.Close())
	p, err = native.New(so, lay, weights(), par)
	require.NoError(t, err)
	out, _, err = p.RunRows("step", []int32{5, 3}, []int32{1, 0}, []int32{0, 0}) // token 3 at position 0: ×1
	require.NoError(t, err)
	require.Equal(t, []float32{12, 13, 14, 15}, out)

	for _, tc := range []struct {
		entry  string
		tokens []int32
		pos    int
		want   string
	}{
		{"nope", []int32{1}, 0, `no entry point "nope"`},
		{"step", []int32{1, 2, 3}, 0, "entry point step takes 1 to 2 tokens, got 3"},
		{"step", nil, 0, "entry point step takes 1 to 2 tokens, got 0"},
		{"step", []int32{1, 2}, 2, "position 3 (at 1) is outside the KV cache's 3"},
		{"step", []int32{1}, -1, "position -1 (at 0) is outside the KV cache's 3"},
		{"step", []int32{8}, 0, "token 8 (at 0) is outside the vocabulary of 8"},
		{"step", []int32{-1}, 0, "token -1 (at 0) is outside the vocabulary of 8"},
	} {
		_, _, err := p.Run(tc.entry, tc.tokens, tc.pos)
		require.EqualError(t, err, tc.want)
	}
	_, _, err = p.RunRows("step", []int32{1}, []int32{0}, []int32{1})
	require.EqualError(t, err, "slot 1 (at 0) is outside the program's 1")
	_, _, err = p.RunRows("step", []int32{1, 2}, []int32{0}, nil)
	require.EqualError(t, err, "entry point step: 2 tokens, 1 positions, 0 slots")
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "Close twice")
	_, _, err = p.Run("step", []int32{1}, 0)
	require.EqualError(t, err, "native program is closed")
}

func TestLoadErrors(t *testing.T) {
	so, lay := compile(t, "b1")
	_, err := native.New(so, lay, nil, nil)
	require.EqualError(t, err, "0 weights given, the program takes 1")
	_, err = native.New(so, lay, [][]float32{make([]float32, 3)}, nil)
	require.EqualError(t, err, "weight w has 3 elements, want [8, 4]")

	other := *lay
	other.BuildID = "b2"
	_, err = native.New(so, &other, weights(), nil)
	require.ErrorContains(t, err, `is from build "b1", the artifact from build "b2": compile the artifact again`)

	other = *lay
	other.GOARCH = "riscv64"
	if goruntime.GOARCH != "riscv64" {
		_, err = native.New(so, &other, weights(), nil)
		require.ErrorContains(t, err, "the native code is for riscv64")
	}

	other = *lay
	other.Entries = append([]artifact.LayoutEntry(nil), lay.Entries...)
	other.Entries[0].Phases = []artifact.Phase{{Symbol: "step_k9_p0"}}
	_, err = native.New(so, &other, weights(), nil)
	require.ErrorContains(t, err, "has no symbol step_k9_p0")

	_, err = native.New(filepath.Join(t.TempDir(), "none.so"), lay, weights(), nil)
	require.ErrorContains(t, err, "none.so")
}

func TestOpenChecksLayout(t *testing.T) {
	dir := t.TempDir()
	lay := &artifact.Layout{ABI: artifact.ABIVersion, BuildID: "b1"}
	require.NoError(t, lay.Write(filepath.Join(dir, artifact.LayoutName)))
	_, err := native.Open(native.Artifact{Dir: dir, Library: "m.so", BuildID: "b2"}, nil, nil)
	require.ErrorContains(t, err, "layout.json is from build b1, the manifest from build b2")

	lay.ABI = 99
	require.NoError(t, lay.Write(filepath.Join(dir, artifact.LayoutName)))
	_, err = native.Open(native.Artifact{Dir: dir, Library: "m.so", BuildID: "b1"}, nil, nil)
	require.ErrorContains(t, err, fmt.Sprintf("native ABI version 99, this llmrun loads versions 1 to %d", artifact.ABIVersion))
}
