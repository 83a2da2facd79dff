package wformat

import "math"

// Offsets and facts of a Q4_K super-block (see the Q4_K format).
const (
	Q4_KScale  = 0  // the float16 d, the scale of the sub-blocks' scales
	Q4_KMin    = 2  // the float16 dmin, the scale of the sub-blocks' mins
	Q4_KScales = 4  // 12 bytes: the eight 6-bit scales and eight 6-bit mins (Q4_KScaleMin)
	Q4_KQuants = 16 // 128 bytes of 4-bit quants (Q4_KNibble)
	Q4_KSub    = 32 // weights per sub-block
	Q4_KSubs   = 8  // sub-blocks per super-block
)

// Q4_KNibble returns the byte (within the quants, 0..127) and the shift
// (0: the low nibble, 4: the high) of weight i (0..255) of a Q4_K
// super-block: the weights go in runs of 64, run c in the 32 bytes from
// 32c, its first 32 weights in their low nibbles and the next 32 in their
// high ones. So sub-block j is the low (j even) or high (j odd) nibbles
// of the 32 bytes from 32·(j/2).
func Q4_KNibble(i int) (byteOff int, shift uint) {
	c, r := i/64, i%64
	return 32*c + r%32, uint(r/32) * 4
}

// Q4_KScaleMin unpacks the 6-bit scale sc and min m of sub-block j (0..7)
// from the 12 scale bytes s of a Q4_K super-block (block[Q4_KScales:]).
// Sub-blocks 0..3 have theirs in the low six bits of s[j] (scale) and
// s[j+4] (min); sub-blocks 4..7 have the low four bits of theirs in the
// low (scale) and high (min) nibble of s[j+4], and the top two bits in the
// top two bits of s[j-4] (scale) and s[j] (min).
func Q4_KScaleMin(scales []byte, j int) (sc, m uint8) {
	s := scales[:12]
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&15 | s[j-4]>>6<<4, s[j+4]>>4 | s[j]>>6<<4
}

// packQ4_KScales is the inverse of Q4_KScaleMin: it writes the 6-bit
// scales sc and mins m (each at most 63) of the eight sub-blocks into the
// 12 scale bytes s.
func packQ4_KScales(s []byte, sc, m *[Q4_KSubs]uint8) {
	s = s[:12]
	for j := range 4 {
		s[j] = sc[j] | sc[j+4]>>4<<6
		s[j+4] = m[j] | m[j+4]>>4<<6
		s[j+8] = sc[j+4]&15 | m[j+4]&15<<4
	}
}

// q4KCandidates is the number of inverse scales quantizeQ4_KRow tries for
// each sub-block: 15/range scaled by (14 + 0.1k)/15 for k = 0..20.
const q4KCandidates = 21

// quantizeQ4_KRow quantizes a row to Q4_K super-blocks. It follows the
// idea of llama.cpp's quantize_row_q4_K_ref, in three steps per
// super-block:
//
//  1. Each sub-block's weights x get a scale s ≥ 0 and a min m ≥ 0 so
//     that x ≈ s·q - m with q in 0..15 (fitSubQ4_K): a weighted
//     least-squares fit, weight w = sqrt(mean x² over the super-block's
//     real weights) + |x| (llama.cpp's choice: the error of the larger
//     weights counts more, but not to nothing for the small ones).
//  2. The eight scales and eight mins are quantized to 6 bits against
//     d = max s / 63 and dmin = max m / 63, both stored as float16: sc =
//     round(s/d), m = round(m/dmin), with d and dmin as stored, at most 63.
//  3. Every weight is requantized against the scale D = d·sc and min
//     M = dmin·m its sub-block really has: q = round((x + M)/D) in
//     0..15, and q = 0 if D is 0.
//
// Padding weights (the row's tail in its last super-block) take no part
// in the fit; a sub-block that is all padding has scale, min and quants 0
// (its weights are exactly 0), and a padding weight of a sub-block with
// real weights gets the quant nearest 0, as a weight 0 would.
func quantizeQ4_KRow(dst []byte, row []float32) {
	for b := 0; b*256 < len(row); b++ {
		blk := dst[b*144 : min(len(dst), (b+1)*144)] // a partial block is short
		x := row[b*256 : min(len(row), (b+1)*256)]

		sumX2 := 0.0
		for _, v := range x {
			sumX2 += float64(v) * float64(v)
		}
		avX := float32(math.Sqrt(sumX2 / float64(len(x))))

		var scale, mins [Q4_KSubs]float32
		maxScale, maxMin := float32(0), float32(0)
		for j := range Q4_KSubs {
			if j*Q4_KSub >= len(x) {
				break
			}
			scale[j], mins[j] = fitSubQ4_K(x[j*Q4_KSub:min(len(x), (j+1)*Q4_KSub)], avX)
			maxScale, maxMin = max(maxScale, scale[j]), max(maxMin, mins[j])
		}

		hd, hm := F32ToF16(maxScale/63), F32ToF16(maxMin/63)
		blk[Q4_KScale], blk[Q4_KScale+1] = byte(hd), byte(hd>>8)
		blk[Q4_KMin], blk[Q4_KMin+1] = byte(hm), byte(hm>>8)
		d, dmin := F16ToF32(hd), F16ToF32(hm)
		var sc, m [Q4_KSubs]uint8
		for j := range Q4_KSubs {
			sc[j], m[j] = sixBits(scale[j], d), sixBits(mins[j], dmin)
		}
		packQ4_KScales(blk[Q4_KScales:Q4_KQuants], &sc, &m)

		q := blk[Q4_KQuants:]
		clear(q)
		for i := range 256 {
			j := i / Q4_KSub
			if j*Q4_KSub >= len(x) {
				break // the rest is whole sub-blocks of padding: quant 0
			}
			v := float32(0) // padding: the quant nearest 0
			if i < len(x) {
				v = x[i]
			}
			D, M := d*float32(sc[j]), dmin*float32(m[j])
			n := 0
			if D != 0 {
				n = min(15, max(0, int(math.Round(float64((v+M)/D)))))
			}
			off, sh := Q4_KNibble(i)
			q[off] |= byte(n) << sh
		}
	}
}

// sixBits returns v/d rounded and clamped to 0..63 (0 if d is 0).
func sixBits(v, d float32) uint8 {
	if d == 0 {
		return 0
	}
	return uint8(min(63, max(0, math.Round(float64(v/d)))))
}

// fitSubQ4_K chooses the scale s ≥ 0 and min m ≥ 0 of a sub-block's
// weights x (x ≈ s·q - m, q in 0..15), weighting the error of x[i] by
// avX + |x[i]|. The range is [lo, hi] with lo = min(min x, 0) (so m ≥ 0)
// and hi = max x; if it is empty (all the weights equal and at most 0)
// the answer is s = 0, m = -lo. Otherwise it tries q4KCandidates inverse
// scales around 15/(hi-lo): for each, q = round(iscale·(x - lo)) clamped
// to 0..15, and s and m fitted to those q by weighted least squares
// (fitScaleMin); it keeps the fit of least weighted squared error.
func fitSubQ4_K(x []float32, avX float32) (s, m float32) {
	lo, hi := float32(0), x[0]
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	if hi <= lo {
		return 0, -lo
	}
	var w, q [Q4_KSub]float64
	for i, v := range x {
		w[i] = float64(avX) + math.Abs(float64(v))
	}
	bestErr := math.Inf(1)
	for k := range q4KCandidates {
		iscale := (14 + 0.1*float64(k)) / float64(hi-lo)
		for i, v := range x {
			q[i] = min(15, max(0, math.Round(iscale*float64(v-lo))))
		}
		cs, cb := fitScaleMin(x, w[:len(x)], q[:len(x)])
		e := 0.0
		for i, v := range x {
			r := cs*q[i] + cb - float64(v)
			e += w[i] * r * r
		}
		if e < bestErr {
			bestErr, s, m = e, float32(cs), float32(-cb)
		}
	}
	return s, m
}

// fitScaleMin returns the s ≥ 0 and b ≤ 0 that minimize
// Σ w[i]·(s·q[i] + b - x[i])². The error is convex in (s, b): if the
// unconstrained minimum is outside the constraints, the constrained one
// is on their boundary, the best of the minimum along b = 0 (s ≥ 0) and
// along s = 0 (b ≤ 0).
func fitScaleMin(x []float32, w, q []float64) (s, b float64) {
	var sw, swq, swq2, swx, swqx float64
	for i, v := range x {
		xv := float64(v)
		sw += w[i]
		swq += w[i] * q[i]
		swq2 += w[i] * q[i] * q[i]
		swx += w[i] * xv
		swqx += w[i] * q[i] * xv
	}
	if det := sw*swq2 - swq*swq; det > 0 {
		s = (sw*swqx - swq*swx) / det
		b = (swq2*swx - swq*swqx) / det
		if s >= 0 && b <= 0 {
			return s, b
		}
	}
	// Along b = 0: s = Σwqx/Σwq²; along s = 0: b = Σwx/Σw.
	s0 := 0.0
	if swq2 > 0 {
		s0 = max(0, swqx/swq2)
	}
	b0 := 0.0
	if sw > 0 {
		b0 = min(0, swx/sw)
	}
	// The error less the constant Σwx²: on b = 0 it is s²Σwq² - 2sΣwqx,
	// on s = 0 it is b²Σw - 2bΣwx.
	if s0*s0*swq2-2*s0*swqx <= b0*b0*sw-2*b0*swx {
		return s0, 0
	}
	return 0, b0
}
