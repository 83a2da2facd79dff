package golang_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/wformat"
)

// wideMain runs testdata/wide's program on the f32 weight and the bf16
// weight's bits in its arguments and prints the kernels' ISA and the
// output bits.
const wideMain = `package main

import (
	"encoding/json"
	"math"
	"os"

	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/pool"
	"widetest/kernels"
)

func main() {
	var bits []uint32
	var half []uint16
	if err := json.Unmarshal([]byte(os.Args[1]), &bits); err != nil {
		panic(err)
	}
	if err := json.Unmarshal([]byte(os.Args[2]), &half); err != nil {
		panic(err)
	}
	w := make([]float32, len(bits))
	for i, b := range bits {
		w[i] = math.Float32frombits(b)
	}
	ws := &runtime.Weights{F32: [][]float32{w, nil}, BF16: [][]uint16{nil, half}, F16: make([][]uint16, 2), Blocks: make([][]byte, 2)}
	r := kernels.Linked.New(ws, pool.New(2))
	out, _, err := r.Run("step", []int32{0}, 0)
	if err != nil {
		panic(err)
	}
	report(out, kernels.Linked.ISA())
}
` + reportFunc

// TestWideMatchesMachine builds testdata/wide's program (sixteen-lane
// loads of f32, bf16 and f16 buffers, broadcasts, arithmetic, hsum and a
// sixteen-lane store) with GOEXPERIMENT=simd, runs its AVX-512 kernels
// (ZMM registers, skipped on a CPU without AVX-512) and its portable ones,
// and compares the output with kir.Machine bit for bit: a sum of the lanes
// in another order, or a half loaded from the wrong offset, fails it.
func TestWideMatchesMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an executable")
	}
	_, p, _ := caseProgram(t, "testdata/wide.txtar")
	bin := buildProgram(t, p, "widetest", wideMain)

	r := rand.New(rand.NewPCG(13, 1))
	ws := make([][]float32, len(p.Weights))
	for i, w := range p.Weights {
		ws[i] = make([]float32, w.Rows*w.Cols)
		for j := range ws[i] {
			// Magnitudes far apart, so that the order of a sum shows.
			ws[i][j] = float32(r.NormFloat64() * math.Pow(2, float64(r.IntN(24)-12)))
		}
	}
	bits := make([]uint32, len(ws[0]))
	for i, x := range ws[0] {
		bits[i] = math.Float32bits(x)
	}
	half := make([]uint16, len(ws[1]))
	for i, x := range ws[1] {
		half[i] = wformat.F32ToBF16(x)
		ws[1][i] = wformat.Round(wformat.BF16, x) // what kir.Machine reads
	}
	want, err := kir.NewMachine(p, ws).Run("step", []int32{0}, 0, 1)
	require.NoError(t, err)
	a1, err := json.Marshal(bits)
	require.NoError(t, err)
	a2, err := json.Marshal(half)
	require.NoError(t, err)
	for _, isa := range []string{"avx512", "scalar"} {
		t.Run(isa, func(t *testing.T) {
			got := runKernels(t, bin, isa, string(a1), string(a2))
			require.Len(t, got, len(want))
			for i, b := range got {
				if b != math.Float32bits(want[i]) {
					t.Errorf("arena[%d]: generated Go %g (%#08x), kir.Machine %g (%#08x)", i, math.Float32frombits(b), b, want[i], math.Float32bits(want[i]))
				}
			}
		})
	}
}
