package runtime

import (
	"fmt"
	"unsafe"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/wformat"
)

// LinkedProgram describes a compiled program linked into the running
// binary (the Go backend's generated code): what weights and states it
// takes, and how to make a Runner of it.
type LinkedProgram struct {
	// ID identifies the artifact it was generated for; it must equal the
	// artifact manifest's build ID.
	ID      string
	Weights []artifact.Weight
	States  []artifact.State
	Entries []LinkedEntry
	// New makes a runner over weights given in Weights' order.
	New func(weights *Weights, par Parallel) Runner
	// SIMD reports whether the vector kernels run on this CPU.
	SIMD func() bool
	// ISA names the instruction set the kernels run with (runtime.PickISA).
	ISA func() string
}

// Weights are a linked program's weights by index: F32[i] or, for a
// weight kept in bfloat16, BF16[i], or, for one the artifact stores
// (artifact.Weight.Stored: a block format, or f16), Blocks[i]: its bytes
// as the artifact stores them, 64-byte aligned, with BlockSlack more
// readable after them; an f16 weight's are also F16[i], as float16s.
type Weights struct {
	F32    [][]float32
	BF16   [][]uint16
	F16    [][]uint16
	Blocks [][]byte
}

// storedAlign aligns each stored weight's bytes: a cache line, so that
// f16 weights are 2-byte aligned and vector loads split no more lines
// than they must.
const storedAlign = 64

// BF16Source is a WeightSource that can also hand out a bfloat16 tensor's
// elements as stored.
type BF16Source interface {
	BF16(name string) ([]uint16, error)
}

// LinkedEntry is one entry point of a linked program.
type LinkedEntry struct {
	Name string
	Seq  int
}

// LinkedWeights gathers a linked program's weights from ws, stacking
// derived ones; weights marked BF16 are kept as stored, which needs ws to
// be a BF16Source, and block-format ones as the artifact stores them
// (FillBlocks), which needs a BlockSource. A weight that is one checkpoint tensor stored as the
// program keeps it is used in place when ws is a ViewSource (see
// WeightInPlace): it stays in ws's memory, the page cache, and ws must stay
// open while the weights are used. The others are copied into huge-page
// memory (see AllocFloats), and the tensors they were copied from are
// released (see FillWeight). Call free when the program is done with them.
func LinkedWeights(lp *LinkedProgram, ws WeightSource) (weights *Weights, free func() error, err error) {
	f32v, bf16v, inPlace := InPlace(lp.Weights, ws, 0)
	weights = &Weights{F32: f32v, BF16: bf16v, F16: make([][]uint16, len(lp.Weights)), Blocks: make([][]byte, len(lp.Weights))}
	f32s, halves, bytes := 0, 0, 0
	for i := range lp.Weights {
		w := &lp.Weights[i]
		switch {
		case inPlace[i]:
		case w.Stored():
			bytes += alignUp(w.Bytes()+BlockSlack, storedAlign)
		case w.BF16:
			halves += w.Rows * w.Cols
		default:
			f32s += w.Rows * w.Cols
		}
	}
	hwords := (halves + 1) / 2
	mem, release, err := AllocFloats(f32s + hwords + (bytes+storedAlign)/4)
	if err != nil {
		return nil, nil, err
	}
	// release, not free: a failing return sets free to nil before this runs.
	defer func() {
		if err != nil {
			release()
		}
	}()
	half := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(mem[f32s:]))), halves)
	blocks := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(mem[f32s+hwords:]))), bytes+storedAlign)
	// The stored weights start at the first aligned byte.
	base := int(uintptr(unsafe.Pointer(unsafe.SliceData(blocks))))
	boff := alignUp(base, storedAlign) - base
	foff, hoff := 0, 0
	for i := range lp.Weights {
		if inPlace[i] {
			continue
		}
		w := &lp.Weights[i]
		n := w.Rows * w.Cols
		switch {
		case w.Stored():
			n = w.Bytes()
			weights.Blocks[i], boff = blocks[boff:boff+n:boff+n+BlockSlack], boff+alignUp(n+BlockSlack, storedAlign)
			if w.Fmt() == wformat.F16 {
				weights.F16[i] = unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(weights.Blocks[i]))), w.Rows*w.Cols)
			}
		case w.BF16:
			weights.BF16[i], hoff = half[hoff:hoff+n:hoff+n], hoff+n
		default:
			weights.F32[i], foff = mem[foff:foff+n:foff+n], foff+n
		}
	}
	if err := FillAll(lp.Weights, inPlace, func(i int) error {
		w := &lp.Weights[i]
		if w.Stored() {
			return FillBlocks(w, ws, weights.Blocks[i])
		}
		return FillWeight(w, ws, weights.F32[i], weights.BF16[i])
	}); err != nil {
		return nil, nil, err
	}
	PopulateInPlace(lp.Weights, inPlace, func(i int) unsafe.Pointer {
		if lp.Weights[i].BF16 {
			return unsafe.Pointer(unsafe.SliceData(weights.BF16[i]))
		}
		return unsafe.Pointer(unsafe.SliceData(weights.F32[i]))
	})
	return weights, release, nil
}

// A ViewSource hands out checkpoint tensors in place: views of its own
// memory (a mapped file, which the page cache backs) rather than copies.
// The views stay valid until the source is closed and must not be written.
type ViewSource interface {
	// Float32View returns an F32 tensor's elements in place, and how many
	// bytes after them may be read too; ok is false when the tensor is
	// stored otherwise or cannot be viewed (misaligned).
	Float32View(name string) (v []float32, slack int, ok bool)
	// BF16View is Float32View for a BF16 tensor's raw elements.
	BF16View(name string) (v []uint16, slack int, ok bool)
}

// A Releaser is a WeightSource whose tensors' memory can leave the
// process's resident set once they are copied (FillWeight): the mapped
// file's pages, which stay in the page cache.
type Releaser interface {
	// Release says that the tensor's memory will not be read for now:
	// only advice, reading it again brings it back.
	Release(name string)
}

// CopyWeights hides ws's views (see ViewSource), so that every weight is
// gathered by copy, into huge-page memory, and its mapped original
// released: a page cache in small pages streams slower than huge pages.
func CopyWeights(ws WeightSource) WeightSource { return copySource{ws} }

type copySource struct{ WeightSource }

func (c copySource) BF16(name string) ([]uint16, error) {
	b, ok := c.WeightSource.(BF16Source)
	if !ok {
		return nil, fmt.Errorf("weight %s: the weights cannot be read as bfloat16", name)
	}
	return b.BF16(name)
}

func (c copySource) Blocks(name string) ([]byte, wformat.Format, error) {
	b, ok := c.WeightSource.(BlockSource)
	if !ok {
		return nil, 0, fmt.Errorf("weight %s: the weights hold no block-format tensors", name)
	}
	return b.Blocks(name)
}

func (c copySource) Release(name string) {
	if r, ok := c.WeightSource.(Releaser); ok {
		r.Release(name)
	}
}

// InPlace decides which of ws are used in place from src (ViewWeight,
// with slack bytes readable after each), returning their elements there:
// every weight that can be when src shows its views, and, even when
// CopyWeights hides them, the parts of stacked weights. A program lists
// those parts, but its kernels read the stacked copy: a view costs
// nothing until it is read, a copy would hold the part twice.
func InPlace(ws []artifact.Weight, src WeightSource, slack int) (f32 [][]float32, bf16 [][]uint16, in []bool) {
	f32, bf16, in = make([][]float32, len(ws)), make([][]uint16, len(ws)), make([]bool, len(ws))
	parts := map[string]bool{}
	for i := range ws {
		for _, name := range ws[i].Concat {
			parts[name] = true
		}
	}
	for i := range ws {
		s := src
		if c, ok := src.(copySource); ok && parts[ws[i].Name] {
			s = c.WeightSource
		}
		f32[i], bf16[i], in[i] = ViewWeight(&ws[i], s, slack)
	}
	return f32, bf16, in
}

// ViewWeight reports whether weight w can be used in place in ws, and if
// so returns its elements there, in f32 or, for a BF16 weight, bf16: w
// must be one checkpoint tensor (not stacked) stored as the program keeps
// it (F32, or BF16 for a BF16 weight) and viewable, with at least slack
// bytes readable after it, and ws a ViewSource. Otherwise the weight is
// gathered with FillWeight, a copy.
func ViewWeight(w *artifact.Weight, ws WeightSource, slack int) (f32 []float32, bf16 []uint16, ok bool) {
	vs, ok := ws.(ViewSource)
	if !ok || len(w.Concat) > 0 || w.Stored() {
		// Stacked weights are built, stored ones come from the
		// artifact's own file: neither is the checkpoint's bytes.
		return nil, nil, false
	}
	n := w.Rows * w.Cols
	if w.BF16 {
		v, after, ok := vs.BF16View(w.Name)
		if !ok || len(v) != n || after < slack {
			return nil, nil, false
		}
		return nil, v[:n:n], true
	}
	v, after, ok := vs.Float32View(w.Name)
	if !ok || len(v) != n || after < slack {
		return nil, nil, false
	}
	return v[:n:n], nil, true
}

// PopulateInPlace maps the weights used in place (inPlace[i], elements at
// data(i)) into the page tables now (see Populate), except parts of
// stacked weights: a program lists them, but its kernels read the stacked
// copy, and FillWeight released them.
func PopulateInPlace(ws []artifact.Weight, inPlace []bool, data func(i int) unsafe.Pointer) {
	parts := map[string]bool{}
	for i := range ws {
		for _, name := range ws[i].Concat {
			parts[name] = true
		}
	}
	for i := range ws {
		if inPlace[i] && !parts[ws[i].Name] {
			Populate(data(i), ws[i].Rows*ws[i].Cols*ws[i].ElemBytes())
		}
	}
}

// FillWeight gathers weight w from ws, stacking its parts by rows: into
// f32, of w.Rows × w.Cols elements, or, for a weight kept in bfloat16,
// into bf16 as stored, which needs ws to be a BF16Source. Every compiled
// program's weights are read by it, whatever memory holds them. When ws is
// a Releaser, each part is released once copied, so that the copy and
// the mapped original are not both resident (release is only advice:
// memory read again comes back from the page cache).
func FillWeight(w *artifact.Weight, ws WeightSource, f32 []float32, bf16 []uint16) error {
	release := func(string) {}
	if r, ok := ws.(Releaser); ok {
		release = r.Release
	}
	if !w.BF16 {
		if d, ok := decoder(ws); ok {
			return decodeParts(w, f32, d, release)
		}
		return fillParts(w, f32, func(name string) ([]float32, error) {
			data, _, err := ws.Float32(name)
			return data, err
		}, release)
	}
	src, ok := ws.(BF16Source)
	if !ok {
		return fmt.Errorf("weight %s: the weights cannot be read as bfloat16", w.Name)
	}
	return fillParts(w, bf16, src.BF16, release)
}

// A DecodeSource converts a tensor to float32 straight into memory of the
// caller's, so that filling a weight allocates no copy of it (FillAll
// fills several at once).
type DecodeSource interface {
	// Elements returns the number of elements of a tensor.
	Elements(name string) (int, error)
	// DecodeFloat32 converts the tensor's elements into dst, which holds
	// exactly Elements(name).
	DecodeFloat32(name string, dst []float32) error
}

// decoder is ws's DecodeSource, if it has one, seen through CopyWeights
// (which hides views only: decoding copies).
func decoder(ws WeightSource) (DecodeSource, bool) {
	if c, ok := ws.(copySource); ok {
		ws = c.WeightSource
	}
	d, ok := ws.(DecodeSource)
	return d, ok
}

// decodeParts is fillParts for a DecodeSource: each part decoded in place.
func decodeParts(w *artifact.Weight, dst []float32, d DecodeSource, release func(name string)) error {
	n := w.Rows * w.Cols
	dst = dst[:n]
	at := 0
	for _, name := range w.Parts() {
		k, err := d.Elements(name)
		if err != nil {
			return err
		}
		if at+k > n {
			return fmt.Errorf("weight %s: %s has more elements than the artifact's [%d, %d]: compile the artifact again", w.Name, name, w.Rows, w.Cols)
		}
		if err := d.DecodeFloat32(name, dst[at:at+k]); err != nil {
			return err
		}
		at += k
		release(name)
	}
	if at != n {
		return fmt.Errorf("weight %s has %d elements, the artifact expects [%d, %d]: compile the artifact again", w.Name, at, w.Rows, w.Cols)
	}
	return nil
}

// fillParts copies w's parts, as read returns them, one after another into
// dst, which must hold exactly w's elements, and then releases each.
func fillParts[T float32 | uint16](w *artifact.Weight, dst []T, read func(name string) ([]T, error), release func(name string)) error {
	n := w.Rows * w.Cols
	dst = dst[:n]
	at := 0
	for _, name := range w.Parts() {
		data, err := read(name)
		if err != nil {
			return err
		}
		if at+len(data) > n {
			return fmt.Errorf("weight %s: %s has more elements than the artifact's [%d, %d]: compile the artifact again", w.Name, name, w.Rows, w.Cols)
		}
		at += copy(dst[at:], data)
		release(name)
	}
	if at != n {
		return fmt.Errorf("weight %s has %d elements, the artifact expects [%d, %d]: compile the artifact again", w.Name, at, w.Rows, w.Cols)
	}
	return nil
}

// alignUp rounds n up to a multiple of a (a power of two).
func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }
