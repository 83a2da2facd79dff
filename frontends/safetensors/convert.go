package safetensors

import (
	"math"

	"github.com/llmc-dev/llmc/wformat"
)

// BF16ToFloat32 widens a bfloat16 bit pattern to float32. The conversion is
// exact: bfloat16 is the upper half of a float32.
func BF16ToFloat32(b uint16) float32 {
	return math.Float32frombits(uint32(b) << 16)
}

// Float32ToBF16 returns the bfloat16 bit pattern nearest to f, rounding ties
// to even. Values beyond the bfloat16 range become infinities, and a NaN stays
// a NaN (made quiet, keeping its sign and upper payload bits).
func Float32ToBF16(f float32) uint16 { return wformat.F32ToBF16(f) }

// F16ToFloat32 widens an IEEE 754 binary16 bit pattern to float32. The
// conversion is exact for every input, including subnormals, infinities and
// NaN payloads.
func F16ToFloat32(h uint16) float32 { return wformat.F16ToF32(h) }

// Float32ToF16 returns the IEEE 754 binary16 bit pattern nearest to f,
// rounding ties to even. Values beyond the binary16 range become infinities,
// values too small for its subnormals become signed zeros, and a NaN stays a
// NaN (made quiet, keeping its sign and upper payload bits).
func Float32ToF16(f float32) uint16 { return wformat.F32ToF16(f) }

// F8E5M2ToFloat32 widens an F8_E5M2 bit pattern to float32. E5M2 is the upper
// byte of a binary16, so the conversion is exact.
func F8E5M2ToFloat32(b uint8) float32 {
	return F16ToFloat32(uint16(b) << 8)
}

// F8E4M3ToFloat32 widens an F8_E4M3 (E4M3FN) bit pattern to float32: exponent
// bias 7, no infinities, and NaN only for the all-ones exponent and mantissa.
// The conversion is exact.
func F8E4M3ToFloat32(b uint8) float32 {
	sign := uint32(b&0x80) << 24
	exp := uint32(b>>3) & 0xf
	mant := uint32(b) & 0x7
	switch {
	case exp == 0xf && mant == 0x7:
		return math.Float32frombits(sign | 0x7fc00000)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-7)<<23 | mant<<20)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	e := uint32(127 - 7 + 1)
	for mant&0x8 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x7)<<20)
}
