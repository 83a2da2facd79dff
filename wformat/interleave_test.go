package wformat

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestInterleave: the interleaved layout holds each row's scales and
// quants where its comment says (the nibbles read back through Q4_0Nibble
// and Q4_KNibble), it round-trips, and shapes and formats it cannot hold
// are errors.
func TestInterleave(t *testing.T) {
	const rows = 32 // two groups
	r := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		f    Format
		cols int
	}{
		{Q4_0, 72}, {Q8_0, 72}, // three blocks a row, the last padded
		{Q4_K, 512}, {Q4_K, 256 + 172}, {Q4_K, 64}, // a partial block of three pairs of sub-blocks, one of one
	} {
		f, cols := c.f, c.cols
		data := make([]float32, rows*cols)
		for i := range data {
			data[i] = float32(r.NormFloat64())
		}
		plain, err := Quantize(f, rows, cols, data)
		if err != nil {
			t.Fatal(err)
		}
		packed, err := Interleave(f, rows, cols, plain)
		if err != nil {
			t.Fatal(err)
		}
		rb, bb := f.RowBytes(cols), f.BlockBytes()
		for row := range rows {
			for b := range f.Blocks(cols) {
				blk := plain[row*rb+b*bb:]
				g, c := row/Group, row%Group
				grp := packed[g*Group*rb+b*Group*bb:]
				if !bytes.Equal(grp[2*c:2*c+2], blk[:2]) {
					t.Fatalf("%s row %d block %d: scale", f, row, b)
				}
				quant := func(k int) (want, got byte) {
					switch f {
					case Q4_0:
						off, sh := Q4_0Nibble(k)
						return blk[2+off] >> sh & 15, grp[GroupQuants+64*(off/4)+4*c+off%4] >> sh & 15
					case Q4_K:
						off, sh := Q4_KNibble(k)
						return blk[Q4_KQuants+off] >> sh & 15, grp[Q4_KGroupQuants+64*(off/4)+4*c+off%4] >> sh & 15
					}
					return blk[2+k], grp[GroupQuants+64*(k/4)+4*c+k%4]
				}
				n := f.BlockElems()
				if f == Q4_K {
					if !bytes.Equal(grp[Q4_KGroupMin+2*c:][:2], blk[Q4_KMin:][:2]) {
						t.Fatalf("%s row %d block %d: min", f, row, b)
					}
					for k := range 12 {
						if grp[Q4_KGroupScales+16*k+c] != blk[Q4_KScales+k] {
							t.Fatalf("%s row %d block %d: scale byte %d", f, row, b, k)
						}
					}
					n = min(n, (cols-b*256+63)/64*64) // the pairs of sub-blocks stored
				}
				for k := range n {
					if want, got := quant(k); got != want {
						t.Fatalf("%s [%d, %d] row %d block %d quant %d: %d, want %d", f, rows, cols, row, b, k, got, want)
					}
				}
			}
		}
		back, err := Deinterleave(f, rows, cols, packed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, plain) {
			t.Fatalf("%s [%d, %d]: the layout does not round-trip", f, rows, cols)
		}
		if _, err := Interleave(f, rows-1, cols, plain[:f.Bytes(rows-1, cols)]); err == nil {
			t.Fatalf("%s: 31 rows interleaved in groups of 16", f)
		}
		if _, err := Interleave(f, rows, cols, plain[1:]); err == nil {
			t.Fatalf("%s: a short tensor interleaved", f)
		}
	}
	if _, err := Interleave(F16, 16, 32, make([]byte, F16.Bytes(16, 32))); err == nil {
		t.Fatal("f16 rows interleaved")
	}
	if Q4_0.GroupBytes() != 288 || Q8_0.GroupBytes() != 544 || Q4_K.GroupBytes() != 2304 ||
		Q4_0.GroupChunks() != 4 || Q8_0.GroupChunks() != 8 || Q4_K.GroupChunks() != 32 {
		t.Fatal("group sizes")
	}
}

// BenchmarkInterleave moves a TinyLlama MLP projection's rows (5632 ×
// 2048), which the loader does for every such weight.
func BenchmarkInterleave(b *testing.B) {
	const rows, cols = 5632, 2048
	src := make([]byte, Q4_0.Bytes(rows, cols))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Interleave(Q4_0, rows, cols, src); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInterleaveTo is BenchmarkInterleave into memory already
// faulted in: the moves alone, for each interleaving format.
func BenchmarkInterleaveTo(b *testing.B) {
	const rows, cols = 5632, 2048
	for _, f := range []Format{Q4_0, Q8_0, Q4_K} {
		b.Run(f.String(), func(b *testing.B) {
			src := make([]byte, f.Bytes(rows, cols))
			dst := make([]byte, len(src))
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if err := InterleaveTo(f, rows, cols, dst, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
