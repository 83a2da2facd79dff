package llvm

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTableText checks that tables print as llir prints their elements.
func TestTableText(t *testing.T) {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1, 0.5, -2, 3.25, 0.1, 1e-30, 3e38, 1e-45,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), 65504, 1 << 24, 1.0 / 3}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		xs = append(xs, float32(math.Cos(r.Float64()*1000)), math.Float32frombits(r.Uint32()))
	}
	var want []string
	for _, x := range xs {
		want = append(want, "float "+f32Const(x).Ident())
	}
	require.Equal(t, "["+strings.Join(want, ", ")+"]", tableText(xs))
}
