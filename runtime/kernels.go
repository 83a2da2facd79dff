package runtime

import (
	"fmt"
	"math"

	"github.com/llmc-dev/llmc/wformat"
)

// The generic kernels of the interpreter. They work on row-major float32
// slices and take their sizes as arguments; compiled backends generate
// specialised versions of the same loops.

// Parallel splits loops across threads. runtime/pool.Pool implements it.
type Parallel interface {
	ParallelFor(n int, fn func(start, end int))
}

// minParallelWork is the fewest multiply-adds worth splitting across
// threads: below it, waking the workers costs more than it saves.
const minParallelWork = 1 << 15

// parallelFor splits [0, n) across par when the loop does enough work.
func parallelFor(par Parallel, n, work int, fn func(start, end int)) {
	if work < minParallelWork || n < 2 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	par.ParallelFor(n, fn)
}

// serial runs loops on the calling goroutine.
type serial struct{}

func (serial) ParallelFor(n int, fn func(start, end int)) {
	if n > 0 {
		fn(0, n)
	}
}

// dot is the inner product of two equally long vectors: dotScalar, or
// on a CPU with AVX2 or AVX-512 (built with GOEXPERIMENT=simd) a vector
// kernel of dot_simd.go, as EagerISA says.
func dot(a, b []float32) float32 { return dotKernel(a, b) }

var dotKernel = dotScalar

// dotBF16 is dot of x with bfloat16 weights w (their bits), widened as
// they are read: dotBF16Scalar or a vector kernel, as EagerISA says.
func dotBF16(x []float32, w []uint16) float32 { return dotBF16Kernel(x, w) }

var dotBF16Kernel = dotBF16Scalar

// dotBF16Scalar is dotScalar over widened weights, summed in the same
// order, so a BF16 weight gives what the same weight widened to F32 does.
func dotBF16Scalar(x []float32, w []uint16) float32 {
	n := len(x)
	w = w[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += x[i] * wformat.BF16ToF32(w[i])
		s1 += x[i+1] * wformat.BF16ToF32(w[i+1])
		s2 += x[i+2] * wformat.BF16ToF32(w[i+2])
		s3 += x[i+3] * wformat.BF16ToF32(w[i+3])
	}
	for ; i < n; i++ {
		s0 += x[i] * wformat.BF16ToF32(w[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// dotScalar is the portable inner product, with four accumulators so the
// loop is not one long dependency chain.
func dotScalar(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= n; i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// embedding gathers rows of table ([vocab, dim]) into out ([len(ids), dim]).
func embedding(out, table []float32, ids []int32, vocab, dim int) error {
	for s, id := range ids {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("token id %d is outside the vocabulary (0..%d)", id, vocab-1)
		}
		copy(out[s*dim:(s+1)*dim], table[int(id)*dim:(int(id)+1)*dim])
	}
	return nil
}

// embeddingBF16 is embedding of a bfloat16 table, widened as gathered.
func embeddingBF16(out []float32, table []uint16, ids []int32, vocab, dim int) error {
	for s, id := range ids {
		if id < 0 || int(id) >= vocab {
			return fmt.Errorf("token id %d is outside the vocabulary (0..%d)", id, vocab-1)
		}
		row, o := table[int(id)*dim:(int(id)+1)*dim], out[s*dim:(s+1)*dim]
		for i, h := range row {
			o[i] = wformat.BF16ToF32(h)
		}
	}
	return nil
}

// rmsNorm normalises each row of x ([rows, dim]) by its root mean square
// and scales by w, or by (1 + w) when unitOffset is set.
func rmsNorm(out, x, w []float32, rows, dim int, eps float64, unitOffset bool) {
	for r := 0; r < rows; r++ {
		row := x[r*dim : (r+1)*dim]
		var ss float64
		for _, v := range row {
			ss += float64(v) * float64(v)
		}
		inv := float32(1 / math.Sqrt(ss/float64(dim)+eps))
		o := out[r*dim : (r+1)*dim]
		for i, v := range row {
			g := w[i]
			if unitOffset {
				g = 1 + g
			}
			o[i] = v * inv * g
		}
	}
}

// linear computes out[s, n] = x[s, :] · w[n, :] (+ bias[n]) for x [rows, in]
// and w [outDim, in], splitting the output columns across threads so each
// weight row is read once per call.
func linear(par Parallel, out, x, w, bias []float32, rows, in, outDim int) {
	linearWith(par, dot, out, x, w, bias, rows, in, outDim)
}

// linearBF16 is linear with bfloat16 weights w [outDim, in]: half the
// bytes read per token, each widened in registers.
func linearBF16(par Parallel, out, x []float32, w []uint16, bias []float32, rows, in, outDim int) {
	linearWith(par, dotBF16, out, x, w, bias, rows, in, outDim)
}

// linearWith is linear over weights of element type W, whose rows dot
// multiplies with a row of x.
func linearWith[W any](par Parallel, dot func([]float32, []W) float32, out, x []float32, w []W, bias []float32, rows, in, outDim int) {
	parallelFor(par, outDim, outDim*in*rows, func(start, end int) {
		for n := start; n < end; n++ {
			wr := w[n*in : (n+1)*in]
			var b float32
			if bias != nil {
				b = bias[n]
			}
			for s := 0; s < rows; s++ {
				out[s*outDim+n] = dot(x[s*in:(s+1)*in], wr) + b
			}
		}
	})
}

// rope rotates x ([seq, heads, dim]) in place-compatible fashion into out,
// in the rotate-half layout: pairs (i, i + dim/2) at position pos+s.
func rope(out, x, invFreq []float32, seq, heads, dim, pos int) {
	half := dim / 2
	cos := make([]float32, half)
	sin := make([]float32, half)
	for s := 0; s < seq; s++ {
		p := float32(pos + s)
		for i, f := range invFreq {
			a := float64(p * f)
			cos[i], sin[i] = float32(math.Cos(a)), float32(math.Sin(a))
		}
		for h := 0; h < heads; h++ {
			base := (s*heads + h) * dim
			xr, o := x[base:base+dim], out[base:base+dim]
			for i := 0; i < half; i++ {
				x1, x2 := xr[i], xr[i+half]
				o[i] = x1*cos[i] - x2*sin[i]
				o[i+half] = x2*cos[i] + x1*sin[i]
			}
		}
	}
}

func silu(out, x []float32) {
	for i, v := range x {
		out[i] = v / (1 + float32(math.Exp(float64(-v))))
	}
}

// geluTanh is GELU with the tanh approximation (gelu_pytorch_tanh).
func geluTanh(out, x []float32) {
	const c = 0.7978845608028654 // sqrt(2/pi)
	for i, v := range x {
		u := float64(v)
		out[i] = float32(0.5 * u * (1 + math.Tanh(c*(u+0.044715*u*u*u))))
	}
}

func mul(out, a, b []float32) {
	b = b[:len(a)]
	for i := range a {
		out[i] = a[i] * b[i]
	}
}

func add(out, a, b []float32) {
	b = b[:len(a)]
	for i := range a {
		out[i] = a[i] + b[i]
	}
}

func scale(out, x []float32, f float32) {
	for i, v := range x {
		out[i] = v * f
	}
}

func softcap(out, x []float32, c float64) {
	for i, v := range x {
		out[i] = float32(c * math.Tanh(float64(v)/c))
	}
}

// attentionParams describe one attention call.
type attentionParams struct {
	seq, heads, kvHeads, dim int
	valid                    int     // queries from this one on are padding (output zero)
	pos                      int     // absolute position of the first query
	scale                    float32 // applied to q·k
	window                   int     // 0: full causal; else keys p-W < j <= p
	softcap                  float64 // 0: none
	ring                     int     // >0: key j is cache row j mod ring
}

// attention computes causal attention of q ([seq, heads, dim]) over the
// cache prefix k, v ([>= pos+seq, kvHeads, dim]), writing out ([seq, heads,
// dim]). Query heads share key/value heads in groups (GQA).
func attention(par Parallel, out, q, k, v []float32, a attentionParams) {
	group := a.heads / a.kvHeads
	rowK := a.kvHeads * a.dim
	parallelFor(par, a.seq*a.heads, a.seq*a.heads*(a.pos+a.seq)*2*a.dim, func(start, end int) {
		scores := make([]float32, a.pos+a.seq)
		for item := start; item < end; item++ {
			s, h := item/a.heads, item%a.heads
			if s >= a.valid {
				clear(out[item*a.dim : (item+1)*a.dim])
				continue
			}
			kh := h / group
			p := a.pos + s
			lo := 0
			if a.window > 0 && p-a.window+1 > 0 {
				lo = p - a.window + 1
			}
			qv := q[(s*a.heads+h)*a.dim : (s*a.heads+h+1)*a.dim]
			maxScore := float32(math.Inf(-1))
			row := func(j int) int {
				if a.ring > 0 {
					return j % a.ring
				}
				return j
			}
			for j := lo; j <= p; j++ {
				sc := dot(qv, k[row(j)*rowK+kh*a.dim:row(j)*rowK+(kh+1)*a.dim]) * a.scale
				if a.softcap != 0 {
					sc = float32(a.softcap * math.Tanh(float64(sc)/a.softcap))
				}
				scores[j] = sc
				if sc > maxScore {
					maxScore = sc
				}
			}
			var sum float64
			for j := lo; j <= p; j++ {
				e := math.Exp(float64(scores[j] - maxScore))
				scores[j] = float32(e)
				sum += e
			}
			o := out[(s*a.heads+h)*a.dim : (s*a.heads+h+1)*a.dim]
			clear(o)
			inv := float32(1 / sum)
			for j := lo; j <= p; j++ {
				w := scores[j] * inv
				vr := v[row(j)*rowK+kh*a.dim : row(j)*rowK+(kh+1)*a.dim]
				for d := range o {
					o[d] += w * vr[d]
				}
			}
		}
	})
}

// attnScores computes scores[s, h, j] = q[s, h] · k[j, h/group] × scale for
// every cache row j < rows ([seq, heads, rows]).
func attnScores(par Parallel, out, q, k []float32, seq, heads, kvHeads, dim, rows int, scale float32) {
	group := heads / kvHeads
	rowK := kvHeads * dim
	parallelFor(par, seq*heads, seq*heads*rows*dim, func(start, end int) {
		for item := start; item < end; item++ {
			h := item % heads
			kh := h / group
			qv := q[item*dim : (item+1)*dim]
			o := out[item*rows : (item+1)*rows]
			for j := range o {
				o[j] = dot(qv, k[j*rowK+kh*dim:j*rowK+(kh+1)*dim]) * scale
			}
		}
	})
}

// causalMask sets scores[s, h, j] to -inf where key j is after the query's
// position pos+s, or (with a window W) at or before pos+s-W.
func causalMask(out, x []float32, seq, heads, rows, pos, window int) {
	neg := float32(math.Inf(-1))
	for s := 0; s < seq; s++ {
		p := pos + s
		lo := 0
		if window > 0 {
			lo = max(0, p-window+1)
		}
		for h := 0; h < heads; h++ {
			base := (s*heads + h) * rows
			for j := 0; j < rows; j++ {
				if j < lo || j > p {
					out[base+j] = neg
				} else {
					out[base+j] = x[base+j]
				}
			}
		}
	}
}

// softmaxRows applies softmax to each row of x ([len/cols, cols]).
func softmaxRows(out, x []float32, cols int) {
	for r := 0; r+cols <= len(x); r += cols {
		row, o := x[r:r+cols], out[r:r+cols]
		m := float32(math.Inf(-1))
		for _, v := range row {
			m = max(m, v)
		}
		var sum float64
		for i, v := range row {
			e := math.Exp(float64(v - m))
			o[i] = float32(e)
			sum += e
		}
		inv := float32(1 / sum)
		for i := range o {
			o[i] *= inv
		}
	}
}

// attnValues computes out[s, h] = Σ_j probs[s, h, j] × v[j, h/group].
func attnValues(par Parallel, out, probs, v []float32, seq, heads, kvHeads, dim, rows int) {
	group := heads / kvHeads
	rowV := kvHeads * dim
	parallelFor(par, seq*heads, seq*heads*rows*dim, func(start, end int) {
		for item := start; item < end; item++ {
			kh := (item % heads) / group
			o := out[item*dim : (item+1)*dim]
			clear(o)
			p := probs[item*rows : (item+1)*rows]
			for j, w := range p {
				if w == 0 {
					continue
				}
				vr := v[j*rowV+kh*dim : j*rowV+(kh+1)*dim]
				for d := range o {
					o[d] += w * vr[d]
				}
			}
		}
	})
}

// sliceCols copies columns [start, start+n) of x ([rows, cols]) into out.
func sliceCols(out, x []float32, rows, cols, start, n int) {
	for r := 0; r < rows; r++ {
		copy(out[r*n:(r+1)*n], x[r*cols+start:r*cols+start+n])
	}
}
