package llvm_test

import (
	"flag"
	"github.com/llmc-dev/llmc/artifact"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llir/llvm/asm"
	"github.com/llir/llvm/ir"
	"github.com/llir/llvm/ir/enum"
	"github.com/pmezard/go-difflib/difflib"
	"github.com/stretchr/testify/require"
	"golang.org/x/tools/txtar"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/testshared"
)

var update = flag.Bool("update", false, "rewrite the out.ll of testdata/*.txtar with the current output")

// goldenNames are the cases of testdata: NAME.txtar holds a kernel IR
// program (in.kir, in kir.Print's form) and the module llvm.Emit prints
// for it (out.ll).
func goldenNames(t testing.TB) []string {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.txtar")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".txtar"))
	}
	return names
}

func readCase(t testing.TB, name string) (*txtar.Archive, map[string]string) {
	t.Helper()
	ar, err := txtar.ParseFile(filepath.Join("testdata", name+".txtar"))
	require.NoError(t, err)
	files := map[string]string{}
	for _, f := range ar.Files {
		files[f.Name] = string(f.Data)
	}
	return ar, files
}

// caseProgram parses and verifies the kernel IR of testdata/NAME.txtar.
func caseProgram(t testing.TB, name string) *kir.Program {
	t.Helper()
	_, files := readCase(t, name)
	src, ok := files["in.kir"]
	require.True(t, ok, "testdata/%s.txtar has no in.kir", name)
	p, err := kir.Parse(src)
	require.NoError(t, err, "testdata/%s.txtar: in.kir", name)
	require.NoError(t, kir.Verify(p), "testdata/%s.txtar: in.kir", name)
	return p
}

// caseOptions are the emitter options a case's comment asks for: a line
// "dot form: F" prints DotI8 in form F (llvm.DotForm).
func caseOptions(t testing.TB, name string) llvm.Options {
	t.Helper()
	ar, _ := readCase(t, name)
	var o llvm.Options
	for _, line := range strings.Split(string(ar.Comment), "\n") {
		if v, ok := strings.CutPrefix(line, "dot form: "); ok {
			f, err := llvm.ParseDotForm(strings.TrimSpace(v))
			require.NoError(t, err, "testdata/%s.txtar", name)
			o.DotForm = f
		}
	}
	return o
}

// TestGolden compares the module llvm.Emit prints for each case's kernel
// IR with the case's out.ll; go test ./codegen/llvm -update rewrites
// out.ll (and in.kir in kir.Print's form).
func TestGolden(t *testing.T) {
	for _, name := range goldenNames(t) {
		t.Run(name, func(t *testing.T) {
			p := caseProgram(t, name)
			ll, err := caseOptions(t, name).Emit(p)
			require.NoError(t, err)
			ar, files := readCase(t, name)
			if *update {
				ar.Files = []txtar.File{{Name: "in.kir", Data: []byte(kir.Print(p))}, {Name: "out.ll", Data: []byte(ll)}}
				require.NoError(t, os.WriteFile(filepath.Join("testdata", name+".txtar"), txtar.Format(ar), 0o644))
				return
			}
			require.Equal(t, kir.Print(p), files["in.kir"], "in.kir is not in kir.Print's form; go test -update rewrites it")
			want, ok := files["out.ll"]
			require.True(t, ok, "no out.ll: run go test ./codegen/llvm -update")
			if want != ll {
				t.Errorf("the emitted module changed; if on purpose, go test ./codegen/llvm -update\n%s", diff(want, ll))
			}
		})
	}
}

// diff is a unified diff of want and have.
func diff(want, have string) string {
	d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(want), B: difflib.SplitLines(have), FromFile: "want", ToFile: "have", Context: 2,
	})
	return d
}

// TestReparse parses every emitted module back with llir's own parser.
func TestReparse(t *testing.T) {
	for _, name := range goldenNames(t) {
		t.Run(name, func(t *testing.T) {
			ll, err := caseOptions(t, name).Emit(caseProgram(t, name))
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
	for _, name := range goldenNames(t) {
		t.Run(name, func(t *testing.T) {
			ll, err := caseOptions(t, name).Emit(caseProgram(t, name))
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
	p := caseProgram(t, "ops")
	ser := p.Entries[0].Kernels[0].Phases[1]
	ser.Body = append(ser.Body, &kir.Store{Buf: &kir.Buffer{Name: "arena", Kind: kir.Arena}, Index: kir.I(0), Val: &kir.Call{Fn: kir.MathFn(99), Arg: kir.F(1)}})
	_, err := llvm.Emit(p)
	require.ErrorContains(t, err, "phase step_k0_ops_p1 of kernel %ops (ops): unknown function MathFn(99)")

	p = caseProgram(t, "ops")
	ser = p.Entries[0].Kernels[0].Phases[1]
	ser.Body = append(ser.Body, &kir.Assign{Var: &kir.Var{Name: "ghost", T: kir.F32}, Val: kir.F(1)})
	_, err = llvm.Emit(p)
	require.ErrorContains(t, err, "ghost is assigned before it is declared")

	p = caseProgram(t, "ops")
	p.Entries[0].OutOffset = &kir.Var{Name: "v", T: kir.Int}
	_, err = llvm.Emit(p)
	require.ErrorContains(t, err, "output offset of entry step: v is used before it is declared")
}

func TestLayout(t *testing.T) {
	p := caseProgram(t, "ops")
	l := llvm.Options{BuildID: "abc"}.Layout(p)
	require.Equal(t, "abc", l.BuildID)
	require.Equal(t, 40, l.Arena)
	require.Equal(t, 16, l.Scratch)
	require.Equal(t, artifact.RowFields*2, l.Tokens) // tokens, positions and slots of 2 rows
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
// and the tables in the first part only.
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
	tables := 0 // declared in parts after the first
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
			for _, g := range m.Globals {
				if g.Visibility == enum.VisibilityHidden { // a table
					require.Nil(t, g.Init, "part %d: table %s is defined in the first part only", i, g.Name())
					tables++
				}
			}
		}
	}
	want := map[string]int{}
	for _, f := range wm.Funcs {
		if len(f.Blocks) > 0 && !strings.HasPrefix(f.Name(), "llmc.") {
			want[f.Name()] = 1
		}
	}
	require.Equal(t, want, defined)
	require.NotZero(t, tables)

	one, err := llvm.Options{}.Split(caseProgram(t, "ops"), 10)
	require.NoError(t, err)
	require.Len(t, one, 9, "no more parts than functions (a plan, two phases and the bodies they call, a body, a step, threads start and stop)")
}

// TestDedupe checks that the phases of a two-layer model whose bodies are
// the same text (every layer's kernels but for their names) are defined
// once: each other phase symbol of the layout is an alias of the one
// definition, in the same part of a split module.
func TestDedupe(t *testing.T) {
	p, _ := tinyProgram(t, "qwen2", 32, 4)
	ll, err := llvm.Emit(p)
	require.NoError(t, err)
	m, err := asm.ParseString("model.ll", ll)
	require.NoError(t, err)
	defs := map[string]string{} // phase → its definition's text without the name
	bodies := map[string]string{}
	for _, f := range m.Funcs {
		if len(f.Blocks) == 0 || strings.HasPrefix(f.Name(), "llmc") {
			continue
		}
		name := f.Name()
		f.SetName("x")
		body := f.LLString()
		require.NotContains(t, bodies, body, "%s and %s have one body", name, bodies[body])
		bodies[body], defs[name] = name, body
	}
	aliases := map[string]string{}
	for _, a := range m.Aliases {
		f, ok := a.Aliasee.(*ir.Func)
		require.True(t, ok, "alias %s", a.Name())
		aliases[a.Name()] = f.Name()
	}
	require.NotEmpty(t, aliases, "the layers' kernels share bodies")
	for _, e := range (llvm.Options{}).Layout(p).Entries {
		for _, ph := range e.Phases {
			_, def := defs[ph.Symbol]
			_, alias := aliases[ph.Symbol]
			require.True(t, def != alias, "phase %s: defined %v, alias %v", ph.Symbol, def, alias)
		}
	}
	parts, err := llvm.Options{}.Split(p, 3)
	require.NoError(t, err)
	for i, part := range parts {
		pm, err := asm.ParseString("part.ll", part)
		require.NoError(t, err, "part %d", i)
		for _, a := range pm.Aliases {
			f := a.Aliasee.(*ir.Func)
			require.NotEmpty(t, f.Blocks, "part %d: alias %s of %s, defined elsewhere", i, a.Name(), f.Name())
		}
	}
}
