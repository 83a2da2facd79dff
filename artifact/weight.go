package artifact

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
}

// Parts are the checkpoint tensors that make up w, in row order.
func (w *Weight) Parts() []string {
	if len(w.Concat) > 0 {
		return w.Concat
	}
	return []string{w.Name}
}

// ElemBytes is the size of one of w's elements as stored.
func (w *Weight) ElemBytes() int {
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
