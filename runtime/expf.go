package runtime

import (
	"math"
)

// Expf is e^x in float32, for kernels where math.Exp's float64 is too
// slow. It is branch-free and small enough to inline: x is clamped to
// [-87.3, 88] (so it returns about 1e-38 rather than 0 far below, and
// never Inf), x = k·ln2 + r with |r| ≤ ln2/2 (k rounded to nearest by
// adding and subtracting 1.5·2^23, Cody–Waite split of ln2), e^r by its
// Taylor polynomial of degree 6 (under 2e-7 relative), and 2^k put into
// the exponent bits. NaN stays NaN.
func Expf(x float32) float32 {
	const log2e, round = 1.44269504088896341, 12582912 // 1.5·2^23
	const ln2hi, ln2lo = 0.693145751953125, 1.42860682030941723212e-6
	x = max(min(x, 88.0), -87.3)
	k := (x*log2e + round) - round
	r := (x - k*ln2hi) - k*ln2lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(int32(k)+127)<<23)
}
