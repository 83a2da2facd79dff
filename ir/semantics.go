package ir

import "math"

// RoPEFrequencies returns the rotary inverse frequencies θ_i (i < dim/2) of
// a rope node's attributes, as transformers computes them in float32,
// including "linear" and "llama3" scaling. The interpreter and every
// backend use this one definition.
func RoPEFrequencies(dim int, a Attrs) []float32 {
	theta := a.Float("theta", 10000)
	scaling := a.String("scaling", "")
	factor := a.Float("factor", 1)
	low, high := a.Float("low_freq_factor", 1), a.Float("high_freq_factor", 4)
	origMax := float64(a.Int("original_max_positions", 8192))
	inv := make([]float32, dim/2)
	for i := range inv {
		exp := float32(2*i) / float32(dim)
		f := 1 / math.Pow(theta, float64(exp))
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
