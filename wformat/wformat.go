// Package wformat describes the formats weights are stored in: plain
// element types (f32, f16, bf16) and block formats, where a block of
// BlockElems weights shares a scale and takes BlockBytes bytes. It is the
// one description the graph IR (ir.DType), the kernel IR's buffers and the
// artifact (artifact.Weight, the stored weights file) read, and it holds
// the reference quantisation and dequantisation of each block format.
//
// A row of a weight matrix is quantised on its own: its length is padded
// with zeros to a whole number of blocks (stories260K's 172-wide rows take
// six blocks of 32), so rows stay independent and a matrix stacked from
// several tensors by rows (a fused QKV) is the stacked bytes of its parts.
// Q4_K's blocks of 256 would pad a 64-wide row fourfold, so a row's last,
// partial Q4_K block is stored short (TailBytes): its scales and only the
// quant bytes its real sub-blocks use.
package wformat

import (
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync"
)

// Format is how a weight's elements are stored.
type Format uint8

const (
	F32 Format = iota
	F16
	BF16
	// Q8_0 is llama.cpp's Q8_0 block: a float16 scale d, then 32 int8
	// quants q; weight j of the block is d·q[j]. 34 bytes for 32 weights.
	Q8_0
	// Q4_0 is llama.cpp's Q4_0 block: a float16 scale d, then 16 bytes of
	// unsigned 4-bit quants q; weight j < 16 of the block is in the low
	// nibble of byte j, weight j+16 in its high nibble, and weight j is
	// d·(q[j] - 8). 18 bytes for 32 weights.
	Q4_0
	// Q4_K is llama.cpp's Q4_K super-block of 256 weights in eight
	// sub-blocks of 32: a float16 d and a float16 dmin, 12 bytes of eight
	// 6-bit scales sc[j] and eight 6-bit mins m[j] (Q4_KScaleMin), then
	// 128 bytes of unsigned 4-bit quants q (Q4_KNibble); weight i, of
	// sub-block j = i/32, is d·sc[j]·q[i] - dmin·m[j]. 144 bytes for 256
	// weights; a row's last, partial block keeps the 16 bytes of scales
	// and the 32 bytes of quants of each pair of sub-blocks it has a
	// real weight in (TailBytes).
	Q4_K
	numFormats
)

type info struct {
	name       string
	blockElems int
	blockBytes int
}

var formats = [numFormats]info{
	F32:  {"f32", 1, 4},
	F16:  {"f16", 1, 2},
	BF16: {"bf16", 1, 2},
	Q8_0: {"q8_0", 32, 34},
	Q4_0: {"q4_0", 32, 18},
	Q4_K: {"q4_k", 256, 144},
}

// Offsets inside a Q8_0 block.
const (
	Q8_0Scale  = 0 // the float16 scale
	Q8_0Quants = 2 // the 32 int8 quants
)

// Offsets and facts of a Q4_0 block.
const (
	Q4_0Scale  = 0 // the float16 scale
	Q4_0Quants = 2 // 16 bytes: weight j in the low nibble of byte j%16 if j < 16, else the high
	Q4_0Zero   = 8 // the quant of a zero weight: weight = d·(q - 8)
)

// Q4_0Nibble returns the byte (within the quants) and the shift (0: the
// low nibble, 4: the high) of weight j of a Q4_0 block.
func Q4_0Nibble(j int) (byteOff int, shift uint) {
	return j % 16, uint(j/16) * 4
}

// Formats lists the formats in order.
func Formats() []Format {
	out := make([]Format, numFormats)
	for i := range out {
		out[i] = Format(i)
	}
	return out
}

// Valid reports whether f is one of the formats above.
func (f Format) Valid() bool { return f < numFormats }

func (f Format) String() string {
	if f.Valid() {
		return formats[f].name
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// BlockElems is the number of weights of one block (1 for element types).
func (f Format) BlockElems() int { return f.info().blockElems }

// BlockBytes is the size in bytes of one block.
func (f Format) BlockBytes() int { return f.info().blockBytes }

// Blocked reports whether f is a block format (its weights share scales).
func (f Format) Blocked() bool { return f.info().blockElems > 1 }

// info is f's row of the table; an invalid format's is zero (no bytes,
// no elements), so that its methods answer instead of panicking.
func (f Format) info() info {
	if !f.Valid() {
		return info{}
	}
	return formats[f]
}

// Blocks is the number of blocks a row of cols weights takes (padded).
func (f Format) Blocks(cols int) int {
	e := f.BlockElems()
	if e == 0 {
		return 0
	}
	return (cols + e - 1) / e
}

// RowBytes is the size of a stored row of cols weights, padding included:
// its whole blocks, then a last partial one of TailBytes.
func (f Format) RowBytes(cols int) int {
	e := f.BlockElems()
	if e == 0 {
		return 0
	}
	return cols/e*f.BlockBytes() + f.TailBytes(cols%e)
}

// TailBytes is the size of a row's last block when it holds only rem <
// BlockElems real weights (0 when rem is 0): a whole block for every
// format but Q4_K, whose partial block drops the quant bytes past its
// real sub-blocks (each 32 bytes hold two sub-blocks, 64 weights).
func (f Format) TailBytes(rem int) int {
	switch {
	case rem == 0:
		return 0
	case f == Q4_K:
		return Q4_KQuants + (rem+63)/64*32
	}
	return f.BlockBytes()
}

// Bytes is the stored size of a rows × cols matrix.
func (f Format) Bytes(rows, cols int) int { return rows * f.RowBytes(cols) }

// Parse returns the format of a name ("f32", "q8_0", ...).
func Parse(s string) (Format, error) {
	for i, in := range formats {
		if in.name == s {
			return Format(i), nil
		}
	}
	return 0, fmt.Errorf("unknown weight format %q (want one of %s)", s, strings.Join(names(), ", "))
}

func names() []string {
	var out []string
	for _, in := range formats {
		out = append(out, in.name)
	}
	return out
}

// MarshalText writes the name, so JSON holds "q8_0".
func (f Format) MarshalText() ([]byte, error) {
	if !f.Valid() {
		return nil, fmt.Errorf("invalid weight format %d", uint8(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText reads a name.
func (f *Format) UnmarshalText(b []byte) error {
	g, err := Parse(string(b))
	if err != nil {
		return err
	}
	*f = g
	return nil
}

// Converted reports whether llmc converts weights to f when it compiles
// and stores them in the artifact (Quantize, Dequantize): the block
// formats, and f16 (llmc compile --weights f16). bf16 and f32 weights are
// read from the checkpoint as they are.
func (f Format) Converted() bool { return f.Blocked() || f == F16 }

// f16Max is the largest float16; x with |x| >= f16Overflow rounds to an
// infinity.
const (
	f16Max      = 65504
	f16Overflow = 65520
)

// Quantize stores a rows × cols matrix of float32 (row-major) in format f
// (Converted): block rows padded with zeros to whole blocks, or float16
// elements rounded to nearest even, little-endian. A NaN or an infinity,
// and a value float16 cannot hold, is an error naming the element: a block
// format would hide it (a block's scale from max|x| becomes NaN, or its
// other quants round to zero), where the float formats carry it to the
// logits, which the runtime checks.
func Quantize(f Format, rows, cols int, data []float32) ([]byte, error) {
	if len(data) != rows*cols {
		return nil, fmt.Errorf("quantizing [%d, %d]: %d elements", rows, cols, len(data))
	}
	if !f.Converted() {
		return nil, fmt.Errorf("quantizing to %s: not a format llmc converts weights to", f)
	}
	for i, x := range data {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil, fmt.Errorf("storing [%d, %d] as %s: element [%d, %d] is %g, not a finite number", rows, cols, f, i/cols, i%cols, x)
		}
	}
	var row func(dst []byte, row []float32)
	switch f {
	case F16:
		for i, x := range data {
			if !(math.Abs(float64(x)) < f16Overflow) {
				return nil, fmt.Errorf("storing [%d, %d] as f16: element [%d, %d] is %g, beyond float16's ±%d", rows, cols, i/cols, i%cols, x, f16Max)
			}
		}
		row = func(dst []byte, row []float32) {
			for i, x := range row {
				h := F32ToF16(x)
				dst[2*i], dst[2*i+1] = byte(h), byte(h>>8)
			}
		}
	case Q8_0:
		row = quantizeQ8_0Row
	case Q4_0:
		row = quantizeQ4_0Row
	case Q4_K:
		row = quantizeQ4_KRow
	default:
		return nil, fmt.Errorf("quantizing to %s: not a format llmc converts weights to", f)
	}
	rb := f.RowBytes(cols)
	out := make([]byte, rows*rb)
	// Rows are independent: split them among the CPUs (Q4_K's fit is
	// slow enough to matter: TinyLlama's 1.1B weights take minutes on
	// one core).
	workers := min(runtime.GOMAXPROCS(0), max(1, rows*cols/(1<<16)))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := w * rows / workers; r < (w+1)*rows/workers; r++ {
				row(out[r*rb:(r+1)*rb], data[r*cols:(r+1)*cols])
			}
		})
	}
	wg.Wait()
	return out, nil
}

// quantizeQ8_0Row is llama.cpp's quantize_row_q8_0_ref: d = max|x|/127,
// q = round(x/d) (halves away from zero), d stored as float16.
func quantizeQ8_0Row(dst []byte, row []float32) {
	for b := 0; b*32 < len(row); b++ {
		blk := dst[b*34 : (b+1)*34]
		x := row[b*32 : min(len(row), (b+1)*32)]
		amax := float32(0)
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		h := F32ToF16(d)
		blk[0], blk[1] = byte(h), byte(h>>8)
		for j, v := range x {
			blk[Q8_0Quants+j] = byte(int8(math.Round(float64(v * id))))
		}
	}
}

// quantizeQ4_0Row quantizes a row to Q4_0 blocks: the scale comes from
// the block's element of largest magnitude m (its sign kept), d = m/-8,
// so that m itself is quant 0; every weight x is then the nearest of
// d·(q-8) for q in 0..15 (q = trunc(x/d + 8.5), at most 15), which is
// llama.cpp's quantize_row_q4_0_ref rule. d is stored as float16; the
// quants are computed from the float32 d, as llama.cpp does.
func quantizeQ4_0Row(dst []byte, row []float32) {
	for b := 0; b*32 < len(row); b++ {
		blk := dst[b*18 : (b+1)*18]
		x := row[b*32 : min(len(row), (b+1)*32)]
		m, amax := float32(0), float32(0)
		for _, v := range x {
			if a := float32(math.Abs(float64(v))); a > amax {
				m, amax = v, a
			}
		}
		d := m / -8
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		h := F32ToF16(d)
		blk[0], blk[1] = byte(h), byte(h>>8)
		q := blk[Q4_0Quants:]
		for j := range 16 {
			q[j] = Q4_0Zero | Q4_0Zero<<4 // padding is weight 0
		}
		for j, v := range x {
			n := min(15, int(v*id+8.5)) // x*id is in [-8, 8]: no negative truncation
			off, sh := Q4_0Nibble(j)
			q[off] = q[off]&^(0xf<<sh) | byte(n)<<sh
		}
	}
}

// Dequantize widens a rows × cols matrix stored in format f (Converted)
// back to float32, dropping the padding.
func Dequantize(f Format, rows, cols int, data []byte) ([]float32, error) {
	if !f.Converted() {
		return nil, fmt.Errorf("dequantizing %s: not a format llmc converts weights to", f)
	}
	rb := f.RowBytes(cols)
	if len(data) != rows*rb {
		return nil, fmt.Errorf("dequantizing %s [%d, %d]: %d bytes, want %d", f, rows, cols, len(data), rows*rb)
	}
	if f == F16 {
		out := make([]float32, rows*cols)
		for i := range out {
			out[i] = F16ToF32(uint16(data[2*i]) | uint16(data[2*i+1])<<8)
		}
		return out, nil
	}
	be, bb := f.BlockElems(), f.BlockBytes()
	out := make([]float32, rows*cols)
	for r := range rows {
		src := data[r*rb:]
		for c := range cols {
			blk := src[c/be*bb:]
			j := c % be
			switch f {
			case Q8_0:
				d := F16ToF32(uint16(blk[Q8_0Scale]) | uint16(blk[Q8_0Scale+1])<<8)
				out[r*cols+c] = d * float32(int8(blk[Q8_0Quants+j]))
			case Q4_0:
				d := F16ToF32(uint16(blk[Q4_0Scale]) | uint16(blk[Q4_0Scale+1])<<8)
				off, sh := Q4_0Nibble(j)
				out[r*cols+c] = d * float32(int(blk[Q4_0Quants+off]>>sh&0xf)-Q4_0Zero)
			case Q4_K:
				d := F16ToF32(uint16(blk[Q4_KScale]) | uint16(blk[Q4_KScale+1])<<8)
				dmin := F16ToF32(uint16(blk[Q4_KMin]) | uint16(blk[Q4_KMin+1])<<8)
				sc, m := Q4_KScaleMin(blk[Q4_KScales:Q4_KQuants], j/Q4_KSub)
				off, sh := Q4_KNibble(j)
				out[r*cols+c] = d*float32(sc)*float32(blk[Q4_KQuants+off]>>sh&0xf) - dmin*float32(m)
			}
		}
	}
	return out, nil
}

// F16ToF32 widens an IEEE half-precision bit pattern (exactly).
func F16ToF32(h uint16) float32 { return math.Float32frombits(F16Bits(h)) }

// F16Bits is F16ToF32 as float32 bits, in integer arithmetic only: the Go
// backend's vector kernels widen scales with it in a general register
// (no legacy-SSE float code; see codegen/golang), and it inlines.
func F16Bits(h uint16) uint32 {
	sign := uint32(h&0x8000) << 16
	em := uint32(h) & 0x7fff   // exponent and mantissa
	r := em<<13 + (127-15)<<23 // a normal number: the exponent rebiased
	switch {
	case em >= 0x7c00: // inf or NaN (the payload kept): exponent 255
		r += (127 - 15) << 23
	case em < 0x400: // zero or subnormal, em * 2^-24
		r = 0
		if em != 0 {
			// The leading one, at bit 31-n, becomes the implicit bit.
			n := uint32(bits.LeadingZeros32(em))
			r = (127-24+31-n)<<23 | em<<(n-8)&0x7fffff
		}
	}
	return sign | r
}

// F32ToF16 narrows to half precision, rounding to nearest even.
func F32ToF16(f float32) uint16 { return F16FromBits(math.Float32bits(f)) }

// F16FromBits is F32ToF16 of a float32 given as its bits, in integer
// arithmetic only (the Go backend's vector kernels round KV cache values
// with it in general registers: see codegen/golang).
func F16FromBits(bits uint32) uint16 {
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff

	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15 // binary16 biased exponent
	switch {
	case e >= 0x1f:
		return sign | 0x7c00
	case e <= 0:
		if e < -10 {
			// |f| < 2^-25, at most half the smallest subnormal: rounds to
			// zero (exactly half is a tie, and zero is even).
			return sign
		}
		// The result is the subnormal m * 2^-24 with m = full >> shift.
		full := mant | 0x800000
		shift := uint(14 - e)
		return sign | uint16(roundShift(full, shift))
	}
	// Normal. A carry from rounding moves into the exponent, and from the
	// largest exponent into the infinity encoding, as it should.
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && r&1 == 1 {
		r++
	}
	return sign | uint16(r)
}

// roundShift returns x >> shift rounded to nearest, ties to even.
func roundShift(x uint32, shift uint) uint32 {
	r := x >> shift
	rem := x & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || rem == half && r&1 == 1 {
		r++
	}
	return r
}

// BF16ToF32 widens a bfloat16 bit pattern (exactly: it is the top half of
// a float32's bits).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 narrows to bfloat16, rounding to nearest even: values beyond
// its range become infinities, and a NaN stays a NaN (made quiet, keeping
// its sign and upper payload bits).
func F32ToBF16(f float32) uint16 { return BF16FromBits(math.Float32bits(f)) }

// BF16FromBits is F32ToBF16 of a float32 given as its bits, in integer
// arithmetic only.
func BF16FromBits(bits uint32) uint16 {
	if bits&0x7fffffff > 0x7f800000 { // NaN
		return uint16(bits>>16) | 0x0040
	}
	// Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to
	// even; a carry out of the mantissa bumps the exponent, up to inf.
	bits += 0x7fff + (bits>>16)&1
	return uint16(bits >> 16)
}

// QuantI8 is x as an int8 quant: clamped to ±127 (NaN to -127) and
// rounded to nearest even. It is what the kernels' StoreI8 stores when
// they quantise a linear's input per block (x already scaled by
// 127/max|x|), in every backend and in kir.Machine.
func QuantI8(x float32) int8 {
	if !(x > -127) {
		x = -127
	}
	if !(x < 127) {
		x = 127
	}
	return int8(math.RoundToEven(float64(x)))
}

// Round returns x stored in element format f and widened back: x rounded
// to nearest even in f16 or bf16, x itself in f32. It is what a value
// written into a KV cache stored in f reads back as.
func Round(f Format, x float32) float32 {
	switch f {
	case F16:
		return F16ToF32(F32ToF16(x))
	case BF16:
		return BF16ToF32(F32ToBF16(x))
	}
	return x
}

// KVFormats are the formats a static KV cache can be stored in (llmc
// compile --kv-dtype): computed in float32, rounded as written, widened as
// read.
var KVFormats = []Format{F32, F16, BF16}

// ParseKV returns the KV cache format of a name: f32, f16 or bf16.
func ParseKV(s string) (Format, error) {
	for _, f := range KVFormats {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("unknown KV cache dtype %q (want f32, f16 or bf16)", s)
}
