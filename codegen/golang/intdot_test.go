package golang_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/wformat"
)

// intDotMain runs the program on the block weight in its first argument
// (hex-free JSON bytes) for input set argv[2] and prints the kernels' ISA
// and the output bits.
const intDotMain = `package main

import (
	"encoding/json"
	"math"
	"os"
	"strconv"

	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/pool"
	"idtest/kernels"
)

func main() {
	var blocks []byte
	if err := json.Unmarshal([]byte(os.Args[1]), &blocks); err != nil {
		panic(err)
	}
	set, _ := strconv.Atoi(os.Args[2])
	w := &runtime.Weights{F32: make([][]float32, 1), BF16: make([][]uint16, 1), F16: make([][]uint16, 1),
		Blocks: [][]byte{append(blocks, make([]byte, runtime.BlockSlack)...)[:len(blocks)]}}
	r := kernels.Linked.New(w, pool.New(2))
	out, _, err := r.Run("step", []int32{int32(set), int32(set)}, 0)
	if err != nil {
		panic(err)
	}
	report(out, kernels.Linked.ISA())
}
` + reportFunc

// TestIntDotMatchesMachine builds codegen/llvm's q8_0-, q4_0- and
// q4_k-intdot cases (a serial phase quantising two input rows to int8
// blocks, a parallel one summing doti8, doti4 or doti4lo/hi lanes) with
// GOEXPERIMENT=simd and runs their AVX2 kernels (VPMADDUBSW, VPMADDWD)
// and their portable ones against kir.Machine, bit for bit, on random
// quants (-128 included, which the sign trick must survive; every nibble;
// every packed scale and min) and inputs with a block of zeros, tiny and
// large values.
func TestIntDotMatchesMachine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an executable")
	}
	for _, f := range []wformat.Format{wformat.Q8_0, wformat.Q4_0, wformat.Q4_K} {
		t.Run(f.String(), func(t *testing.T) { intDotMatchesMachine(t, f) })
	}
}

func intDotMatchesMachine(t *testing.T, f wformat.Format) {
	_, p, _ := caseProgram(t, "../llvm/testdata/"+f.String()+"-intdot-portable.txtar")
	w := p.Weights[0]
	r := rand.New(rand.NewPCG(7, 8))
	blocks := make([]byte, w.Bytes())
	for i := range blocks {
		blocks[i] = byte(r.IntN(256))
	}
	nb := (w.Cols + f.BlockElems() - 1) / f.BlockElems()
	for row := range w.Rows {
		for b := range nb {
			at := row*f.RowBytes(w.Cols) + b*f.BlockBytes()
			h := wformat.F32ToF16(float32(r.Float64()*0.1 + 0.001))
			blocks[at], blocks[at+1] = byte(h), byte(h>>8)
			switch f {
			case wformat.Q8_0:
				blocks[at+2] = 0x80 // a -128 quant
			case wformat.Q4_K: // dmin
				m := wformat.F32ToF16(float32(r.Float64()*0.05 + 0.001))
				blocks[at+2], blocks[at+3] = byte(m), byte(m>>8)
			}
		}
	}
	// Three input sets in a table, copied into the arena by a first phase
	// from the set the first token names.
	e := p.Entries[0]
	n := e.Seq * w.Cols
	xs := make([]float32, 3*n)
	for set, scale := range []float64{1, 1e-3, 300} {
		for i := range n {
			xs[set*n+i] = float32(r.NormFloat64() * scale)
		}
	}
	clear(xs[:32])
	tab := &kir.Buffer{Name: "xin", Kind: kir.Table, Index: len(p.Tables), Len: len(xs), Data: xs}
	p.Tables = append(p.Tables, tab)
	tok := &kir.Buffer{Name: "tokens", Kind: kir.Tokens, Len: e.Seq}
	id, i := &kir.Var{Name: "set", T: kir.Int}, &kir.Var{Name: "i", T: kir.Int}
	k := e.Kernels[0]
	k.Phases = append([]*kir.Phase{{Body: []kir.Stmt{
		&kir.Decl{Var: id, Init: kir.Ld(tok, kir.I(0))},
		&kir.For{Var: i, Lo: kir.I(0), Hi: kir.I(n), Step: 1, Body: []kir.Stmt{
			&kir.Store{Buf: e.Output, Index: i, Val: kir.Ld(tab, kir.IAdd(kir.IMul(id, kir.I(n)), i))},
		}},
	}}}, k.Phases...)
	require.NoError(t, kir.Verify(p))

	bin := buildProgram(t, p, "idtest", intDotMain)

	arg, err := json.Marshal(blocks)
	require.NoError(t, err)
	m := kir.NewMachine(p, [][]float32{nil})
	m.Blocks = [][]byte{blocks}
	for set := range 3 {
		want, err := m.Run("step", []int32{int32(set), int32(set)}, 0, e.Seq)
		require.NoError(t, err)
		for _, isa := range []string{"avx2", "scalar"} {
			t.Run(fmt.Sprintf("%s/set%d", isa, set), func(t *testing.T) {
				got := runKernels(t, bin, isa, string(arg), fmt.Sprint(set))
				require.Len(t, got, len(want))
				for j, b := range got {
					require.Equal(t, math.Float32bits(want[j]), b, "output %d: generated Go %g, kir.Machine %g", j, math.Float32frombits(b), want[j])
				}
			})
		}
	}
}
