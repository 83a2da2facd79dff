// Package kir is llmc's kernel IR: the loop-level form that every fused
// region of a graph is lowered to and that every backend prints.
//
// A Program has entry points; an entry point runs kernels in order; a
// kernel runs phases in order; a phase is one loop nest, either serial or
// parallel over its outer loop (the runtime splits that loop across its
// worker threads, with a barrier after the phase). Loop bounds are
// constants except where they depend on the step's scalar inputs (the
// position, the number of real tokens in a padded chunk).
//
// Values are ints (indices), f32 scalars or f32x8 vectors. Vector code is
// explicit: Load and Store of 8 lanes, FMA, broadcasts and horizontal sums,
// so a backend maps it to its SIMD types one to one (Go's simd/archsimd,
// LLVM's <8 x float>) or emulates it lane by lane. Dot products (and
// attention's value sums) may also run on f32x16, sixteen lanes (one
// AVX-512 register), for backends that print them (Options.Wide).
package kir

import (
	"fmt"
	"strings"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/wformat"
)

// Type is the type of a kernel IR value.
type Type uint8

const (
	Int   Type = iota // an index (Go int, LLVM i64)
	F32               // a float32 scalar
	F32x8             // eight float32 lanes
	// F32x16 is sixteen float32 lanes, for dot products and sums: loads
	// (Load.Wide), broadcasts, Halves, pairs of integer dots (DotI8.Pair),
	// a group's column dots, scales and bit fields (DotCols, ColScales,
	// ColBits), +, -, *, fma,
	// hsum, and stores to f32 buffers; no calls or other reductions
	// (kir.Verify refuses them).
	F32x16
)

var typeNames = [...]string{"int", "f32", "f32x8", "f32x16"}

// IsVector reports whether t has lanes.
func (t Type) IsVector() bool { return t == F32x8 || t == F32x16 }

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// BufKind says where a buffer lives.
type BufKind uint8

const (
	Arena   BufKind = iota // the entry's activation arena (planned offsets)
	Scratch                // kernel-local intermediates, reused by every kernel
	Weight                 // a weight, read-only
	State                  // a KV cache, kept across steps
	Tokens                 // the step's rows: token ids, positions, slots (i32, artifact.RowFields)
	Table                  // a constant table baked into the code
	// Local is a small array of Len f32s that each thread running a phase
	// has for itself (on its stack): a parallel phase's iterations share
	// no Local, so stores to one never race, and its contents are
	// undefined until a statement of the same iteration writes them.
	Local
)

var bufKindNames = [...]string{"arena", "scratch", "weight", "state", "tokens", "table", "local"}

func (k BufKind) String() string {
	if int(k) < len(bufKindNames) {
		return bufKindNames[k]
	}
	return fmt.Sprintf("BufKind(%d)", uint8(k))
}

// Buffer is a flat array of float32 (i32 for Tokens), or a weight in
// another format.
type Buffer struct {
	Name string
	Kind BufKind
	// Format is how a weight's or a state's elements are stored (f32 for
	// every other buffer). Loads of a bf16 weight widen each element to
	// f32 (exactly: a bfloat16 is the top half of a float32's bits), so the
	// step streams half the bytes. A block-format weight (Format.Blocked)
	// is bytes, read only by LoadQ at byte offsets; Len is then its bytes.
	// A state (the KV cache) may be f16 or bf16 (StateRef.Dtype): loads
	// widen exactly, stores round the f32 value to nearest even
	// (wformat.Round), so kernels compute in f32 on a cache of half the
	// bytes.
	Format wformat.Format
	Index  int       // weight, state or table number
	Len    int       // elements (bytes of a block-format weight)
	Data   []float32 // the contents of a Table
}

// IsBF16 reports whether b is a weight or state kept in bfloat16.
func (b *Buffer) IsBF16() bool { return b.Format == wformat.BF16 }

// IsF16 reports whether b is a state kept in IEEE half precision.
func (b *Buffer) IsF16() bool { return b.Format == wformat.F16 }

// Is16 reports whether b's elements are 16 bits wide (f16 or bf16).
func (b *Buffer) Is16() bool { return b.IsBF16() || b.IsF16() }

func (b *Buffer) String() string { return b.Name }

// Expr is an expression.
type Expr interface {
	Type() Type
	String() string
}

// IntConst is an integer constant.
type IntConst struct{ N int }

// F32Const is a float32 constant.
type F32Const struct{ F float32 }

// Var is a local variable or loop index.
type Var struct {
	Name string
	T    Type
}

// Param is a scalar input of the step: "pos" (the largest position of a
// row, for work estimates; each row's own position is in the tokens
// buffer, see artifact.RowFields) or "len" (real rows in a padded step).
type Param struct{ Name string }

// Load reads one element (Vec false) or eight consecutive elements,
// sixteen when Wide (an f32x16).
type Load struct {
	Buf   *Buffer
	Index Expr
	Vec   bool
	Wide  bool
}

// BinOp is a binary operator.
type BinOp uint8

const (
	Add BinOp = iota
	Sub
	Mul
	Div
	Max
	Min
	Rem // integer remainder (operands >= 0)
)

var binNames = [...]string{"+", "-", "*", "/", "max", "min", "%"}

func (o BinOp) String() string {
	if int(o) < len(binNames) {
		return binNames[o]
	}
	return fmt.Sprintf("BinOp(%d)", uint8(o))
}

// Bin applies a binary operator to two operands of the same type.
type Bin struct {
	Op   BinOp
	A, B Expr
}

// FMA is A*B+C, fused, on f32 or f32x8.
type FMA struct{ A, B, C Expr }

// MathFn is a math function of the kernel IR.
type MathFn uint8

const (
	Exp MathFn = iota
	Sqrt
	Tanh
	Cos
	Sin
	// RoundEven rounds to the nearest integer, ties to even (what StoreI8
	// does before it stores a byte).
	RoundEven
	numMathFns
)

var mathFnNames = [...]string{"exp", "sqrt", "tanh", "cos", "sin", "roundeven"}

// String is the function's name in the text form.
func (f MathFn) String() string {
	if f < numMathFns {
		return mathFnNames[f]
	}
	return fmt.Sprintf("MathFn(%d)", uint8(f))
}

// Valid reports whether f is one of the functions above.
func (f MathFn) Valid() bool { return f < numMathFns }

// LookupMathFn returns the function of a name of the text form.
func LookupMathFn(name string) (MathFn, bool) {
	for i, n := range mathFnNames {
		if n == name {
			return MathFn(i), true
		}
	}
	return 0, false
}

// Call applies a math function to an f32 scalar, or lane by lane to an
// f32x8 (backends compute exp on eight lanes by a polynomial, the others
// lane by lane).
type Call struct {
	Fn  MathFn
	Arg Expr
}

// Broadcast turns an f32 into an f32x8 of equal lanes (an f32x16 when
// Wide).
type Broadcast struct {
	X    Expr
	Wide bool
}

// HSum adds the eight lanes of an f32x8 (in HSum8's order), or the
// sixteen of an f32x16 (HSum16's).
type HSum struct{ X Expr }

// HMax is the largest of the eight lanes of an f32x8.
type HMax struct{ X Expr }

// HSums is the f32x8 whose lane i is the sum of the lanes of Xs[i],
// added as ((x0+x1)+(x2+x3))+((x4+x5)+(x6+x7)): eight dot products
// finished at once (a transpose by horizontal adds).
type HSums struct{ Xs [8]Expr }

// QPart is what a LoadQ reads from a block of a block-format weight.
type QPart uint8

const (
	// QInt8 is an int8 quant (eight consecutive ones for a vector load).
	QInt8 QPart = iota
	// QF16 is a float16 scale.
	QF16
	// QU4Lo is the low four bits of a byte, unsigned (0..15): a 4-bit
	// quant (Q4_0's weights 0..15 of a block); eight consecutive bytes'
	// for a vector load. The byte is loaded and masked (x & 15).
	QU4Lo
	// QU4Hi is the high four bits of a byte (x >> 4): Q4_0's weights
	// 16..31.
	QU4Hi
	// QU8 is a byte, unsigned, as an int (not a float): Q4_K's packed
	// 6-bit sub-block scales and mins, which lowering unpacks with integer
	// arithmetic (a % 64, a / 64) before widening them (ToF32).
	QU8
	numQParts
)

// qPartNames are the printed forms of LoadQ by part: scalar, vector
// ("" where the part has no vector load).
var qPartNames = [numQParts][2]string{
	QInt8: {"loadi8", "load8i8"},
	QF16:  {"loadf16", ""},
	QU4Lo: {"loadu4lo", "load8u4lo"},
	QU4Hi: {"loadu4hi", "load8u4hi"},
	QU8:   {"loadu8", ""},
}

// qPartBytes is how many bytes a scalar load of each part reads; a vector
// load reads eight times as many.
var qPartBytes = [numQParts]int{QInt8: 1, QF16: 2, QU4Lo: 1, QU4Hi: 1, QU8: 1}

// QParts are the parts of each block format's blocks that LoadQ reads
// (kir.Verify refuses the others: an int8 quant of a Q4_0 block is
// meaningless).
var QParts = map[wformat.Format][]QPart{
	wformat.Q8_0: {QF16, QInt8},
	wformat.Q4_0: {QF16, QU4Lo, QU4Hi},
	wformat.Q4_K: {QF16, QU8, QU4Lo, QU4Hi},
}

// LoadQ reads part of a block-format weight at byte offset Off, widened
// to f32 (Vec: the parts of eight consecutive bytes, widened to f32x8;
// QU8: to an int).
// Lowering writes dequantisation with it as scale × (quant - zero)
// arithmetic, so a backend only prints loads, masks and conversions.
type LoadQ struct {
	Buf  *Buffer
	Off  Expr
	Part QPart
	Vec  bool
}

func (l *LoadQ) Type() Type {
	if l.Part == QU8 {
		return Int
	}
	return vecType(l.Vec)
}
func (l *LoadQ) String() string {
	name := fmt.Sprintf("loadq(%d)", l.Part)
	if l.Part < numQParts {
		name = qPartNames[l.Part][0]
		if l.Vec {
			name = qPartNames[l.Part][1]
		}
	}
	return fmt.Sprintf("%s %s[%s]", name, l.Buf, l.Off)
}

// ToF32 converts an int to f32.
type ToF32 struct{ X Expr }

// Select is A if X > Y, else B, on f32 scalars.
type Select struct{ X, Y, A, B Expr }

func (IntConst) Type() Type { return Int }
func (F32Const) Type() Type { return F32 }
func (v *Var) Type() Type   { return v.T }
func (Param) Type() Type    { return Int }
func (l *Load) Type() Type {
	if l.Buf != nil && l.Buf.Kind == Tokens {
		return Int // token ids widen to ints
	}
	if l.Vec && l.Wide {
		return F32x16
	}
	return vecType(l.Vec)
}
func (b *Bin) Type() Type  { return b.A.Type() }
func (f *FMA) Type() Type  { return f.A.Type() }
func (c *Call) Type() Type { return c.Arg.Type() }
func (b *Broadcast) Type() Type {
	if b.Wide {
		return F32x16
	}
	return F32x8
}
func (*HMax) Type() Type          { return F32 }
func (*HSum) Type() Type          { return F32 }
func (*ToF32) Type() Type         { return F32 }
func (*Select) Type() Type        { return F32 }
func (c IntConst) String() string { return fmt.Sprint(c.N) }
func (c F32Const) String() string { return fmt.Sprintf("%gf", c.F) }
func (v *Var) String() string     { return v.Name }
func (p Param) String() string    { return "%" + p.Name }
func (l *Load) String() string {
	if l.Vec && l.Wide {
		return fmt.Sprintf("load16 %s[%s]", l.Buf, l.Index)
	}
	if l.Vec {
		return fmt.Sprintf("load8 %s[%s]", l.Buf, l.Index)
	}
	return fmt.Sprintf("%s[%s]", l.Buf, l.Index)
}
func (b *Bin) String() string {
	if b.Op == Max || b.Op == Min {
		return fmt.Sprintf("%s(%s, %s)", b.Op, b.A, b.B)
	}
	return fmt.Sprintf("(%s %s %s)", b.A, b.Op, b.B)
}
func (f *FMA) String() string  { return fmt.Sprintf("fma(%s, %s, %s)", f.A, f.B, f.C) }
func (c *Call) String() string { return fmt.Sprintf("%s(%s)", c.Fn, c.Arg) }
func (b *Broadcast) String() string {
	if b.Wide {
		return fmt.Sprintf("bcast16(%s)", b.X)
	}
	return fmt.Sprintf("bcast(%s)", b.X)
}
func (h *HSum) String() string  { return fmt.Sprintf("hsum(%s)", h.X) }
func (h *HMax) String() string  { return fmt.Sprintf("hmax(%s)", h.X) }
func (c *ToF32) String() string { return fmt.Sprintf("f32(%s)", c.X) }
func (s *Select) String() string {
	return fmt.Sprintf("(%s > %s ? %s : %s)", s.X, s.Y, s.A, s.B)
}

func vecType(vec bool) Type {
	if vec {
		return F32x8
	}
	return F32
}

// Stmt is a statement.
type Stmt interface{ stmt() }

// Decl declares a variable with an initial value.
type Decl struct {
	Var  *Var
	Init Expr
}

// Assign sets a declared variable.
type Assign struct {
	Var *Var
	Val Expr
}

// Store writes one element, or eight from an f32x8 value.
type Store struct {
	Buf   *Buffer
	Index Expr
	Val   Expr
}

// For runs Body for Var = Lo, Lo+Step, ... while Var < Hi.
type For struct {
	Var    *Var
	Lo, Hi Expr
	Step   int
	Body   []Stmt
}

// IfGreater runs Then when X > Y (f32 scalars).
type IfGreater struct {
	X, Y Expr
	Then []Stmt
}

func (*IfGreater) stmt() {}
func (*Decl) stmt()      {}
func (*Assign) stmt()    {}
func (*Store) stmt()     {}
func (*For) stmt()       {}

// Phase is one loop nest of a kernel. A parallel phase runs Body for each
// Var in [0, N), the range split across threads; a serial phase runs Body
// once on one thread. Work estimates a parallel phase's multiply-adds:
// backends split it across threads only when Work reaches
// ParallelMinWork, since waking threads costs microseconds.
type Phase struct {
	Parallel bool
	Var      *Var
	N        Expr
	Work     Expr
	Grain    int
	Body     []Stmt
}

// ParallelMinWork is the fewest multiply-adds worth splitting across
// threads (the grain PyTorch uses for its intra-op parallelism is alike).
const ParallelMinWork = 1 << 15

// Kernel is one fused region of the graph.
type Kernel struct {
	Name   string // unique in the program, a valid identifier
	Kind   string // the graph kernel's kind: matmul, attention, ...
	Value  string // the graph value it computes, for comments
	Ops    []string
	Phases []*Phase
}

// Entry is one entry point: its kernels in order, and where its output is.
type Entry struct {
	Name       string
	Seq        int // tokens per call (padded)
	HasLen     bool
	Kernels    []*Kernel
	ArenaLen   int // elements
	ScratchLen int // elements
	Output     *Buffer
	OutOffset  Expr // element offset of the output in Output
	OutShape   []int
}

// WeightRef names a weight by index; derived weights are built by the
// runtime from checkpoint weights. It is the artifact contract's weight
// description (its Fmt: see Buffer.Format), which backends
// hand to the runtime as it is.
type WeightRef = artifact.Weight

// StateRef is a KV cache state; its Dtype is the format of its buffers.
type StateRef = artifact.State

// Program is a whole compiled model.
type Program struct {
	Entries []*Entry
	Weights []*WeightRef
	States  []*StateRef
	Tables  []*Buffer
	// Slots is how many sequences the states hold (0 or 1: one): each
	// state's Rows are Slots equal parts, one per sequence.
	Slots int
}

func (*HSums) Type() Type { return F32x8 }

func (h *HSums) String() string {
	parts := make([]string, 8)
	for i, x := range h.Xs {
		parts[i] = x.String()
	}
	return "hsums(" + strings.Join(parts, ", ") + ")"
}

// StoreI8 quantises Val, an f32 or the eight lanes of an f32x8, to int8
// and stores the byte or bytes at byte offset Off of a scratch buffer:
// each value is clamped to [-127, 127] (NaN to -127) and rounded to the
// nearest integer, ties to even. Lowering writes it to quantise a
// linear's input once per call into blocks of 32 that DotI8 reads; the
// clamp keeps -128 out, which DotI8's sign trick needs.
type StoreI8 struct {
	Buf *Buffer
	Off Expr
	Val Expr
}

func (*StoreI8) stmt() {}

// Prefetch is a hint that byte Off of weight or state Buf will be read
// soon: a backend may start loading its cache line (LLVM's llvm.prefetch,
// which never faults) or do nothing. Off may lie past the buffer's end,
// where it does nothing; kir.Machine ignores it.
type Prefetch struct {
	Buf *Buffer
	Off Expr
}

func (*Prefetch) stmt() {}

// Scales is the float16 scales of N (1 to 8) blocks of a block-format
// weight W, widened: lane i < N is the f16 at byte Off + i·Stride, the
// other lanes 0. Lowering reads the d_w of consecutive blocks of a row
// with it (Stride the block's bytes), to multiply eight blocks' scales at
// once.
type Scales struct {
	W      *Buffer
	Off    Expr
	Stride int
	N      int
}

func (*Scales) Type() Type { return F32x8 }
func (s *Scales) String() string {
	return fmt.Sprintf("scales(%s[%s], %d, %d)", s.W, s.Off, s.Stride, s.N)
}

// DotI8 is the integer dot product of the 32 int8 quants of a
// block-format weight W at byte offset WOff with the 32 int8s at byte
// offset XOff of a scratch buffer X (written by StoreI8, so in
// [-127, 127]): the f32x8 whose lane i is Σ_{k<4} w[4i+k]·x[4i+k], summed
// in int32 and converted (exactly: a lane is at most 4·128·127). This is
// the lane split of VNNI's vpdpbusd and of AVX2's vpmaddubsw+vpmaddwd, so
// every backend's form gives the same lanes; a block's scales multiply
// the lanes after, and one HSum finishes a row.
//
// Quants says how W's bytes hold the 32 quants (see DotQuants): int8s,
// or unsigned 4-bit quants in [0, 15], which vpdpbusd and vpmaddubsw
// take as they are; the lowering takes a nibble format's zero point or
// min off once a block (Q4_0: 8·d_w·d_x·Σq_x).
//
// Pair makes it the dots of two consecutive blocks at once, an f32x16:
// lanes 0-7 the block at WOff and XOff, lanes 8-15 the next one (its
// weight quants a block's bytes further, its input 32 bytes further), one
// 512-bit vpdpbusd with AVX-512 VNNI. Q8_0 and Q4_0 quants only.
type DotI8 struct {
	W      *Buffer
	WOff   Expr
	X      *Buffer
	XOff   Expr
	Quants DotQuants
	Pair   bool
}

// DotQuants is how a DotI8's weight bytes hold its 32 quants.
type DotQuants uint8

const (
	// DotInt8: 32 int8s (a Q8_0 block's), printed doti8.
	DotInt8 DotQuants = iota
	// DotQ4_0: a Q4_0 block's 16 bytes, quant k < 16 the low nibble of
	// byte k and quant k >= 16 the high nibble of byte k - 16 (doti4).
	DotQ4_0
	// DotLow: the low nibbles of 32 bytes, quant k that of byte k: a
	// Q4_K sub-block of even index (doti4lo).
	DotLow
	// DotHigh: the high nibbles of 32 bytes: a Q4_K sub-block of odd
	// index, sharing its bytes with the even one before it (doti4hi).
	DotHigh
	// DotUInt8: a Q8_0 block's 32 int8s plus 128, unsigned (the byte
	// xor 0x80), printed dotu8: VNNI's vpdpbusd multiplies them by the
	// signed input as they are, with no sign trick, and lowering takes
	// the 128·Σx this adds off once per row, eight blocks a multiply.
	DotUInt8
	numDotQuants
)

// dotNames are DotI8's printed names by DotQuants.
var dotNames = [numDotQuants]string{DotInt8: "doti8", DotQ4_0: "doti4", DotLow: "doti4lo", DotHigh: "doti4hi", DotUInt8: "dotu8"}

// dotFormats is the weight format each DotQuants reads.
var dotFormats = [numDotQuants]wformat.Format{DotInt8: wformat.Q8_0, DotQ4_0: wformat.Q4_0, DotLow: wformat.Q4_K, DotHigh: wformat.Q4_K, DotUInt8: wformat.Q8_0}

// Nibbles reports whether the quants are unsigned 4-bit ones.
func (q DotQuants) Nibbles() bool { return q != DotInt8 && q != DotUInt8 }

// Unsigned reports whether the quants are unsigned bytes (nibbles, or
// DotUInt8's offset int8s), which vpdpbusd and vpmaddubsw take as their
// unsigned operand with no sign trick.
func (q DotQuants) Unsigned() bool { return q != DotInt8 }

// DotI8Len is how many int8 pairs a DotI8 multiplies: one Q8_0 block.
const DotI8Len = 32

func (d *DotI8) Type() Type {
	if d.Pair {
		return F32x16
	}
	return F32x8
}
func (d *DotI8) String() string {
	name := fmt.Sprintf("dot(%d)", d.Quants)
	if d.Quants < numDotQuants {
		name = dotNames[d.Quants]
	}
	if d.Pair {
		name += "x2"
	}
	return fmt.Sprintf("%s(%s[%s], %s[%s])", name, d.W, d.WOff, d.X, d.XOff)
}

// DotCols is the integer dot products of one block of 32 quants of a
// group of wformat.Group interleaved Q4_0, Q8_0 or Q4_K weight rows
// (wformat.Interleave) with one block of 32 int8s at byte XOff of scratch
// X: lane c is Σ_{k<32} q_c[k]·x[k], q_c[k] row c's unsigned quant (Q4_0's
// nibble, or Q8_0's int8 plus 128: the zero point, 8 or 128, not taken
// off; Q4_K's nibble), summed in int32 and converted. WOff is the byte
// offset of the quants' chunks of 64 bytes: a Q4_0 or Q8_0 group block's
// (wformat.GroupQuants past its start), or the eight of a Q4_K pair of
// sub-blocks, whose low nibbles are the even sub-block's quants and whose
// high nibbles (High) the odd one's. With VNNI, eight vpdpbusd into one
// accumulator: Q4_0's chunk k's low and high nibbles (quants 4k..4k+3 and
// 16+4k.. of each row), Q8_0's chunk k xor 0x80, or Q4_K's chunk k's low
// or high nibbles, times x's dword of the same quants broadcast.
type DotCols struct {
	W    *Buffer
	WOff Expr
	X    *Buffer
	XOff Expr
	High bool // Q4_K only: the high nibbles
}

func (*DotCols) Type() Type { return F32x16 }
func (d *DotCols) String() string {
	name := "dotcols"
	if d.High {
		name = "dotcolshi"
	}
	return fmt.Sprintf("%s(%s[%s], %s[%s])", name, d.W, d.WOff, d.X, d.XOff)
}

// WBytes is how many bytes of W the dot reads.
func (d *DotCols) WBytes() int {
	if d.W.Format == wformat.Q4_K {
		return 8 * 64
	}
	return d.W.Format.GroupBytes() - wformat.GroupQuants
}

// Weight is quant k < 32 of row c of the group, from the dot's quant
// bytes w, unsigned.
func (d *DotCols) Weight(w []byte, c, k int) int32 {
	switch d.W.Format {
	case wformat.Q8_0:
		return int32(int8(w[64*(k/4)+4*c+k%4])) + 128
	case wformat.Q4_K:
		var sh uint
		if d.High {
			sh = 4
		}
		return int32(w[64*(k/4)+4*c+k%4] >> sh & 15)
	}
	off, sh := wformat.Q4_0Nibble(k)
	return int32(w[64*(off/4)+4*c+off%4] >> sh & 15)
}

// ColScales is the sixteen float16 scales at byte Off of an interleaved
// weight (a group block's first 32 bytes), widened: lane c is row c's.
type ColScales struct {
	W   *Buffer
	Off Expr
}

func (*ColScales) Type() Type { return F32x16 }
func (s *ColScales) String() string {
	return fmt.Sprintf("colscales(%s[%s])", s.W, s.Off)
}

// ColBits is sixteen bit fields of the bytes at byte Off of an
// interleaved weight, as f32: lane c is (W[Off+c] >> Shift) & (2^Bits −
// 1). Lowering builds a Q4_K group's 6-bit scales and mins from them
// (wformat.Q4_KGroupScales): a vector load of sixteen bytes, widened,
// shifted, masked and converted.
type ColBits struct {
	W           *Buffer
	Off         Expr
	Shift, Bits int
}

func (*ColBits) Type() Type { return F32x16 }
func (b *ColBits) String() string {
	return fmt.Sprintf("colbits(%s[%s], %d, %d)", b.W, b.Off, b.Shift, b.Bits)
}

// Halves is the f32x16 whose lanes 0-7 are Lo and lanes 8-15 Hi, two
// f32s: the scales of the two blocks of a DotI8 pair.
type Halves struct{ Lo, Hi Expr }

func (*Halves) Type() Type { return F32x16 }
func (h *Halves) String() string {
	return fmt.Sprintf("halves(%s, %s)", h.Lo, h.Hi)
}

// WBytes is how many bytes of W the dot reads.
func (d *DotI8) WBytes() int {
	if d.Quants == DotQ4_0 {
		return DotI8Len / 2
	}
	return DotI8Len
}

// Weight is the quant k < 32 of the dot, from the bytes of W at its
// offset: the int8, the unsigned nibble, or the int8 plus 128.
func (d *DotI8) Weight(w []byte, k int) int32 {
	switch d.Quants {
	case DotQ4_0:
		b := w[k%16]
		if k >= 16 {
			b >>= 4
		}
		return int32(b & 15)
	case DotLow:
		return int32(w[k] & 15)
	case DotHigh:
		return int32(w[k] >> 4)
	case DotUInt8:
		return int32(int8(w[k])) + 128
	}
	return int32(int8(w[k]))
}

// StoreBF16 rounds the eight lanes of Val (an f32x8) to bfloat16, to
// nearest even (a NaN stays a NaN, made quiet: wformat.F32ToBF16), and
// stores them at byte offset Off of a scratch buffer. Lowering writes a
// linear's input with it once per call for DotBF16.
type StoreBF16 struct {
	Buf *Buffer
	Off Expr
	Val Expr
}

func (*StoreBF16) stmt() {}

// DotBF16 is AVX-512 BF16's vdpbf16ps: Acc, an f32x16, plus the products
// of DotBF16Len bfloat16 elements of weight W, from element WOff, with as
// many at byte offset XOff of scratch X (written by StoreBF16), in pairs:
// lane i adds w[2i+1]·x[2i+1] and then w[2i]·x[2i], each sum rounded to
// f32 (a product of two bfloat16s is exact in f32). The instruction also
// takes denormal inputs as zero and flushes denormal sums to zero, which
// kir.Machine does not: the two agree bit for bit away from denormals.
type DotBF16 struct {
	Acc  Expr
	W    *Buffer
	WOff Expr
	X    *Buffer
	XOff Expr
}

// DotBF16Len is how many bfloat16 pairs a DotBF16 multiplies.
const DotBF16Len = 32

func (*DotBF16) Type() Type { return F32x16 }
func (d *DotBF16) String() string {
	return fmt.Sprintf("dotbf16(%s, %s[%s], %s[%s])", d.Acc, d.W, d.WOff, d.X, d.XOff)
}
