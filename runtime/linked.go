package runtime

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

// LinkedWeights gathers a linked program's weights from ws, stacking
// derived ones.
func LinkedWeights(lp *LinkedProgram, ws WeightSource) ([][]float32, error) {
	out := make([][]float32, len(lp.Weights))
	for i, w := range lp.Weights {
		if len(w.Concat) == 0 {
			data, _, err := ws.Float32(w.Name)
			if err != nil {
				return nil, err
			}
			out[i] = data
			continue
		}
		data := make([]float32, 0, w.Rows*w.Cols)
		for _, name := range w.Concat {
			part, _, err := ws.Float32(name)
			if err != nil {
				return nil, err
			}
			data = append(data, part...)
		}
		out[i] = data
	}
	return out, nil
}
