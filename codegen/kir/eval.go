package kir

import (
	"encoding/binary"
	"fmt"
	"github.com/llmc-dev/llmc/artifact"
	"math"
	"unsafe"

	"github.com/llmc-dev/llmc/wformat"
)

// Machine evaluates a Program directly, statement by statement. It is slow;
// it exists to test lowering against the graph interpreter independently
// of any backend, and as the reference semantics backends must match.
type Machine struct {
	P       *Program
	Weights [][]float32 // by WeightRef index
	// Blocks are the bytes of block-format weights, by WeightRef index
	// (nil for the others).
	Blocks [][]byte
	// States are the KV cache by StateRef index, as float32: the values
	// of a 16-bit state are kept rounded to its format (wformat.Round).
	States  [][]float32
	arena   []float32
	scratch []float32
}

// NewMachine allocates states and memory for p.
func NewMachine(p *Program, weights [][]float32) *Machine {
	m := &Machine{P: p, Weights: weights}
	for _, s := range p.States {
		m.States = append(m.States, make([]float32, s.Rows*s.RowSize))
	}
	for _, e := range p.Entries {
		m.arena = make([]float32, max(len(m.arena), e.ArenaLen))
		m.scratch = make([]float32, max(len(m.scratch), e.ScratchLen))
	}
	return m
}

type frame struct {
	m      *Machine
	tokens []int32
	params map[string]int
	ints   map[*Var]int
	f32s   map[*Var]float32
	vecs   map[*Var][8]float32
	wides  map[*Var][16]float32
	locals map[*Buffer][]float32
}

// Run executes entry name on the first n of tokens at positions pos,
// pos+1, ... of slot 0, and returns a copy of its output.
func (m *Machine) Run(name string, tokens []int32, pos, n int) ([]float32, error) {
	e, err := m.entry(name)
	if err != nil {
		return nil, err
	}
	rows := make([]int32, artifact.RowFields*e.Seq)
	if n > 0 {
		ids := make([]int32, n)
		copy(ids, tokens)
		artifact.FillRows(rows, e.Seq, ids, artifact.Consecutive(pos, n), nil)
	}
	return m.RunRows(name, rows, pos+n-1, n)
}

func (m *Machine) entry(name string) (*Entry, error) {
	for _, x := range m.P.Entries {
		if x.Name == name {
			return x, nil
		}
	}
	return nil, fmt.Errorf("no entry %q", name)
}

// RunRows executes entry name on a step's rows (artifact.FillRows), n of
// them real, maxPos the largest position, and returns a copy of its
// output.
func (m *Machine) RunRows(name string, rows []int32, maxPos, n int) ([]float32, error) {
	e, err := m.entry(name)
	if err != nil {
		return nil, err
	}
	f := &frame{m: m, tokens: rows, params: map[string]int{"pos": maxPos, "len": n},
		ints: map[*Var]int{}, f32s: map[*Var]float32{}, vecs: map[*Var][8]float32{}, wides: map[*Var][16]float32{}, locals: map[*Buffer][]float32{}}
	for _, k := range e.Kernels {
		for _, ph := range k.Phases {
			if ph.Parallel {
				for i := 0; i < f.int(ph.N); i++ {
					f.ints[ph.Var] = i
					f.stmts(ph.Body)
				}
			} else {
				f.stmts(ph.Body)
			}
		}
	}
	off := f.int(e.OutOffset)
	size := 1
	for _, d := range e.OutShape {
		size *= d
	}
	return append([]float32(nil), f.buf(e.Output)[off:off+size]...), nil
}

func (f *frame) buf(b *Buffer) []float32 {
	switch b.Kind {
	case Arena:
		return f.m.arena
	case Scratch:
		return f.m.scratch
	case Weight:
		return f.m.Weights[b.Index]
	case State:
		return f.m.States[b.Index]
	case Table:
		return b.Data
	case Local:
		l, ok := f.locals[b]
		if !ok {
			l = make([]float32, b.Len)
			f.locals[b] = l
		}
		return l
	}
	panic("no float buffer " + b.Name)
}

// bytes is a float buffer's memory as bytes (little-endian floats), which
// StoreI8 writes and DotI8 reads, as the emitters' byte pointers do.
func (f *frame) bytes(b *Buffer) []byte {
	fs := f.buf(b)
	if len(fs) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(fs))), 4*len(fs))
}

func (f *frame) stmts(ss []Stmt) {
	for _, s := range ss {
		switch s := s.(type) {
		case *Decl:
			f.set(s.Var, s.Init)
		case *Assign:
			f.set(s.Var, s.Val)
		case *Store:
			// A 16-bit state keeps each value rounded to its format, so
			// that loads read back what the emitted code's widening reads.
			i := f.int(s.Index)
			switch s.Val.Type() {
			case F32x8:
				v := f.vec(s.Val)
				for j, x := range v {
					f.buf(s.Buf)[i+j] = wformat.Round(s.Buf.Format, x)
				}
			case F32x16:
				v := f.wide(s.Val)
				for j, x := range v {
					f.buf(s.Buf)[i+j] = wformat.Round(s.Buf.Format, x)
				}
			default:
				f.buf(s.Buf)[i] = wformat.Round(s.Buf.Format, f.f32(s.Val))
			}
		case *StoreI8:
			b := f.bytes(s.Buf)
			i := f.int(s.Off)
			if s.Val.Type() == F32x8 {
				v := f.vec(s.Val)
				for j, x := range v {
					b[i+j] = byte(wformat.QuantI8(x))
				}
			} else {
				b[i] = byte(wformat.QuantI8(f.f32(s.Val)))
			}
		case *StoreBF16:
			b, i := f.bytes(s.Buf), f.int(s.Off)
			for j, x := range f.vec(s.Val) {
				binary.LittleEndian.PutUint16(b[i+2*j:], wformat.F32ToBF16(x))
			}
		case *Prefetch:
			// A hint: nothing to compute.
		case *IfGreater:
			if f.f32(s.X) > f.f32(s.Y) {
				f.stmts(s.Then)
			}
		case *For:
			hi := f.int(s.Hi)
			for i := f.int(s.Lo); i < hi; i += s.Step {
				f.ints[s.Var] = i
				f.stmts(s.Body)
			}
		}
	}
}

func (f *frame) set(v *Var, e Expr) {
	switch v.T {
	case Int:
		f.ints[v] = f.int(e)
	case F32:
		f.f32s[v] = f.f32(e)
	case F32x8:
		f.vecs[v] = f.vec(e)
	case F32x16:
		f.wides[v] = f.wide(e)
	}
}

func (f *frame) int(e Expr) int { return EvalInt(e, f.leaf) }

// leaf is the value of an integer leaf of an expression: a variable, a
// parameter, a token or a byte of a block-format weight.
func (f *frame) leaf(e Expr) int {
	switch e := e.(type) {
	case *Var:
		return f.ints[e]
	case Param:
		return f.params[e.Name]
	case *Load:
		return int(f.tokens[f.int(e.Index)])
	case *LoadQ: // QU8, the only int part
		return int(f.m.Blocks[e.Buf.Index][f.int(e.Off)])
	}
	panic(fmt.Sprintf("not an int expression: %s", e))
}

func (f *frame) f32(e Expr) float32 {
	switch e := e.(type) {
	case F32Const:
		return e.F
	case *Var:
		return f.f32s[e]
	case *Load:
		return f.buf(e.Buf)[f.int(e.Index)]
	case *LoadQ:
		b := f.m.Blocks[e.Buf.Index]
		i := f.int(e.Off)
		if e.Part == QF16 {
			return f16At(b, i)
		}
		return quantF32(e.Part, b[i])
	case *Bin:
		return binF(e.Op, f.f32(e.A), f.f32(e.B))
	case *FMA:
		return float32(math.FMA(float64(f.f32(e.A)), float64(f.f32(e.B)), float64(f.f32(e.C))))
	case *Call:
		return float32(CallF64(e.Fn, float64(f.f32(e.Arg))))
	case *HSum:
		if e.X.Type() == F32x16 {
			return HSum16(f.wide(e.X))
		}
		return HSum8(f.vec(e.X))
	case *HMax:
		v := f.vec(e.X)
		m := v[0]
		for _, x := range v[1:] {
			m = max(m, x)
		}
		return m
	case *ToF32:
		return float32(f.int(e.X))
	case *Select:
		if f.f32(e.X) > f.f32(e.Y) {
			return f.f32(e.A)
		}
		return f.f32(e.B)
	}
	panic(fmt.Sprintf("not an f32 expression: %s", e))
}

func (f *frame) vec(e Expr) [8]float32 {
	var out [8]float32
	switch e := e.(type) {
	case *Var:
		return f.vecs[e]
	case *Load:
		i := f.int(e.Index)
		copy(out[:], f.buf(e.Buf)[i:i+8])
	case *LoadQ:
		b := f.m.Blocks[e.Buf.Index]
		i := f.int(e.Off)
		for j := range out {
			out[j] = quantF32(e.Part, b[i+j])
		}
	case *Broadcast:
		x := f.f32(e.X)
		for i := range out {
			out[i] = x
		}
	case *DotI8:
		w, x := f.m.Blocks[e.W.Index], f.bytes(e.X)
		wi, xi := f.int(e.WOff), f.int(e.XOff)
		for i := range out {
			var sum int32
			for k := 4 * i; k < 4*i+4; k++ {
				sum += e.Weight(w[wi:], k) * int32(int8(x[xi+k]))
			}
			out[i] = float32(sum)
		}
	case *Scales:
		b := f.m.Blocks[e.W.Index]
		o := f.int(e.Off)
		for i := range e.N {
			out[i] = f16At(b, o+i*e.Stride)
		}
	case *Bin:
		a, b := f.vec(e.A), f.vec(e.B)
		for i := range out {
			out[i] = binF(e.Op, a[i], b[i])
		}
	case *FMA:
		a, b, c := f.vec(e.A), f.vec(e.B), f.vec(e.C)
		for i := range out {
			out[i] = float32(math.FMA(float64(a[i]), float64(b[i]), float64(c[i])))
		}
	case *HSums:
		for i, x := range e.Xs {
			v := f.vec(x)
			out[i] = ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]))
		}
	case *Call:
		x := f.vec(e.Arg)
		for i := range out {
			out[i] = float32(CallF64(e.Fn, float64(x[i])))
		}
	default:
		panic(fmt.Sprintf("not a vector expression: %s", e))
	}
	return out
}

// wide evaluates an f32x16 expression.
func (f *frame) wide(e Expr) [16]float32 {
	var out [16]float32
	switch e := e.(type) {
	case *Var:
		return f.wides[e]
	case *Load:
		i := f.int(e.Index)
		copy(out[:], f.buf(e.Buf)[i:i+16])
	case *Broadcast:
		x := f.f32(e.X)
		for i := range out {
			out[i] = x
		}
	case *DotBF16:
		// The weight is held widened (exactly); each product of two
		// bfloat16s is exact in f32, so each sum rounds once, as the
		// instruction's fused steps do.
		out = f.wide(e.Acc)
		w, x := f.buf(e.W)[f.int(e.WOff):], f.bytes(e.X)[f.int(e.XOff):]
		xAt := func(k int) float32 { return wformat.BF16ToF32(binary.LittleEndian.Uint16(x[2*k:])) }
		for i := range out {
			out[i] += w[2*i+1] * xAt(2*i+1)
			out[i] += w[2*i] * xAt(2*i)
		}
	case *DotCols:
		w, x := f.m.Blocks[e.W.Index], f.bytes(e.X)
		wi, xi := f.int(e.WOff), f.int(e.XOff)
		for c := range out {
			var sum int32
			for k := range DotI8Len {
				sum += e.Weight(w[wi:], c, k) * int32(int8(x[xi+k]))
			}
			out[c] = float32(sum)
		}
	case *ColScales:
		w, o := f.m.Blocks[e.W.Index], f.int(e.Off)
		for c := range out {
			out[c] = f16At(w, o+2*c)
		}
	case *ColBits:
		w, o := f.m.Blocks[e.W.Index], f.int(e.Off)
		for c := range out {
			out[c] = float32(w[o+c] >> e.Shift & (1<<e.Bits - 1))
		}
	case *Halves:
		lo, hi := f.f32(e.Lo), f.f32(e.Hi)
		for i := range 8 {
			out[i], out[i+8] = lo, hi
		}
	case *DotI8:
		second := *e
		second.Pair = false
		a := f.vec(&second)
		second.WOff, second.XOff = IAdd(e.WOff, I(e.W.Format.BlockBytes())), IAdd(e.XOff, I(DotI8Len))
		b := f.vec(&second)
		copy(out[:8], a[:])
		copy(out[8:], b[:])
	case *Bin:
		a, b := f.wide(e.A), f.wide(e.B)
		for i := range out {
			out[i] = binF(e.Op, a[i], b[i])
		}
	case *FMA:
		a, b, c := f.wide(e.A), f.wide(e.B), f.wide(e.C)
		for i := range out {
			out[i] = float32(math.FMA(float64(a[i]), float64(b[i]), float64(c[i])))
		}
	default:
		panic(fmt.Sprintf("not an f32x16 expression: %s", e))
	}
	return out
}

func binF(op BinOp, a, b float32) float32 {
	if v, ok := arith(op, a, b); ok {
		return v
	}
	panic("bad op")
}

// HSum8 adds eight lanes in the order every backend uses: the halves
// first, then pairwise.
func HSum8(v [8]float32) float32 {
	return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]))
}

// f16At is the little-endian float16 at byte i of b, widened.
func f16At(b []byte, i int) float32 { return wformat.F16ToF32(uint16(b[i]) | uint16(b[i+1])<<8) }

// HSum16 adds sixteen lanes: the halves first (lane i plus lane i+8, one
// AVX-512 extract and add), then HSum8.
func HSum16(v [16]float32) float32 {
	var h [8]float32
	for i := range h {
		h[i] = v[i] + v[i+8]
	}
	return HSum8(h)
}

// CallF64 evaluates a kernel IR math function in float64; backends round
// the result to float32.
func CallF64(fn MathFn, x float64) float64 {
	switch fn {
	case Exp:
		return math.Exp(x)
	case Sqrt:
		return math.Sqrt(x)
	case Tanh:
		return math.Tanh(x)
	case Cos:
		return math.Cos(x)
	case Sin:
		return math.Sin(x)
	case RoundEven:
		return math.RoundToEven(x)
	}
	panic("unknown function " + fn.String())
}

// quantF32 is the quant part p of byte x, as f32.
func quantF32(p QPart, x byte) float32 {
	switch p {
	case QInt8:
		return float32(int8(x))
	case QU4Lo:
		return float32(x & 0xf)
	case QU4Hi:
		return float32(x >> 4)
	}
	panic(fmt.Sprintf("no quant part %d", p))
}
