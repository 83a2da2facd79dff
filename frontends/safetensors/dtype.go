package safetensors

import "strconv"

// DType is the element type of a tensor, as named by the "dtype" field of a
// safetensors header. The zero value is not a valid dtype.
type DType uint8

// The dtypes of the safetensors format. Their String values are the names
// used in headers; F8E4M3 and F8E5M2 are spelled F8_E4M3 and F8_E5M2 there.
const (
	BOOL DType = iota + 1
	U8
	I8
	F8E4M3 // 8-bit float, 4 exponent and 3 mantissa bits, no infinities (OCP "E4M3FN")
	F8E5M2 // 8-bit float, 5 exponent and 2 mantissa bits (the top byte of an F16)
	I16
	U16
	F16
	BF16
	I32
	U32
	F32
	F64
	I64
	U64

	numDTypes = iota + 1
)

var dtypeInfo = [numDTypes]struct {
	name string
	size int
}{
	BOOL:   {"BOOL", 1},
	U8:     {"U8", 1},
	I8:     {"I8", 1},
	F8E4M3: {"F8_E4M3", 1},
	F8E5M2: {"F8_E5M2", 1},
	I16:    {"I16", 2},
	U16:    {"U16", 2},
	F16:    {"F16", 2},
	BF16:   {"BF16", 2},
	I32:    {"I32", 4},
	U32:    {"U32", 4},
	F32:    {"F32", 4},
	F64:    {"F64", 8},
	I64:    {"I64", 8},
	U64:    {"U64", 8},
}

var dtypeByName = func() map[string]DType {
	m := make(map[string]DType, numDTypes)
	for d := DType(1); d < numDTypes; d++ {
		m[dtypeInfo[d].name] = d
	}
	return m
}()

// ParseDType returns the dtype with the given header name, such as "BF16".
// Names are case-sensitive, as in the format.
func ParseDType(name string) (DType, bool) {
	d, ok := dtypeByName[name]
	return d, ok
}

// Valid reports whether d is one of the declared dtypes.
func (d DType) Valid() bool { return d > 0 && d < numDTypes }

// String returns the header name of d, such as "F32", or "DType(N)" for an
// invalid value.
func (d DType) String() string {
	if !d.Valid() {
		return "DType(" + strconv.Itoa(int(d)) + ")"
	}
	return dtypeInfo[d].name
}

// Size returns the size of one element in bytes, or 0 for an invalid dtype.
func (d DType) Size() int {
	if !d.Valid() {
		return 0
	}
	return dtypeInfo[d].size
}

// IsFloat reports whether d is a floating-point dtype.
func (d DType) IsFloat() bool {
	switch d {
	case F8E4M3, F8E5M2, F16, BF16, F32, F64:
		return true
	}
	return false
}
