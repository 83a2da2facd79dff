package safetensors

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	inf  = float32(math.Inf(1))
	ninf = float32(math.Inf(-1))
	nan  = float32(math.NaN())
)

// sameFloat reports whether a and b are the same value, treating every NaN
// as equal and telling -0 from +0.
func sameFloat(a, b float32) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestWidenKnownBits(t *testing.T) {
	tests := []struct {
		name string
		fn   func(uint16) float32
		bits uint16
		want float32
	}{
		{"bf16 one", BF16ToFloat32, 0x3f80, 1},
		{"bf16 minus two", BF16ToFloat32, 0xc000, -2},
		{"bf16 pi", BF16ToFloat32, 0x4049, 3.140625},
		{"bf16 zero", BF16ToFloat32, 0x0000, 0},
		{"bf16 minus zero", BF16ToFloat32, 0x8000, float32(math.Copysign(0, -1))},
		{"bf16 smallest subnormal", BF16ToFloat32, 0x0001, float32(math.Ldexp(1, -133))},
		{"bf16 max", BF16ToFloat32, 0x7f7f, math.Float32frombits(0x7f7f0000)},
		{"bf16 inf", BF16ToFloat32, 0x7f80, inf},
		{"bf16 minus inf", BF16ToFloat32, 0xff80, ninf},
		{"bf16 nan", BF16ToFloat32, 0x7fc0, nan},

		{"f16 one", F16ToFloat32, 0x3c00, 1},
		{"f16 minus two", F16ToFloat32, 0xc000, -2},
		{"f16 half", F16ToFloat32, 0x3800, 0.5},
		{"f16 one third", F16ToFloat32, 0x3555, 0.333251953125},
		{"f16 max", F16ToFloat32, 0x7bff, 65504},
		{"f16 smallest normal", F16ToFloat32, 0x0400, float32(math.Ldexp(1, -14))},
		{"f16 smallest subnormal", F16ToFloat32, 0x0001, float32(math.Ldexp(1, -24))},
		{"f16 minus smallest subnormal", F16ToFloat32, 0x8001, -float32(math.Ldexp(1, -24))},
		{"f16 largest subnormal", F16ToFloat32, 0x03ff, float32(math.Ldexp(1023, -24))},
		{"f16 zero", F16ToFloat32, 0x0000, 0},
		{"f16 minus zero", F16ToFloat32, 0x8000, float32(math.Copysign(0, -1))},
		{"f16 inf", F16ToFloat32, 0x7c00, inf},
		{"f16 minus inf", F16ToFloat32, 0xfc00, ninf},
		{"f16 quiet nan", F16ToFloat32, 0x7e00, nan},
		{"f16 signalling nan", F16ToFloat32, 0x7c01, nan},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.fn(tt.bits)
			assert.True(t, sameFloat(got, tt.want), "%#04x: got %v (%#08x), want %v", tt.bits, got, math.Float32bits(got), tt.want)
		})
	}
}

func TestNarrowKnownValues(t *testing.T) {
	tests := []struct {
		name string
		fn   func(float32) uint16
		in   float32
		want uint16
	}{
		{"bf16 one", Float32ToBF16, 1, 0x3f80},
		{"bf16 minus two", Float32ToBF16, -2, 0xc000},
		{"bf16 pi rounds down", Float32ToBF16, math.Pi, 0x4049},
		{"bf16 tie to even down", Float32ToBF16, math.Float32frombits(0x3f808000), 0x3f80},
		{"bf16 tie to even up", Float32ToBF16, math.Float32frombits(0x3f818000), 0x3f82},
		{"bf16 above tie", Float32ToBF16, math.Float32frombits(0x3f808001), 0x3f81},
		{"bf16 overflow to inf", Float32ToBF16, math.MaxFloat32, 0x7f80},
		{"bf16 inf", Float32ToBF16, inf, 0x7f80},
		{"bf16 minus inf", Float32ToBF16, ninf, 0xff80},
		{"bf16 nan", Float32ToBF16, nan, 0x7fc0},
		{"bf16 signalling nan stays nan", Float32ToBF16, math.Float32frombits(0x7f800001), 0x7fc0},
		{"bf16 minus zero", Float32ToBF16, float32(math.Copysign(0, -1)), 0x8000},

		{"f16 one", Float32ToF16, 1, 0x3c00},
		{"f16 minus two", Float32ToF16, -2, 0xc000},
		{"f16 max", Float32ToF16, 65504, 0x7bff},
		{"f16 below overflow tie", Float32ToF16, 65519, 0x7bff},
		{"f16 overflow tie to inf", Float32ToF16, 65520, 0x7c00},
		{"f16 large", Float32ToF16, 1e10, 0x7c00},
		{"f16 minus large", Float32ToF16, -1e10, 0xfc00},
		{"f16 tie to even down", Float32ToF16, 1 + 1.0/2048, 0x3c00},
		{"f16 tie to even up", Float32ToF16, 1 + 3.0/2048, 0x3c02},
		{"f16 smallest normal", Float32ToF16, float32(math.Ldexp(1, -14)), 0x0400},
		{"f16 subnormal rounds up to normal", Float32ToF16, float32(math.Ldexp(2047, -25)), 0x0400},
		{"f16 smallest subnormal", Float32ToF16, float32(math.Ldexp(1, -24)), 0x0001},
		{"f16 half smallest subnormal ties to zero", Float32ToF16, float32(math.Ldexp(1, -25)), 0x0000},
		{"f16 above half smallest subnormal", Float32ToF16, float32(math.Ldexp(1.0001, -25)), 0x0001},
		{"f16 three halves smallest subnormal ties to even", Float32ToF16, float32(math.Ldexp(3, -25)), 0x0002},
		{"f16 tiny", Float32ToF16, 1e-30, 0x0000},
		{"f16 minus tiny", Float32ToF16, -1e-30, 0x8000},
		{"f16 float32 subnormal", Float32ToF16, math.SmallestNonzeroFloat32, 0x0000},
		{"f16 inf", Float32ToF16, inf, 0x7c00},
		{"f16 minus inf", Float32ToF16, ninf, 0xfc00},
		{"f16 nan", Float32ToF16, nan, 0x7e00},
		{"f16 signalling nan stays nan", Float32ToF16, math.Float32frombits(0x7f800001), 0x7e00},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, fmt.Sprintf("%#04x", tt.want), fmt.Sprintf("%#04x", tt.fn(tt.in)), "input %v", tt.in)
		})
	}
}

// TestF16Exhaustive checks every binary16 value against math.Ldexp and
// checks that narrowing it again gives the same bits.
func TestF16Exhaustive(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := F16ToFloat32(h)
		exp, mant := int(h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch {
		case exp == 0x1f && mant == 0:
			want = math.Inf(1)
		case exp == 0x1f:
			want = math.NaN()
		case exp == 0:
			want = math.Ldexp(mant, -24)
		default:
			want = math.Ldexp(1+mant/1024, exp-15)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		require.True(t, sameFloat(f, float32(want)), "F16ToFloat32(%#04x) = %v, want %v", h, f, want)

		back := Float32ToF16(f)
		if f != f {
			require.Equal(t, h|0x0200, back, "NaN %#04x should come back quiet with its payload", h)
		} else {
			require.Equal(t, h, back, "Float32ToF16(F16ToFloat32(%#04x))", h)
		}
	}
}

func TestBF16Exhaustive(t *testing.T) {
	for i := range 1 << 16 {
		b := uint16(i)
		f := BF16ToFloat32(b)
		back := Float32ToBF16(f)
		if f != f {
			require.Equal(t, b|0x0040, back, "NaN %#04x should come back quiet with its payload", b)
		} else {
			require.Equal(t, b, back, "Float32ToBF16(BF16ToFloat32(%#04x))", b)
		}
	}
}

// TestNarrowRounding checks rounding at and next to every midpoint between
// adjacent finite values of each format. The midpoints are exact float32
// values, since both formats have fewer significant bits than float32.
func TestNarrowRounding(t *testing.T) {
	formats := []struct {
		name   string
		widen  func(uint16) float32
		narrow func(float32) uint16
		max    uint16 // largest finite positive bit pattern
	}{
		{"f16", F16ToFloat32, Float32ToF16, 0x7bff},
		{"bf16", BF16ToFloat32, Float32ToBF16, 0x7f7f},
	}
	for _, ft := range formats {
		t.Run(ft.name, func(t *testing.T) {
			// h+1 for the largest finite value is the infinity pattern, so
			// the last midpoint checks the rounding to infinity.
			for h := uint16(0); h <= ft.max; h++ {
				for _, sign := range []uint16{0, 0x8000} {
					lo, hi := h|sign, (h+1)|sign
					a, b := ft.widen(lo), ft.widen(hi)
					var mid float32
					if h == ft.max {
						// a + half an ulp; (a+b)/2 is infinite.
						ulp := ft.widen(h) - ft.widen(h-1)
						mid = a + ulp/2
						if sign != 0 {
							mid = a - ulp/2
						}
					} else {
						mid = a/2 + b/2
					}
					even := lo
					if lo&1 == 1 {
						even = hi
					}
					require.Equal(t, even, ft.narrow(mid), "midpoint %v of %#04x and %#04x", mid, lo, hi)
					require.Equal(t, lo, ft.narrow(math.Nextafter32(mid, 0)), "just below midpoint of %#04x and %#04x", lo, hi)
					require.Equal(t, hi, ft.narrow(math.Nextafter32(mid, b)), "just above midpoint of %#04x and %#04x", lo, hi)
				}
			}
		})
	}
}

func TestF8KnownBits(t *testing.T) {
	tests := []struct {
		name string
		fn   func(uint8) float32
		bits uint8
		want float32
	}{
		{"e4m3 one", F8E4M3ToFloat32, 0x38, 1},
		{"e4m3 minus one and a half", F8E4M3ToFloat32, 0xbc, -1.5},
		{"e4m3 max", F8E4M3ToFloat32, 0x7e, 448},
		{"e4m3 nan", F8E4M3ToFloat32, 0x7f, nan},
		{"e4m3 minus nan", F8E4M3ToFloat32, 0xff, nan},
		{"e4m3 all-ones exponent is finite", F8E4M3ToFloat32, 0x78, 256},
		{"e4m3 smallest normal", F8E4M3ToFloat32, 0x08, float32(math.Ldexp(1, -6))},
		{"e4m3 smallest subnormal", F8E4M3ToFloat32, 0x01, float32(math.Ldexp(1, -9))},
		{"e4m3 largest subnormal", F8E4M3ToFloat32, 0x07, float32(math.Ldexp(7, -9))},
		{"e4m3 minus zero", F8E4M3ToFloat32, 0x80, float32(math.Copysign(0, -1))},
		{"e5m2 one", F8E5M2ToFloat32, 0x3c, 1},
		{"e5m2 max", F8E5M2ToFloat32, 0x7b, 57344},
		{"e5m2 inf", F8E5M2ToFloat32, 0x7c, inf},
		{"e5m2 nan", F8E5M2ToFloat32, 0x7e, nan},
		{"e5m2 smallest subnormal", F8E5M2ToFloat32, 0x01, float32(math.Ldexp(1, -16))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.fn(tt.bits)
			assert.True(t, sameFloat(got, tt.want), "%#02x: got %v, want %v", tt.bits, got, tt.want)
		})
	}
}
