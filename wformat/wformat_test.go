package wformat

import (
	"math"
	"testing"
)

func TestBlockFacts(t *testing.T) {
	if Q8_0.BlockElems() != 32 || Q8_0.BlockBytes() != 34 || !Q8_0.Blocked() || F32.Blocked() {
		t.Fatal("Q8_0 is 32 weights in 34 bytes")
	}
	if got := Q8_0.RowBytes(172); got != 6*34 {
		t.Fatalf("a 172-wide row takes %d bytes, want six blocks (204)", got)
	}
	for _, f := range Formats() {
		g, err := Parse(f.String())
		if err != nil || g != f {
			t.Fatalf("%s does not parse back: %v", f, err)
		}
	}
}

func TestF16(t *testing.T) {
	for h := range 1 << 16 {
		f := F16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		if back := F32ToF16(f); back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
	if F32ToF16(1.0/3) != 0x3555 {
		t.Fatalf("1/3 rounds to %#04x, want 0x3555", F32ToF16(1.0/3))
	}
}

// TestQ8_0RoundTrip checks the error bound of Q8_0 (half a quantisation
// step of each block's scale) and that padding of a short row is zeros.
func TestQ8_0RoundTrip(t *testing.T) {
	rows, cols := 3, 172
	data := make([]float32, rows*cols)
	for i := range data {
		data[i] = float32(math.Sin(float64(i)*0.37)) * float32(1+i%7)
	}
	q, err := Quantize(Q8_0, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != rows*204 {
		t.Fatalf("%d bytes", len(q))
	}
	back, err := Dequantize(Q8_0, rows, cols, q)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		for b := 0; b*32 < cols; b++ {
			amax := 0.0
			for c := b * 32; c < min(cols, b*32+32); c++ {
				amax = max(amax, math.Abs(float64(data[r*cols+c])))
			}
			for c := b * 32; c < min(cols, b*32+32); c++ {
				if d := math.Abs(float64(back[r*cols+c] - data[r*cols+c])); d > amax/127*0.51+amax*1e-3 {
					t.Fatalf("row %d col %d: %g vs %g", r, c, back[r*cols+c], data[r*cols+c])
				}
			}
		}
		for j := 172 % 32; j < 32; j++ {
			if q[r*204+5*34+2+j] != 0 {
				t.Fatalf("row %d: padding quant %d is %d", r, j, q[r*204+5*34+2+j])
			}
		}
	}
}
