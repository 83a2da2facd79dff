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
	if Q4_0.BlockElems() != 32 || Q4_0.BlockBytes() != 18 || !Q4_0.Blocked() || Q4_0.RowBytes(172) != 6*18 {
		t.Fatal("Q4_0 is 32 weights in 18 bytes, 172-wide rows six blocks")
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

// TestQ4_0Layout builds a block whose weights are exact multiples of a
// scale and checks its bytes against llama.cpp's layout, written out here
// on its own: the float16 scale d = max/-8 (the largest magnitude is
// -4, so d = 0.5), then byte k = q[k] | q[k+16]<<4; and that Dequantize
// gives the weights back exactly.
func TestQ4_0Layout(t *testing.T) {
	var q [32]int
	x := make([]float32, 32)
	for j := range q {
		q[j] = (j*7 + 3 + j/16*5) % 16 // the high nibbles differ from the low
		if j == 5 {
			q[j] = 0 // -4, the largest magnitude: it sets d
		}
		if q[j] == 0 && j != 5 {
			q[j] = 1
		}
		x[j] = 0.5 * float32(q[j]-8)
	}
	got, err := Quantize(Q4_0, 1, 32, x)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x00, 0x38} // float16 0.5, little-endian
	for k := range 16 {
		want = append(want, byte(q[k]|q[k+16]<<4))
	}
	if string(got) != string(want) {
		t.Fatalf("block bytes\n got % x\nwant % x", got, want)
	}
	back, err := Dequantize(Q4_0, 1, 32, got)
	if err != nil {
		t.Fatal(err)
	}
	for j := range x {
		if back[j] != x[j] {
			t.Fatalf("weight %d: %g, want %g", j, back[j], x[j])
		}
	}
}

// TestQ4_0RoundTrip checks Q4_0's error bound on a 172-wide row (five
// whole blocks and a 12-weight tail): half a step of the block's scale,
// a whole step for a weight of the opposite sign to the largest one at
// nearly its magnitude (quant 16 is clamped to 15); a block of zeros
// stays zeros; padding weights are quant 8 (weight 0).
func TestQ4_0RoundTrip(t *testing.T) {
	rows, cols := 4, 172
	data := make([]float32, rows*cols)
	for i := range data {
		data[i] = float32(math.Sin(float64(i)*0.37)) * float32(1+i%7)
	}
	for c := 32; c < 64; c++ {
		data[3*cols+c] = 0
	}
	q, err := Quantize(Q4_0, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	rb := 6 * 18
	if len(q) != rows*rb {
		t.Fatalf("%d bytes, want %d", len(q), rows*rb)
	}
	back, err := Dequantize(Q4_0, rows, cols, q)
	if err != nil {
		t.Fatal(err)
	}
	for r := range rows {
		for b := 0; b*32 < cols; b++ {
			amax := 0.0
			for c := b * 32; c < min(cols, b*32+32); c++ {
				amax = max(amax, math.Abs(float64(data[r*cols+c])))
			}
			step := amax / 8
			for c := b * 32; c < min(cols, b*32+32); c++ {
				x, y := float64(data[r*cols+c]), float64(back[r*cols+c])
				bound := step*0.5 + amax*1e-3
				if x != 0 && math.Abs(x) > 7.5*step && !sameSignAsMax(data[r*cols+b*32:r*cols+min(cols, b*32+32)], x) {
					bound = step + amax*1e-3
				}
				if math.Abs(x-y) > bound {
					t.Fatalf("row %d col %d: %g back as %g (step %g)", r, c, x, y, step)
				}
			}
		}
		for j := 172 % 32; j < 32; j++ {
			if n := q[r*rb+5*18+2+j%16] >> (j / 16 * 4) & 0xf; n != 8 {
				t.Fatalf("row %d: padding weight %d has quant %d, want 8", r, j, n)
			}
		}
	}
	for c := 32; c < 64; c++ {
		if back[3*cols+c] != 0 {
			t.Fatalf("a block of zeros comes back as %g at %d", back[3*cols+c], c)
		}
	}
	if _, err := Dequantize(Q4_0, rows, cols, q[1:]); err == nil {
		t.Fatal("Dequantize takes a short buffer")
	}
}

// sameSignAsMax reports whether x has the sign of the element of largest
// magnitude of blk (the one that sets the scale).
func sameSignAsMax(blk []float32, x float64) bool {
	m := float32(0)
	for _, v := range blk {
		if math.Abs(float64(v)) > math.Abs(float64(m)) {
			m = v
		}
	}
	return (m < 0) == (x < 0)
}

// TestBF16Rounding checks bfloat16 narrowing: exact values stay, halfway
// cases go to the even neighbour, others to the nearest, overflow to
// infinity, NaN stays NaN; and Round widens back what a 16-bit KV cache
// reads.
func TestBF16Rounding(t *testing.T) {
	for h := range 1 << 16 {
		f := BF16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			if !math.IsNaN(float64(BF16ToF32(F32ToBF16(f)))) {
				t.Fatalf("NaN %#04x does not stay NaN", h)
			}
			continue
		}
		if back := F32ToBF16(f); back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
	for _, c := range []struct {
		bits uint32
		want uint16
	}{
		{0x3f808000, 0x3f80}, // 1 + 2^-8: halfway, to even (down)
		{0x3f818000, 0x3f82}, // 1 + 3·2^-8: halfway, to even (up)
		{0x3f808001, 0x3f81}, // just above halfway: up
		{0x3f807fff, 0x3f80}, // just below: down
		{0x7f7fffff, 0x7f80}, // the largest float32: infinity
		{0x80000001, 0x8000}, // the smallest negative subnormal: -0
		{0xff800000, 0xff80}, // -inf
	} {
		if got := BF16FromBits(c.bits); got != c.want {
			t.Errorf("BF16FromBits(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
		}
	}
}

// TestF16FromBits checks that the integer narrowing the Go backend's
// vector kernels use is F32ToF16, on every exponent and on the bits that
// decide rounding.
func TestF16FromBits(t *testing.T) {
	for e := range uint32(256) {
		for _, m := range []uint32{0, 1, 0xfff, 0x1000, 0x1001, 0x2000, 0x3000, 0x7fe000, 0x7ff000, 0x7fffff, 0x400000, 0x12345} {
			for _, s := range []uint32{0, 1 << 31} {
				b := s | e<<23 | m
				if got, want := F16FromBits(b), F32ToF16(math.Float32frombits(b)); got != want {
					t.Fatalf("F16FromBits(%#08x) = %#04x, F32ToF16 %#04x", b, got, want)
				}
			}
		}
	}
	if got := Round(F16, 65520); !math.IsInf(float64(got), 1) {
		t.Errorf("65520 in f16 is %g, want +Inf (halfway to 2^16 rounds to even: infinity)", got)
	}
	if got := Round(F16, 1+1.0/2048); got != 1 {
		t.Errorf("1 + 2^-11 in f16 is %g, want 1 (halfway, to even)", got)
	}
	if got := Round(F16, 6e-8); got != 0x1p-24 {
		t.Errorf("6e-8 in f16 is %g, want the smallest subnormal 2^-24", got)
	}
	if got := Round(F32, 1.1); got != 1.1 {
		t.Errorf("Round(F32) changed 1.1 to %g", got)
	}
	for _, name := range []string{"f32", "f16", "bf16"} {
		if f, err := ParseKV(name); err != nil || f.String() != name {
			t.Errorf("ParseKV(%q) = %v, %v", name, f, err)
		}
	}
	if _, err := ParseKV("q8_0"); err == nil {
		t.Error("ParseKV accepts q8_0")
	}
}
