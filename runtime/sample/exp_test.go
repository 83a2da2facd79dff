package sample

import (
	"math"
	"testing"
)

func TestExpNeg(t *testing.T) {
	worst := 0.0
	for x := -708.0; x <= 0; x += 0.000317 {
		want, got := math.Exp(x), expNeg(x)
		worst = max(worst, math.Abs(got-want)/want)
	}
	for _, x := range []float64{0, -1e-300, -math.Ln2, -1, -700, -708} {
		want, got := math.Exp(x), expNeg(x)
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 1e-15 {
		t.Errorf("expNeg relative error up to %g, want < 1e-15", worst)
	}
	for _, x := range []float64{-708.5, -1e6, math.Inf(-1)} {
		if got := expNeg(x); got != 0 {
			t.Errorf("expNeg(%g) = %g, want 0", x, got)
		}
	}
	if got := expNeg(0); got != 1 {
		t.Errorf("expNeg(0) = %v, want exactly 1", got)
	}
}
