package kir

import (
	"math"
	"slices"
	"testing"

	"github.com/llmc-dev/llmc/wformat"
)

// tiledProgram lowers y[rows, out] = x[rows, in]·wᵀ + r (a residual)
// through linearTiled, with x at arena[0], y after it and r after y, for
// a step of %len real rows.
func tiledProgram(t *testing.T, rows, in, out int, o Options) *Program {
	t.Helper()
	return tiledProgramOf(t, rows, in, out, o, wformat.F32)
}

// tiledProgramOf is tiledProgram with a weight stored in format f.
func tiledProgramOf(t *testing.T, rows, in, out int, o Options, f wformat.Format) *Program {
	t.Helper()
	ref := &WeightRef{Name: "w", Rows: out, Cols: in, BF16: f == wformat.BF16}
	l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, arena: &Buffer{Name: "arena", Kind: Arena}, scratch: &Buffer{Name: "scratch", Kind: Scratch}, opts: o}
	l.e = &Entry{Name: "step", Seq: rows, HasLen: true, ArenaLen: rows*in + 2*rows*out}
	l.length = Param{Name: "len"}
	l.arena.Len = l.e.ArenaLen
	l.k = &Kernel{Name: "step_k0_matmul", Kind: "matmul"}
	w := contiguous(&Buffer{Name: "w_0", Kind: Weight, Len: out * in, Format: f}, I(0), []int{out, in})
	x := contiguous(l.arena, I(0), []int{rows, in})
	y := contiguous(l.arena, I(rows*in), []int{rows, out})
	r := contiguous(l.arena, I(rows*in+rows*out), []int{rows, out})
	l.linearTiled(x, w, y, &r, nil, l.newVar("n", Int), l.newVar("s", Int), rowTile(rows), rows, out, in)
	l.e.Kernels = []*Kernel{l.k}
	l.e.Output, l.e.OutOffset, l.e.OutShape = l.arena, I(rows*in), []int{rows, out}
	l.prog.Entries = []*Entry{l.e}
	if err := Verify(l.prog); err != nil {
		t.Fatalf("linearTiled made invalid kernel IR: %v\n%s", err, Print(l.prog))
	}
	return l.prog
}

// TestLinearTiled runs the tiled matrix-matrix lowering on Machine
// against x·wᵀ + r, for tiles of 2, 3 and 4 rows by one, two or four
// columns (with Options.TileColumns 2 and 4), on eight lanes and on
// sixteen (Options.Wide, where the rows are a multiple of 16 long),
// weight rows with and
// without a half-vector tail, and steps with fewer real rows than the
// entry point's (a partial chunk or batch), whose padding rows hold NaN
// that no real row may read.
func TestLinearTiled(t *testing.T) {
	for _, tileCols := range []int{2, 4} {
		for _, wide := range []bool{false, true} {
			linearTiledCases(t, Options{TileColumns: tileCols, Wide: wide})
		}
	}
}

// hasType reports whether an expression of p has type typ.
func hasType(p *Program, typ Type) bool {
	found := false
	for _, e := range p.Entries {
		for _, k := range e.Kernels {
			for _, ph := range k.Phases {
				Walk(ph.Body, func(x Expr) { found = found || x.Type() == typ }, nil)
			}
		}
	}
	return found
}

func linearTiledCases(t *testing.T, o Options) {
	for _, c := range []struct{ rows, real, in, out int }{
		{4, 4, 64, 7}, {4, 3, 72, 7}, {6, 4, 520, 7}, {3, 3, 16, 7}, {2, 1, 24, 7}, {8, 5, 776, 7},
		// More than 8 rows: tiles of four columns when they divide the
		// output columns, two when two do.
		{12, 12, 64, 8}, {12, 7, 72, 6}, {16, 13, 520, 10}, {16, 16, 776, 4}, {10, 1, 24, 2},
		{16, 15, 72, 12}, {9, 9, 520, 7}, {16, 3, 64, 20},
	} {
		out := c.out
		p := tiledProgram(t, c.rows, c.in, out, o)
		if wide := o.Wide && c.in%16 == 0; hasType(p, F32x16) != wide {
			t.Fatalf("rows %d, in %d, %+v: f32x16 code %v, want %v", c.rows, c.in, o, !wide, wide)
		}
		back, err := Parse(Print(p))
		if err != nil {
			t.Fatal(err)
		}
		w := make([]float32, out*c.in)
		for i := range w {
			w[i] = float32(math.Sin(float64(i) * 1.3))
		}
		m := NewMachine(back, [][]float32{w})
		for i := range m.arena {
			m.arena[i] = float32(math.NaN())
		}
		x := func(s, k int) float32 { return float32(math.Cos(float64(s*c.in+k) * 0.7)) }
		res := func(s, n int) float32 { return float32(s*out + n) }
		for s := range c.real {
			for k := range c.in {
				m.arena[s*c.in+k] = x(s, k)
			}
			for n := range out {
				m.arena[c.rows*c.in+c.rows*out+s*out+n] = res(s, n)
			}
		}
		got, err := m.Run("step", nil, 0, c.real)
		if err != nil {
			t.Fatal(err)
		}
		for s := range c.real {
			for n := range out {
				want := float64(res(s, n))
				for k := range c.in {
					want += float64(x(s, k)) * float64(w[n*c.in+k])
				}
				if d := math.Abs(float64(got[s*out+n]) - want); !(d <= 1e-4*(1+math.Abs(want))) {
					t.Fatalf("rows %d (%d real), in %d: y[%d, %d] = %g, want %g", c.rows, c.real, c.in, s, n, got[s*out+n], want)
				}
			}
		}
	}
}

// TestDotLanes runs the matrix-vector lowering of a decode step's linear
// (dotLanes, one output column an iteration) on Machine against x·wᵀ, on
// eight and sixteen lanes, for rows that fill the four accumulators'
// blocks, rows with a few blocks after them, and a scalar tail.
func TestDotLanes(t *testing.T) {
	for _, lanes := range []int{8, 16} {
		for _, in := range []int{64, 80, 112, 776, 1000, 13} {
			const out = 5
			ref := &WeightRef{Name: "w", Rows: out, Cols: in}
			l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, arena: &Buffer{Name: "arena", Kind: Arena, Len: in + out}}
			l.e = &Entry{Name: "step", Seq: 1, ArenaLen: in + out}
			l.k = &Kernel{Name: "step_k0_matmul", Kind: "matmul"}
			wb := &Buffer{Name: "w_0", Kind: Weight, Len: out * in}
			col, y := l.newVar("n", Int), l.newVar("y", F32)
			body := l.dotLanes(y, l.arena, I(0), wb, IMul(col, I(in)), in, lanes)
			body = append(body, &Store{Buf: l.arena, Index: IAdd(I(in), col), Val: y})
			l.k.Phases = []*Phase{{Parallel: true, Var: col, N: I(out), Work: I(out * in), Grain: 1, Body: body}}
			l.e.Kernels = []*Kernel{l.k}
			l.e.Output, l.e.OutOffset, l.e.OutShape = l.arena, I(in), []int{out}
			l.prog.Entries = []*Entry{l.e}
			if err := Verify(l.prog); err != nil {
				t.Fatalf("dotLanes made invalid kernel IR: %v\n%s", err, Print(l.prog))
			}
			if got, want := hasType(l.prog, F32x16), lanes == 16 && in >= 16; got != want {
				t.Fatalf("lanes %d, in %d: f32x16 code %v, want %v", lanes, in, got, want)
			}
			w := make([]float32, out*in)
			for i := range w {
				w[i] = float32(math.Sin(float64(i) * 1.3))
			}
			m := NewMachine(l.prog, [][]float32{w})
			for k := range in {
				m.arena[k] = float32(math.Cos(float64(k) * 0.7))
			}
			got, err := m.Run("step", nil, 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			for n := range out {
				want := 0.0
				for k := range in {
					want += float64(m.arena[k]) * float64(w[n*in+k])
				}
				if d := math.Abs(float64(got[n]) - want); !(d <= 1e-4*(1+math.Abs(want))) {
					t.Fatalf("lanes %d, in %d: y[%d] = %g, want %g", lanes, in, n, got[n], want)
				}
			}
		}
	}
}

// TestLinearTiledBF16 runs the prefill tiles of a bf16 linear with
// Options.BF16Dot (its input rounded to bfloat16 by store8bf16, dotbf16
// products) on Machine against x·wᵀ + r computed from the rounded input:
// only chunks of more than 8 rows with rows a multiple of 32 long take
// them, decode-sized steps and other rows keep the float tiles.
func TestLinearTiledBF16(t *testing.T) {
	for _, c := range []struct {
		rows, real, in, out int
		dot                 bool
	}{
		{12, 12, 64, 8, true}, {16, 13, 96, 12, true}, {16, 16, 32, 4, true}, {12, 7, 64, 6, true},
		{8, 8, 64, 8, false}, {16, 16, 48, 8, false},
	} {
		o := Options{TileColumns: 4, Wide: true, BF16Dot: true}
		p := tiledProgramOf(t, c.rows, c.in, c.out, o, wformat.BF16)
		has := false
		for _, ph := range p.Entries[0].Kernels[0].Phases {
			Walk(ph.Body, func(x Expr) {
				if _, ok := x.(*DotBF16); ok {
					has = true
				}
			}, nil)
		}
		if has != c.dot {
			t.Fatalf("rows %d, in %d: dotbf16 %v, want %v\n%s", c.rows, c.in, has, c.dot, Print(p))
		}
		back, err := Parse(Print(p))
		if err != nil {
			t.Fatal(err)
		}
		w := make([]float32, c.out*c.in)
		for i := range w {
			w[i] = wformat.Round(wformat.BF16, float32(math.Sin(float64(i)*1.3)))
		}
		m := NewMachine(back, [][]float32{w})
		m.scratch = make([]float32, p.Entries[0].ScratchLen)
		for i := range m.arena {
			m.arena[i] = float32(math.NaN())
		}
		x := func(s, k int) float32 { return float32(math.Cos(float64(s*c.in+k) * 0.7)) }
		res := func(s, n int) float32 { return float32(s*c.out + n) }
		for s := range c.real {
			for k := range c.in {
				m.arena[s*c.in+k] = x(s, k)
			}
			for n := range c.out {
				m.arena[c.rows*c.in+c.rows*c.out+s*c.out+n] = res(s, n)
			}
		}
		got, err := m.Run("step", nil, 0, c.real)
		if err != nil {
			t.Fatal(err)
		}
		for s := range c.real {
			for n := range c.out {
				want := float64(res(s, n))
				for k := range c.in {
					xk := x(s, k)
					if c.dot {
						xk = wformat.Round(wformat.BF16, xk)
					}
					want += float64(xk) * float64(w[n*c.in+k])
				}
				if d := math.Abs(float64(got[s*c.out+n]) - want); !(d <= 1e-4*(1+math.Abs(want))) {
					t.Fatalf("rows %d (%d real), in %d: y[%d, %d] = %g, want %g", c.rows, c.real, c.in, s, n, got[s*c.out+n], want)
				}
			}
		}
	}
}

// TestDotLanesPrefetch checks that the matrix-vector product of a 16-bit
// weight prefetches each cache line of its loop step widenPrefetch bytes
// ahead of the row bytes the step reads, and that of an f32 weight none.
func TestDotLanesPrefetch(t *testing.T) {
	const in = 1024
	for _, f := range []wformat.Format{wformat.BF16, wformat.F16, wformat.F32} {
		for _, lanes := range []int{8, 16} {
			l := &lowerer{prog: &Program{}}
			wb := &Buffer{Name: "w_0", Kind: Weight, Len: 5 * in, Format: f}
			x := &Buffer{Name: "arena", Kind: Arena, Len: in}
			col, y := l.newVar("n", Int), l.newVar("y", F32)
			var loop *For
			for _, s := range l.dotLanes(y, x, I(0), wb, IMul(col, I(in)), in, lanes) {
				if fs, ok := s.(*For); ok {
					loop = fs
				}
			}
			if loop == nil {
				t.Fatalf("%s, %d lanes: no loop", f, lanes)
			}
			const n, k = 3, 128
			var got []int
			for _, s := range loop.Body {
				if pf, ok := s.(*Prefetch); ok {
					if pf.Buf != wb {
						t.Fatalf("%s, %d lanes: prefetch of %s", f, lanes, pf.Buf.Name)
					}
					got = append(got, EvalInt(pf.Off, func(e Expr) int {
						switch e {
						case Expr(col):
							return n
						case Expr(loop.Var):
							return k
						}
						t.Fatalf("prefetch offset reads %s", e)
						return 0
					}))
				}
			}
			var want []int
			if f != wformat.F32 {
				for o := 0; o < 4*lanes*2; o += 64 {
					want = append(want, (n*in+k)*2+widenPrefetch+o)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s, %d lanes: prefetched %v, want %v", f, lanes, got, want)
			}
		}
	}
}
