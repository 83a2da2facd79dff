package vec

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFmafRoundsOnce: a*b + c with one rounding, not two: (1+2^-12)^2 - 1
// keeps its 2^-24 term only when the product is not rounded first.
func TestFmafRoundsOnce(t *testing.T) {
	a := float32(1 + 1.0/4096)
	want := float32(2.0/4096 + 1.0/(4096*4096))
	require.Equal(t, want, Fmaf(a, a, -1))
	p := a * a // rounded to float32
	require.NotEqual(t, want, p-1, "the unfused form must differ, or the case shows nothing")
	require.Equal(t, Splat8(want), Fma8(Splat8(a), Splat8(a), Splat8(-1)))
	require.Equal(t, Splat16(want), Fma16(Splat16(a), Splat16(a), Splat16(-1)))
}

// TestHsumOrder: the horizontal sums add in kir.HSum's order (lane i with
// lane i+4 first), which values of very different size expose: the
// 2^24 lanes cancel before 1 is added only in that order.
func TestHsumOrder(t *testing.T) {
	v := V8{1 << 24, 1, 0, 0, -(1 << 24), 1, 0, 0}
	require.Equal(t, float32(2), Hsum8g(v))
	var w V16
	copy(w[:], v[:])
	w[8] = 2 // lane 0 + lane 8 first: 2^24 + 2 is exact
	require.Equal(t, float32(4), Hsum16g(w))
	// Hsums8g adds adjacent pairs first: here 2^24 + 1 rounds away the 1.
	require.Equal(t, float32(1), Hsums8g(v)[0])
}

// TestStorei8g quantises each lane as wformat.QuantI8 does.
func TestStorei8g(t *testing.T) {
	b := make([]byte, 8)
	Storei8g(b, 0, V8{0.5, 1.5, -2.5, 300, -300, 3.2, -3.7, 0})
	require.Equal(t, []byte{0, 2, 0xfe, 127, 0x81, 3, 0xfc, 0}, b)
}

// TestDotI8g: lane i sums products 4i..4i+3, and Q4_0's 16 bytes give
// their low nibbles first, then their high ones.
func TestDotI8g(t *testing.T) {
	w, x := make([]byte, 40), make([]byte, 40)
	for k := range 32 {
		w[4+k] = byte(int8(k - 16))
		x[2+k] = byte(int8(3 - k%7))
	}
	var want V8
	for k := range 32 {
		want[k/4] += float32((k - 16) * (3 - k%7))
	}
	require.Equal(t, want, Doti8g(w, 4, x, 2))

	q := make([]byte, 16)
	for k := range q {
		q[k] = byte(k) | byte(15-k)<<4
	}
	var lo, hi, q4 V8
	for k := range 32 {
		xk := float32(3 - k%7)
		lo[k/4] += float32(q[k%16]&15) * xk // only k < 16 are Q4_0's low half
		hi[k/4] += float32(q[k%16]>>4) * xk
		if k < 16 {
			q4[k/4] += float32(k) * xk
		} else {
			q4[k/4] += float32(15-(k-16)) * xk
		}
	}
	x32 := x[2:34]
	require.Equal(t, q4, Doti4g(q, 0, x32, 0))
	w32 := append(append([]byte{}, q...), q...)
	require.Equal(t, lo, Doti4log(w32, 0, x32, 0))
	require.Equal(t, hi, Doti4hig(w32, 0, x32, 0))
}
