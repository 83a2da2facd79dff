//go:build goexperiment.simd && amd64

package vec

import (
	"simd/archsimd"
	"unsafe"

	"github.com/llmc-dev/llmc/wformat"
)

// The vector half, for the generated AVX2 and AVX-512 kernels. Every
// helper follows codegen/golang's rule: Go compiles scalar float code to
// legacy SSE encodings, which cost a state transition on Intel CPUs while
// the upper halves of the vector registers are dirty, so these helpers
// keep floats in vector registers (a scalar is a uniform vector: every
// lane holds it), move bits through general registers, and load their
// constants from memory.

// Hsum8 adds the lanes pairwise, (lo + hi) then two horizontal adds, and
// returns the sum in every lane: the reduction stays in a vector register.
func Hsum8(v archsimd.Float32x8) archsimd.Float32x8 {
	s := v.Add(v.Select128FromPair(1, 0, v))
	s = s.AddPairsGrouped(s)
	return s.AddPairsGrouped(s)
}

// Hmax8 returns the largest lane in every lane.
func Hmax8(v archsimd.Float32x8) archsimd.Float32x8 {
	m := v.Max(v.Select128FromPair(1, 0, v))
	m = m.Max(m.SelectFromPairGrouped(2, 3, 0, 1, m))
	return m.Max(m.SelectFromPairGrouped(1, 0, 3, 2, m))
}

// Gt8 is x > y for uniform vectors (VCMPPS, VMOVMSKPS).
func Gt8(x, y archsimd.Float32x8) bool { return x.Greater(y).ToBits()&1 != 0 }

// Selgt8 is a if x > y, else b, for uniform vectors.
func Selgt8(x, y, a, b archsimd.Float32x8) archsimd.Float32x8 { return a.Merge(b, x.Greater(y)) }

// Storef stores lane 0 of v at s[i] through a general register (VMOVD),
// not a legacy MOVSS.
func Storef(s []float32, i int, v archsimd.Float32x8) {
	*(*int32)(unsafe.Pointer(&s[i])) = v.AsInt32x8().GetLo().GetElem(0)
}

// Bf16u widens a bfloat16 into every lane.
func Bf16u(h uint16) archsimd.Float32x8 {
	return archsimd.BroadcastUint32x8(uint32(h) << 16).AsFloat32x8()
}

// Scalar8 applies a float64 function that has no vector form to lane 0 of
// x, after VZEROUPPER: math.Tanh and friends are legacy SSE code.
// x leaves through memory because VZEROUPPER is ordered only against
// memory operations.
func Scalar8(x archsimd.Float32x8, f func(float64) float64) archsimd.Float32x8 {
	var v [8]float32
	x.Store(&v)
	archsimd.ClearAVXUpperBits()
	return archsimd.BroadcastFloat32x8(float32(f(float64(v[0]))))
}

// Load8i8 loads eight int8 quants at byte i and widens them to float32
// (VPMOVSXBD, VCVTDQ2PS). The load is 16 bytes: a block weight has
// runtime.BlockSlack bytes readable after it.
func Load8i8(p unsafe.Pointer, i int) archsimd.Float32x8 {
	return archsimd.LoadInt8x16((*[16]int8)(unsafe.Add(p, i))).ExtendLo8ToInt32().ConvertToFloat32()
}

// Load8u4lo loads the low nibbles of eight bytes at byte i and widens
// them to float32: VPMOVZXBD, VPAND with a mask in memory, VCVTDQ2PS. The
// load is 16 bytes: a block weight has runtime.BlockSlack bytes readable
// after it. No shift: archsimd's shifts take their count in a vector
// register, which the Go compiler fills with a legacy-SSE MOVQ.
func Load8u4lo(p unsafe.Pointer, i int) archsimd.Float32x8 {
	q := archsimd.LoadUint8x16((*[16]uint8)(unsafe.Add(p, i))).ExtendLo8ToUint32()
	return q.And(archsimd.LoadUint32x8(&nibbleMasks[0])).AsInt32x8().ConvertToFloat32()
}

// Load8u4hi loads the high nibbles of eight bytes at byte i, widened to
// float32: the masked high nibble (16·q, exact in float32) times 1/16.
func Load8u4hi(p unsafe.Pointer, i int) archsimd.Float32x8 {
	q := archsimd.LoadUint8x16((*[16]uint8)(unsafe.Add(p, i))).ExtendLo8ToUint32()
	hi := q.And(archsimd.LoadUint32x8(&nibbleMasks[1])).AsInt32x8().ConvertToFloat32()
	return hi.Mul(archsimd.LoadFloat32x8(&sixteenths))
}

// nibbleMasks are the low and high nibble of each of eight lanes.
var nibbleMasks = [2][8]uint32{
	{0xf, 0xf, 0xf, 0xf, 0xf, 0xf, 0xf, 0xf},
	{0xf0, 0xf0, 0xf0, 0xf0, 0xf0, 0xf0, 0xf0, 0xf0},
}

var sixteenths = [8]float32{1.0 / 16, 1.0 / 16, 1.0 / 16, 1.0 / 16, 1.0 / 16, 1.0 / 16, 1.0 / 16, 1.0 / 16}

// Loadbf8 loads eight bfloat16s and widens them to float32.
func Loadbf8(p unsafe.Pointer, i int) archsimd.Float32x8 {
	return archsimd.LoadUint16x8((*[8]uint16)(unsafe.Add(p, 2*i))).ExtendToUint32().ShiftAllLeft(16).AsFloat32x8()
}

// Hsums8 returns the lane sums of eight vectors as one vector: two rounds
// of horizontal adds within 128-bit halves, then the halves added.
func Hsums8(v0, v1, v2, v3, v4, v5, v6, v7 archsimd.Float32x8) archsimd.Float32x8 {
	u0 := v0.AddPairsGrouped(v1).AddPairsGrouped(v2.AddPairsGrouped(v3))
	u1 := v4.AddPairsGrouped(v5).AddPairsGrouped(v6.AddPairsGrouped(v7))
	return u0.Select128FromPair(0, 2, u1).Add(u0.Select128FromPair(1, 3, u1))
}

// expTab holds Exp8's constants, each in eight lanes, so that each is one
// VEX load and Exp8 stays within the inliner's budget (with a
// BroadcastFloat32x8 of each constant it cost 272 against 240, and every
// call paid the CALL, the argument moves and two instructions a constant).
var expTab = [...][8]float32{
	{-87.3, -87.3, -87.3, -87.3, -87.3, -87.3, -87.3, -87.3},
	{88.0, 88.0, 88.0, 88.0, 88.0, 88.0, 88.0, 88.0},
	{1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341, 1.44269504088896341},
	{-0.693145751953125, -0.693145751953125, -0.693145751953125, -0.693145751953125, -0.693145751953125, -0.693145751953125, -0.693145751953125, -0.693145751953125},
	{-1.42860682030941723212e-6, -1.42860682030941723212e-6, -1.42860682030941723212e-6, -1.42860682030941723212e-6, -1.42860682030941723212e-6, -1.42860682030941723212e-6, -1.42860682030941723212e-6, -1.42860682030941723212e-6},
	{1.0 / 720, 1.0 / 720, 1.0 / 720, 1.0 / 720, 1.0 / 720, 1.0 / 720, 1.0 / 720, 1.0 / 720},
	{1.0 / 120, 1.0 / 120, 1.0 / 120, 1.0 / 120, 1.0 / 120, 1.0 / 120, 1.0 / 120, 1.0 / 120},
	{1.0 / 24, 1.0 / 24, 1.0 / 24, 1.0 / 24, 1.0 / 24, 1.0 / 24, 1.0 / 24, 1.0 / 24},
	{1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6, 1.0 / 6},
	{0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5},
	{1, 1, 1, 1, 1, 1, 1, 1},
}

// The rows of expTab.
const (
	expLo = iota
	expHi
	expLog2e
	expLn2Hi
	expLn2Lo
	expC6
	expC5
	expC4
	expC3
	expC2
	expOne
)

// Exp8 is e^x on eight lanes by runtime.Expf's clamp, reduction and
// polynomial, its multiply-adds fused (so within an ulp of Expf's, which
// Go rounds step by step); NaN stays NaN.
func Exp8(in archsimd.Float32x8) archsimd.Float32x8 {
	x := in.Max(archsimd.LoadFloat32x8(&expTab[expLo])).Min(archsimd.LoadFloat32x8(&expTab[expHi]))
	k := x.Mul(archsimd.LoadFloat32x8(&expTab[expLog2e])).RoundToEven()
	r := k.MulAdd(archsimd.LoadFloat32x8(&expTab[expLn2Hi]), x)
	r = k.MulAdd(archsimd.LoadFloat32x8(&expTab[expLn2Lo]), r)
	p := archsimd.LoadFloat32x8(&expTab[expC6])
	p = p.MulAdd(r, archsimd.LoadFloat32x8(&expTab[expC5]))
	p = p.MulAdd(r, archsimd.LoadFloat32x8(&expTab[expC4]))
	p = p.MulAdd(r, archsimd.LoadFloat32x8(&expTab[expC3]))
	p = p.MulAdd(r, archsimd.LoadFloat32x8(&expTab[expC2]))
	p = p.MulAdd(r, archsimd.LoadFloat32x8(&expTab[expOne]))
	p = p.MulAdd(r, archsimd.LoadFloat32x8(&expTab[expOne]))
	scale := k.ConvertToInt32().Add(archsimd.BroadcastInt32x8(127)).ShiftAllLeft(23).AsFloat32x8()
	// VMINPS returns its second operand when either is NaN, so the clamp
	// turns NaN into 88 (e^88 is finite): put the NaNs back, as
	// runtime.Expf keeps them, so that a NaN reaches the logits instead of
	// silently dropping out of a softmax.
	return in.Merge(p.Mul(scale), in.IsNaN())
}

// Hsum16 adds the halves (lane i plus lane i+8: kir.HSum16's order), then
// their lanes as Hsum8 does, and returns the sum in every lane of a
// Float32x8, as every scalar of a vector phase is kept.
func Hsum16(v archsimd.Float32x16) archsimd.Float32x8 {
	return Hsum8(v.GetLo().Add(v.GetHi()))
}

// Loadbf16 loads sixteen bfloat16s and widens them to float32.
func Loadbf16(p unsafe.Pointer, i int) archsimd.Float32x16 {
	return archsimd.LoadUint16x16((*[16]uint16)(unsafe.Add(p, 2*i))).ExtendToUint32().ShiftAllLeft(16).AsFloat32x16()
}

// Loadh16 loads sixteen IEEE half-precision values at element i and
// widens them exactly (Loadh8 on each half).
func Loadh16(p unsafe.Pointer, i int) archsimd.Float32x16 {
	return archsimd.Float32x16{}.SetLo(Loadh8(p, i)).SetHi(Loadh8(p, i+8))
}

// Loadh8 loads eight IEEE half-precision values at element i and widens
// them exactly: the exponent rebiased by 112, infinities and NaNs moved to
// exponent 255, zeros and subnormals normalised by a float subtraction of
// 2^-14 (the exponent 113 they are given).
func Loadh8(p unsafe.Pointer, i int) archsimd.Float32x8 {
	h := archsimd.LoadUint16x8((*[8]uint16)(unsafe.Add(p, 2*i))).ExtendToUint32()
	c := &h16Consts
	o := h.And(archsimd.LoadUint32x8(&c[0])).ShiftAllLeft(13)
	e := o.And(archsimd.LoadUint32x8(&c[1]))
	rebias := archsimd.LoadUint32x8(&c[2])
	o = o.Add(rebias)
	o = o.Add(rebias).Merge(o, e.Equal(archsimd.LoadUint32x8(&c[1])))
	sub := o.Add(archsimd.LoadUint32x8(&c[3])).AsFloat32x8().Sub(archsimd.LoadUint32x8(&c[4]).AsFloat32x8())
	o = sub.AsUint32x8().Merge(o, e.Equal(archsimd.Uint32x8{}))
	return o.Or(h.And(archsimd.LoadUint32x8(&c[5])).ShiftAllLeft(16)).AsFloat32x8()
}

// h16Consts are Loadh8's masks and constants: the exponent and mantissa,
// the exponent in place, the rebias (127-15)<<23, the implicit bit, 2^-14
// as float32 bits (113<<23), the sign.
var h16Consts = [6][8]uint32{
	{0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff, 0x7fff},
	{0x0f800000, 0x0f800000, 0x0f800000, 0x0f800000, 0x0f800000, 0x0f800000, 0x0f800000, 0x0f800000},
	{112 << 23, 112 << 23, 112 << 23, 112 << 23, 112 << 23, 112 << 23, 112 << 23, 112 << 23},
	{1 << 23, 1 << 23, 1 << 23, 1 << 23, 1 << 23, 1 << 23, 1 << 23, 1 << 23},
	{113 << 23, 113 << 23, 113 << 23, 113 << 23, 113 << 23, 113 << 23, 113 << 23, 113 << 23},
	{0x8000, 0x8000, 0x8000, 0x8000, 0x8000, 0x8000, 0x8000, 0x8000},
}

// Bits0 is lane 0 of v as bits, through a general register (VMOVD).
func Bits0(v archsimd.Float32x8) uint32 { return uint32(v.AsInt32x8().GetLo().GetElem(0)) }

// Storebf8 rounds eight lanes to bfloat16 and stores them at element i.
func Storebf8(p unsafe.Pointer, i int, v archsimd.Float32x8) {
	d := (*[8]uint16)(unsafe.Add(p, 2*i))
	lo, hi := v.AsUint32x8().GetLo(), v.AsUint32x8().GetHi()
	d[0], d[1] = wformat.BF16FromBits(lo.GetElem(0)), wformat.BF16FromBits(lo.GetElem(1))
	d[2], d[3] = wformat.BF16FromBits(lo.GetElem(2)), wformat.BF16FromBits(lo.GetElem(3))
	d[4], d[5] = wformat.BF16FromBits(hi.GetElem(0)), wformat.BF16FromBits(hi.GetElem(1))
	d[6], d[7] = wformat.BF16FromBits(hi.GetElem(2)), wformat.BF16FromBits(hi.GetElem(3))
}

// Storeh8 rounds eight lanes to IEEE half precision and stores them at
// element i.
func Storeh8(p unsafe.Pointer, i int, v archsimd.Float32x8) {
	d := (*[8]uint16)(unsafe.Add(p, 2*i))
	lo, hi := v.AsUint32x8().GetLo(), v.AsUint32x8().GetHi()
	d[0], d[1] = wformat.F16FromBits(lo.GetElem(0)), wformat.F16FromBits(lo.GetElem(1))
	d[2], d[3] = wformat.F16FromBits(lo.GetElem(2)), wformat.F16FromBits(lo.GetElem(3))
	d[4], d[5] = wformat.F16FromBits(hi.GetElem(0)), wformat.F16FromBits(hi.GetElem(1))
	d[6], d[7] = wformat.F16FromBits(hi.GetElem(2)), wformat.F16FromBits(hi.GetElem(3))
}

// Doti8 is kir.DotI8 of int8 quants, AVX2's way: |w| (VPABSB) times x
// with w's sign (VPSIGNB) in unsigned-by-signed pairs (VPMADDUBSW, which
// cannot saturate: |w| <= 128, |x| <= 127), then pairs of pairs
// (VPMADDWD by ones), converted (VCVTDQ2PS). Integer code only.
func Doti8(w unsafe.Pointer, wo int, x unsafe.Pointer, xo int) archsimd.Float32x8 {
	wv := archsimd.LoadInt8x32((*[32]int8)(unsafe.Add(w, wo)))
	xv := archsimd.LoadInt8x32((*[32]int8)(unsafe.Add(x, xo)))
	pairs := wv.Abs().AsUint8x32().DotProductPairsSaturated(xv.CopySign(wv))
	return pairs.DotProductPairs(archsimd.LoadInt16x16(&ones16)).ConvertToFloat32()
}

var ones16 = [16]int16{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}

// dotu4 is the dot of 32 unsigned quants u (0..15) with int8s at x: u
// times x in pairs (VPMADDUBSW: at most 2·15·127, no saturation), then
// pairs of pairs (VPMADDWD by ones), converted.
func dotu4(u archsimd.Uint8x32, x unsafe.Pointer, xo int) archsimd.Float32x8 {
	xv := archsimd.LoadInt8x32((*[32]int8)(unsafe.Add(x, xo)))
	return u.DotProductPairsSaturated(xv).DotProductPairs(archsimd.LoadInt16x16(&ones16)).ConvertToFloat32()
}

// nibbleConsts are the low-nibble mask, and 4096 in each 16-bit lane:
// VPMULHUW by it shifts each lane right by 4 (no shift instruction, whose
// count archsimd passes in a register that a legacy-SSE MOVQ fills).
var nibbleConsts = struct {
	mask [32]uint8
	m4   [16]uint16
}{
	[32]uint8{15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15},
	[16]uint16{4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096, 4096},
}

// high4 moves each byte's high nibble into its low four bits (the rest
// masked off): each 16-bit lane times 4096, high half (a shift right by
// 4), then the mask.
func high4(v archsimd.Uint8x32) archsimd.Uint8x32 {
	return v.AsUint16x16().MulHigh(archsimd.LoadUint16x16(&nibbleConsts.m4)).AsUint8x32().And(archsimd.LoadUint8x32(&nibbleConsts.mask))
}

// Doti4lo and Doti4hi are kir.DotI8 of the low or high nibbles of 32
// bytes (a Q4_K sub-block).
func Doti4lo(w unsafe.Pointer, wo int, x unsafe.Pointer, xo int) archsimd.Float32x8 {
	u := archsimd.LoadUint8x32((*[32]uint8)(unsafe.Add(w, wo))).And(archsimd.LoadUint8x32(&nibbleConsts.mask))
	return dotu4(u, x, xo)
}

func Doti4hi(w unsafe.Pointer, wo int, x unsafe.Pointer, xo int) archsimd.Float32x8 {
	return dotu4(high4(archsimd.LoadUint8x32((*[32]uint8)(unsafe.Add(w, wo)))), x, xo)
}

// Doti4 is kir.DotI8 of a Q4_0 block's 16 bytes: their low nibbles then
// their high ones (the bytes in both halves, the high half's nibbles
// moved down, masked).
func Doti4(w unsafe.Pointer, wo int, x unsafe.Pointer, xo int) archsimd.Float32x8 {
	b := archsimd.LoadUint8x16((*[16]uint8)(unsafe.Add(w, wo)))
	both := archsimd.Uint8x32{}.SetLo(b).SetHi(b)
	u := both.And(archsimd.LoadUint8x32(&nibbleConsts.mask)).SetHi(high4(both).GetHi())
	return dotu4(u, x, xo)
}

// i8Bounds are Storei8x8's clamp, -127 then 127 in eight lanes each: loaded
// from memory, as no float constant may pass through a legacy-SSE register.
var i8Bounds = [16]float32{-127, -127, -127, -127, -127, -127, -127, -127, 127, 127, 127, 127, 127, 127, 127, 127}

// quanti8x8 is wformat.QuantI8 on eight lanes of finite values (what the
// lowering quantises: x·127/max|x|), as int32s: clamped, rounded to
// nearest even (VROUNDPS) and converted (VCVTTPS2DQ, exact on integers).
func quanti8x8(v archsimd.Float32x8) archsimd.Int32x8 {
	lo, hi := archsimd.LoadFloat32x8((*[8]float32)(i8Bounds[:8])), archsimd.LoadFloat32x8((*[8]float32)(i8Bounds[8:]))
	return lo.Max(v).Min(hi).RoundToEven().ConvertToInt32()
}

// Storei8x8 stores eight lanes quantised to int8 at byte i: packed to
// int16 in a vector register (VPACKSSDW), moved to general registers
// (VMOVQ, VPEXTRQ) and narrowed there; no array is zeroed or copied, which
// the Go compiler does with legacy-SSE MOVUPS. i is a multiple of 4.
func Storei8x8(p unsafe.Pointer, i int, v archsimd.Float32x8) {
	q := quanti8x8(v)
	h := q.GetLo().SaturateToInt16Concat(q.GetHi()).AsInt64x2()
	*(*uint32)(unsafe.Add(p, i)) = pack4(uint64(h.GetElem(0)))
	*(*uint32)(unsafe.Add(p, i+4)) = pack4(uint64(h.GetElem(1)))
}

// pack4 is the low bytes of u's four 16-bit lanes.
func pack4(u uint64) uint32 {
	return uint32(u&0xff | u>>8&0xff00 | u>>16&0xff0000 | u>>24&0xff000000)
}

// Storei8x1 stores lane 0 quantised to int8 at byte i.
func Storei8x1(p unsafe.Pointer, i int, v archsimd.Float32x8) {
	*(*int8)(unsafe.Add(p, i)) = int8(quanti8x8(v).GetLo().GetElem(0))
}
