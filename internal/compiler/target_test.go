package compiler_test

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
)

// TestTargetTable checks the facts of each backend and that the table is
// consistent: unique names, Backends() in table order with the default
// first, one-line docs, required passes that exist and that the pipeline
// does not already require.
func TestTargetTable(t *testing.T) {
	ts := compiler.Targets()
	var names []string
	for _, tg := range ts {
		names = append(names, tg.Name)
	}
	require.Equal(t, names, compiler.Backends())
	speeds := map[int]string{}
	for _, tg := range ts {
		require.NotContains(t, speeds, tg.Speed, "%s and %s rank the same for the default backend", tg.Name, speeds[tg.Speed])
		speeds[tg.Speed] = tg.Name
	}
	require.Contains(t, compiler.BackendHelp(), "(default: the fastest this machine can build, by speed: llvm, else go, else interp)")
	require.Len(t, slices.Compact(slices.Sorted(slices.Values(names))), len(names), "backend names are unique")
	pipeline := map[string]passes.Pass{}
	for _, p := range passes.Pipeline() {
		pipeline[p.Name] = p
	}
	for _, tg := range ts {
		require.NotEmpty(t, tg.Doc, tg.Name)
		require.NotContains(t, tg.Doc, "\n", tg.Name)
		require.Contains(t, compiler.BackendHelp(), tg.Name+": "+tg.Doc)
		require.True(t, tg.Loads(ir.F32), "%s loads f32 weights", tg.Name)
		for _, n := range tg.RequiredPasses() {
			p, ok := pipeline[n.Pass]
			require.True(t, ok, "%s requires %q, which is not a pass", tg.Name, n.Pass)
			require.False(t, p.Required, "%s requires %s, which the pipeline requires already", tg.Name, n.Pass)
			require.NotEmpty(t, n.Why, "%s requires %s", tg.Name, n.Pass)
		}
		if tg.Lowers {
			// Lowering takes kernels with planned offsets only.
			var req []string
			for _, n := range tg.RequiredPasses() {
				req = append(req, n.Pass)
			}
			require.Subset(t, req, []string{"fuse-attention", "form-kernels", "plan-memory"}, tg.Name)
		} else {
			require.Empty(t, tg.RequiredPasses(), tg.Name)
		}
	}

	type facts struct {
		lowers, staticKV, bf16 bool
		width                  int
	}
	for name, want := range map[string]facts{
		"interp": {},
		"go":     {lowers: true, staticKV: true, bf16: true, width: 8},
		"llvm":   {lowers: true, staticKV: true, bf16: true, width: 8},
	} {
		tg, err := compiler.LookupTarget(name)
		require.NoError(t, err, name)
		require.Equal(t, want, facts{tg.Lowers, tg.StaticKV, tg.Loads(ir.BF16), tg.VectorWidth}, name)
	}
	_, err := compiler.LookupTarget("cuda")
	var bad *passes.OptionError
	require.ErrorAs(t, err, &bad)
	require.ErrorContains(t, err, `--backend "cuda" is not supported; supported: interp, go, llvm`)
}

// TestDefaultTarget: without --backend, a compile takes the fastest
// target this machine has the tools for (llvm, else go, else interp), and
// with --kv dynamic one without a static cache; the reason names what the
// faster ones lack.
func TestDefaultTarget(t *testing.T) {
	missing := func(names ...string) compiler.Availability {
		return func(tg *compiler.Target) error {
			if slices.Contains(names, tg.Name) {
				return errors.New("no " + tg.Name + " toolchain")
			}
			return nil
		}
	}
	for _, tc := range []struct {
		name    string
		kv      passes.KVMode
		avail   compiler.Availability
		want    string
		wantWhy string
	}{
		{"all tools", passes.Static, missing(), "llvm", "the fastest backend this machine can build"},
		{"no llvm", passes.Static, missing("llvm"), "go", "the fastest backend this machine can build; llvm: no llvm toolchain"},
		{"no llvm, no go", passes.Static, missing("llvm", "go"), "interp", "llvm: no llvm toolchain; go: no go toolchain"},
		{"no go", passes.Static, missing("go"), "llvm", "the fastest backend this machine can build"},
		{"dynamic cache", passes.Dynamic, missing(), "interp", "llvm needs --kv static; go needs --kv static"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg, why, err := compiler.DefaultTarget(tc.kv, tc.avail)
			require.NoError(t, err)
			require.Equal(t, tc.want, tg.Name)
			require.Contains(t, why, tc.wantWhy)
		})
	}
	_, _, err := compiler.DefaultTarget(passes.Static, func(*compiler.Target) error { return errors.New("nothing") })
	require.ErrorContains(t, err, "no backend can be built on this machine")

	// HostTools finds what this machine has: the interpreter needs nothing.
	interp, err := compiler.LookupTarget("interp")
	require.NoError(t, err)
	require.NoError(t, compiler.HostTools(interp))
}

// TestCompileDefaultBackend: Compile without a backend asks Options.Tools
// and reports its choice.
func TestCompileDefaultBackend(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	noToolchains := func(tg *compiler.Target) error {
		if tg.Lowers {
			return errors.New("not here")
		}
		return nil
	}
	var progress strings.Builder
	res, err := compiler.Compile(dir, filepath.Join(t.TempDir(), "artifact"), compiler.Options{MaxSeq: 16, Tools: noToolchains, Progress: &progress})
	require.NoError(t, err)
	require.Equal(t, "interp", res.Manifest.Backend)
	require.Equal(t, "backend interp (the fastest backend this machine can build; llvm: not here; go: not here)", res.Backend)
	require.Contains(t, progress.String(), res.Backend)
}

// TestCompileRefusesDisablingANeededPass: a pass the chosen backend needs
// cannot be disabled, and the usage error names the pass, the backend and
// why, before anything is built (no toolchain is needed to see it).
func TestCompileRefusesDisablingANeededPass(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	for _, tc := range []struct {
		backend string
		opts    compiler.Options
		pass    string
		want    string // "" when the compile succeeds
	}{
		{"go", compiler.Options{}, "form-kernels", "--disable-pass: form-kernels is needed by --backend go and cannot be disabled: lowering takes kernels only"},
		{"go", compiler.Options{}, "plan-memory", "--disable-pass: plan-memory is needed by --backend go and cannot be disabled: lowering places every kernel result at its planned arena offset"},
		{"go", compiler.Options{}, "fuse-attention", "--disable-pass: fuse-attention is needed by --backend go"},
		{"llvm", compiler.Options{}, "form-kernels", "--disable-pass: form-kernels is needed by --backend llvm and cannot be disabled"},
		{"llvm", compiler.Options{}, "plan-memory", "--disable-pass: plan-memory is needed by --backend llvm"},
		{"llvm", compiler.Options{}, "fuse-attention", "--disable-pass: fuse-attention is needed by --backend llvm"},
		{"interp", compiler.Options{EmitKIR: true}, "form-kernels", "--disable-pass: form-kernels is needed by --emit kir"},
		{"interp", compiler.Options{EmitLLVM: true}, "plan-memory", "--disable-pass: plan-memory is needed by --emit llvm"},
		{"interp", compiler.Options{PrintAfter: []string{"lower"}}, "plan-memory", "--disable-pass: plan-memory is needed by --print-after of the kernel IR"},
		// The interpreter runs the graph IR: it needs none of them.
		{"interp", compiler.Options{}, "form-kernels", ""},
	} {
		t.Run(tc.backend+" "+tc.pass, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "artifact")
			o := tc.opts
			o.Backend, o.MaxSeq = tc.backend, 32
			o.Passes.Disabled = []string{"cse", tc.pass}
			_, err := compiler.Compile(dir, out, o)
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			var bad *passes.OptionError
			require.ErrorAs(t, err, &bad, "a usage error (exit status 2)")
			require.ErrorContains(t, err, tc.want)
			require.NoDirExists(t, out)
		})
	}
}

// TestCompileStages: Compile runs the stages in the order of Stages and
// times each; what a stage had nothing to do for says why.
func TestCompileStages(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	var names []string
	for _, s := range compiler.Stages() {
		require.NotEmpty(t, s.Doc, s.Name)
		names = append(names, s.Name)
	}
	require.Equal(t, []string{"build", "graph-passes", "quantize", "lower", "kir-passes", "emit", "toolchain", "write"}, names)
	for _, p := range passes.PassNames() {
		require.NotContains(t, names, p, "stage and pass names are distinct, so --print-after can take either")
	}

	res, err := compiler.Compile(dir, filepath.Join(t.TempDir(), "artifact"), compiler.Options{Backend: "interp", MaxSeq: 32})
	require.NoError(t, err)
	require.Equal(t, "backend interp (--backend)", res.Backend)
	var got []string
	skipped := map[string]string{}
	for _, s := range res.Stages {
		got = append(got, s.Stage)
		skipped[s.Stage] = s.Skipped
	}
	require.Equal(t, names, got)
	for _, s := range res.Stages {
		if s.Skipped == "" {
			require.Positive(t, s.Time, s.Stage)
		}
	}
	require.Equal(t, map[string]string{
		"build": "", "graph-passes": "", "quantize": "no --weights q8_0, q4_0, q4_k or f16: weights as the checkpoint stores them", "lower": "backend interp runs the graph IR", "kir-passes": "no kernel IR",
		"emit": "backend interp generates no code", "toolchain": "backend interp builds nothing", "write": "",
	}, skipped)

	var b strings.Builder
	compiler.WriteStageStats(&b, res.Stages)
	for _, n := range names {
		require.Regexp(t, `(?m)^  `+n+` +\d+\.\d\dms`, b.String())
	}
	require.Contains(t, b.String(), "skipped: backend interp runs the graph IR")
	require.Regexp(t, `(?m)^  total +\d+\.\d\dms$`, b.String())
}

// TestCompilePrintAfterStage: --print-after takes stage names besides pass
// names, and refuses others listing both.
func TestCompilePrintAfterStage(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	var log strings.Builder
	o := compiler.Options{Backend: "interp", MaxSeq: 32, EmitLLVM: true, PrintAfter: []string{"build", "cse", "lower", "emit"}}
	o.Passes.Log = &log
	_, err := compiler.Compile(dir, filepath.Join(t.TempDir(), "artifact"), o)
	require.NoError(t, err)
	out := log.String()
	for _, want := range []string{"# decode after build\n", "# prefill_all after build\n", "# decode after cse\n", "# kernel IR after lower\n", "# model.ll after emit\n"} {
		require.Contains(t, out, want)
	}
	require.Less(t, strings.Index(out, "after build"), strings.Index(out, "after cse"))
	require.Less(t, strings.Index(out, "after cse"), strings.Index(out, "after lower"))
	require.Less(t, strings.Index(out, "after lower"), strings.Index(out, "after emit"))

	for _, tc := range []struct{ name, want string }{
		{"regalloc", `--print-after: no pass or stage named "regalloc"; passes: static-kv, `},
		{"toolchain", "--print-after: stage toolchain prints nothing; stages that print: build, graph-passes, quantize, lower, kir-passes, emit"},
	} {
		o := compiler.Options{MaxSeq: 32, PrintAfter: []string{tc.name}}
		_, err := compiler.Compile(dir, filepath.Join(t.TempDir(), "artifact"), o)
		var bad *passes.OptionError
		require.ErrorAs(t, err, &bad)
		require.ErrorContains(t, err, tc.want)
		if tc.name == "regalloc" {
			require.ErrorContains(t, err, "; stages: build, graph-passes, quantize, lower, kir-passes, emit")
		}
	}
}

// TestNoBackendNameComparisons: backend names are compared only in the
// two tables, the compile side's targets and the run side's loaders;
// everything else reads their facts. It reads the module's non-test Go
// sources for == or != against a backend name (a string literal or one
// of artifact's Backend constants), and for switch cases naming one.
func TestNoBackendNameComparisons(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"))
	exempt := map[string]bool{
		filepath.Join("internal", "compiler", "target.go"): true, // the table
		filepath.Join("internal", "engine", "loaders.go"):  true, // the run side's table
	}
	backends := map[string]bool{}
	for _, b := range compiler.Backends() {
		backends[b] = true
	}
	isName := func(e ast.Expr) bool {
		if sel, ok := e.(*ast.SelectorExpr); ok {
			pkg, ok := sel.X.(*ast.Ident)
			return ok && pkg.Name == "artifact" && strings.HasPrefix(sel.Sel.Name, "Backend")
		}
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return false
		}
		s, err := strconv.Unquote(lit.Value)
		return err == nil && backends[s]
	}
	var found []string
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if exempt[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, rel, src, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				if (n.Op == token.EQL || n.Op == token.NEQ) && (isName(n.X) || isName(n.Y)) {
					found = append(found, fset.Position(n.Pos()).String())
				}
			case *ast.CaseClause:
				for _, e := range n.List {
					if isName(e) {
						found = append(found, fset.Position(e.Pos()).String())
					}
				}
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, checked, 50, "the walk found the module's sources")
	require.Empty(t, found, "backend names compared outside the target table (internal/compiler/target.go): read a Target's facts instead")
}
