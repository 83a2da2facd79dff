package llvm

import (
	"github.com/llir/llvm/ir/types"
	"github.com/llir/llvm/ir/value"

	"github.com/llmc-dev/llmc/codegen/kir"
)

// storeBF16 rounds eight f32 lanes to bfloat16 as store16 does for a
// bf16 state (wformat.BF16FromBits) and stores them at a byte offset of
// scratch.
func (fb *fn) storeBF16(s *kir.StoreBF16) {
	val := fb.expr(s.Val)
	if !val.Type().Equal(v8) {
		fail("%s: store8bf16 of %s (%s)", fb.what, s.Val, val.Type())
	}
	fb.store16(false, val, fb.cur.NewBitCast(fb.bytePtr(s.Buf, s.Off), types.NewPointer(types.I16)))
}

// dotBF16 prints a kir.DotBF16 as AVX-512 BF16's vdpbf16ps, whose
// bfloat16 pairs LLVM 14 types as i32 lanes.
func (fb *fn) dotBF16(e *kir.DotBF16) value.Value {
	acc := fb.expr(e.Acc)
	load := func(ptr value.Value) value.Value {
		ld := fb.cur.NewLoad(v16i, fb.cur.NewBitCast(ptr, types.NewPointer(v16i)))
		ld.Align = 2
		return ld
	}
	w := load(fb.elemPtr(e.W, e.WOff))
	x := load(fb.bytePtr(e.X, e.XOff))
	dp := fb.g.declare("llvm.x86.avx512bf16.dpbf16ps.512", v16, v16, v16i, v16i)
	return fb.call(dp, acc, w, x)
}
