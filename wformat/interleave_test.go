package wformat

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestInterleave: the interleaved layout holds each row's scale and quants
// where its comment says (Q4_0's read back through Q4_0Nibble), it
// round-trips, and shapes and formats it cannot hold are errors.
func TestInterleave(t *testing.T) {
	const rows, cols = 32, 72 // two groups; three blocks a row, the last padded
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, rows*cols)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	for _, f := range []Format{Q4_0, Q8_0} {
		plain, err := Quantize(f, rows, cols, data)
		if err != nil {
			t.Fatal(err)
		}
		packed, err := Interleave(f, rows, cols, plain)
		if err != nil {
			t.Fatal(err)
		}
		nb, bb, gb := f.Blocks(cols), f.BlockBytes(), f.GroupBytes()
		for row := range rows {
			for b := range nb {
				blk := plain[(row*nb+b)*bb:]
				g, c := row/Group, row%Group
				grp := packed[(g*nb+b)*gb:]
				if !bytes.Equal(grp[2*c:2*c+2], blk[:2]) {
					t.Fatalf("%s row %d block %d: scale", f, row, b)
				}
				for k := range 32 {
					off, sh := k, uint(0)
					if f == Q4_0 {
						off, sh = Q4_0Nibble(k)
					}
					want := blk[2+off] >> sh
					got := grp[GroupQuants+64*(off/4)+4*c+off%4] >> sh
					if f == Q4_0 {
						want, got = want&15, got&15
					}
					if got != want {
						t.Fatalf("%s row %d block %d quant %d: %d, want %d", f, row, b, k, got, want)
					}
				}
			}
		}
		back, err := Deinterleave(f, rows, cols, packed)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back, plain) {
			t.Fatalf("%s: the layout does not round-trip", f)
		}
		if _, err := Interleave(f, rows-1, cols, plain[:f.Bytes(rows-1, cols)]); err == nil {
			t.Fatalf("%s: 31 rows interleaved in groups of 16", f)
		}
		if _, err := Interleave(f, rows, cols, plain[1:]); err == nil {
			t.Fatalf("%s: a short tensor interleaved", f)
		}
	}
	if _, err := Interleave(Q4_K, 16, 256, make([]byte, Q4_K.Bytes(16, 256))); err == nil {
		t.Fatal("q4_k rows interleaved")
	}
	if Q4_0.GroupBytes() != 288 || Q8_0.GroupBytes() != 544 || Q4_0.GroupChunks() != 4 || Q8_0.GroupChunks() != 8 {
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
