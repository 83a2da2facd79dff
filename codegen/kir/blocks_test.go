package kir

import (
	"math"
	"strings"
	"testing"

	"github.com/llmc-dev/llmc/wformat"
)

// blockProgram lowers one Q8_0 linear, y[rows, out] = x[rows, in]·wᵀ,
// with x at arena[0] and y after it, through linearBlocks itself.
func blockProgram(t *testing.T, rows, in, out int) *Program {
	t.Helper()
	ref := &WeightRef{Name: "w", Rows: out, Cols: in, Format: wformat.Q8_0}
	l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, arena: &Buffer{Name: "arena", Kind: Arena}}
	l.e = &Entry{Name: "step", Seq: rows, ArenaLen: rows*in + rows*out}
	l.length = I(rows) // every row real
	l.arena.Len = l.e.ArenaLen
	l.k = &Kernel{Name: "step_k0_matmul", Kind: "matmul"}
	w := contiguous(&Buffer{Name: "w_0", Kind: Weight, Len: ref.Bytes(), Format: wformat.Q8_0}, I(0), []int{out, in})
	x := contiguous(l.arena, I(0), []int{rows, in})
	y := contiguous(l.arena, I(rows*in), []int{rows, out})
	if err := l.linearBlocks(x, w, y, nil, nil); err != nil {
		t.Fatal(err)
	}
	l.e.Kernels = []*Kernel{l.k}
	l.e.Output, l.e.OutOffset, l.e.OutShape = l.arena, I(rows*in), []int{rows, out}
	l.prog.Entries = []*Entry{l.e}
	if err := Verify(l.prog); err != nil {
		t.Fatalf("linearBlocks made invalid kernel IR: %v\n%s", err, Print(l.prog))
	}
	return l.prog
}

// TestLinearBlocks runs the Q8_0 matrix-vector (rows 1) and
// matrix-matrix lowering on Machine against x·dequantize(w)ᵀ, for rows
// of whole blocks, a vector tail and a scalar tail (172: stories260K's
// FFN width, padded to six blocks), and checks that the text form
// round-trips.
func TestLinearBlocks(t *testing.T) {
	for _, in := range []int{32, 45, 172} {
		for _, rows := range []int{1, 3} {
			const out = 5
			p := blockProgram(t, rows, in, out)
			text := Print(p)
			back, err := Parse(text)
			if err != nil {
				t.Fatalf("in %d: %v\n%s", in, err, text)
			}
			if Print(back) != text {
				t.Fatalf("in %d: the text form does not round-trip", in)
			}
			if !strings.Contains(text, "load8i8 w_0[") || !strings.Contains(text, "loadf16 w_0[") || !strings.Contains(text, "weight #0 w q8_0[5, ") {
				t.Fatalf("in %d: no quant or scale loads:\n%s", in, text)
			}
			wf := make([]float32, out*in)
			for i := range wf {
				wf[i] = float32(math.Sin(float64(i)*1.3)) * float32(1+i%5)
			}
			q, err := wformat.Quantize(wformat.Q8_0, out, in, wf)
			if err != nil {
				t.Fatal(err)
			}
			deq, _ := wformat.Dequantize(wformat.Q8_0, out, in, q)
			m := NewMachine(back, [][]float32{nil})
			m.Blocks = [][]byte{q}
			x := make([]float32, rows*in)
			for i := range x {
				x[i] = float32(math.Cos(float64(i) * 0.7))
				m.arena[i] = x[i]
			}
			// Past x, where a tail read beyond the row would land: NaN
			// would poison the sum.
			for i := rows * in; i < len(m.arena); i++ {
				m.arena[i] = float32(math.NaN())
			}
			got, err := m.Run("step", nil, 0, rows)
			if err != nil {
				t.Fatal(err)
			}
			for s := range rows {
				for n := range out {
					want := 0.0
					for k := range in {
						want += float64(x[s*in+k]) * float64(deq[n*in+k])
					}
					if d := math.Abs(float64(got[s*out+n]) - want); d > 1e-4*(1+math.Abs(want)) {
						t.Fatalf("in %d rows %d: y[%d, %d] = %g, want %g", in, rows, s, n, got[s*out+n], want)
					}
				}
			}
		}
	}
}

// TestVerifyBlockLoads: a block-format weight is read only by LoadQ, and
// LoadQ only reads block-format weights, within their bytes.
func TestVerifyBlockLoads(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"element load", "element load from q8_0 weight w_0"},
		{"past the end", "past its"},
	} {
		p := blockProgram(t, 1, 32, 2)
		text := Print(p)
		switch c.name {
		case "element load":
			text = strings.Replace(text, "loadf16 w_0[", "w_0[", 1)
		case "past the end":
			text = strings.Replace(text, "loadf16 w_0[((n1 * 34) + (b5 * 34))]", "loadf16 w_0[(((n1 * 34) + (b5 * 34)) + 40)]", 1)
		}
		bad, err := Parse(text)
		if err == nil {
			err = Verify(bad)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: got %v, want %q\n%s", c.name, err, c.want, text)
		}
	}
}
