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
func intDotProgram(t *testing.T, f wformat.Format, rows, in, out int) *Program {
	t.Helper()
	ref := &WeightRef{Name: "w", Rows: out, Cols: in, Format: f}
	l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, arena: &Buffer{Name: "arena", Kind: Arena},
		scratch: &Buffer{Name: "scratch", Kind: Scratch}, opts: Options{IntDot: true}}
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

// quantOf is weight k of a Q8_0 or Q4_0 block as the integer it stands
// for: the int8, or the nibble minus 8.
func quantOf(f wformat.Format, blk []byte, k int) int32 {
	if f == wformat.Q4_0 {
		off, sh := wformat.Q4_0Nibble(k)
		return int32(blk[wformat.Q4_0Quants+off]>>sh&15) - wformat.Q4_0Zero
	}
	return int32(int8(blk[wformat.Q8_0Quants+k]))
}

// TestLinearQ8Int runs the integer-dot Q8_0 and Q4_0 lowering on Machine
// against its definition: x quantised per block of 32 (d = max|x|/127, q =
// round(x/d)), y = Σ_blocks d_w·d_x·Σ q_w·q_x, for rows of whole blocks,
// tails (172: stories260K's FFN width), column counts of each tile size,
// and checks it is close to x·dequantize(w)ᵀ and that the text
// round-trips.
func TestLinearQ8Int(t *testing.T) {
	for _, f := range []wformat.Format{wformat.Q8_0, wformat.Q4_0} {
		testLinearIntDot(t, f)
	}
}

func testLinearIntDot(t *testing.T, f wformat.Format) {
	dot := "doti8(w_0["
	if f == wformat.Q4_0 {
		dot = "doti4(w_0["
	}
	for _, in := range []int{32, 45, 64, 172} {
		for _, rows := range []int{1, 3, 8} {
			for _, out := range []int{4, 5} {
				p := intDotProgram(t, f, rows, in, out)
				text := Print(p)
				if _, err := Parse(text); err != nil {
					t.Fatalf("%s in %d: the text does not parse back: %v", f, in, err)
				}
				for _, want := range []string{dot, "store8i8 scratch[", "loadf16 w_0["} {
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
				nb := (in + 31) / 32
				for s := range rows {
					// The reference quantisation of row s.
					qx := make([]int8, nb*32)
					dx := make([]float32, nb)
					for b := range nb {
						var amax float32
						for k := b * 32; k < min(in, b*32+32); k++ {
							amax = max(amax, float32(math.Abs(float64(x[s*in+k]))))
						}
						dx[b] = amax / 127
						var id float32
						if amax > 0 {
							id = 127 / amax
						}
						for k := b * 32; k < min(in, b*32+32); k++ {
							qx[k] = int8(math.RoundToEven(float64(x[s*in+k] * id)))
						}
					}
					for n := range out {
						var want, float, bound float64
						for b := range nb {
							bb := f.BlockBytes()
							blk := q[n*nb*bb+b*bb:]
							dw := wformat.F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
							var sum int32
							for k := range 32 {
								sum += quantOf(f, blk, k) * int32(qx[b*32+k])
							}
							want += float64(dw*dx[b]) * float64(sum)
						}
						for k := range in {
							float += float64(x[s*in+k]) * float64(deq[n*in+k])
							// Each quant of x is off by at most half a step.
							bound += math.Abs(float64(deq[n*in+k])) * float64(dx[k/32]) / 2
						}
						g := float64(got[s*out+n])
						if d := math.Abs(g - want); d > 1e-5*(1+math.Abs(want)) {
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

// TestQuantI8 pins StoreI8's rounding and clamping.
func TestQuantI8(t *testing.T) {
	for _, c := range []struct {
		x    float32
		want int8
	}{{0, 0}, {0.5, 0}, {1.5, 2}, {2.5, 2}, {-2.5, -2}, {-0.49, 0}, {126.6, 127}, {127.4, 127}, {300, 127}, {-128, -127},
		{float32(math.Inf(-1)), -127}, {float32(math.Inf(1)), 127}, {float32(math.NaN()), -127}} {
		if got := QuantI8(c.x); got != c.want {
			t.Errorf("QuantI8(%g) = %d, want %d", c.x, got, c.want)
		}
	}
}

// TestVerifyIntDot: doti8 reads a Q8_0 weight and scratch within their
// bytes, storei8 writes scratch only, within its bytes, from floats, and
// the text form says which (storei8 or store8i8).
func TestVerifyIntDot(t *testing.T) {
	const dot = "doti8(w_0[(((n12 * 68) + (b15 * 34)) + 2)], scratch[(b15 * 32)])"
	const st = "store8i8 scratch[(((s1 * 2) + 1) * 32)] = (xv9 * bcast(id11))"
	for _, c := range []struct{ name, from, to, want string }{
		{"weight past the end", dot, "doti8(w_0[(((n12 * 68) + (b15 * 34)) + 100)], scratch[(b15 * 32)])", "doti8 index (((n12 * 68) + (b15 * 34)) + 100) of w_0 reaches 168 (+32), past its 136 elements"},
		{"scratch past the end", dot, "doti8(w_0[(((n12 * 68) + (b15 * 34)) + 2)], scratch[((b15 * 32) + 70)])", "reaches 70 (+32), past its 96 bytes"},
		{"x not scratch", dot, "doti8(w_0[(((n12 * 68) + (b15 * 34)) + 2)], arena[(b15 * 32)])", "its second operand arena is a arena buffer, not the scratch that storei8 writes"},
		{"w not a weight", dot, "doti8(scratch[(b15 * 32)], scratch[(b15 * 32)])", "its first operand scratch is a f32 scratch buffer, not a weight of int8 quants"},
		{"offset type", dot, "doti8(w_0[1f], scratch[(b15 * 32)])", "offset 1f is f32, not int"},
		{"store past the end", st, "store8i8 scratch[(((s1 * 2) + 1) * 90)] = (xv9 * bcast(id11))", "storei8 index (((s1 * 2) + 1) * 90) of scratch reaches 90 (+8), past its 96 bytes"},
		{"store to the arena", st, "store8i8 arena[(((s1 * 2) + 1) * 32)] = (xv9 * bcast(id11))", "storei8 to arena buffer arena: int8s are stored to scratch only"},
		{"store of an int", st, "storei8 scratch[(((s1 * 2) + 1) * 32)] = s1", "quantised value s1 is int, not f32 or f32x8"},
		{"store8i8 of a scalar", st, "store8i8 scratch[(((s1 * 2) + 1) * 32)] = id11", "store8i8 of a f32 value"},
		{"prefetch of the arena", "prefetch w_0[", "prefetch arena[", "prefetch of arena buffer arena: only weights are prefetched"},
		{"prefetch offset", "prefetch w_0[(((n12 * 68) + (b15 * 34)) + 2048)]", "prefetch w_0[1f]", "offset 1f is f32, not int"},
		{"storei8 of a vector", st, "storei8 scratch[(((s1 * 2) + 1) * 32)] = bcast(id11)", "storei8 of a f32x8 value"},
	} {
		text := Print(intDotProgram(t, wformat.Q8_0, 1, 40, 2))
		if !strings.Contains(text, c.from) {
			t.Fatalf("%s: no %q in\n%s", c.name, c.from, text)
		}
		bad, err := Parse(strings.Replace(text, c.from, c.to, 1))
		if err == nil {
			err = Verify(bad)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}

// TestVerifyIntDot4: doti4 reads a Q4_0 weight's 16 bytes of nibbles, and
// neither form reads the other format's blocks.
func TestVerifyIntDot4(t *testing.T) {
	q4 := Print(intDotProgram(t, wformat.Q4_0, 1, 40, 2))
	q8 := Print(intDotProgram(t, wformat.Q8_0, 1, 40, 2))
	// The first block's dot: (((n * 36) + (b * 18)) + 2) for a loop's b.
	dot := regexp.MustCompile(`doti4\(w_0\[[^\]]*\+ 2\)\], scratch\[[^\]]*\]\)`).FindString(q4)
	if dot == "" {
		t.Fatalf("no doti4 of a first block in\n%s", q4)
	}
	for _, c := range []struct{ name, text, from, to, want string }{
		{"nibbles past the end", q4, dot, strings.Replace(dot, "+ 2)]", "+ 60)]", 1), "(+16), past its 72 elements"},
		{"doti8 of q4_0", q4, dot, strings.Replace(dot, "doti4", "doti8", 1), "not a weight of int8 quants"},
		{"doti4 of q8_0", q8, "doti8(", "doti4(", "not a weight of 4-bit quants"},
	} {
		if !strings.Contains(c.text, c.from) {
			t.Fatalf("%s: no %q in\n%s", c.name, c.from, c.text)
		}
		bad, err := Parse(strings.Replace(c.text, c.from, c.to, 1))
		if err == nil {
			err = Verify(bad)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		}
	}
}
