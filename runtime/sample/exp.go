package sample

import "math"

// expBits[i] holds the bits of 2^(i/256).
var expBits = func() (t [256]uint64) {
	for i := range t {
		t[i] = math.Float64bits(math.Exp2(float64(i) / 256))
	}
	return t
}()

// expNeg returns e^x for x <= 0, within a few ulp of math.Exp, and 0 below
// -708, where e^x is subnormal and far below anything a sample can hit. It
// is about twice as fast as math.Exp, which dominates the cost of sampling
// from a large vocabulary, and small enough to be inlined.
//
// It writes x = (256q + i)·ln2/256 + r with |r| <= ln2/512, so
// e^x = 2^q · 2^(i/256) · e^r: e^r is a degree-4 polynomial (error below
// r^5/120 < 4e-17), and q is added to the exponent of 2^(i/256).
func expNeg(x float64) float64 {
	if !(x >= -708) {
		return 0
	}
	const (
		n     = 256
		scale = n / math.Ln2
		ln2hi = 6.93147180369123816490e-01 / n // ln 2 split in two, as in math.Exp
		ln2lo = 1.90821492927058770002e-10 / n
		round = 0x1.8p52 // adding and subtracting it rounds to an integer
	)
	kf := x*scale + round - round
	r := x - kf*ln2hi - kf*ln2lo
	r2 := r * r
	k := int64(kf)
	return (1 + r + r2*(1.0/2+r*(1.0/6)+r2*(1.0/24))) *
		math.Float64frombits(expBits[k&(n-1)]+uint64(k>>8)<<52)
}
