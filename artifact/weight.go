package artifact

import "github.com/llmc-dev/llmc/wformat"

// Weight is one weight a compiled program reads, as the program stores it:
// a checkpoint tensor, or checkpoint tensors stacked by rows (Concat),
// viewed as Rows × Cols elements. The compiler describes its weights so
// (codegen/kir's WeightRef is this type), generated programs and the
// native layout carry the description, and the runtime gathers weights
// from it (runtime.FillWeight).
type Weight struct {
	Name   string   `json:"name"`
	Rows   int      `json:"rows"`
	Cols   int      `json:"cols"` // elements per row (1 for vectors)
	Concat []string `json:"concat,omitempty"`
	// BF16 weights are kept in bfloat16 as stored in the checkpoint (2
	// bytes an element) and widened by the kernels as they load them;
	// others are float32.
	BF16 bool `json:"bf16,omitempty"`
	// Format is a format llmc converted the weight to when it compiled
	// (wformat.Format.Converted: a block format, each row's blocks
	// padded, or f16), read from the artifact's stored weights file
	// (StoredWeightsName) rather than the model. Zero (f32) otherwise;
	// BF16 above says bfloat16, as before.
	Format wformat.Format `json:"format,omitempty"`
	// Interleave, when set (wformat.Group), says the kernels read this
	// Q4_0, Q8_0 or Q4_K weight with its rows interleaved in groups
	// (wformat.Interleave): the stored weights are in the plain
	// layout, and the loader moves them as it copies them.
	Interleave int `json:"interleave,omitempty"`
}

// Stored reports whether w is read from the artifact's stored weights
// file, in Format, rather than from the checkpoint.
func (w *Weight) Stored() bool { return w.Format.Converted() }

// Fmt is the format w is stored in: Format, bf16 or f32.
func (w *Weight) Fmt() wformat.Format {
	switch {
	case w.Format != wformat.F32:
		return w.Format
	case w.BF16:
		return wformat.BF16
	}
	return wformat.F32
}

// Bytes is the size of w as stored (padding of block rows included).
func (w *Weight) Bytes() int { return w.Fmt().Bytes(w.Rows, w.Cols) }

// Parts are the checkpoint tensors that make up w, in row order.
func (w *Weight) Parts() []string {
	if len(w.Concat) > 0 {
		return w.Concat
	}
	return []string{w.Name}
}

// ElemBytes is the size of one of w's elements as stored (0 for a block
// format: see Bytes).
func (w *Weight) ElemBytes() int {
	if w.Fmt().Blocked() {
		return 0
	}
	return w.Fmt().BlockBytes()
}

// State is one KV cache state of a compiled program: Rows rows of RowSize
// elements, stored in Dtype (f32, or f16 or bf16 with llmc compile
// --kv-dtype: the kernels round values as they write them and widen them
// as they read them).
type State struct {
	Name    string `json:"name"`
	Rows    int    `json:"rows"`
	RowSize int    `json:"row_size"`
	// Dtype is how the elements are stored; zero (f32) is left out of the
	// JSON, so that a float32 cache is described as before.
	Dtype wformat.Format `json:"dtype,omitempty"`
}

// Elems is the number of elements of s.
func (s *State) Elems() int { return s.Rows * s.RowSize }

// ElemBytes is the size of one element of s as stored: 4, or 2.
func (s *State) ElemBytes() int { return s.Dtype.BlockBytes() }

// Bytes is the memory s takes.
func (s *State) Bytes() int { return s.Elems() * s.ElemBytes() }

// Has16BitStates reports whether any of states is stored in a 16-bit
// format, which artifacts record with a newer manifest version
// (VersionKV16) and native ABI (ABIVersionKV16).
func Has16BitStates(states []State) bool {
	for i := range states {
		if states[i].Dtype != wformat.F32 {
			return true
		}
	}
	return false
}
