package runtime

import (
	"math"
	"testing"
)

func TestExpf(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x < 87.9; x += 0.0137 {
		want := math.Exp(float64(x))
		got := float64(Expf(x))
		if rel := math.Abs(got-want) / want; rel > worst {
			worst = rel
		}
	}
	if worst > 4e-7 {
		t.Fatalf("worst relative error %g", worst)
	}
	if got := Expf(0); got != 1 {
		t.Errorf("Expf(0) = %g", got)
	}
	// Far below, a tiny positive number (the softmax of a masked score);
	// far above, large but finite.
	for _, x := range []float32{float32(math.Inf(-1)), -100} {
		if got := Expf(x); got < 0 || got > 1e-37 {
			t.Errorf("Expf(%g) = %g, want about 1e-38", x, got)
		}
	}
	if got := Expf(float32(math.Inf(1))); got < 1e38 || math.IsInf(float64(got), 0) {
		t.Errorf("Expf(+Inf) = %g, want large and finite", got)
	}
	if nan := Expf(float32(math.NaN())); nan == nan {
		t.Errorf("Expf(NaN) = %g", nan)
	}
}

func BenchmarkExpf(b *testing.B) {
	var s float32
	for i := 0; i < b.N; i++ {
		s += Expf(float32(i&1023) * -0.01)
	}
	_ = s
}
