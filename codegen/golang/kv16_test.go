package golang_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/golang"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/wformat"
)

// kv16Main runs testdata/kv16's program once on the weight bits in its
// argument and prints the kernels' ISA and the output bits.
const kv16Main = `package main

import (
	"encoding/json"
	"math"
	"os"

	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/pool"
	"kvtest/kernels"
)

func main() {
	var bits []uint32
	if err := json.Unmarshal([]byte(os.Args[1]), &bits); err != nil {
		panic(err)
	}
	w := make([]float32, len(bits))
	for i, b := range bits {
		w[i] = math.Float32frombits(b)
	}
	r := kernels.Linked.New(&runtime.Weights{F32: [][]float32{w}, BF16: make([][]uint16, 1), Blocks: make([][]byte, 1)}, pool.New(1))
	out, _, err := r.Run("step", []int32{0}, 0)
	if err != nil {
		panic(err)
	}
	report(out, kernels.Linked.ISA())
}
` + reportFunc

// TestKV16MatchesMachine builds testdata/kv16's program (a bf16 and an
// f16 state written by vector and scalar stores and read back) with
// GOEXPERIMENT=simd, runs its AVX2 and its portable kernels on values that
// round differently (ties both ways, f16 subnormals and overflow, NaN),
// and compares the output with kir.Machine bit for bit: a store that
// truncated, or rounded ties away from zero, fails it.
func TestKV16MatchesMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an executable")
	}
	_, p, _ := caseProgram(t, "testdata/kv16.txtar")
	bin := buildProgram(t, p, "kvtest", kv16Main)

	w := kv16Weights()
	bits := make([]uint32, len(w))
	for i, x := range w {
		bits[i] = math.Float32bits(x)
	}
	arg, err := json.Marshal(bits)
	require.NoError(t, err)
	want, err := kir.NewMachine(p, [][]float32{w}).Run("step", []int32{0}, 0, 1)
	require.NoError(t, err)
	for _, isa := range []string{"avx2", "scalar"} {
		t.Run(isa, func(t *testing.T) {
			got := runKernels(t, bin, isa, string(arg))
			require.Len(t, got, len(want))
			for i, b := range got {
				got := math.Float32frombits(b)
				if b != math.Float32bits(want[i]) && !(math.IsNaN(float64(got)) && math.IsNaN(float64(want[i]))) {
					t.Errorf("arena[%d]: generated Go %g (%#08x), kir.Machine %g (%#08x)", i, got, b, want[i], math.Float32bits(want[i]))
				}
			}
		})
	}
	// The reference itself: what each weight reads back as from the bf16
	// state (arena 0..47) and the f16 state (48..95).
	differs := 0
	for j, x := range w {
		for s, f := range []wformat.Format{wformat.BF16, wformat.F16} {
			r := wformat.Round(f, x)
			require.True(t, math.Float32bits(want[48*s+j]) == math.Float32bits(r) || math.IsNaN(float64(r)), "weight %d in %s", j, f)
			if f == wformat.BF16 && !math.IsNaN(float64(x)) && math.Float32bits(r) != math.Float32bits(x)&0xffff0000 {
				differs++
			}
		}
	}
	require.Greater(t, differs, 8, "the values must round differently from truncation")
}

// reportFunc ends the main of each program these tests build: it prints
// the kernels' ISA and the output bits as JSON, which runKernels reads.
const reportFunc = `
func report(out []float32, isa string) {
	res := make([]uint32, len(out))
	for i, x := range out {
		res[i] = math.Float32bits(x)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{"isa": isa, "out": res})
}
`

// runKernels runs an executable of buildProgram with args under
// LLMC_ISA=isa and returns the output bits its main reports; it skips the
// test when the executable runs other kernels than isa's on this CPU.
func runKernels(t *testing.T, bin, isa string, args ...string) []uint32 {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "LLMC_ISA="+isa)
	out, err := cmd.Output()
	require.NoError(t, err)
	var res struct {
		ISA string   `json:"isa"`
		Out []uint32 `json:"out"`
	}
	require.NoError(t, json.Unmarshal(out, &res), "%s", out)
	if res.ISA != isa {
		t.Skipf("LLMC_ISA=%s runs the %s kernels on this CPU", isa, res.ISA)
	}
	return res.Out
}

// buildProgram emits p's Go kernels as package kernels of a module named
// module beside mainSrc (its main package, which imports module/kernels),
// builds them with GOEXPERIMENT=simd against this checkout, and returns
// the executable; it skips the test without a go tool.
func buildProgram(t *testing.T, p *kir.Program, module, mainSrc string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on PATH")
	}
	files, err := golang.Emit(p, "kernels", module)
	require.NoError(t, err)
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "kernels"), 0o755))
	for name, src := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "kernels", name), src, 0o644))
	}
	gosum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	require.NoError(t, err)
	gomod := fmt.Sprintf("module %s\n\ngo 1.26\n\nrequire github.com/llmc-dev/llmc v0.0.0\n\nreplace github.com/llmc-dev/llmc => %s\n", module, root)
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "go.sum": gosum, "main.go": []byte(mainSrc)} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	bin := filepath.Join(dir, module)
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=simd", "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// kv16Weights are codegen/llvm's: special values, each written by vector
// and by scalar stores, and random ones.
func kv16Weights() []float32 {
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
	copy(w[24:], w[:24])
	return w
}
