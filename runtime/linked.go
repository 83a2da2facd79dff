package runtime

import (
	"fmt"
	"unsafe"

	"github.com/llmc-dev/llmc/artifact"
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
// weight kept in bfloat16, BF16[i].
type Weights struct {
	F32  [][]float32
	BF16 [][]uint16
}

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

// LinkedWeights gathers a linked program's weights from ws into huge-page
// memory (see AllocFloats), stacking derived ones; weights marked BF16 are
// kept as stored, which needs ws to be a BF16Source. Call free when the
// program is done with them.
func LinkedWeights(lp *LinkedProgram, ws WeightSource) (weights *Weights, free func() error, err error) {
	f32s, halves := 0, 0
	for _, w := range lp.Weights {
		if w.BF16 {
			halves += w.Rows * w.Cols
		} else {
			f32s += w.Rows * w.Cols
		}
	}
	mem, release, err := AllocFloats(f32s + (halves+1)/2)
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
	weights = &Weights{F32: make([][]float32, len(lp.Weights)), BF16: make([][]uint16, len(lp.Weights))}
	foff, hoff := 0, 0
	for i := range lp.Weights {
		w := &lp.Weights[i]
		n := w.Rows * w.Cols
		if w.BF16 {
			weights.BF16[i], hoff = half[hoff:hoff+n:hoff+n], hoff+n
		} else {
			weights.F32[i], foff = mem[foff:foff+n:foff+n], foff+n
		}
		if err := FillWeight(w, ws, weights.F32[i], weights.BF16[i]); err != nil {
			return nil, nil, err
		}
	}
	return weights, release, nil
}

// FillWeight gathers weight w from ws, stacking its parts by rows: into
// f32, of w.Rows × w.Cols elements, or, for a weight kept in bfloat16,
// into bf16 as stored, which needs ws to be a BF16Source. Every compiled
// program's weights are read by it, whatever memory holds them.
func FillWeight(w *artifact.Weight, ws WeightSource, f32 []float32, bf16 []uint16) error {
	if !w.BF16 {
		return fillParts(w, f32, func(name string) ([]float32, error) {
			data, _, err := ws.Float32(name)
			return data, err
		})
	}
	src, ok := ws.(BF16Source)
	if !ok {
		return fmt.Errorf("weight %s: the weights cannot be read as bfloat16", w.Name)
	}
	return fillParts(w, bf16, src.BF16)
}

// fillParts copies w's parts, as read returns them, one after another into
// dst, which must hold exactly w's elements.
func fillParts[T float32 | uint16](w *artifact.Weight, dst []T, read func(name string) ([]T, error)) error {
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
	}
	if at != n {
		return fmt.Errorf("weight %s has %d elements, the artifact expects [%d, %d]: compile the artifact again", w.Name, at, w.Rows, w.Cols)
	}
	return nil
}
