package wformat

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestInterleaveQ4_0: the interleaved layout holds each row's scale and
// quants where its comment says (read back through Q4_0Nibble), it
// round-trips, and shapes it cannot hold are errors.
func TestInterleaveQ4_0(t *testing.T) {
	const rows, cols = 32, 72 // two groups; three blocks a row, the last padded
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, rows*cols)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	plain, err := Quantize(Q4_0, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := InterleaveQ4_0(rows, cols, plain)
	if err != nil {
		t.Fatal(err)
	}
	nb := Q4_0.Blocks(cols)
	for row := range rows {
		for b := range nb {
			blk := plain[(row*nb+b)*18:]
			g, c := row/Q4_0Group, row%Q4_0Group
			grp := packed[(g*nb+b)*Q4_0GroupBytes:]
			if !bytes.Equal(grp[2*c:2*c+2], blk[:2]) {
				t.Fatalf("row %d block %d: scale", row, b)
			}
			for k := range 32 {
				off, sh := Q4_0Nibble(k)
				want := blk[Q4_0Quants+off] >> sh & 15
				chunk := off / 4
				got := grp[Q4_0GroupQuants+64*chunk+4*c+off%4] >> sh & 15
				if got != want {
					t.Fatalf("row %d block %d quant %d: %d, want %d", row, b, k, got, want)
				}
			}
		}
	}
	back, err := DeinterleaveQ4_0(rows, cols, packed)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, plain) {
		t.Fatal("the layout does not round-trip")
	}
	if _, err := InterleaveQ4_0(rows-1, cols, plain[:Q4_0.Bytes(rows-1, cols)]); err == nil {
		t.Fatal("31 rows interleaved in groups of 16")
	}
	if _, err := InterleaveQ4_0(rows, cols, plain[1:]); err == nil {
		t.Fatal("a short tensor interleaved")
	}
}

// BenchmarkInterleaveQ4_0 moves a TinyLlama MLP projection's rows
// (5632 × 2048), which the loader does for every such weight.
func BenchmarkInterleaveQ4_0(b *testing.B) {
	const rows, cols = 5632, 2048
	src := make([]byte, Q4_0.Bytes(rows, cols))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := InterleaveQ4_0(rows, cols, src); err != nil {
			b.Fatal(err)
		}
	}
}
