package ir

import "math"

// RoPEFrequencies returns the rotary inverse frequencies θ_i (i < dim/2) of
// a rope node's attributes, as transformers computes them in float32,
// including "linear" and "llama3" scaling and per-dimension divisors
// (dim_factors, as longrope's long_factor and short_factor divide them).
// Absent attributes take their defaults from the op table. The
// interpreter and every backend use this one definition.
func RoPEFrequencies(dim int, a Attrs) []float32 {
	n := &Node{Op: OpRoPE, Attrs: a}
	theta := n.FloatAttr("theta")
	scaling := n.StringAttr("scaling")
	factor := n.FloatAttr("factor")
	low, high := n.FloatAttr("low_freq_factor"), n.FloatAttr("high_freq_factor")
	origMax := float64(n.IntAttr("original_max_positions"))
	dimFactors := n.FloatsAttr("dim_factors")
	inv := make([]float32, dim/2)
	for i := range inv {
		exp := float32(2*i) / float32(dim)
		f := 1 / math.Pow(theta, float64(exp))
		if i < len(dimFactors) {
			f /= dimFactors[i]
		}
		switch scaling {
		case "linear":
			f /= factor
		case "llama3":
			lowWavelen, highWavelen := origMax/low, origMax/high
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen < highWavelen:
			case wavelen > lowWavelen:
				f /= factor
			default:
				smooth := (origMax/wavelen - low) / (high - low)
				f = (1-smooth)*f/factor + smooth*f
			}
		}
		inv[i] = float32(f)
	}
	return inv
}
