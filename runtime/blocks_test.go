package runtime

import (
	"bytes"
	"testing"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/wformat"
)

// blockTensors is a BlockSource of named Q4_0 tensors.
type blockTensors map[string][]byte

func (b blockTensors) Float32(name string) ([]float32, []int, error) { return nil, nil, nil }
func (b blockTensors) Blocks(name string) ([]byte, wformat.Format, error) {
	return b[name], wformat.Q4_0, nil
}

// TestFillBlocksInterleave: a weight the kernels read with interleaved
// rows (artifact.Weight.Interleave) is moved as it is copied, across the
// parts of a concatenation: parts of whole groups each straight from the
// source, parts that split a group through the plain weight, alike. An
// interleave this runtime cannot do is an error naming the weight.
func TestFillBlocksInterleave(t *testing.T) {
	const cols = 64
	data := make([]float32, 48*cols)
	for i := range data {
		data[i] = float32(i%19) - 9
	}
	q, err := wformat.Quantize(wformat.Q4_0, 48, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	want, err := wformat.Interleave(wformat.Q4_0, 48, cols, q)
	if err != nil {
		t.Fatal(err)
	}
	w := &artifact.Weight{Name: "ab", Rows: 48, Cols: cols, Concat: []string{"a", "b"}, Format: wformat.Q4_0, Interleave: wformat.Group}
	for _, rowsA := range []int{16, 32, 8, 24} { // whole groups, then groups split between a and b
		cut := wformat.Q4_0.Bytes(rowsA, cols)
		src := blockTensors{"a": q[:cut], "b": q[cut:]}
		dst := make([]byte, len(q))
		if err := FillBlocks(w, src, dst); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(dst, want) {
			t.Fatalf("parts of %d and %d rows: the rows were not interleaved as they were copied", rowsA, 48-rowsA)
		}
	}
	src := blockTensors{"a": q[:wformat.Q4_0.Bytes(16, cols)], "b": q[wformat.Q4_0.Bytes(16, cols):]}
	dst := make([]byte, len(q))
	w.Interleave = 8
	if err := FillBlocks(w, src, dst); err == nil || !bytes.Contains([]byte(err.Error()), []byte("weight ab: rows interleaved by 8")) {
		t.Fatalf("got %v", err)
	}
}
