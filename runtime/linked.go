package runtime

import "fmt"

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
	New func(weights [][]float32, par Parallel) Runner
	// SIMD reports whether the vector kernels run on this CPU.
	SIMD func() bool
}

// LinkedWeight is one weight of a linked program: a checkpoint tensor, or
// checkpoint tensors stacked by rows (Concat).
type LinkedWeight struct {
	Name       string
	Rows, Cols int
	Concat     []string
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

// LinkedWeights gathers a linked program's weights from ws into one block
// of huge-page memory (see AllocFloats), stacking derived ones. Call free
// when the program is done with them.
func LinkedWeights(lp *LinkedProgram, ws WeightSource) (weights [][]float32, free func() error, err error) {
	total := 0
	for _, w := range lp.Weights {
		total += w.Rows * w.Cols
	}
	mem, free, err := AllocFloats(total)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			free()
		}
	}()
	weights = make([][]float32, len(lp.Weights))
	off := 0
	for i, w := range lp.Weights {
		n := w.Rows * w.Cols
		dst := mem[off : off+n : off+n]
		off += n
		parts := w.Concat
		if len(parts) == 0 {
			parts = []string{w.Name}
		}
		at := 0
		for _, name := range parts {
			data, _, err := ws.Float32(name)
			if err != nil {
				return nil, nil, err
			}
			if at+len(data) > n {
				return nil, nil, fmt.Errorf("weight %s: %s does not fit its %d×%d layout", w.Name, name, w.Rows, w.Cols)
			}
			at += copy(dst[at:], data)
		}
		if at != n {
			return nil, nil, fmt.Errorf("weight %s: parts hold %d elements, the layout %d×%d", w.Name, at, w.Rows, w.Cols)
		}
		weights[i] = dst
	}
	return weights, free, nil
}
