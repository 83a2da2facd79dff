package runtime

import (
	"fmt"
	"unsafe"
)

// LinkedProgram describes a compiled program linked into the running
// binary (the Go backend's generated code): what weights and states it
// takes, and how to make a Runner of it.
type LinkedProgram struct {
	// ID identifies the artifact it was generated for; it must equal the
	// artifact manifest's build ID.
	ID      string
	Weights []LinkedWeight
	States  []LinkedState
	Entries []LinkedEntry
	// New makes a runner over weights given in Weights' order.
	New func(weights *Weights, par Parallel) Runner
	// SIMD reports whether the vector kernels run on this CPU.
	SIMD func() bool
}

// LinkedWeight is one weight of a linked program: a checkpoint tensor, or
// checkpoint tensors stacked by rows (Concat).
type LinkedWeight struct {
	Name       string
	Rows, Cols int
	Concat     []string
	BF16       bool // kept in bfloat16
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

// LinkedState is one KV cache state of a linked program.
type LinkedState struct {
	Name          string
	Rows, RowSize int
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
	mem, free, err := AllocFloats(f32s + (halves+1)/2)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			free()
		}
	}()
	half := unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(mem[f32s:]))), halves)
	weights = &Weights{F32: make([][]float32, len(lp.Weights)), BF16: make([][]uint16, len(lp.Weights))}
	foff, hoff := 0, 0
	for i, w := range lp.Weights {
		n := w.Rows * w.Cols
		parts := w.Concat
		if len(parts) == 0 {
			parts = []string{w.Name}
		}
		var fill func(name string, at int) (int, error)
		if w.BF16 {
			src, ok := ws.(BF16Source)
			if !ok {
				return nil, nil, fmt.Errorf("weight %s: the weights cannot be read as bfloat16", w.Name)
			}
			dst := half[hoff : hoff+n : hoff+n]
			weights.BF16[i], hoff = dst, hoff+n
			fill = func(name string, at int) (int, error) {
				data, err := src.BF16(name)
				if err != nil {
					return 0, err
				}
				if at+len(data) > n {
					return 0, fmt.Errorf("weight %s: %s does not fit its %d×%d layout", w.Name, name, w.Rows, w.Cols)
				}
				return copy(dst[at:], data), nil
			}
		} else {
			dst := mem[foff : foff+n : foff+n]
			weights.F32[i], foff = dst, foff+n
			fill = func(name string, at int) (int, error) {
				data, _, err := ws.Float32(name)
				if err != nil {
					return 0, err
				}
				if at+len(data) > n {
					return 0, fmt.Errorf("weight %s: %s does not fit its %d×%d layout", w.Name, name, w.Rows, w.Cols)
				}
				return copy(dst[at:], data), nil
			}
		}
		at := 0
		for _, name := range parts {
			k, err := fill(name, at)
			if err != nil {
				return nil, nil, err
			}
			at += k
		}
		if at != n {
			return nil, nil, fmt.Errorf("weight %s: parts hold %d elements, the layout %d×%d", w.Name, at, w.Rows, w.Cols)
		}
	}
	return weights, free, nil
}
