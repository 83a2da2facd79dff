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
// parts of a concatenation, and an interleave this runtime cannot do is
// an error naming the weight.
func TestFillBlocksInterleave(t *testing.T) {
	const cols = 64
	rows := []int{16, 16}
	data := make([]float32, 32*cols)
	for i := range data {
		data[i] = float32(i%19) - 9
	}
	q, err := wformat.Quantize(wformat.Q4_0, 32, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	half := wformat.Q4_0.Bytes(rows[0], cols)
	src := blockTensors{"a": q[:half], "b": q[half:]}
	w := &artifact.Weight{Name: "ab", Rows: 32, Cols: cols, Concat: []string{"a", "b"}, Format: wformat.Q4_0, Interleave: wformat.Group}
	dst := make([]byte, len(q))
	if err := FillBlocks(w, src, dst); err != nil {
		t.Fatal(err)
	}
	want, err := wformat.Interleave(wformat.Q4_0, 32, cols, q)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst, want) {
		t.Fatal("the rows were not interleaved as they were copied")
	}
	w.Interleave = 8
	if err := FillBlocks(w, src, dst); err == nil || !bytes.Contains([]byte(err.Error()), []byte("weight ab: rows interleaved by 8")) {
		t.Fatalf("got %v", err)
	}
}
