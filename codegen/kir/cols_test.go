package kir

import (
	"math"
	"strings"
	"testing"

	"github.com/llmc-dev/llmc/wformat"
)

// colsProgram lowers y[rows, out] = x[rows, in]·wᵀ + r (a residual) for
// a Q4_0, Q8_0 or Q4_K weight read with interleaved rows (linearCols), x at
// arena[0], y after it and r after y.
func colsProgram(t *testing.T, f wformat.Format, rows, in, out int) *Program {
	t.Helper()
	ref := &WeightRef{Name: "w", Rows: out, Cols: in, Format: f}
	l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, arena: &Buffer{Name: "arena", Kind: Arena},
		scratch: &Buffer{Name: "scratch", Kind: Scratch}, opts: Options{IntDot: true, VNNI: true, Wide: true}}
	l.e = &Entry{Name: "step", Seq: rows, ArenaLen: rows*in + 2*rows*out}
	l.length = I(rows)
	l.arena.Len = l.e.ArenaLen
	l.k = &Kernel{Name: "step_k0_matmul", Kind: "matmul"}
	w := contiguous(&Buffer{Name: "w_0", Kind: Weight, Len: ref.Bytes(), Format: f}, I(0), []int{out, in})
	x := contiguous(l.arena, I(0), []int{rows, in})
	y := contiguous(l.arena, I(rows*in), []int{rows, out})
	r := contiguous(l.arena, I(rows*in+rows*out), []int{rows, out})
	if !l.colsLinear(w, y, &r, nil) {
		t.Fatalf("rows %d in %d out %d: not lowered by column groups", rows, in, out)
	}
	if err := l.linearCols(x, w, y, &r, nil); err != nil {
		t.Fatal(err)
	}
	return finishBlockProgram(t, l, I(rows*in), []int{rows, out})
}

// TestLinearCols runs the interleaved-rows Q4_0, Q8_0 and Q4_K lowering
// on Machine, with the weight moved by wformat.Interleave, against the
// integer-dot definition (x quantised per block of 32, y = Σ_b
// d_w·d_x·Σ q_w·q_x with the weights' quants signed, less, for Q4_K,
// each sub-block's min times d_x·Σq_x, plus the residual), for whole
// tiles of eight rows, rest rows, single rows (decode), a padded last
// block (Q4_K's: short, of one to three pairs of sub-blocks, the last
// sub-block partial or not there) and one and two groups of columns; and
// checks that the weight is marked interleaved.
func TestLinearCols(t *testing.T) {
	blocks := []colsShape{{1, 64, 16}, {8, 64, 32}, {12, 72, 16}, {3, 300, 32}, {16, 32, 16}}
	for _, c := range []struct {
		f      wformat.Format
		shapes []colsShape
	}{
		{wformat.Q4_0, blocks},
		{wformat.Q8_0, blocks},
		{wformat.Q4_K, []colsShape{{1, 256, 16}, {8, 512, 32}, {12, 300, 16}, {3, 64, 32}, {16, 172, 16}, {1, 160, 16}}},
	} {
		testLinearCols(t, c.f, c.shapes)
	}
}

// colsShape is a linear's rows of input, in columns and out columns.
type colsShape struct{ rows, in, out int }

func testLinearCols(t *testing.T, f wformat.Format, shapes []colsShape) {
	zero := map[wformat.Format]float64{wformat.Q4_0: 8, wformat.Q8_0: 128}[f]
	for _, c := range shapes {
		p := colsProgram(t, f, c.rows, c.in, c.out)
		if p.Weights[0].Interleave != wformat.Group {
			t.Fatalf("%+v: the weight is not marked interleaved", c)
		}
		text := Print(p)
		wants := []string{"dotcols(w_0[", "colscales(w_0[", "store16 arena[", "interleaved 16"}
		if f == wformat.Q4_K {
			wants = append(wants, "dotcolshi(w_0[", "colbits(w_0[")
		}
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Fatalf("%+v: no %q in\n%s", c, want, text)
			}
		}
		q, _ := testWeights(t, f, c.out, c.in)
		packed, err := wformat.Interleave(f, c.out, c.in, q)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMachine(p, [][]float32{nil})
		m.Blocks = [][]byte{packed}
		x := make([]float32, c.rows*c.in)
		for i := range x {
			x[i] = float32(math.Cos(float64(i)*0.7)) * float32(1+i%3)
			m.arena[i] = x[i]
		}
		res := func(s, n int) float32 { return float32(s*c.out+n) / 7 }
		for s := range c.rows {
			for n := range c.out {
				m.arena[c.rows*c.in+s*c.out+n] = float32(math.NaN())
				m.arena[c.rows*c.in+c.rows*c.out+s*c.out+n] = res(s, n)
			}
		}
		for i := range m.scratch {
			m.scratch[i] = float32(math.NaN())
		}
		got, err := m.Run("step", nil, 0, c.rows)
		if err != nil {
			t.Fatal(err)
		}
		for s := range c.rows {
			qx, dx := refQuantRow(x[s*c.in : (s+1)*c.in])
			for n := range c.out {
				dot, mag, scales := refIntDot(f, q, c.in, n, qx, dx)
				// The zero point comes off the dots' sums: its products
				// count in the magnitude too.
				want := float64(res(s, n)) + dot
				mag += math.Abs(float64(res(s, n))) + scales*zero*32*127
				if g := float64(got[s*c.out+n]); math.Abs(g-want) > 1e-6*(1+mag) {
					t.Fatalf("%s %+v: y[%d, %d] = %g, want %g", f, c, s, n, g, want)
				}
			}
		}
	}
}

// TestColsLowering: a Q4_0 weight that an embedding reads keeps its rows
// (and so the VNNI tiles), and interleaved weights are read only by
// dotcols and colscales.
func TestColsLowering(t *testing.T) {
	ref := &WeightRef{Name: "w", Rows: 16, Cols: 64, Format: wformat.Q4_0}
	l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, opts: Options{IntDot: true, VNNI: true, Wide: true}, embedded: map[int]bool{0: true}}
	w := contiguous(&Buffer{Name: "w_0", Kind: Weight, Len: ref.Bytes(), Format: wformat.Q4_0}, I(0), []int{16, 64})
	y := contiguous(&Buffer{Name: "arena", Kind: Arena}, I(0), []int{1, 16})
	if l.colsLinear(w, y, nil, nil) {
		t.Fatal("an embedded weight would be interleaved")
	}
	l.embedded = nil
	if !l.colsLinear(w, y, nil, nil) {
		t.Fatal("a Q4_0 weight of 16 rows is not interleaved")
	}
	l.opts.Wide = false
	if l.colsLinear(w, y, nil, nil) {
		t.Fatal("interleaved without sixteen lanes")
	}
	text := Print(colsProgram(t, wformat.Q4_0, 1, 64, 16))
	verifyMutation(t, text, "doti4 of interleaved rows", "dotcols(w_0[(((g", "doti4(w_0[(((g", "has interleaved rows")
	verifyMutation(t, text, "dotcols of plain rows", "weight #0 w q4_0[16, 64] interleaved 16", "weight #0 w q4_0[16, 64]", "not a weight with interleaved rows")
	verifyMutation(t, text, "interleaved q8_0", "weight #0 w q4_0[16, 64] interleaved 16", "weight #0 w q4_0[16, 64] interleaved 8", "only q4_0, q8_0 and q4_k rows are, 16 at a time")
}

// TestNewVarSkipsReserved: generated names never take one kir.Verify
// reserves (v8 did, in Gemma's Q4_0 embedding, when the Go backend
// declared a type v8; load8 is a keyword of the text form).
func TestNewVarSkipsReserved(t *testing.T) {
	l := &lowerer{nvar: 7}
	if v := l.newVar("load", Int); v.Name != "load9" {
		t.Fatalf("got %s, want load9", v.Name)
	}
}

// TestVerifyCols: colscales and colbits read sixteen scales or bytes of a
// weight with interleaved rows, in bounds, at an int offset, and colbits
// a bit field inside a byte.
func TestVerifyCols(t *testing.T) {
	text := Print(colsProgram(t, wformat.Q4_K, 1, 512, 16))
	const cs = "colscales(w_0[((g9 * 4608) + (b12 * 2304))])"
	const cb = "colbits(w_0[(((g9 * 4608) + (b12 * 2304)) + 64)], 0, 6)"
	verifyMutations(t, text, []mutation{
		{"colscales past the end", cs, "colscales(w_0[4600])", "colscales index 4600 of w_0 reaches 4600 (+32), past its 4608 elements"},
		{"colscales offset type", cs, "colscales(w_0[1f])", "offset 1f is f32, not int"},
		{"colscales of the arena", cs, "colscales(arena[0])", "colscales(arena[0]): arena is not a weight with interleaved rows"},
		{"colbits past the end", cb, "colbits(w_0[4600], 0, 6)", "colbits index 4600 of w_0 reaches 4600 (+16), past its 4608 elements"},
		{"colbits offset type", cb, "colbits(w_0[1f], 0, 6)", "offset 1f is f32, not int"},
		{"colbits of the arena", cb, "colbits(arena[0], 0, 6)", "colbits(arena[0], 0, 6): arena is not a weight with interleaved rows"},
		{"colbits past a byte", cb, "colbits(w_0[(((g9 * 4608) + (b12 * 2304)) + 64)], 4, 6)", "bits 4..9 of a byte"},
	})
}
