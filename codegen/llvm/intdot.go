package llvm

import (
	"fmt"
	"strings"

	"github.com/llir/llvm/ir/constant"
	"github.com/llir/llvm/ir/enum"
	"github.com/llir/llvm/ir/types"
	"github.com/llir/llvm/ir/value"

	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/wformat"
)

// DotForm is the instruction sequence kir.DotI8 is printed as. Every form
// computes the same lanes (see kir.DotI8), exactly.
type DotForm string

const (
	// DotVNNI: vpabsb and vpsignb move the weight's sign onto the input
	// (|w|·sign(x, w) = w·x, unsigned times signed), then one vpdpbusd
	// sums each lane's four products (llvm.x86.avx512.vpdpbusd.256, which
	// llc prints for AVX512-VNNI with VL, or as AVX-VNNI's VEX form).
	DotVNNI DotForm = "vnni"
	// DotAVX2: the same sign trick, vpmaddubsw (pairs to int16, which
	// cannot saturate: 2·128·127 < 2¹⁵) and vpmaddwd by ones (pairs of
	// int16 to int32).
	DotAVX2 DotForm = "avx2"
	// DotPortable: plain LLVM vector IR, the bytes widened to i32,
	// multiplied and each lane's four products added in pairs; for any
	// target (llc makes vpmovsxbw and vpmaddwd of it on x86).
	DotPortable DotForm = "portable"
)

// DotForms are the forms, best first.
var DotForms = []DotForm{DotVNNI, DotAVX2, DotPortable}

// ChooseDotForm is the best form that code for a CPU of architecture
// goarch with features (named as Linux's /proc/cpuinfo names them) can
// run, at most limit's: "scalar" (LLMC_ISA=scalar) asks for the portable
// form, "avx2" for at most AVX2's, anything else limits nothing.
func ChooseDotForm(goarch string, features map[string]bool, limit string) DotForm {
	if goarch != "amd64" || limit == "scalar" {
		return DotPortable
	}
	vnni := features["avx512_vnni"] && features["avx512vl"] || features["avx_vnni"]
	switch {
	case vnni && limit != "avx2":
		return DotVNNI
	case features["avx2"]:
		return DotAVX2
	}
	return DotPortable
}

// ParseDotForm reads a form's name.
func ParseDotForm(s string) (DotForm, error) {
	for _, f := range DotForms {
		if string(f) == s {
			return f, nil
		}
	}
	names := make([]string, len(DotForms))
	for i, f := range DotForms {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown integer dot form %q (want %s)", s, strings.Join(names, ", "))
}

var (
	v32i8  = types.NewVector(32, types.I8)
	v32i32 = types.NewVector(32, types.I32)
	v16i16 = types.NewVector(16, types.I16)
)

// bytePtr is the address of byte off of buffer b: a block-format weight's
// pointer is already bytes; a float buffer's is cast.
func (fb *fn) bytePtr(b *kir.Buffer, off kir.Expr) value.Value {
	if b.Format.Blocked() {
		return fb.elemPtr(b, off)
	}
	base, ok := fb.bufs[b.Name]
	if !ok {
		fail("%s: buffer %s was not loaded", fb.what, b.Name)
	}
	if b.Kind == kir.Tokens || b.IsBF16() {
		fail("%s: byte access to %s buffer %s", fb.what, b.Kind, b.Name)
	}
	gep := fb.cur.NewGetElementPtr(types.I8, fb.cur.NewBitCast(base, types.NewPointer(types.I8)), fb.intExpr(off))
	gep.InBounds = true
	return gep
}

// storeI8 clamps to [-127, 127] (a NaN to -127: fcmp ogt is false),
// rounds ties to even and stores the bytes, as wformat.QuantI8 does.
func (fb *fn) storeI8(s *kir.StoreI8) {
	val := fb.expr(s.Val)
	var ft, it types.Type = f32, types.I8
	round := "llvm.roundeven.f32"
	lo, hi := value.Value(f32Const(-127)), value.Value(f32Const(127))
	switch {
	case val.Type().Equal(v8):
		ft, it, round = v8, types.NewVector(8, types.I8), "llvm.roundeven.v8f32"
		lo, hi = splat(-127), splat(127)
	case !val.Type().Equal(f32):
		fail("%s: storei8 of %s (%s)", fb.what, s.Val, val.Type())
	}
	ptr := fb.bytePtr(s.Buf, s.Off)
	b := fb.cur
	a := b.NewSelect(b.NewFCmp(enum.FPredOGT, val, lo), val, lo)
	c := b.NewSelect(b.NewFCmp(enum.FPredOLT, a, hi), a, hi)
	r := fb.call(fb.g.declare(round, ft, ft), c)
	q := fb.cur.NewFPToSI(r, it)
	if !it.Equal(types.I8) {
		ptr = fb.cur.NewBitCast(ptr, types.NewPointer(it))
	}
	st := fb.cur.NewStore(q, ptr)
	st.Align = 1
}

// prefetch prints llvm.prefetch (a read, kept in every cache level),
// which does not fault past the end of the buffer. The address is built
// without inbounds for that reason.
func (fb *fn) prefetch(s *kir.Prefetch) {
	base, ok := fb.bufs[s.Buf.Name]
	if !ok {
		fail("%s: buffer %s was not loaded", fb.what, s.Buf.Name)
	}
	if !s.Buf.Format.Blocked() {
		base = fb.cur.NewBitCast(base, types.NewPointer(types.I8))
	}
	p := fb.cur.NewGetElementPtr(types.I8, base, fb.intExpr(s.Off))
	i8p := types.NewPointer(types.I8)
	fb.call(fb.g.declare("llvm.prefetch.p0i8", types.Void, i8p, i32, i32, i32), p,
		constant.NewInt(i32, 0), constant.NewInt(i32, 3), constant.NewInt(i32, 1))
}

// pairSums adds adjacent i32 lanes of the n-lane vector v: lane j of the
// result is v[2j] + v[2j+1].
func (fb *fn) pairSums(v value.Value, n int) value.Value {
	half := types.NewVector(uint64(n/2), types.I32)
	var even, odd []int64
	for j := 0; j < n/2; j++ {
		even, odd = append(even, int64(2*j)), append(odd, int64(2*j+1))
	}
	undef := constant.NewUndef(types.NewVector(uint64(n), types.I32))
	sum := fb.cur.NewAdd(fb.cur.NewShuffleVector(v, undef, i32s(even...)), fb.cur.NewShuffleVector(v, undef, i32s(odd...)))
	sum.OverflowFlags = []enum.OverflowFlag{enum.OverflowFlagNSW}
	if !sum.Type().Equal(half) {
		fail("%s: pair sums of %d lanes are %s", fb.what, n, sum.Type())
	}
	return sum
}

// scales gathers N float16 scales Stride bytes apart into the lanes of
// an <8 x i16> (vpinsrw) and widens them at once (vcvtph2ps).
func (fb *fn) scales(e *kir.Scales) value.Value {
	v16 := types.NewVector(8, types.I16)
	var vec value.Value = constant.NewZeroInitializer(v16)
	for i := range e.N {
		p := fb.cur.NewBitCast(fb.elemPtr(e.W, kir.IAdd(e.Off, kir.I(i*e.Stride))), types.NewPointer(types.I16))
		ld := fb.cur.NewLoad(types.I16, p)
		ld.Align = 1
		vec = fb.cur.NewInsertElement(vec, ld, constant.NewInt(i32, int64(i)))
	}
	return fb.cur.NewFPExt(fb.cur.NewBitCast(vec, types.NewVector(8, types.Half)), v8)
}

// dotI8 prints a DotI8 in the module's form. A pair of blocks
// (kir.DotI8.Pair) of unsigned quants is one 512-bit vpdpbusd in the VNNI
// form (AVX-512 has no vpsignb, so signed int8s take two 256-bit dots):
// the two blocks' weight bytes joined into one vector, which the rows of a
// tile share, and the input's 64 bytes loaded at once. Any other pair is
// the two blocks' dots side by side.
func (fb *fn) dotI8(e *kir.DotI8) value.Value {
	if !e.Pair {
		return fb.cur.NewSIToFP(fb.dotInts(e), v8)
	}
	first, second := *e, *e
	first.Pair, second.Pair = false, false
	second.WOff = kir.IAdd(e.WOff, kir.I(e.W.Format.BlockBytes()))
	second.XOff = kir.IAdd(e.XOff, kir.I(kir.DotI8Len))
	join := func(a, b value.Value, n int) value.Value {
		idx := make([]int64, 2*n)
		for i := range idx {
			idx[i] = int64(i)
		}
		return fb.cur.NewShuffleVector(a, b, i32s(idx...))
	}
	if fb.g.o.DotForm != DotVNNI || !e.Quants.Unsigned() {
		return fb.cur.NewSIToFP(join(fb.dotInts(&first), fb.dotInts(&second), 8), v16)
	}
	w := join(fb.unsignedQuants(&first), fb.unsignedQuants(&second), 32)
	v64i8 := types.NewVector(64, types.I8)
	p := fb.cur.NewBitCast(fb.bytePtr(e.X, e.XOff), types.NewPointer(v64i8))
	x := fb.cur.NewLoad(v64i8, p)
	x.Align = 1
	lanes := fb.call(fb.g.declare(vpdpbusd512, v16i, v16i, v16i, v16i),
		constant.NewZeroInitializer(v16i), fb.cur.NewBitCast(w, v16i), fb.cur.NewBitCast(x, v16i))
	return fb.cur.NewSIToFP(lanes, v16)
}

// dotCols prints a kir.DotCols: for each of its chunks of 64 bytes,
// Q4_0's low and high nibbles (a vpand, and a vpsrlw by 4 then a vpand),
// Q8_0's bytes xor 0x80 or Q4_K's low or high nibbles, times the input's dword of the same
// four quants broadcast to every lane: with VNNI eight vpdpbusd into one
// accumulator, in the other forms the products widened to i32 and each
// lane's four added.
func (fb *fn) dotCols(e *kir.DotCols) value.Value {
	v64i8 := types.NewVector(64, types.I8)
	v32i16 := types.NewVector(32, types.I16)
	splat8 := func(n int64) constant.Constant {
		c := make([]constant.Constant, 64)
		for i := range c {
			c[i] = constant.NewInt(types.I8, n)
		}
		return constant.NewVector(v64i8, c...)
	}
	fours := make([]constant.Constant, 32)
	for i := range fours {
		fours[i] = constant.NewInt(types.I16, 4)
	}
	xp := fb.cur.NewBitCast(fb.bytePtr(e.X, e.XOff), types.NewPointer(types.I32))
	// dword k of the input block, in every lane.
	xDword := func(k int64) value.Value {
		p := fb.cur.NewGetElementPtr(types.I32, xp, constant.NewInt(i64, k))
		p.InBounds = true
		ld := fb.cur.NewLoad(types.I32, p)
		ld.Align = 1
		ins := fb.cur.NewInsertElement(constant.NewUndef(v16i), ld, constant.NewInt(i32, 0))
		return fb.cur.NewShuffleVector(ins, constant.NewUndef(v16i), constant.NewZeroInitializer(v16i))
	}
	vnni := fb.g.o.DotForm == DotVNNI
	type part struct {
		q value.Value // unsigned quants, a dword of four per row
		k int64       // the input's dword they multiply
	}
	var parts []part
	for g := range int64(e.WBytes() / 64) {
		p := fb.cur.NewBitCast(fb.bytePtr(e.W, kir.IAdd(e.WOff, kir.I(int(64*g)))), types.NewPointer(v64i8))
		chunk := fb.cur.NewLoad(v64i8, p)
		chunk.Align = 1
		lo := func() value.Value { return fb.cur.NewAnd(chunk, splat8(15)) }
		hi := func() value.Value {
			shifted := fb.cur.NewLShr(fb.cur.NewBitCast(chunk, v32i16), constant.NewVector(v32i16, fours...))
			return fb.cur.NewAnd(fb.cur.NewBitCast(shifted, v64i8), splat8(15))
		}
		switch {
		case e.W.Format == wformat.Q8_0:
			// int8 + 128 = the byte xor 0x80.
			parts = append(parts, part{fb.cur.NewXor(chunk, splat8(-128)), g})
		case e.W.Format == wformat.Q4_K && e.High:
			parts = append(parts, part{hi(), g})
		case e.W.Format == wformat.Q4_K:
			parts = append(parts, part{lo(), g})
		default:
			parts = append(parts, part{lo(), g}, part{hi(), 4 + g})
		}
	}
	var acc value.Value = constant.NewZeroInitializer(v16i)
	for _, part := range parts {
		x := xDword(part.k)
		if vnni {
			acc = fb.call(fb.g.declare(vpdpbusd512, v16i, v16i, v16i, v16i), acc, fb.cur.NewBitCast(part.q, v16i), x)
			continue
		}
		v64i32 := types.NewVector(64, types.I32)
		prod := fb.cur.NewMul(fb.cur.NewZExt(part.q, v64i32), fb.cur.NewSExt(fb.cur.NewBitCast(x, v64i8), v64i32))
		prod.OverflowFlags = []enum.OverflowFlag{enum.OverflowFlagNSW}
		sum := fb.cur.NewAdd(acc, fb.pairSums(fb.pairSums(prod, 64), 32))
		sum.OverflowFlags = []enum.OverflowFlag{enum.OverflowFlagNSW}
		acc = sum
	}
	return fb.cur.NewSIToFP(acc, v16)
}

// colBits prints a kir.ColBits: sixteen bytes loaded, widened to i32
// (vpmovzxbd), shifted and masked, converted to float.
func (fb *fn) colBits(e *kir.ColBits) value.Value {
	v16i8 := types.NewVector(16, types.I8)
	ld := fb.cur.NewLoad(v16i8, fb.cur.NewBitCast(fb.bytePtr(e.W, e.Off), types.NewPointer(v16i8)))
	ld.Align = 1
	splat := func(n int64) constant.Constant {
		c := make([]constant.Constant, 16)
		for i := range c {
			c[i] = constant.NewInt(types.I32, n)
		}
		return constant.NewVector(v16i, c...)
	}
	var x value.Value = fb.cur.NewZExt(ld, v16i)
	if e.Shift > 0 {
		x = fb.cur.NewLShr(x, splat(int64(e.Shift)))
	}
	if e.Shift+e.Bits < 8 {
		x = fb.cur.NewAnd(x, splat(1<<e.Bits-1))
	}
	return fb.cur.NewUIToFP(x, v16)
}

// vpdpbusd512 is vpdpbusd on 512-bit vectors (AVX-512 VNNI).
const vpdpbusd512 = "llvm.x86.avx512.vpdpbusd.512"

// unsignedQuants is the 32 bytes of an unsigned DotI8's quants as
// vpdpbusd takes them: a Q4_0 block's nibbles, or Q8_0's int8s plus 128.
func (fb *fn) unsignedQuants(e *kir.DotI8) value.Value {
	if e.Quants == kir.DotQ4_0 {
		return fb.nibbles(e)
	}
	if e.Quants != kir.DotUInt8 {
		fail("%s: %s: quants that are not unsigned bytes", fb.what, e)
	}
	p := fb.cur.NewBitCast(fb.bytePtr(e.W, e.WOff), types.NewPointer(v32i8))
	ld := fb.cur.NewLoad(v32i8, p)
	ld.Align = 1
	c := make([]constant.Constant, 32)
	for i := range c {
		c[i] = constant.NewInt(types.I8, -128)
	}
	return fb.cur.NewXor(ld, constant.NewVector(v32i8, c...))
}

// dotInts is a single block's DotI8 lanes as eight int32s.
func (fb *fn) dotInts(e *kir.DotI8) value.Value {
	load := func(b *kir.Buffer, off kir.Expr) value.Value {
		p := fb.cur.NewBitCast(fb.bytePtr(b, off), types.NewPointer(v32i8))
		ld := fb.cur.NewLoad(v32i8, p)
		ld.Align = 1
		return ld
	}
	g := fb.g
	var w value.Value
	switch e.Quants {
	case kir.DotQ4_0:
		w = fb.nibbles(e)
	case kir.DotLow, kir.DotHigh:
		w = fb.halfBytes(load(e.W, e.WOff), e.Quants == kir.DotHigh)
	case kir.DotUInt8:
		// w xor 0x80 = w+128: one vpxor a block, shared by a tile's rows.
		w = fb.unsignedQuants(e)
	default:
		w = load(e.W, e.WOff)
	}
	x := load(e.X, e.XOff)
	var lanes value.Value
	switch form := g.o.DotForm; {
	case form == DotVNNI || form == DotAVX2 && e.Quants != kir.DotUInt8:
		// (vpmaddubsw's int16 pairs would saturate on bytes up to 255, so
		// AVX2 prints dotu8 the portable way.)
		// Unsigned times signed: |w| and x with w's sign, or Q4_0's
		// nibbles (unsigned already) and x as they are.
		u, sx := w, x
		if !e.Quants.Unsigned() {
			u = fb.call(g.declare("llvm.abs.v32i8", v32i8, v32i8, types.I1), w, constant.False)
			sx = fb.call(g.declare("llvm.x86.avx2.psign.b", v32i8, v32i8, v32i8), x, w)
		}
		if form == DotVNNI {
			lanes = fb.call(g.declare(vpdpbusd, v8i, v8i, v8i, v8i),
				constant.NewZeroInitializer(v8i), fb.cur.NewBitCast(u, v8i), fb.cur.NewBitCast(sx, v8i))
			break
		}
		pairs := fb.call(g.declare("llvm.x86.avx2.pmadd.ub.sw", v16i16, v32i8, v32i8), u, sx)
		ones := make([]constant.Constant, 16)
		for i := range ones {
			ones[i] = constant.NewInt(types.I16, 1)
		}
		lanes = fb.call(g.declare("llvm.x86.avx2.pmadd.wd", v8i, v16i16, v16i16), pairs, constant.NewVector(v16i16, ones...))
	case form == DotPortable || form == "" || form == DotAVX2:
		var wide value.Value = fb.cur.NewSExt(w, v32i32)
		if e.Quants.Unsigned() {
			wide = fb.cur.NewZExt(w, v32i32)
		}
		prod := fb.cur.NewMul(wide, fb.cur.NewSExt(x, v32i32))
		prod.OverflowFlags = []enum.OverflowFlag{enum.OverflowFlagNSW}
		// Lane i is products 4i..4i+3, added in pairs twice: llc matches
		// the first step, sign-extended bytes multiplied and adjacent
		// products added, to vpmaddwd (SSE2's pmaddwd) where it has it.
		lanes = fb.pairSums(fb.pairSums(prod, 32), 16)
	default:
		fail("%s: unknown integer dot form %q", fb.what, form)
	}
	return lanes
}

// vpdpbusd is VNNI's unsigned-by-signed byte dot product into an
// accumulator, on 256-bit vectors.
const vpdpbusd = "llvm.x86.avx512.vpdpbusd.256"

// halfBytes is the low (high false) or high nibbles of 32 bytes, each
// in the low four bits of its byte: a mask (vpand), after a shift of the
// 32-bit lanes right by 4 (vpsrld) for the high ones.
func (fb *fn) halfBytes(w value.Value, high bool) value.Value {
	if high {
		fours := make([]constant.Constant, 8)
		for i := range fours {
			fours[i] = constant.NewInt(types.I32, 4)
		}
		w = fb.cur.NewBitCast(fb.cur.NewLShr(fb.cur.NewBitCast(w, v8i), constant.NewVector(v8i, fours...)), v32i8)
	}
	mask := make([]constant.Constant, 32)
	for i := range mask {
		mask[i] = constant.NewInt(types.I8, 15)
	}
	return fb.cur.NewAnd(w, constant.NewVector(v32i8, mask...))
}

// nibbles loads a Q4_0 block's 16 bytes of quants as the 32 unsigned
// bytes q of kir.DotQ4_0, the low nibbles (quants 0..15) then the
// high ones (16..31): the 16 bytes in both halves of a vector (one
// vbroadcasti128), the upper half's 32-bit lanes shifted right by 4 (one
// vpsrlvd: each byte's high nibble lands in its low four bits, the next
// byte's low nibble above them) and every byte masked to its low four
// bits (one vpand). A mask, a shift and a shuffle joining two halves took
// two more instructions a block.
func (fb *fn) nibbles(e *kir.DotI8) value.Value {
	v16i8 := types.NewVector(16, types.I8)
	p := fb.cur.NewBitCast(fb.bytePtr(e.W, e.WOff), types.NewPointer(v16i8))
	ld := fb.cur.NewLoad(v16i8, p)
	ld.Align = 1
	idx := make([]int64, 32)
	for i := range idx {
		idx[i] = int64(i % 16)
	}
	both := fb.cur.NewBitCast(fb.cur.NewShuffleVector(ld, constant.NewUndef(v16i8), i32s(idx...)), v8i)
	shifts := make([]constant.Constant, 8)
	for i := range shifts {
		shifts[i] = constant.NewInt(types.I32, int64(4*(i/4)))
	}
	shifted := fb.cur.NewBitCast(fb.cur.NewLShr(both, constant.NewVector(v8i, shifts...)), v32i8)
	mask := make([]constant.Constant, 32)
	for i := range mask {
		mask[i] = constant.NewInt(types.I8, 15)
	}
	return fb.cur.NewAnd(shifted, constant.NewVector(v32i8, mask...))
}
