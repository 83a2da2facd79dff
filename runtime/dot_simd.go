//go:build goexperiment.simd && amd64

package runtime

import (
	"simd/archsimd"
	"unsafe"

	"github.com/llmc-dev/llmc/wformat"
)

// The interpreter's vector kernels. They follow the rule of the Go
// backend's generated kernels (codegen/golang): Go compiles scalar float
// code to legacy SSE encodings (MOVSS, ADDSS, MOVD, PXOR ...), and on Intel
// CPUs a legacy SSE instruction executed while the upper halves of the
// YMM/ZMM registers are dirty from 256- or 512-bit code costs a state
// transition or a false dependency on every instruction. So the sums stay
// in vector registers until the last reduction, VZEROUPPER
// (archsimd.ClearAVXUpperBits) runs before the scalar tail and before
// returning, and no scalar float math runs between vector instructions.
// internal/engine's TestNoAVXSSETransitions checks the compiled code.

func init() {
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		eagerKernels[ISAAVX2] = eagerKernelSet{dot: dot256, dotBF16: dotBF16x256}
	}
	if archsimd.X86.AVX512() {
		eagerKernels[ISAAVX512] = eagerKernelSet{dot: dot512, dotBF16: dotBF16x512}
	}
}

// dot256 is dot on AVX2: the vector kernel over the multiple of eight,
// then the scalar tail.
func dot256(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	i := n &^ 7
	var s float32
	if i > 0 {
		s = dot256Body(a[:i], b[:i])
	}
	for ; i < n; i++ {
		s += a[i] * b[i]
	}
	return s
}

// dot512 is dot on AVX-512, like dot256 with sixteen lanes.
func dot512(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	i := n &^ 15
	var s float32
	if i > 0 {
		s = dot512Body(a[:i], b[:i])
	}
	for ; i < n; i++ {
		s += a[i] * b[i]
	}
	return s
}

// dot256Body is the inner product of a and b, len(a) a multiple of 8, with
// four accumulators of eight lanes. Its sum leaves through memory:
// VZEROUPPER is ordered only against memory operations, so the compiler
// would otherwise be free to move the vector reduction after it. Kept out of
// line so that no scalar code is laid out among its vector code.
//
//go:noinline
func dot256Body(a, b []float32) float32 {
	n := len(a)
	pa, pb := unsafe.Pointer(unsafe.SliceData(a)), unsafe.Pointer(unsafe.SliceData(b[:n]))
	ld := func(p unsafe.Pointer, i int) archsimd.Float32x8 {
		return archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(p, 4*i)))
	}
	var acc0, acc1, acc2, acc3 archsimd.Float32x8
	i := 0
	for ; i+32 <= n; i += 32 {
		acc0 = ld(pa, i).MulAdd(ld(pb, i), acc0)
		acc1 = ld(pa, i+8).MulAdd(ld(pb, i+8), acc1)
		acc2 = ld(pa, i+16).MulAdd(ld(pb, i+16), acc2)
		acc3 = ld(pa, i+24).MulAdd(ld(pb, i+24), acc3)
	}
	for ; i < n; i += 8 {
		acc0 = ld(pa, i).MulAdd(ld(pb, i), acc0)
	}
	t := acc0.Add(acc1).Add(acc2.Add(acc3))
	h := t.GetLo().Add(t.GetHi())
	h = h.AddPairs(h)
	h = h.AddPairs(h)
	var out [4]float32
	h.Store(&out)
	archsimd.ClearAVXUpperBits()
	return out[0]
}

// dot512Body is dot256Body with four accumulators of sixteen lanes, len(a)
// a multiple of 16.
//
//go:noinline
func dot512Body(a, b []float32) float32 {
	n := len(a)
	pa, pb := unsafe.Pointer(unsafe.SliceData(a)), unsafe.Pointer(unsafe.SliceData(b[:n]))
	ld := func(p unsafe.Pointer, i int) archsimd.Float32x16 {
		return archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(p, 4*i)))
	}
	var acc0, acc1, acc2, acc3 archsimd.Float32x16
	i := 0
	for ; i+64 <= n; i += 64 {
		acc0 = ld(pa, i).MulAdd(ld(pb, i), acc0)
		acc1 = ld(pa, i+16).MulAdd(ld(pb, i+16), acc1)
		acc2 = ld(pa, i+32).MulAdd(ld(pb, i+32), acc2)
		acc3 = ld(pa, i+48).MulAdd(ld(pb, i+48), acc3)
	}
	for ; i < n; i += 16 {
		acc0 = ld(pa, i).MulAdd(ld(pb, i), acc0)
	}
	t := acc0.Add(acc1).Add(acc2.Add(acc3))
	u := t.GetLo().Add(t.GetHi())
	h := u.GetLo().Add(u.GetHi())
	h = h.AddPairs(h)
	h = h.AddPairs(h)
	var out [4]float32
	h.Store(&out)
	archsimd.ClearAVXUpperBits()
	return out[0]
}

// dotBF16x256 is dotBF16 on AVX2: eight weights a load, widened to 32
// bits and shifted into place (VPMOVZXWD, VPSLLD), then the scalar tail.
func dotBF16x256(x []float32, w []uint16) float32 {
	n := len(x)
	w = w[:n]
	i := n &^ 7
	var s float32
	if i > 0 {
		s = dotBF16x256Body(x[:i], w[:i])
	}
	for ; i < n; i++ {
		s += x[i] * wformat.BF16ToF32(w[i])
	}
	return s
}

// dotBF16x512 is dotBF16x256 with sixteen lanes.
func dotBF16x512(x []float32, w []uint16) float32 {
	n := len(x)
	w = w[:n]
	i := n &^ 15
	var s float32
	if i > 0 {
		s = dotBF16x512Body(x[:i], w[:i])
	}
	for ; i < n; i++ {
		s += x[i] * wformat.BF16ToF32(w[i])
	}
	return s
}

// dotBF16x256Body is dot256Body with bfloat16 weights, len(x) a multiple
// of 8.
//
//go:noinline
func dotBF16x256Body(x []float32, w []uint16) float32 {
	n := len(x)
	px, pw := unsafe.Pointer(unsafe.SliceData(x)), unsafe.Pointer(unsafe.SliceData(w[:n]))
	ldx := func(i int) archsimd.Float32x8 {
		return archsimd.LoadFloat32x8((*[8]float32)(unsafe.Add(px, 4*i)))
	}
	ldw := func(i int) archsimd.Float32x8 {
		return archsimd.LoadUint16x8((*[8]uint16)(unsafe.Add(pw, 2*i))).ExtendToUint32().ShiftAllLeft(16).AsFloat32x8()
	}
	var acc0, acc1, acc2, acc3 archsimd.Float32x8
	i := 0
	for ; i+32 <= n; i += 32 {
		acc0 = ldx(i).MulAdd(ldw(i), acc0)
		acc1 = ldx(i+8).MulAdd(ldw(i+8), acc1)
		acc2 = ldx(i+16).MulAdd(ldw(i+16), acc2)
		acc3 = ldx(i+24).MulAdd(ldw(i+24), acc3)
	}
	for ; i < n; i += 8 {
		acc0 = ldx(i).MulAdd(ldw(i), acc0)
	}
	t := acc0.Add(acc1).Add(acc2.Add(acc3))
	h := t.GetLo().Add(t.GetHi())
	h = h.AddPairs(h)
	h = h.AddPairs(h)
	var out [4]float32
	h.Store(&out)
	archsimd.ClearAVXUpperBits()
	return out[0]
}

// dotBF16x512Body is dotBF16x256Body with sixteen lanes, len(x) a
// multiple of 16.
//
//go:noinline
func dotBF16x512Body(x []float32, w []uint16) float32 {
	n := len(x)
	px, pw := unsafe.Pointer(unsafe.SliceData(x)), unsafe.Pointer(unsafe.SliceData(w[:n]))
	ldx := func(i int) archsimd.Float32x16 {
		return archsimd.LoadFloat32x16((*[16]float32)(unsafe.Add(px, 4*i)))
	}
	ldw := func(i int) archsimd.Float32x16 {
		return archsimd.LoadUint16x16((*[16]uint16)(unsafe.Add(pw, 2*i))).ExtendToUint32().ShiftAllLeft(16).AsFloat32x16()
	}
	var acc0, acc1, acc2, acc3 archsimd.Float32x16
	i := 0
	for ; i+64 <= n; i += 64 {
		acc0 = ldx(i).MulAdd(ldw(i), acc0)
		acc1 = ldx(i+16).MulAdd(ldw(i+16), acc1)
		acc2 = ldx(i+32).MulAdd(ldw(i+32), acc2)
		acc3 = ldx(i+48).MulAdd(ldw(i+48), acc3)
	}
	for ; i < n; i += 16 {
		acc0 = ldx(i).MulAdd(ldw(i), acc0)
	}
	t := acc0.Add(acc1).Add(acc2.Add(acc3))
	u := t.GetLo().Add(t.GetHi())
	h := u.GetLo().Add(u.GetHi())
	h = h.AddPairs(h)
	h = h.AddPairs(h)
	var out [4]float32
	h.Store(&out)
	archsimd.ClearAVXUpperBits()
	return out[0]
}
