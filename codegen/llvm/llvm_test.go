package llvm_test

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llir/llvm/asm"
	"github.com/stretchr/testify/require"
	"golang.org/x/tools/txtar"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/testshared"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txtar with the current output")

// goldenCases build the programs of testdata/<name>.txtar.
var goldenCases = map[string]func(t *testing.T) *kir.Program{
	"ops": func(t *testing.T) *kir.Program { return opsProgram() },
	"llama-decode": func(t *testing.T) *kir.Program {
		p, _ := tinyProgram(t, "llama", 16, 2)
		p.Entries = p.Entries[:1] // decode only: the golden stays readable
		return p
	},
}

// opsProgram is a hand-built program with every kind of statement and
// expression of the kernel IR.
func opsProgram() *kir.Program {
	w := &kir.Buffer{Name: "w_0", Kind: kir.Weight, Index: 0, Len: 64}
	st := &kir.Buffer{Name: "st_0", Kind: kir.State, Index: 0, Len: 32}
	arena := &kir.Buffer{Name: "arena", Kind: kir.Arena, Len: 40}
	scratch := &kir.Buffer{Name: "scratch", Kind: kir.Scratch, Len: 16}
	tok := &kir.Buffer{Name: "tokens", Kind: kir.Tokens, Len: 2}
	tab := &kir.Buffer{Name: "tab_0", Kind: kir.Table, Index: 0, Len: 4, Data: []float32{1, 0.5, -2, 3.25}}
	n, i, j := &kir.Var{Name: "n1", T: kir.Int}, &kir.Var{Name: "i2", T: kir.Int}, &kir.Var{Name: "j3", T: kir.Int}
	acc, x, s := &kir.Var{Name: "acc4", T: kir.F32x8}, &kir.Var{Name: "x5", T: kir.F32}, &kir.Var{Name: "s6", T: kir.F32}
	id := &kir.Var{Name: "id7", T: kir.Int}
	length, pos := kir.Param{Name: "len"}, kir.Param{Name: "pos"}
	// A parallel phase: dot products with a vector accumulator.
	par := &kir.Phase{Parallel: true, Var: n, N: kir.IMul(length, kir.I(2)), Work: kir.IMul(length, kir.I(32)), Grain: 1, Body: []kir.Stmt{
		&kir.Decl{Var: acc, Init: &kir.Broadcast{X: kir.F(0)}},
		&kir.For{Var: j, Lo: kir.I(0), Hi: kir.I(16), Step: 8, Body: []kir.Stmt{
			&kir.Assign{Var: acc, Val: &kir.FMA{A: kir.Ld8(w, kir.IAdd(kir.IMul(n, kir.I(16)), j)), B: kir.Ld8(arena, j), C: acc}},
		}},
		&kir.Decl{Var: s, Init: &kir.HSum{X: acc}},
		&kir.Store{Buf: arena, Index: kir.IAdd(kir.I(16), n), Val: &kir.Select{X: s, Y: kir.F(0), A: s, B: kir.FMul(s, kir.F(0.01))}},
	}}
	// A serial phase: the rest.
	ser := &kir.Phase{Body: []kir.Stmt{
		&kir.Decl{Var: id, Init: kir.Ld(tok, kir.ISub(length, kir.I(1)))},
		&kir.For{Var: i, Lo: kir.I(0), Hi: kir.IMin(kir.I(4), length), Step: 1, Body: []kir.Stmt{
			&kir.Decl{Var: x, Init: kir.FMax(kir.Ld(tab, i), &kir.ToF32{X: kir.IRem(kir.IAdd(pos, i), kir.I(3))})},
			&kir.Assign{Var: x, Val: kir.FAdd(kir.Fn(kir.Exp, x), kir.Fn(kir.Sqrt, kir.Fn(kir.Tanh, x)))},
			&kir.Assign{Var: x, Val: kir.FSub(kir.FDiv(kir.Fn(kir.Cos, x), kir.Fn(kir.Sin, x)), &kir.Bin{Op: kir.Min, A: x, B: kir.F(1)})},
			&kir.Store{Buf: st, Index: kir.IAdd(kir.IMul(kir.IMax(id, kir.I(0)), kir.I(4)), i), Val: &kir.FMA{A: x, B: x, C: kir.F(-1)}},
		}},
		&kir.Store{Buf: scratch, Index: kir.I(0), Val: kir.Fn(kir.Exp, &kir.Broadcast{X: kir.Ld(st, kir.I(0))})},
		&kir.Store{Buf: scratch, Index: kir.I(8), Val: kir.Fn(kir.Tanh, kir.FMax(kir.Ld8(scratch, kir.I(0)), &kir.Broadcast{X: kir.F(-0.5)}))},
		&kir.Store{Buf: arena, Index: kir.IDiv(kir.I(48), kir.I(2)), Val: &kir.HMax{X: kir.Ld8(scratch, kir.I(8))}},
		&kir.Store{Buf: arena, Index: kir.I(32), Val: &kir.HSums{Xs: [8]kir.Expr{kir.Ld8(w, kir.I(0)), kir.Ld8(w, kir.I(8)),
			kir.Ld8(w, kir.I(16)), kir.Ld8(w, kir.I(24)), kir.Ld8(w, kir.I(32)), kir.Ld8(w, kir.I(40)), kir.Ld8(w, kir.I(48)), kir.Ld8(w, kir.I(56))}}},
	}}
	k := &kir.Kernel{Name: "step_k0_ops", Kind: "ops", Value: "%ops", Phases: []*kir.Phase{par, ser}}
	return &kir.Program{
		Weights: []*kir.WeightRef{{Name: "w", Rows: 4, Cols: 16}},
		States:  []*kir.StateRef{{Name: "st", Rows: 8, RowSize: 4}},
		Tables:  []*kir.Buffer{tab},
		Entries: []*kir.Entry{{Name: "step", Seq: 2, HasLen: true, Kernels: []*kir.Kernel{k}, ArenaLen: 40, ScratchLen: 16,
			Output: arena, OutOffset: kir.IMin(kir.IAdd(kir.I(14), length), kir.I(16)), OutShape: []int{6, 4}}},
	}
}

// TestGolden compares the module of each case with testdata/<case>.txtar,
// whose program.kir section holds the kernel IR (for reading) and
// module.ll the expected module. go test -update rewrites them.
func TestGolden(t *testing.T) {
	for name, build := range goldenCases {
		t.Run(name, func(t *testing.T) {
			p := build(t)
			ll, err := llvm.Emit(p)
			require.NoError(t, err)
			kirText := kir.Print(p)
			path := filepath.Join("testdata", name+".txtar")
			if *update {
				ar := &txtar.Archive{
					Comment: []byte("llvm.Emit of the " + name + " program (see goldenCases in llvm_test.go).\nRegenerate with: go test ./codegen/llvm -run TestGolden -update\n"),
					Files:   []txtar.File{{Name: "program.kir", Data: []byte(kirText)}, {Name: "module.ll", Data: []byte(ll)}},
				}
				require.NoError(t, os.WriteFile(path, txtar.Format(ar), 0o644))
			}
			ar, err := txtar.ParseFile(path)
			require.NoError(t, err, "run go test -update to create it")
			files := map[string]string{}
			for _, f := range ar.Files {
				files[f.Name] = string(f.Data)
			}
			require.Equal(t, files["program.kir"], kirText, "the kernel IR of the case changed; if on purpose, go test -update")
			require.Equal(t, files["module.ll"], ll, "the emitted module changed; if on purpose, go test -update")
		})
	}
}

// TestReparse parses every emitted module back with llir's own parser.
func TestReparse(t *testing.T) {
	for name, build := range goldenCases {
		t.Run(name, func(t *testing.T) {
			ll, err := llvm.Emit(build(t))
			require.NoError(t, err)
			m, err := asm.ParseString(name+".ll", ll)
			require.NoError(t, err)
			require.NotEmpty(t, m.Funcs)
		})
	}
	for model := range tinyConfigs {
		t.Run(model, func(t *testing.T) {
			p, _ := tinyProgram(t, model, 32, 4)
			ll, err := llvm.Options{BuildID: "x", Triple: "x86_64-pc-linux-gnu", DataLayout: llvm.DataLayout("x86_64-pc-linux-gnu")}.Emit(p)
			require.NoError(t, err)
			_, err = asm.ParseString(model+".ll", ll)
			require.NoError(t, err)
		})
	}
}

// llvmTool finds an LLVM 14 tool, or skips (fails under CI, which
// installs LLVM).
func llvmTool(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{name + "-14", "/usr/lib/llvm-14/bin/" + name, name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if testshared.InCI() {
		t.Fatalf("%s not found (required because CI=true): %s", name, llvm.InstallHint)
	}
	t.Skipf("skipping: %s not found: %s", name, llvm.InstallHint)
	return ""
}

// TestLLVMVerifies runs LLVM's own parser and verifier on the modules.
func TestLLVMVerifies(t *testing.T) {
	as, opt := llvmTool(t, "llvm-as"), llvmTool(t, "opt")
	check := func(t *testing.T, ll string) {
		path := filepath.Join(t.TempDir(), "m.ll")
		require.NoError(t, os.WriteFile(path, []byte(ll), 0o644))
		out, err := exec.Command(as, path, "-o", filepath.Join(t.TempDir(), "m.bc")).CombinedOutput()
		require.NoError(t, err, "%s", out)
		out, err = exec.Command(opt, "-verify", "-disable-output", path).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	for name, build := range goldenCases {
		t.Run(name, func(t *testing.T) {
			ll, err := llvm.Emit(build(t))
			require.NoError(t, err)
			check(t, ll)
		})
	}
	for model := range tinyConfigs {
		t.Run(model, func(t *testing.T) {
			p, _ := tinyProgram(t, model, 32, 4)
			ll, err := llvm.Emit(p)
			require.NoError(t, err)
			check(t, ll)
		})
	}
}

func TestEmitErrors(t *testing.T) {
	p := opsProgram()
	ser := p.Entries[0].Kernels[0].Phases[1]
	ser.Body = append(ser.Body, &kir.Store{Buf: &kir.Buffer{Name: "arena", Kind: kir.Arena}, Index: kir.I(0), Val: &kir.Call{Fn: kir.MathFn(99), Arg: kir.F(1)}})
	_, err := llvm.Emit(p)
	require.ErrorContains(t, err, "phase step_k0_ops_p1 of kernel %ops (ops): unknown function MathFn(99)")

	p = opsProgram()
	ser = p.Entries[0].Kernels[0].Phases[1]
	ser.Body = append(ser.Body, &kir.Assign{Var: &kir.Var{Name: "ghost", T: kir.F32}, Val: kir.F(1)})
	_, err = llvm.Emit(p)
	require.ErrorContains(t, err, "ghost is assigned before it is declared")

	p = opsProgram()
	p.Entries[0].OutOffset = &kir.Var{Name: "v", T: kir.Int}
	_, err = llvm.Emit(p)
	require.ErrorContains(t, err, "output offset of entry step: v is used before it is declared")
}

func TestLayout(t *testing.T) {
	p := opsProgram()
	l := llvm.Options{BuildID: "abc"}.Layout(p)
	require.Equal(t, "abc", l.BuildID)
	require.Equal(t, 40, l.Arena)
	require.Equal(t, 16, l.Scratch)
	require.Equal(t, 2, l.Tokens)
	require.Len(t, l.Entries, 1)
	require.Equal(t, "llmc_plan_step", l.Entries[0].Plan)
	require.Equal(t, []int{6, 4}, l.Entries[0].OutShape)
	require.Len(t, l.Entries[0].Phases, 2)
	require.Equal(t, "step_k0_ops_p0", l.Entries[0].Phases[0].Symbol)
	require.True(t, l.Entries[0].Phases[0].Parallel)
	require.False(t, l.Entries[0].Phases[1].Parallel)
	require.True(t, strings.HasPrefix(l.Weights[0].Name, "w"))
}

// TestSplit checks that the parts of a split module re-parse and together
// define every function of the whole module once, with the ABI globals
// in the first part only.
func TestSplit(t *testing.T) {
	p, _ := tinyProgram(t, "gemma2", 32, 4)
	whole, err := llvm.Emit(p)
	require.NoError(t, err)
	wm, err := asm.ParseString("whole.ll", whole)
	require.NoError(t, err)
	parts, err := llvm.Options{}.Split(p, 3)
	require.NoError(t, err)
	require.Len(t, parts, 3)
	defined := map[string]int{}
	for i, part := range parts {
		m, err := asm.ParseString("part.ll", part)
		require.NoError(t, err, "part %d", i)
		for _, f := range m.Funcs {
			if len(f.Blocks) > 0 && !strings.HasPrefix(f.Name(), "llmc.") {
				defined[f.Name()]++
			}
		}
		var globals []string
		for _, g := range m.Globals {
			globals = append(globals, g.Name())
		}
		if i == 0 {
			require.Contains(t, globals, "llmc_abi")
			require.Contains(t, globals, "llmc_build_id")
		} else {
			require.NotContains(t, globals, "llmc_abi")
		}
	}
	want := map[string]int{}
	for _, f := range wm.Funcs {
		if len(f.Blocks) > 0 && !strings.HasPrefix(f.Name(), "llmc.") {
			want[f.Name()] = 1
		}
	}
	require.Equal(t, want, defined)

	one, err := llvm.Options{}.Split(opsProgram(), 10)
	require.NoError(t, err)
	require.Len(t, one, 3, "no more parts than functions (a plan and two phases)")
}
