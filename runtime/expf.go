package runtime

import (
	"math"
)

// Expf is e^x in float32, for kernels where math.Exp's float64 is too
// slow: x = k·ln2 + r with |r| ≤ ln2/2 (Cody–Waite reduction), e^r by its
// Taylor polynomial of degree 6 (truncation error below 2e-7 relative),
// and 2^k put into the exponent bits. It returns 0 below -87.3 (where
// float32 underflows), +Inf above 88.7 and NaN for NaN.
func Expf(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < -87.3:
		return 0
	case x > 88.7:
		return float32(math.Inf(1))
	}
	const log2e = 1.44269504088896341
	const ln2hi, ln2lo = 0.693145751953125, 1.42860682030941723212e-6
	t := x * log2e
	k := int32(t)
	if t < 0 {
		k = int32(t - 0.5)
	} else {
		k = int32(t + 0.5)
	}
	kf := float32(k)
	r := (x - kf*ln2hi) - kf*ln2lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return p * math.Float32frombits(uint32(k+127)<<23)
}
