package golang_test

import (
	"flag"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/stretchr/testify/require"
	"golang.org/x/tools/txtar"

	"github.com/llmc-dev/llmc/codegen/golang"
	"github.com/llmc-dev/llmc/codegen/kir"
)

var update = flag.Bool("update", false, "rewrite the out.go of testdata/*.txtar with the current output")

// fileNames are the generated files in name order, as out.go has them.
func fileNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// joined is the generated files one after another, each under a line
// naming it.
func joined(files map[string][]byte) string {
	var b strings.Builder
	for _, n := range fileNames(files) {
		b.WriteString("// ==== " + n + " ====\n")
		b.Write(files[n])
	}
	return b.String()
}

func caseProgram(t *testing.T, path string) (*txtar.Archive, *kir.Program, map[string]string) {
	t.Helper()
	ar, err := txtar.ParseFile(path)
	require.NoError(t, err)
	files := map[string]string{}
	for _, f := range ar.Files {
		files[f.Name] = string(f.Data)
	}
	p, err := kir.Parse(files["in.kir"])
	require.NoError(t, err, "%s: in.kir", path)
	require.NoError(t, kir.Verify(p), "%s: in.kir", path)
	return ar, p, files
}

// TestGolden emits Go for each testdata/NAME.txtar's kernel IR (in.kir)
// and compares it with out.go, the generated files in name order; go test
// ./codegen/golang -update rewrites out.go.
func TestGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txtar")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			ar, p, files := caseProgram(t, path)
			out, err := golang.Emit(p, "model", "test-id")
			require.NoError(t, err)
			got := joined(out)
			if *update {
				ar.Files = []txtar.File{{Name: "in.kir", Data: []byte(kir.Print(p))}, {Name: "out.go", Data: []byte(got)}}
				require.NoError(t, os.WriteFile(path, txtar.Format(ar), 0o644))
				return
			}
			want, ok := files["out.go"]
			require.True(t, ok, "no out.go: run go test ./codegen/golang -update")
			if want != got {
				d, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(want), B: difflib.SplitLines(got), FromFile: "want", ToFile: "have", Context: 2})
				t.Errorf("the generated Go changed; if on purpose, go test ./codegen/golang -update\n%s", d)
			}
		})
	}
}

// TestEmitFiles checks the files of a case: the four files of the
// package, each marked generated, each parsing as Go, the vector file
// behind its build constraint.
func TestEmitFiles(t *testing.T) {
	_, p, _ := caseProgram(t, "testdata/rmsnorm-silu.txtar")
	out, err := golang.Emit(p, "model", "test-id")
	require.NoError(t, err)
	require.Equal(t, []string{"kernels.go", "kernels_simd.go", "nosimd.go", "program.go"}, fileNames(out))
	fset := token.NewFileSet()
	for name, src := range out {
		require.True(t, strings.HasPrefix(string(src), "// "+golang.Header), name)
		f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
		require.NoError(t, err, name)
		require.Equal(t, "model", f.Name.Name)
	}
	require.Contains(t, string(out["kernels_simd.go"]), "//go:build goexperiment.simd && amd64")
	require.Contains(t, string(out["nosimd.go"]), "//go:build !(goexperiment.simd && amd64)")
	require.Regexp(t, `ID:\s+"test-id"`, string(out["program.go"]))
	// SiLU's exp: lane-wise on both paths (runtime/vec).
	require.Contains(t, string(out["kernels_simd.go"]), "vec.Exp8(")
	require.Contains(t, string(out["kernels.go"]), "vec.Exp8g(")
}

// TestMathFunctions: each math function maps to its Go function, and one
// the backend cannot print on eight lanes is an error, not a panic.
func TestMathFunctions(t *testing.T) {
	src := `buffer arena arena [16]

entry step (seq 1, arena 16, scratch 0) -> arena[0 : +[1]]
  kernel step_k0_f f -> %f  (f)
    serial:
      var x f32 = arena[0]
      store arena[1] = exp(x)
      store arena[2] = sqrt(x)
      store arena[3] = tanh(x)
      store arena[4] = cos(x)
      store arena[5] = sin(x)
`
	p, err := kir.Parse(src)
	require.NoError(t, err)
	require.NoError(t, kir.Verify(p))
	out, err := golang.Emit(p, "model", "id")
	require.NoError(t, err)
	k := string(out["kernels.go"])
	for _, want := range []string{"runtime.Expf(x)", "math.Sqrt(float64(x))", "math.Tanh(float64(x))", "math.Cos(float64(x))", "math.Sin(float64(x))"} {
		require.Contains(t, k, want)
	}

	p, err = kir.Parse(strings.Replace(src, "store arena[5] = sin(x)", "store8 arena[8] = tanh(bcast(x))", 1))
	require.NoError(t, err)
	require.NoError(t, kir.Verify(p))
	_, err = golang.Emit(p, "model", "id")
	require.ErrorContains(t, err, "golang: tanh on eight lanes")
}

// TestRefusesAVX512Dots: the LLVM backend's AVX-512 BF16 dot products
// (kir.Options.BF16Dot), which archsimd cannot print, are an error naming
// the value and the option, not a panic.
func TestRefusesAVX512Dots(t *testing.T) {
	p, err := kir.Parse(`weight #0 wb bf16[1, 32]
buffer arena arena [16]
buffer scratch scratch [16]
buffer w_0 weight #0 bf16 [32]

entry step (seq 1, arena 16, scratch 16) -> arena[0 : +[1]]
  kernel step_k0_dot dot -> %d  (linear)
    serial:
      var a f32x16 = dotbf16(bcast16(0f), w_0[0], scratch[0])
      store arena[0] = hsum(a)
`)
	require.NoError(t, err)
	require.NoError(t, kir.Verify(p))
	_, err = golang.Emit(p, "model", "id")
	require.ErrorContains(t, err, "golang: dotbf16(")
	require.ErrorContains(t, err, "lower without kir.Options.BF16Dot")
}
