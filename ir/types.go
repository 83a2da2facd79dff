package ir

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/llmc-dev/llmc/wformat"
)

// DType is the element type of a tensor.
type DType uint8

const (
	Invalid DType = iota
	F32
	F16
	BF16
	I32
	// Q8_0 is a weight stored in llama.cpp's Q8_0 blocks (wformat.Q8_0):
	// the quantize stage types linear weights so, and only weights are.
	Q8_0
	// Q4_0 is a weight stored in llama.cpp's Q4_0 blocks (wformat.Q4_0).
	Q4_0
	// Q4_K is a weight stored in llama.cpp's Q4_K blocks (wformat.Q4_K).
	Q4_K
)

var dtypeNames = [...]string{Invalid: "invalid", F32: "f32", F16: "f16", BF16: "bf16", I32: "i32", Q8_0: "q8_0", Q4_0: "q4_0", Q4_K: "q4_k"}
var dtypeSizes = [...]int{Invalid: 0, F32: 4, F16: 2, BF16: 2, I32: 4, Q8_0: 0, Q4_0: 0, Q4_K: 0}

// dtypeFormats are the weight formats of the dtypes a weight can have.
var dtypeFormats = map[DType]wformat.Format{F32: wformat.F32, F16: wformat.F16, BF16: wformat.BF16, Q8_0: wformat.Q8_0, Q4_0: wformat.Q4_0, Q4_K: wformat.Q4_K}

// Format is the weight format of a weight of dtype d (false for a dtype
// no weight is stored in).
func (d DType) Format() (wformat.Format, bool) {
	f, ok := dtypeFormats[d]
	return f, ok
}

// IsBlocked reports whether d is a block format (wformat.Format.Blocked):
// its elements cannot be addressed one by one.
func (d DType) IsBlocked() bool {
	f, ok := d.Format()
	return ok && f.Blocked()
}

// WeightDType is the dtype of weights stored in format f.
func WeightDType(f wformat.Format) DType {
	for d, g := range dtypeFormats {
		if g == f {
			return d
		}
	}
	return Invalid
}

func (d DType) String() string {
	if int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return fmt.Sprintf("dtype(%d)", d)
}

// Size is the number of bytes of one element (0 for block formats: see
// Format).
func (d DType) Size() int {
	if int(d) < len(dtypeSizes) {
		return dtypeSizes[d]
	}
	return 0
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool { return d == F32 || d == F16 || d == BF16 }

// ParseDType parses the printed name of a dtype ("f32", "bf16", ...).
func ParseDType(s string) (DType, error) {
	for i, n := range dtypeNames {
		if n == s && DType(i) != Invalid {
			return DType(i), nil
		}
	}
	return Invalid, fmt.Errorf("unknown dtype %q (want one of f32, f16, bf16, i32, q8_0, q4_0)", s)
}

// Dim is one dimension of a shape: a constant, or a named symbol whose value
// is bound when the graph runs (for example "seq", the number of new tokens).
type Dim struct {
	N   int    // the size, when Sym is empty
	Sym string // the symbol's name, or "" for a constant
}

// C returns a constant dimension.
func C(n int) Dim { return Dim{N: n} }

// S returns a symbolic dimension.
func S(name string) Dim { return Dim{Sym: name} }

// IsConst reports whether d is a constant.
func (d Dim) IsConst() bool { return d.Sym == "" }

func (d Dim) String() string {
	if d.Sym != "" {
		return d.Sym
	}
	return strconv.Itoa(d.N)
}

// Shape lists a tensor's dimensions, outermost first. Tensors are row-major.
type Shape []Dim

// Consts returns a shape of constant dimensions.
func Consts(dims ...int) Shape {
	s := make(Shape, len(dims))
	for i, n := range dims {
		s[i] = C(n)
	}
	return s
}

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Equal reports whether two shapes have the same dimensions.
func (s Shape) Equal(t Shape) bool {
	if len(s) != len(t) {
		return false
	}
	for i := range s {
		if s[i] != t[i] {
			return false
		}
	}
	return true
}

// IsConst reports whether every dimension is a constant.
func (s Shape) IsConst() bool {
	for _, d := range s {
		if !d.IsConst() {
			return false
		}
	}
	return true
}

// Last returns the innermost dimension. The shape must not be empty.
func (s Shape) Last() Dim { return s[len(s)-1] }

// Clone returns a copy of s.
func (s Shape) Clone() Shape { return append(Shape(nil), s...) }

// Eval returns the concrete sizes of s with the symbols bound by env.
func (s Shape) Eval(env map[string]int) ([]int, error) {
	out := make([]int, len(s))
	for i, d := range s {
		if d.IsConst() {
			out[i] = d.N
			continue
		}
		n, ok := env[d.Sym]
		if !ok {
			return nil, fmt.Errorf("symbol %q is not bound", d.Sym)
		}
		out[i] = n
	}
	return out, nil
}

// Type is a tensor type: an element type and a shape. A zero Type means "no
// value" (the result of an op that only has effects).
type Type struct {
	DType DType
	Shape Shape
}

// T is shorthand for a Type.
func T(d DType, dims ...Dim) Type { return Type{DType: d, Shape: Shape(dims)} }

// IsVoid reports whether t is the empty type of effect-only ops.
func (t Type) IsVoid() bool { return t.DType == Invalid }

func (t Type) String() string {
	if t.IsVoid() {
		return "void"
	}
	return t.DType.String() + t.Shape.String()
}

// Equal reports whether two types are the same.
func (t Type) Equal(u Type) bool { return t.DType == u.DType && t.Shape.Equal(u.Shape) }
