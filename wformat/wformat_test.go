package wformat

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBlockFacts(t *testing.T) {
	for _, c := range []struct {
		f              Format
		name           string
		elems, bytes   int
		row172, row768 int
		blocked        bool
	}{
		{F32, "f32", 1, 4, 172 * 4, 768 * 4, false},
		{F16, "f16", 1, 2, 172 * 2, 768 * 2, false},
		{BF16, "bf16", 1, 2, 172 * 2, 768 * 2, false},
		{Q8_0, "q8_0", 32, 34, 6 * 34, 24 * 34, true}, // a 172-wide row takes six blocks
		{Q4_0, "q4_0", 32, 18, 6 * 18, 24 * 18, true},
		{Q4_K, "q4_k", 256, 144, 16 + 3*32, 3 * 144, true}, // 172 weights: a short super-block of six sub-blocks
	} {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.name, c.f.String())
			assert.Equal(t, c.elems, c.f.BlockElems())
			assert.Equal(t, c.bytes, c.f.BlockBytes())
			assert.Equal(t, c.blocked, c.f.Blocked())
			assert.Equal(t, c.row172, c.f.RowBytes(172))
			assert.Equal(t, c.row768, c.f.RowBytes(768))
			assert.Equal(t, 3*c.row172, c.f.Bytes(3, 172))
		})
	}
	assert.Len(t, Formats(), int(numFormats))
}

// TestFormatNames checks that every format's name parses back, and
// survives MarshalText/UnmarshalText and JSON.
func TestFormatNames(t *testing.T) {
	for _, f := range Formats() {
		t.Run(f.String(), func(t *testing.T) {
			require.True(t, f.Valid())
			g, err := Parse(f.String())
			require.NoError(t, err)
			assert.Equal(t, f, g)

			b, err := f.MarshalText()
			require.NoError(t, err)
			var h Format
			require.NoError(t, h.UnmarshalText(b))
			assert.Equal(t, f, h)

			j, err := json.Marshal(map[string]Format{"dtype": f})
			require.NoError(t, err)
			assert.JSONEq(t, `{"dtype": "`+f.String()+`"}`, string(j))
			var back map[string]Format
			require.NoError(t, json.Unmarshal(j, &back))
			assert.Equal(t, f, back["dtype"])
		})
	}
	_, err := Parse("q4_K")
	assert.ErrorContains(t, err, "q4_k", "the error lists the names")
	_, err = numFormats.MarshalText()
	assert.Error(t, err)
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

// TestQ4_KScaleMin checks that Q4_KScaleMin reads back exactly what
// packQ4_KScales writes, for every (scale, min) pair of 6-bit values in
// every sub-block's slot, with the other slots holding other values; and
// one set of scale bytes decoded by hand from llama.cpp's layout.
func TestQ4_KScaleMin(t *testing.T) {
	var s [12]byte
	for j := range Q4_KSubs {
		for sc := range uint8(64) {
			for m := range uint8(64) {
				var scs, ms [Q4_KSubs]uint8
				for k := range Q4_KSubs {
					scs[k] = uint8(k*23+int(sc)*5+int(m)+7) % 64
					ms[k] = uint8(k*41+int(m)*3+int(sc)+11) % 64
				}
				scs[j], ms[j] = sc, m
				packQ4_KScales(s[:], &scs, &ms)
				for k := range Q4_KSubs {
					gsc, gm := Q4_KScaleMin(s[:], k)
					if gsc != scs[k] || gm != ms[k] {
						t.Fatalf("slot %d holding (%d, %d): slot %d reads (%d, %d), want (%d, %d)", j, sc, m, k, gsc, gm, scs[k], ms[k])
					}
				}
			}
		}
	}

	// s[1] = 0b11_000101: sub-block 1's scale 5, the top bits 3 of 5's.
	// s[5] = 0b10_000001: sub-block 1's min 1, the top bits 2 of 5's.
	// s[9] = 0xa7: sub-block 5's scale 7 | 3<<4 = 55, min 10 | 2<<4 = 42.
	s = [12]byte{1: 0xc5, 5: 0x81, 9: 0xa7}
	for _, c := range []struct {
		j     int
		sc, m uint8
	}{{0, 0, 0}, {1, 5, 1}, {5, 55, 42}, {4, 0, 0}} {
		sc, m := Q4_KScaleMin(s[:], c.j)
		assert.Equal(t, [2]uint8{c.sc, c.m}, [2]uint8{sc, m}, "sub-block %d", c.j)
	}
}

// TestQ4_KNibble checks that the 256 weights of a super-block take every
// nibble of the 128 quant bytes once, and that sub-block j is the low (j
// even) or high (j odd) nibbles of the 32 bytes from 32·(j/2).
func TestQ4_KNibble(t *testing.T) {
	var seen [128][2]bool
	for i := range 256 {
		off, sh := Q4_KNibble(i)
		require.True(t, off >= 0 && off < 128 && (sh == 0 || sh == 4), "weight %d: byte %d shift %d", i, off, sh)
		require.False(t, seen[off][sh/4], "weight %d: byte %d shift %d taken twice", i, off, sh)
		seen[off][sh/4] = true
		j, k := i/Q4_KSub, i%Q4_KSub
		assert.Equal(t, 32*(j/2)+k, off, "weight %d", i)
		assert.Equal(t, uint(j%2*4), sh, "weight %d", i)
	}
}

// TestQ4_KDequantizeLayout fills Q4_K super-blocks with random bytes (and
// finite float16 d and dmin) and checks Dequantize against llama.cpp's
// layout, written out here on its own; 300-wide rows take a super-block
// and a short one of 44 weights (its scales and 32 bytes of quants),
// whose padding Dequantize drops.
func TestQ4_KDequantizeLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	rows, cols := 3, 300
	data := make([]byte, Q4_K.Bytes(rows, cols))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	rb := Q4_K.RowBytes(cols)
	require.Equal(t, 144+16+32, rb)
	for r := range rows {
		for _, b := range []int{r * rb, r*rb + 144} { // each block's d and dmin
			d, dmin := F32ToF16(float32(rng.NormFloat64())*0.01), F32ToF16(float32(rng.Float64())*0.01)
			data[b], data[b+1], data[b+2], data[b+3] = byte(d), byte(d>>8), byte(dmin), byte(dmin>>8)
		}
	}

	got, err := Dequantize(Q4_K, rows, cols, data)
	require.NoError(t, err)
	require.Len(t, got, rows*cols)
	for r := range rows {
		for c := range cols {
			blk := data[r*rb+c/256*144:]
			i := c % 256
			d := F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
			dmin := F16ToF32(uint16(blk[2]) | uint16(blk[3])<<8)
			s, j := blk[4:16], i/32
			var sc, m byte
			if j < 4 {
				sc, m = s[j]&63, s[j+4]&63
			} else {
				sc, m = (s[j+4]&15)|((s[j-4]>>6)<<4), (s[j+4]>>4)|((s[j]>>6)<<4)
			}
			q := blk[16+32*(i/64)+i%64%32]
			if i%64 >= 32 {
				q >>= 4
			}
			want := d*float32(sc)*float32(q&15) - dmin*float32(m)
			if got[r*cols+c] != want {
				t.Fatalf("row %d col %d: %g, want %g", r, c, got[r*cols+c], want)
			}
		}
	}
	_, err = Dequantize(Q4_K, rows, cols, data[1:])
	assert.Error(t, err, "Dequantize takes a short buffer")
}

// q4KWeight decodes weight i of a Q4_K super-block, padding included.
func q4KWeight(blk []byte, i int) (w, D float32) {
	d := F16ToF32(uint16(blk[Q4_KScale]) | uint16(blk[Q4_KScale+1])<<8)
	dmin := F16ToF32(uint16(blk[Q4_KMin]) | uint16(blk[Q4_KMin+1])<<8)
	sc, m := Q4_KScaleMin(blk[Q4_KScales:Q4_KQuants], i/Q4_KSub)
	off, sh := Q4_KNibble(i)
	D = d * float32(sc)
	return D*float32(blk[Q4_KQuants+off]>>sh&15) - dmin*float32(m), D
}

// relRMSE is the RMS of back - x over the RMS of x.
func relRMSE(x, back []float32) float64 {
	var e, n float64
	for i := range x {
		d := float64(back[i]) - float64(x[i])
		e += d * d
		n += float64(x[i]) * float64(x[i])
	}
	return math.Sqrt(e / n)
}

// TestQ4_KRoundTrip quantizes rows of standard normal weights of several
// widths (whole super-blocks, a 64-wide row in part of one, 172 and 1000
// with partly padded sub-blocks) to Q4_0 and Q4_K and checks the RMS
// error relative to the weights' RMS: Q4_0 measures 0.085 to 0.087 on
// this data, Q4_K 0.068 to 0.072 (so within 0.075), and Q4_K is the
// better on every shape.
func TestQ4_KRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, cols := range []int{64, 172, 256, 768, 1000} {
		t.Run(fmt.Sprint(cols), func(t *testing.T) {
			rows := 16
			x := make([]float32, rows*cols)
			for i := range x {
				x[i] = float32(rng.NormFloat64()) * 0.02
			}
			var errs [2]float64
			for k, f := range []Format{Q4_0, Q4_K} {
				q, err := Quantize(f, rows, cols, x)
				require.NoError(t, err)
				require.Len(t, q, f.Bytes(rows, cols))
				back, err := Dequantize(f, rows, cols, q)
				require.NoError(t, err)
				require.Len(t, back, rows*cols, "padding is dropped")
				errs[k] = relRMSE(x, back)
			}
			t.Logf("relative RMSE: q4_0 %.4f, q4_k %.4f", errs[0], errs[1])
			assert.Less(t, errs[1], 0.075, "q4_k")
			assert.Less(t, errs[1], errs[0], "q4_k is better than q4_0")
		})
	}
}

// TestQ4_KSpecialRows checks rows of one value (zeros exactly; a positive
// and a negative constant within the float16 rounding of the scales),
// small integers (within about half a step, range/30), the same far
// smaller (d is a float16 subnormal: coarser), and a row positive in some
// sub-blocks and negative in others; and that the padding of a 172-wide
// row is the quant nearest 0 in the partly padded sub-block and exactly 0
// (scale, min and quants 0) in the sub-blocks of padding alone.
func TestQ4_KSpecialRows(t *testing.T) {
	const cols = 172
	fill := func(f func(c int) float32) []float32 {
		x := make([]float32, cols)
		for c := range x {
			x[c] = f(c)
		}
		return x
	}
	for _, c := range []struct {
		name string
		x    []float32
		tol  float64 // relative to max |x|
	}{
		{"zeros", fill(func(int) float32 { return 0 }), 0},
		{"positive", fill(func(int) float32 { return 0.37 }), 1e-3},
		{"negative", fill(func(int) float32 { return -1.9 }), 1e-3},
		{"integers", fill(func(c int) float32 { return float32(c%7 - 3) }), 0.06},
		{"tiny integers", fill(func(c int) float32 { return float32(c%7-3) * 1e-4 }), 0.1},
		// [1, 2] in even sub-blocks (min 0: steps of 2/15), [-2, -1] in odd
		// ones (steps of 1/15).
		{"signs by sub-block", fill(func(c int) float32 { return float32(c/32%2*2-1) * (1 + float32(c%32)/31) }), 0.04},
		{"negative sub-block 5", fill(func(c int) float32 { return float32(-c%32-1) / 32 }), 0.04},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := Quantize(Q4_K, 1, cols, c.x)
			require.NoError(t, err)
			back, err := Dequantize(Q4_K, 1, cols, q)
			require.NoError(t, err)
			require.Len(t, back, cols)
			amax := 0.0
			for _, v := range c.x {
				amax = max(amax, math.Abs(float64(v)))
			}
			for i, v := range c.x {
				if math.Abs(float64(back[i]-v)) > c.tol*amax {
					t.Fatalf("col %d: %g back as %g", i, v, back[i])
				}
			}
			// The short block stores six sub-blocks' quants, no more.
			require.Len(t, q, Q4_KQuants+3*32)
			for i := cols; i < 6*Q4_KSub; i++ {
				w, D := q4KWeight(q, i)
				// The quant nearest 0: the step either way is D, and past
				// quant 15 there is none.
				off, sh := Q4_KNibble(i)
				n := q[Q4_KQuants+off] >> sh & 15
				if D != 0 && math.Abs(float64(w)) > float64(D)/2*(1+1e-6) {
					require.True(t, w < 0 && n == 15, "padding weight %d is %g (quant %d), not the nearest to 0 (step %g)", i, w, n, D)
				}
			}
			for j := 6; j < Q4_KSubs; j++ {
				sc, m := Q4_KScaleMin(q[Q4_KScales:Q4_KQuants], j)
				assert.Equal(t, [2]uint8{0, 0}, [2]uint8{sc, m}, "sub-block %d is padding alone", j)
			}
		})
	}
}

// TestF16Stored: f16 is a format llmc converts weights to; Quantize
// rounds each element to the nearest float16 (little-endian), Dequantize
// widens them back exactly, and a value float16 cannot hold is an error
// naming its place.
func TestF16Stored(t *testing.T) {
	require.True(t, F16.Converted())
	require.False(t, BF16.Converted())
	require.False(t, F32.Converted())
	x := []float32{0, 1, -2.5, 65504, 1e-8, 0.1, -65519, 3.14159}
	q, err := Quantize(F16, 2, 4, x)
	require.NoError(t, err)
	require.Len(t, q, 16)
	back, err := Dequantize(F16, 2, 4, q)
	require.NoError(t, err)
	for i, v := range x {
		h := F32ToF16(v)
		require.Equal(t, [2]byte{byte(h), byte(h >> 8)}, [2]byte{q[2*i], q[2*i+1]}, "element %d", i)
		require.Equal(t, F16ToF32(h), back[i], "element %d", i)
	}
	for _, bad := range []float32{65520, -1e6} {
		_, err := Quantize(F16, 2, 2, []float32{0, 1, 2, bad})
		require.ErrorContains(t, err, "element [1, 1]", "%g", bad)
		require.ErrorContains(t, err, "beyond float16's ±65504", "%g", bad)
	}
	_, err = Dequantize(F16, 2, 4, q[:15])
	require.Error(t, err)
}

// TestQuantI8 pins the int8 quants' rounding and clamping (what StoreI8
// stores).
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

// TestQuantizeNotFinite checks that every format refuses a NaN or an
// infinity, naming the element: block formats would otherwise hide them
// (Q4_K stored a NaN scale whose rows still produced finite logits).
func TestQuantizeNotFinite(t *testing.T) {
	for _, f := range []Format{F16, Q8_0, Q4_0, Q4_K} {
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			x := make([]float32, 2*40)
			for i := range x {
				x[i] = float32(i%7) - 3
			}
			x[40+33] = bad
			_, err := Quantize(f, 2, 40, x)
			require.ErrorContains(t, err, "element [1, 33] is "+fmt.Sprint(bad)+", not a finite number", "%s %g", f, bad)
			require.ErrorContains(t, err, "as "+f.String(), "%s %g", f, bad)
		}
	}
}
