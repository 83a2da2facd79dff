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
	// Format is a block format (wformat.Format.Blocked) the weight is
	// stored in: each row's blocks, padded, read from the artifact's
	// stored weights file (StoredWeightsName) rather than the model.
	// Zero (f32) otherwise; BF16 above says bfloat16, as before.
	Format wformat.Format `json:"format,omitempty"`
}

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
	if w.BF16 {
		return 2
	}
	return 4
}

// State is one KV cache state of a compiled program: Rows rows of RowSize
// float32 elements.
type State struct {
	Name    string `json:"name"`
	Rows    int    `json:"rows"`
	RowSize int    `json:"row_size"`
}
