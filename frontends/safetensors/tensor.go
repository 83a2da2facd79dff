package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// A Tensor is one named tensor of a File. Its fields describe data that Open
// has validated; callers must not modify them.
type Tensor struct {
	Name  string
	DType DType
	// Shape lists the dimensions, outermost first. A scalar has an empty
	// Shape and one element.
	Shape []int
	// Data holds the elements, row-major and little-endian. It aliases the
	// file's memory mapping and is valid only until the File is closed,
	// which sets it to nil.
	Data []byte
	// FileOffset is the position of Data's first byte in the file.
	FileOffset int64

	begin, end int // data_offsets, relative to the data section
	slack      int // bytes of the file after Data (readable in place)
}

// NumElements returns the number of elements, the product of Shape.
func (t *Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// String describes t as name, dtype and shape, such as
// `model.norm.weight F32[64]`.
func (t *Tensor) String() string {
	return fmt.Sprintf("%s %s%v", t.Name, t.DType, t.Shape)
}

// Float32 returns the elements converted to float32 in a new slice. See
// DecodeFloat32 for the dtypes it supports.
func (t *Tensor) Float32() ([]float32, error) {
	if err := t.checkData(); err != nil {
		return nil, err
	}
	dst := make([]float32, t.NumElements())
	if err := t.DecodeFloat32(dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// DecodeFloat32 converts the elements to float32 into dst, which must hold
// exactly NumElements values. Floating-point dtypes convert exactly, except
// that F64 rounds to nearest float32; integer dtypes round to nearest float32
// (exact up to 2^24 in magnitude); BOOL gives 0 or 1.
func (t *Tensor) DecodeFloat32(dst []float32) error {
	if err := t.checkData(); err != nil {
		return err
	}
	if n := t.NumElements(); len(dst) != n {
		return fmt.Errorf("safetensors: tensor %s: destination holds %d values, want %d", t, len(dst), n)
	}
	src := t.Data
	le := binary.LittleEndian
	switch t.DType {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToFloat32(le.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToFloat32(le.Uint16(src[2*i:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	case F8E4M3:
		for i := range dst {
			dst[i] = F8E4M3ToFloat32(src[i])
		}
	case F8E5M2:
		for i := range dst {
			dst[i] = F8E5M2ToFloat32(src[i])
		}
	case BOOL:
		for i := range dst {
			dst[i] = 0
			if src[i] != 0 {
				dst[i] = 1
			}
		}
	case U8:
		for i := range dst {
			dst[i] = float32(src[i])
		}
	case I8:
		for i := range dst {
			dst[i] = float32(int8(src[i]))
		}
	case I16:
		for i := range dst {
			dst[i] = float32(int16(le.Uint16(src[2*i:])))
		}
	case U16:
		for i := range dst {
			dst[i] = float32(le.Uint16(src[2*i:]))
		}
	case I32:
		for i := range dst {
			dst[i] = float32(int32(le.Uint32(src[4*i:])))
		}
	case U32:
		for i := range dst {
			dst[i] = float32(le.Uint32(src[4*i:]))
		}
	case I64:
		for i := range dst {
			dst[i] = float32(int64(le.Uint64(src[8*i:])))
		}
	case U64:
		for i := range dst {
			dst[i] = float32(le.Uint64(src[8*i:]))
		}
	default:
		return fmt.Errorf("safetensors: tensor %s: cannot decode dtype %s", t, t.DType)
	}
	return nil
}

// Float32View returns the elements of an F32 tensor as a []float32 that
// aliases Data, without copying. It reports false, and callers should fall
// back to Float32, unless the dtype is F32, the platform is little-endian and
// Data is 4-byte aligned (Write aligns the data section to 8 bytes, but a
// tensor offset need not be a multiple of 4). The view is valid only until
// the File is closed, and must not be written to: the mapping is read-only.
func (t *Tensor) Float32View() ([]float32, bool) {
	if t.DType != F32 || !littleEndian || t.checkData() != nil {
		return nil, false
	}
	n := t.NumElements()
	if n == 0 {
		return []float32{}, true
	}
	p := unsafe.SliceData(t.Data)
	if uintptr(unsafe.Pointer(p))%4 != 0 {
		return nil, false
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(p)), n), true
}

// BF16View returns the elements of a BF16 tensor as stored (the raw
// bfloat16 bits) as a []uint16 that aliases Data, without copying, like
// Float32View: it reports false unless the dtype is BF16, the platform is
// little-endian and Data is 2-byte aligned.
func (t *Tensor) BF16View() ([]uint16, bool) {
	if t.DType != BF16 || !littleEndian || t.checkData() != nil {
		return nil, false
	}
	n := t.NumElements()
	if n == 0 {
		return []uint16{}, true
	}
	p := unsafe.SliceData(t.Data)
	if uintptr(unsafe.Pointer(p))%2 != 0 {
		return nil, false
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(p)), n), true
}

// Slack is how many bytes of the file follow Data in memory: code that
// reads a view a little past its end (a vector load at the last element)
// stays inside the file if it reads at most Slack bytes past it.
func (t *Tensor) Slack() int {
	if t.Data == nil {
		return 0
	}
	return t.slack
}

// Release says that Data's memory will not be read for a while (its
// elements were converted or copied elsewhere): the whole pages it
// covers are dropped from this process's resident memory. They stay in
// the page cache, and Data stays valid: reading it again faults them back
// in from the file. A tensor that shares a page with another keeps that
// page. It is only advice, and does nothing where the file is not mapped.
func (t *Tensor) Release() {
	if len(t.Data) > 0 {
		releasePages(t.Data)
	}
}

// errClosed reports use of a tensor after its File was closed.
var errClosed = errors.New("file is closed")

// checkData reports whether Data still matches the shape, which fails only
// once the File is closed (or if a caller changed the fields).
func (t *Tensor) checkData() error {
	want := t.NumElements() * t.DType.Size()
	if len(t.Data) == want && t.DType.Valid() {
		return nil
	}
	if t.Data == nil && want > 0 {
		return fmt.Errorf("safetensors: tensor %s: %w", t, errClosed)
	}
	return fmt.Errorf("safetensors: tensor %s: data holds %d bytes, want %d", t, len(t.Data), want)
}

// littleEndian reports whether the platform stores the low byte first.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()
