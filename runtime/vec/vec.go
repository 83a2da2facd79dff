// Package vec holds the helpers that the Go backend's generated kernels
// (codegen/golang) call, so that they are Go code that is compiled, vetted
// and tested here rather than text pasted into every artifact.
//
// This file is the portable half: V8 and V16 emulate eight and sixteen
// float32 lanes one lane at a time, with the operations the kernel IR has
// on them, in exactly kir.Machine's arithmetic (each FMA rounded once, the
// horizontal sums in kir.HSum's order), so that the portable kernels agree
// with the interpreter bit for bit. vec_simd.go is the vector half, for
// the AVX2 and AVX-512 kernels built with GOEXPERIMENT=simd. A twin's
// name ends in g (Hsum8 and Hsum8g, Doti4 and Doti4g) or puts the lanes
// after the format where the vector one puts them before (Loadh8 and
// Load8h, Storebf8 and Store8bf); the tests hold each pair to the same
// bits, but Exp8 to within an ulp of Exp8g (runtime.Expf), whose
// multiply-adds Go rounds step by step.
package vec

import (
	"math"

	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/wformat"
)

// V8 emulates an f32x8 lane by lane.
type V8 [8]float32

// V16 emulates an f32x16 lane by lane (kir.F32x16, which only adds,
// subtracts, multiplies and fuses).
type V16 [16]float32

func Add8(a, b V8) (r V8) {
	for i := range r {
		r[i] = a[i] + b[i]
	}
	return
}

func Sub8(a, b V8) (r V8) {
	for i := range r {
		r[i] = a[i] - b[i]
	}
	return
}

func Mul8(a, b V8) (r V8) {
	for i := range r {
		r[i] = a[i] * b[i]
	}
	return
}

func Div8(a, b V8) (r V8) {
	for i := range r {
		r[i] = a[i] / b[i]
	}
	return
}

func Max8(a, b V8) (r V8) {
	for i := range r {
		r[i] = max(a[i], b[i])
	}
	return
}

// Fmaf is a*b + c rounded once to float32 from float64, as kir.Machine
// computes kir.FMA (math.FMA is an instruction where the CPU has one; Go
// does not fuse a*b + c on amd64 below GOAMD64=v3).
func Fmaf(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// Fma8 is Fmaf in each lane.
func Fma8(a, b, c V8) (r V8) {
	for i := range r {
		r[i] = Fmaf(a[i], b[i], c[i])
	}
	return
}

func Splat8(x float32) (r V8) {
	for i := range r {
		r[i] = x
	}
	return
}

// Load8 is the eight floats at s[i:].
func Load8(s []float32, i int) V8 { return V8(s[i : i+8]) }

// Store8 writes v to s[i:].
func Store8(s []float32, i int, v V8) { copy(s[i:i+8], v[:]) }

func Add16(a, b V16) (r V16) {
	for i := range r {
		r[i] = a[i] + b[i]
	}
	return
}

func Sub16(a, b V16) (r V16) {
	for i := range r {
		r[i] = a[i] - b[i]
	}
	return
}

func Mul16(a, b V16) (r V16) {
	for i := range r {
		r[i] = a[i] * b[i]
	}
	return
}

// Fma16 is Fmaf in each lane.
func Fma16(a, b, c V16) (r V16) {
	for i := range r {
		r[i] = Fmaf(a[i], b[i], c[i])
	}
	return
}

func Splat16(x float32) (r V16) {
	for i := range r {
		r[i] = x
	}
	return
}

// Load16 is the sixteen floats at s[i:].
func Load16(s []float32, i int) V16 { return V16(s[i : i+16]) }

// Store16 writes v to s[i:].
func Store16(s []float32, i int, v V16) { copy(s[i:i+16], v[:]) }

// Hsum8g is the sum of t's lanes in kir.HSum's order: lane i plus lane
// i+4, then those pairwise.
func Hsum8g(t V8) float32 {
	return ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]))
}

// Hsum16g is kir.HSum16: lane i plus lane i+8, then Hsum8g.
func Hsum16g(t V16) float32 {
	var h V8
	for i := range h {
		h[i] = t[i] + t[i+8]
	}
	return Hsum8g(h)
}

// Hsums8g is kir.HSums: lane i of the result is the sum of vs[i]'s lanes,
// in Hsums8's order (adjacent pairs, then pairs of pairs, then the
// halves).
func Hsums8g(vs ...V8) (r V8) {
	for i, v := range vs {
		r[i] = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]))
	}
	return
}

// Hmax8g is the largest of v's lanes.
func Hmax8g(v V8) float32 {
	m := v[0]
	for _, x := range v[1:] {
		m = max(m, x)
	}
	return m
}

// Selgt is a if x > y, else b.
func Selgt(x, y, a, b float32) float32 {
	if x > y {
		return a
	}
	return b
}

// Load8bf widens the eight bfloat16s at s[i:].
func Load8bf(s []uint16, i int) (r V8) {
	for j := range r {
		r[j] = wformat.BF16ToF32(s[i+j])
	}
	return
}

// Load16bf widens the sixteen bfloat16s at s[i:].
func Load16bf(s []uint16, i int) (r V16) {
	for j := range r {
		r[j] = wformat.BF16ToF32(s[i+j])
	}
	return
}

// Load8h widens the eight IEEE half-precision values at s[i:].
func Load8h(s []uint16, i int) (r V8) {
	for j := range r {
		r[j] = wformat.F16ToF32(s[i+j])
	}
	return
}

// Load16h widens the sixteen IEEE half-precision values at s[i:].
func Load16h(s []uint16, i int) (r V16) {
	for j := range r {
		r[j] = wformat.F16ToF32(s[i+j])
	}
	return
}

// Store8bf rounds v's lanes to bfloat16, nearest even, into s[i:].
func Store8bf(s []uint16, i int, v V8) {
	for j, x := range v {
		s[i+j] = wformat.F32ToBF16(x)
	}
}

// Store8h rounds v's lanes to IEEE half precision, nearest even, into
// s[i:].
func Store8h(s []uint16, i int, v V8) {
	for j, x := range v {
		s[i+j] = wformat.F32ToF16(x)
	}
}

// Load8i8g widens the eight int8 quants at byte i of s.
func Load8i8g(s []byte, i int) (r V8) {
	for j, q := range s[i : i+8] {
		r[j] = float32(int8(q))
	}
	return
}

// Load8u4log widens the low nibbles of the eight bytes at s[i:].
func Load8u4log(s []byte, i int) (r V8) {
	for j, q := range s[i : i+8] {
		r[j] = float32(q & 0xf)
	}
	return
}

// Load8u4hig widens the high nibbles of the eight bytes at s[i:].
func Load8u4hig(s []byte, i int) (r V8) {
	for j, q := range s[i : i+8] {
		r[j] = float32(q >> 4)
	}
	return
}

// Exp8g is runtime.Expf in each lane.
func Exp8g(x V8) (r V8) {
	for i := range x {
		r[i] = runtime.Expf(x[i])
	}
	return
}

// Roundeven8g rounds each lane to the nearest integer, ties to even.
func Roundeven8g(v V8) (r V8) {
	for i, x := range v {
		r[i] = float32(math.RoundToEven(float64(x)))
	}
	return
}

// Doti8g is kir.DotI8 of the 32 int8 quants at w[wo:] with the 32 int8s
// at x[xo:]: lane i sums products 4i..4i+3.
func Doti8g(w []byte, wo int, x []byte, xo int) (r V8) {
	w, x = w[wo:wo+32], x[xo:xo+32]
	for i := range r {
		var s int32
		for k := 4 * i; k < 4*i+4; k++ {
			s += int32(int8(w[k])) * int32(int8(x[k]))
		}
		r[i] = float32(s)
	}
	return
}

// Doti4g is kir.DotI8 of a Q4_0 block's 16 bytes at w[wo:], their low
// nibbles then their high ones, with the 32 int8s at x[xo:].
func Doti4g(w []byte, wo int, x []byte, xo int) V8 {
	return dotu4g(func(k int) int32 {
		if k < 16 {
			return int32(w[wo+k] & 15)
		}
		return int32(w[wo+k-16] >> 4)
	}, x[xo:xo+32])
}

// Doti4log is kir.DotI8 of the low nibbles of the 32 bytes at w[wo:] (a
// Q4_K sub-block) with the 32 int8s at x[xo:].
func Doti4log(w []byte, wo int, x []byte, xo int) V8 {
	return dotu4g(func(k int) int32 { return int32(w[wo+k] & 15) }, x[xo:xo+32])
}

// Doti4hig is Doti4log of the high nibbles.
func Doti4hig(w []byte, wo int, x []byte, xo int) V8 {
	return dotu4g(func(k int) int32 { return int32(w[wo+k] >> 4) }, x[xo:xo+32])
}

// dotu4g sums the products of the unsigned quants u(k) with x[k] four at
// a time, into lanes.
func dotu4g(u func(k int) int32, x []byte) (r V8) {
	for i := range r {
		var s int32
		for k := 4 * i; k < 4*i+4; k++ {
			s += u(k) * int32(int8(x[k]))
		}
		r[i] = float32(s)
	}
	return
}

// Storei8g quantises v's lanes (wformat.QuantI8) into the bytes s[i:].
func Storei8g(s []byte, i int, v V8) {
	for j, x := range v {
		s[i+j] = byte(wformat.QuantI8(x))
	}
}
