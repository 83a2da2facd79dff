package runtime

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
)

// tensors is a WeightSource of named float32 and bfloat16 tensors.
type tensors struct {
	f32  map[string][]float32
	bf16 map[string][]uint16
}

func (ts tensors) Float32(name string) ([]float32, []int, error) {
	if d, ok := ts.f32[name]; ok {
		return d, []int{len(d)}, nil
	}
	return nil, nil, fmt.Errorf("no tensor %s", name)
}

func (ts tensors) BF16(name string) ([]uint16, error) {
	if d, ok := ts.bf16[name]; ok {
		return d, nil
	}
	return nil, fmt.Errorf("no tensor %s", name)
}

// f32Only hides a source's BF16 method.
type f32Only struct{ WeightSource }

// TestLinkedWeights checks weight gathering, which every compiled
// program's weights go through: parts stacked by rows in order, bfloat16
// weights kept as stored, and parts that do not fill the weight's rows ×
// cols refused.
func TestLinkedWeights(t *testing.T) {
	ws := tensors{
		f32:  map[string][]float32{"a": {1, 2}, "b": {3, 4, 5, 6}, "v": {7, 8, 9}},
		bf16: map[string][]uint16{"h": {10, 11, 12, 13}},
	}
	lp := &LinkedProgram{Weights: []artifact.Weight{
		{Name: "ab", Rows: 3, Cols: 2, Concat: []string{"a", "b"}},
		{Name: "h", Rows: 2, Cols: 2, BF16: true},
		{Name: "v", Rows: 3, Cols: 1},
	}}
	w, free, err := LinkedWeights(lp, ws)
	require.NoError(t, err)
	defer free()
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, w.F32[0])
	require.Equal(t, []uint16{10, 11, 12, 13}, w.BF16[1])
	require.Equal(t, []float32{7, 8, 9}, w.F32[2])
	require.Nil(t, w.BF16[0])
	require.Nil(t, w.F32[1])

	for _, c := range []struct {
		w    artifact.Weight
		ws   WeightSource
		want string
	}{
		{artifact.Weight{Name: "v", Rows: 2, Cols: 1}, ws, "weight v: v has more elements than the artifact's [2, 1]: compile the artifact again"},
		{artifact.Weight{Name: "ab", Rows: 4, Cols: 2, Concat: []string{"a", "b"}}, ws, "weight ab has 6 elements, the artifact expects [4, 2]: compile the artifact again"},
		{artifact.Weight{Name: "h", Rows: 2, Cols: 2, BF16: true}, f32Only{ws}, "weight h: the weights cannot be read as bfloat16"},
		{artifact.Weight{Name: "x", Rows: 1, Cols: 1}, ws, "no tensor x"},
	} {
		_, _, err := LinkedWeights(&LinkedProgram{Weights: []artifact.Weight{c.w}}, c.ws)
		require.EqualError(t, err, c.want)
	}
}
