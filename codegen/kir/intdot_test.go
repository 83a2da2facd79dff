package kir

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/llmc-dev/llmc/wformat"
)

// intDotProgram lowers one linear y[rows, out] = x[rows, in]·wᵀ of a
// weight in format f (Q8_0 or Q4_0) with integer dot products, x at
// arena[0] and y after it.
func intDotProgram(t *testing.T, f wformat.Format, rows, in, out int, vnni bool) *Program {
	t.Helper()
	return intDotProgramWith(t, f, rows, in, out, Options{IntDot: true, VNNI: vnni})
}

// intDotProgramWith is intDotProgram with lowering options o.
func intDotProgramWith(t *testing.T, f wformat.Format, rows, in, out int, o Options) *Program {
	t.Helper()
	ref := &WeightRef{Name: "w", Rows: out, Cols: in, Format: f}
	l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, arena: &Buffer{Name: "arena", Kind: Arena},
		scratch: &Buffer{Name: "scratch", Kind: Scratch}, opts: o}
	l.e = &Entry{Name: "step", Seq: rows, ArenaLen: rows*in + rows*out}
	l.length = I(rows)
	l.arena.Len = l.e.ArenaLen
	l.k = &Kernel{Name: "step_k0_matmul", Kind: "matmul"}
	w := contiguous(&Buffer{Name: "w_0", Kind: Weight, Len: ref.Bytes(), Format: f}, I(0), []int{out, in})
	x := contiguous(l.arena, I(0), []int{rows, in})
	y := contiguous(l.arena, I(rows*in), []int{rows, out})
	if err := l.linearQ8Int(x, w, y, nil, nil); err != nil {
		t.Fatal(err)
	}
	return finishBlockProgram(t, l, I(rows*in), []int{rows, out})
}

// blockOf is block b (of 32 weights) of row n of weights q in format f,
// as what it stands for: weight k is scale·quant(k) - min, with quant(k)
// the int8, Q4_0's nibble minus 8, or Q4_K's nibble (and its sub-block's
// scale d·sc and min dmin·m).
func blockOf(f wformat.Format, q []byte, in, n, b int) (scale, min float32, quant func(k int) int32) {
	row := q[n*f.RowBytes(in):]
	f16 := func(blk []byte, at int) float32 { return wformat.F16ToF32(uint16(blk[at]) | uint16(blk[at+1])<<8) }
	switch f {
	case wformat.Q4_0:
		blk := row[b*f.BlockBytes():]
		return f16(blk, 0), 0, func(k int) int32 {
			off, sh := wformat.Q4_0Nibble(k)
			return int32(blk[wformat.Q4_0Quants+off]>>sh&15) - wformat.Q4_0Zero
		}
	case wformat.Q4_K:
		blk, j := row[b/8*f.BlockBytes():], b%8
		sc, m := wformat.Q4_KScaleMin(blk[wformat.Q4_KScales:wformat.Q4_KQuants], j)
		return f16(blk, wformat.Q4_KScale) * float32(sc), f16(blk, wformat.Q4_KMin) * float32(m), func(k int) int32 {
			off, sh := wformat.Q4_KNibble(32*j + k)
			return int32(blk[wformat.Q4_KQuants+off] >> sh & 15)
		}
	}
	blk := row[b*f.BlockBytes():]
	return f16(blk, 0), 0, func(k int) int32 { return int32(int8(blk[wformat.Q8_0Quants+k])) }
}

// refQuantRow is the reference quantisation of one row x of a linear's
// input for integer dots: blocks of 32 (the last padded with zero quants),
// d_x = max|x|/127, q = round(x/d_x) to even.
func refQuantRow(x []float32) (qx []int8, dx []float32) {
	nb := (len(x) + 31) / 32
	qx, dx = make([]int8, nb*32), make([]float32, nb)
	for b := range nb {
		blk := x[b*32 : min(len(x), b*32+32)]
		var amax float32
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		dx[b] = amax / 127
		var id float32
		if amax > 0 {
			id = 127 / amax
		}
		for k, v := range blk {
			qx[b*32+k] = int8(math.RoundToEven(float64(v * id)))
		}
	}
	return qx, dx
}

// refIntDot is output column n of a linear of weight q (f, in columns)
// for the quantised input row qx, dx, by the integer-dot definition:
// Σ_b d_w·d_x·Σq_w·q_x less, for Q4_K, m_w·d_x·Σq_x. mag sums the
// magnitudes of those terms, and scales Σ_b |d_w·d_x|.
func refIntDot(f wformat.Format, q []byte, in, n int, qx []int8, dx []float32) (want, mag, scales float64) {
	for b := range dx {
		dw, mw, quant := blockOf(f, q, in, n, b)
		var sum, sumx int32
		for k := range 32 {
			sum += quant(k) * int32(qx[b*32+k])
			sumx += int32(qx[b*32+k])
		}
		dot, zero := float64(dw*dx[b])*float64(sum), float64(mw*dx[b])*float64(sumx)
		want += dot - zero
		mag += math.Abs(dot) + math.Abs(zero)
		scales += math.Abs(float64(dw * dx[b]))
	}
	return want, mag, scales
}

// TestLinearQ8Int runs the integer-dot Q8_0, Q4_0 and Q4_K lowering on
// Machine against its definition: x quantised per block of 32 (d =
// max|x|/127, q = round(x/d)), y = Σ_blocks d_w·d_x·Σ q_w·q_x (for Q4_K,
// less each sub-block's min times d_x·Σq_x), for rows of whole blocks,
// tails (172: stories260K's FFN width), column counts of each tile size,
// and checks it is close to x·dequantize(w)ᵀ and that the text
// round-trips; with and without Options.VNNI (Q8_0's quants unsigned,
// zero points off eight blocks at a time, and d_w·d_x multiplied eight
// blocks at a time into a local table), and with Options.Wide too (the
// tiles' dots two blocks at a time, DotI8.Pair, where a row has an even
// number of blocks).
func TestLinearQ8Int(t *testing.T) {
	for _, f := range []wformat.Format{wformat.Q8_0, wformat.Q4_0, wformat.Q4_K} {
		for _, o := range []Options{{IntDot: true}, {IntDot: true, VNNI: true}, {IntDot: true, VNNI: true, Wide: true}} {
			testLinearIntDot(t, f, o)
		}
	}
}

func testLinearIntDot(t *testing.T, f wformat.Format, o Options) {
	vnni := o.VNNI
	dot := map[wformat.Format]string{wformat.Q8_0: "doti8(w_0[", wformat.Q4_0: "doti4(w_0[", wformat.Q4_K: "doti4lo(w_0["}[f]
	ins := []int{32, 45, 64, 172}
	if f == wformat.Q4_K {
		ins = append(ins, 300, 512) // a block and a short one; two blocks
	}
	for _, in := range ins {
		for _, rows := range []int{1, 3, 8, 12, 13} {
			for _, out := range []int{4, 5} {
				p := intDotProgramWith(t, f, rows, in, out, o)
				text := Print(p)
				if _, err := Parse(text); err != nil {
					t.Fatalf("%s in %d: the text does not parse back: %v", f, in, err)
				}
				wants := []string{dot, "store8i8 scratch[", "loadf16 w_0["}
				even := (in+31)/32%2 == 0
				if f == wformat.Q4_0 && o.Wide && even {
					// Q4_0's single rows take pairs too (decode).
					wants = []string{"doti4x2(w_0[", "store8i8 scratch[", "halves(", "hsum(zs"}
				}
				if vnni && f != wformat.Q4_K && rowTile(rows) > 1 {
					// Tiles of several rows are VNNI's; single rows
					// are decode's.
					wants = append(wants, "scales(w_0[", "hsum(zs", "store8 dwdx")
					dots := map[wformat.Format]string{wformat.Q8_0: "dotu8", wformat.Q4_0: "doti4"}[f]
					if o.Wide && even {
						wants = append(wants, dots+"x2(w_0[", "halves(")
					} else if f == wformat.Q8_0 {
						wants = append(wants, "dotu8(w_0[")
					}
				}
				for _, want := range wants {
					if !strings.Contains(text, want) {
						t.Fatalf("in %d: no %q:\n%s", in, want, text)
					}
				}
				q, deq := testWeights(t, f, out, in)
				m := NewMachine(p, [][]float32{nil})
				m.Blocks = [][]byte{q}
				x := make([]float32, rows*in)
				for i := range x {
					x[i] = float32(math.Cos(float64(i)*0.7)) * float32(1+i%3)
					m.arena[i] = x[i]
				}
				for i := rows * in; i < len(m.arena); i++ {
					m.arena[i] = float32(math.NaN())
				}
				for i := range m.scratch {
					m.scratch[i] = float32(math.NaN()) // the padding must be written
				}
				got, err := m.Run("step", nil, 0, rows)
				if err != nil {
					t.Fatal(err)
				}
				for s := range rows {
					qx, dx := refQuantRow(x[s*in : (s+1)*in])
					for n := range out {
						// mag: the terms' magnitudes, which f32 rounding
						// is relative to (Q4_K's mins cancel much of its dots).
						want, mag, _ := refIntDot(f, q, in, n, qx, dx)
						var float, bound float64
						for k := range in {
							float += float64(x[s*in+k]) * float64(deq[n*in+k])
							// Each quant of x is off by at most half a step.
							bound += math.Abs(float64(deq[n*in+k])) * float64(dx[k/32]) / 2
						}
						g := float64(got[s*out+n])
						if d := math.Abs(g - want); d > 1e-5*(1+mag) {
							t.Fatalf("%s in %d rows %d out %d: y[%d, %d] = %g, want %g", f, in, rows, out, s, n, g, want)
						}
						if d := math.Abs(g - float); d > bound+1e-4 {
							t.Fatalf("%s in %d rows %d out %d: y[%d, %d] = %g, float path %g, more than %g apart", f, in, rows, out, s, n, g, float, bound)
						}
					}
				}
			}
		}
	}
}

// TestVerifyIntDot: doti8 reads a Q8_0 weight and scratch within their
// bytes, storei8 writes scratch only, within its bytes, from floats, and
// the text form says which (storei8 or store8i8).
func TestVerifyIntDot(t *testing.T) {
	const dot = "doti8(w_0[(((n12 * 68) + (b15 * 34)) + 2)], scratch[(b15 * 32)])"
	const st = "store8i8 scratch[(((s1 * 2) + 1) * 32)] = (xv9 * bcast(id11))"
	verifyMutations(t, Print(intDotProgram(t, wformat.Q8_0, 1, 40, 2, false)), []mutation{
		{"weight past the end", dot, "doti8(w_0[(((n12 * 68) + (b15 * 34)) + 100)], scratch[(b15 * 32)])", "doti8 index (((n12 * 68) + (b15 * 34)) + 100) of w_0 reaches 168 (+32), past its 136 elements"},
		{"scratch past the end", dot, "doti8(w_0[(((n12 * 68) + (b15 * 34)) + 2)], scratch[((b15 * 32) + 70)])", "reaches 70 (+32), past its 96 bytes"},
		{"x not scratch", dot, "doti8(w_0[(((n12 * 68) + (b15 * 34)) + 2)], arena[(b15 * 32)])", "its second operand arena is a arena buffer, not the scratch that storei8 writes"},
		{"w not a weight", dot, "doti8(scratch[(b15 * 32)], scratch[(b15 * 32)])", "its first operand scratch is a f32 scratch buffer, not a weight of q8_0 quants"},
		{"offset type", dot, "doti8(w_0[1f], scratch[(b15 * 32)])", "offset 1f is f32, not int"},
		{"store past the end", st, "store8i8 scratch[(((s1 * 2) + 1) * 90)] = (xv9 * bcast(id11))", "storei8 index (((s1 * 2) + 1) * 90) of scratch reaches 90 (+8), past its 96 bytes"},
		{"store to the arena", st, "store8i8 arena[(((s1 * 2) + 1) * 32)] = (xv9 * bcast(id11))", "storei8 to arena buffer arena: int8s are stored to scratch only"},
		{"store of an int", st, "storei8 scratch[(((s1 * 2) + 1) * 32)] = s1", "quantised value s1 is int, not f32 or f32x8"},
		{"store8i8 of a scalar", st, "store8i8 scratch[(((s1 * 2) + 1) * 32)] = id11", "store8i8 of a f32 value"},
		{"prefetch of the arena", "prefetch w_0[", "prefetch arena[", "prefetch of arena buffer arena: only weights and states are prefetched"},
		{"prefetch offset", "prefetch w_0[(((n12 * 68) + (b15 * 34)) + 2048)]", "prefetch w_0[1f]", "offset 1f is f32, not int"},
		{"storei8 of a vector", st, "storei8 scratch[(((s1 * 2) + 1) * 32)] = bcast(id11)", "storei8 of a f32x8 value"},
	})
}

// TestVerifyIntDot4: doti4 reads a Q4_0 weight's 16 bytes of nibbles,
// doti4lo and doti4hi a Q4_K weight's 32, within a row's short last
// block, and no form reads another format's blocks.
func TestVerifyIntDot4(t *testing.T) {
	q4 := Print(intDotProgram(t, wformat.Q4_0, 1, 40, 2, false))
	q8 := Print(intDotProgram(t, wformat.Q8_0, 1, 40, 2, false))
	// 40 weights: a short Q4_K block of 16 + 32 bytes a row, sub-blocks 0
	// and 1 both in its 32 bytes of quants.
	qk := Print(intDotProgram(t, wformat.Q4_K, 1, 40, 2, false))
	// The first block's dot: (((n * 36) + (b * 18)) + 2) for a loop's b.
	dot := regexp.MustCompile(`doti4\(w_0\[[^\]]*\+ 2\)\], scratch\[[^\]]*\]\)`).FindString(q4)
	if dot == "" {
		t.Fatalf("no doti4 of a first block in\n%s", q4)
	}
	for _, c := range []struct{ name, text, from, to, want string }{
		{"nibbles past the end", q4, dot, strings.Replace(dot, "+ 2)]", "+ 60)]", 1), "(+16), past its 72 elements"},
		{"doti8 of q4_0", q4, dot, strings.Replace(dot, "doti4", "doti8", 1), "not a weight of q8_0 quants"},
		{"doti4 of q8_0", q8, "doti8(", "doti4(", "not a weight of q4_0 quants"},
		{"doti4hi of q4_0", q4, dot, strings.Replace(dot, "doti4", "doti4hi", 1), "not a weight of q4_k quants"},
		{"doti4 of q4_k", qk, "doti4lo(", "doti4(", "not a weight of q4_0 quants"},
		{"doti4hi past the end", qk, "doti4hi(w_0[((n12 * 48) + 16)]", "doti4hi(w_0[((n12 * 48) + 32)]", "(+32), past its 96 elements"},
	} {
		verifyMutation(t, c.text, c.name, c.from, c.to, c.want)
	}
}

// TestVerifyVNNITiles: scales reads 1 to 8 f16 scales of a block-format
// weight within its bytes, a local table is written without racing and
// read within its length, and dotu8 reads Q8_0 blocks only.
func TestVerifyVNNITiles(t *testing.T) {
	const sc = "scales(w_0[(n12 * 68)], 34, 2)"
	verifyMutations(t, Print(intDotProgram(t, wformat.Q8_0, 2, 40, 2, true)), []mutation{
		{"nine scales", sc, "scales(w_0[(n12 * 68)], 34, 9)", "want 1 to 8 scales at least 2 bytes apart"},
		{"scales past the end", sc, "scales(w_0[120], 34, 2)", "scales index 120 of w_0 reaches 120 (+36), past its 136 elements"},
		{"scales of the arena", sc, "scales(arena[(n12 * 68)], 34, 2)", "only block-format weights hold f16 scales"},
		{"local past the end", "bcast(dwdx16[b21])", "bcast(dwdx16[(15 + b21)])", "load index (15 + b21) of dwdx16 reaches 16, past its 16 elements"},
		{"empty local", "buffer dwdx16 local [16]", "buffer dwdx16 local [0]", "local buffer dwdx16 has 0 elements"},
		{"dotu8 of q4_0", "buffer w_0 weight #0 q8_0 [136]", "buffer w_0 weight #0 q4_0 [136]", "not a weight of q8_0 quants"},
	})
	// The program as lowered verifies: its local stores race nothing.
	if err := Verify(intDotProgram(t, wformat.Q8_0, 2, 40, 2, true)); err != nil {
		t.Fatal(err)
	}
}

// mutation is one case of verifyMutations: replacing from with to in a
// printed program makes parsing or verifying it fail with want.
type mutation struct{ name, from, to, want string }

// verifyMutations checks each mutation of text with verifyMutation.
func verifyMutations(t *testing.T, text string, ms []mutation) {
	t.Helper()
	for _, m := range ms {
		verifyMutation(t, text, m.name, m.from, m.to, m.want)
	}
}

// verifyMutation replaces from with to in a printed program, once, and
// checks that parsing or verifying the result fails with want.
func verifyMutation(t *testing.T, text, name, from, to, want string) {
	t.Helper()
	if !strings.Contains(text, from) {
		t.Fatalf("%s: no %q in\n%s", name, from, text)
	}
	bad, err := Parse(strings.Replace(text, from, to, 1))
	if err == nil {
		err = Verify(bad)
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: got %v, want %q", name, err, want)
	}
}

// TestVerifyPairs: a pair of blocks (DotI8.Pair) reads the next block's
// weight quants and 32 more input bytes, which must be in bounds, and
// takes Q8_0 or Q4_0 quants only; halves takes two f32s.
func TestVerifyPairs(t *testing.T) {
	text := Print(intDotProgramWith(t, wformat.Q8_0, 8, 64, 2, Options{IntDot: true, VNNI: true, Wide: true}))
	verifyMutations(t, text, []mutation{
		{"second block past the end", "dotu8x2(w_0[(((n9 * 68) + (b30 * 34)) + 2)]", "dotu8x2(w_0[104]", "reaches 104 (+66), past its 136 elements"},
		{"input past the end", "scratch[(((s10 * 2) + b30) * 32)]), halves", "scratch[4000]), halves", "reaches 4000 (+64)"},
		{"halves of a vector", "halves(dwdx64[b30]", "halves(bcast(1f)", "operand bcast(1f) is f32x8, not f32"},
	})
	if err := Verify(intDotProgramWith(t, wformat.Q8_0, 8, 64, 2, Options{IntDot: true, VNNI: true, Wide: true})); err != nil {
		t.Fatal(err)
	}
}
