package kir

import (
	"math"
	"strings"
	"testing"

	"github.com/llmc-dev/llmc/wformat"
)

// blockFormats are the block formats lowering reads, with the loads their
// kernels must print.
var blockFormats = []struct {
	f     wformat.Format
	loads []string
}{
	{wformat.Q8_0, []string{"load8i8 w_0[", "loadf16 w_0["}},
	{wformat.Q4_0, []string{"load8u4lo w_0[", "load8u4hi w_0[", "loadf16 w_0["}},
	{wformat.Q4_K, []string{"load8u4lo w_0[", "load8u4hi w_0[", "loadf16 w_0[", "loadu8 w_0["}},
}

// blockProgram lowers one linear in block format f, y[rows, out] =
// x[rows, in]·wᵀ, with x at arena[0] and y after it, through linearBlocks
// itself (linearQ4K for Q4_K).
func blockProgram(t *testing.T, f wformat.Format, rows, in, out int) *Program {
	t.Helper()
	ref := &WeightRef{Name: "w", Rows: out, Cols: in, Format: f}
	l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, arena: &Buffer{Name: "arena", Kind: Arena}}
	l.e = &Entry{Name: "step", Seq: rows, ArenaLen: rows*in + rows*out}
	l.length = I(rows) // every row real
	l.arena.Len = l.e.ArenaLen
	l.k = &Kernel{Name: "step_k0_matmul", Kind: "matmul"}
	w := contiguous(&Buffer{Name: "w_0", Kind: Weight, Len: ref.Bytes(), Format: f}, I(0), []int{out, in})
	x := contiguous(l.arena, I(0), []int{rows, in})
	y := contiguous(l.arena, I(rows*in), []int{rows, out})
	lower := l.linearBlocks
	if f == wformat.Q4_K {
		lower = l.linearQ4K
	}
	if err := lower(x, w, y, nil, nil); err != nil {
		t.Fatal(err)
	}
	return finishBlockProgram(t, l, I(rows*in), []int{rows, out})
}

func finishBlockProgram(t *testing.T, l *lowerer, out Expr, shape []int) *Program {
	t.Helper()
	l.e.Kernels = []*Kernel{l.k}
	l.e.Output, l.e.OutOffset, l.e.OutShape = l.arena, out, shape
	l.prog.Entries = []*Entry{l.e}
	if err := Verify(l.prog); err != nil {
		t.Fatalf("lowering made invalid kernel IR: %v\n%s", err, Print(l.prog))
	}
	text := Print(l.prog)
	back, err := Parse(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if Print(back) != text {
		t.Fatalf("the text form does not round-trip:\n%s", text)
	}
	return back
}

// testWeights are out × in weights of varied magnitude, quantized to f,
// and their dequantised values.
func testWeights(t *testing.T, f wformat.Format, out, in int) ([]byte, []float32) {
	t.Helper()
	wf := make([]float32, out*in)
	for i := range wf {
		wf[i] = float32(math.Sin(float64(i)*1.3)) * float32(1+i%5)
	}
	q, err := wformat.Quantize(f, out, in, wf)
	if err != nil {
		t.Fatal(err)
	}
	deq, err := wformat.Dequantize(f, out, in, q)
	if err != nil {
		t.Fatal(err)
	}
	return q, deq
}

// TestLinearBlocks runs the block-format matrix-vector (rows 1) and
// matrix-matrix lowering on Machine against x·dequantize(w)ᵀ, for each
// format, for rows of whole blocks, a vector tail, a scalar tail (172:
// stories260K's FFN width, padded to six blocks) and a tail past Q4_0's
// low nibbles (56 = 32 + 24), for Q4_K whole and short blocks (300 =
// 256 + 44, 512), and checks that the text form round-trips.
func TestLinearBlocks(t *testing.T) {
	for _, bf := range blockFormats {
		for _, in := range []int{32, 45, 56, 172, 300, 512} {
			for _, rows := range []int{1, 3} {
				const out = 5
				p := blockProgram(t, bf.f, rows, in, out)
				text := Print(p)
				for _, ld := range append(bf.loads, "weight #0 w "+bf.f.String()+"[5, ") {
					if bf.f == wformat.Q4_K && in <= 32 && strings.Contains(ld, "u4hi") {
						continue // one sub-block: the low nibbles only
					}
					if !strings.Contains(text, ld) {
						t.Fatalf("%s in %d: no %q:\n%s", bf.f, in, ld, text)
					}
				}
				q, deq := testWeights(t, bf.f, out, in)
				m := NewMachine(p, [][]float32{nil})
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
							t.Fatalf("%s in %d rows %d: y[%d, %d] = %g, want %g", bf.f, in, rows, s, n, got[s*out+n], want)
						}
					}
				}
			}
		}
	}
}

// TestEmbeddingBlocks runs the block-format embedding lookup on Machine:
// each token's row is its dequantised row, for rows of whole blocks and
// rows ending in a part of a block (Q4_0: within its low nibbles, and past
// them).
func TestEmbeddingBlocks(t *testing.T) {
	for _, bf := range blockFormats {
		for _, dim := range []int{32, 44, 172, 300} {
			const vocab, seq = 7, 3
			ref := &WeightRef{Name: "emb", Rows: vocab, Cols: dim, Format: bf.f}
			l := &lowerer{prog: &Program{Weights: []*WeightRef{ref}}, arena: &Buffer{Name: "arena", Kind: Arena}}
			l.tokens = &Buffer{Name: "tokens", Kind: Tokens, Len: seq}
			l.e = &Entry{Name: "step", Seq: seq, ArenaLen: seq * dim}
			l.length = I(seq) // every row real
			l.arena.Len = l.e.ArenaLen
			l.k = &Kernel{Name: "step_k0_embedding", Kind: "embedding"}
			w := contiguous(&Buffer{Name: "w_0", Kind: Weight, Len: ref.Bytes(), Format: bf.f}, I(0), []int{vocab, dim})
			lower := l.embeddingBlocks
			if bf.f == wformat.Q4_K {
				lower = l.embeddingQ4K
			}
			if err := lower(contiguous(l.arena, I(0), []int{seq, dim}), w); err != nil {
				t.Fatal(err)
			}
			p := finishBlockProgram(t, l, I(0), []int{seq, dim})
			q, deq := testWeights(t, bf.f, vocab, dim)
			m := NewMachine(p, [][]float32{nil})
			m.Blocks = [][]byte{q}
			toks := []int32{6, 0, 3}
			got, err := m.Run("step", toks, 0, seq)
			if err != nil {
				t.Fatal(err)
			}
			for s, id := range toks {
				for c := range dim {
					if g, want := got[s*dim+c], deq[int(id)*dim+c]; g != want {
						t.Fatalf("%s dim %d: token %d element %d = %g, want %g", bf.f, dim, id, c, g, want)
					}
				}
			}
		}
	}
}

// TestVerifyBlockLoads: a block-format weight is read only by LoadQ, LoadQ
// only reads block-format weights, within their bytes, and only the parts
// their format's blocks hold.
func TestVerifyBlockLoads(t *testing.T) {
	for _, c := range []struct {
		name string
		f    wformat.Format
		want string
	}{
		{"element load", wformat.Q8_0, "element load from q8_0 weight w_0"},
		{"past the end", wformat.Q8_0, "past its"},
		{"nibbles of q8_0", wformat.Q8_0, "a q8_0 block holds no u4lo"},
		{"int8 of q4_0", wformat.Q4_0, "a q4_0 block holds no i8"},
		{"vector scale", wformat.Q4_0, "scales and packed bytes load one at a time"},
		{"nibbles past the end", wformat.Q4_0, "past its"},
	} {
		p := blockProgram(t, c.f, 1, 32, 2)
		text := Print(p)
		switch c.name {
		case "element load":
			text = strings.Replace(text, "loadf16 w_0[", "w_0[", 1)
		case "past the end":
			text = strings.Replace(text, "loadf16 w_0[((n1 * 34) + (b5 * 34))]", "loadf16 w_0[(((n1 * 34) + (b5 * 34)) + 40)]", 1)
		case "nibbles of q8_0":
			text = strings.Replace(text, "load8i8 w_0[", "load8u4lo w_0[", 1)
		case "int8 of q4_0":
			text = strings.Replace(text, "load8u4lo w_0[", "load8i8 w_0[", 1)
		case "nibbles past the end":
			// Row 1's high nibbles 24..31 read 8 bytes from byte 2+8 of its
			// block: moved 12 bytes on, the last is past the weight's 36.
			text = strings.Replace(text, "load8u4hi w_0[(((n1 * 18) + (b5 * 18)) + 10)]", "load8u4hi w_0[(((n1 * 18) + (b5 * 18)) + 22)]", 1)
		}
		bad, err := Parse(text)
		if err == nil && c.name == "vector scale" {
			// No text names it: the scale load is made a vector in place.
			Walk(bad.Entries[0].Kernels[0].Phases[0].Body, func(e Expr) {
				if l, ok := e.(*LoadQ); ok && l.Part == QF16 {
					l.Vec = true
				}
			}, nil)
		}
		if err == nil {
			err = Verify(bad)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: got %v, want %q\n%s", c.name, err, c.want, text)
		}
	}
}
