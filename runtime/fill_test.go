package runtime

import (
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
)

// TestFillAll: every weight not used in place is filled once, the
// others never, and a fill's error comes back.
func TestFillAll(t *testing.T) {
	ws := make([]artifact.Weight, 50)
	inPlace := make([]bool, len(ws))
	for i := range ws {
		ws[i] = artifact.Weight{Name: "w", Rows: i%7 + 1, Cols: 8}
		inPlace[i] = i%5 == 0
	}
	var mu sync.Mutex
	calls := map[int]int{}
	require.NoError(t, FillAll(ws, inPlace, func(i int) error {
		mu.Lock()
		defer mu.Unlock()
		calls[i]++
		return nil
	}))
	for i := range ws {
		want := 1
		if inPlace[i] {
			want = 0
		}
		require.Equal(t, want, calls[i], "weight %d", i)
	}
	bad := errors.New("weight 13: no such tensor")
	err := FillAll(ws, inPlace, func(i int) error {
		if i == 13 {
			return bad
		}
		return nil
	})
	require.ErrorIs(t, err, bad)
}

// decodeTensors is a WeightSource and DecodeSource of named float32
// tensors that counts the copies its Float32 hands out.
type decodeTensors struct {
	t      map[string][]float32
	copies *int
}

func (d decodeTensors) Float32(name string) ([]float32, []int, error) {
	*d.copies++
	return append([]float32(nil), d.t[name]...), []int{len(d.t[name])}, nil
}
func (d decodeTensors) Elements(name string) (int, error) { return len(d.t[name]), nil }
func (d decodeTensors) DecodeFloat32(name string, dst []float32) error {
	copy(dst, d.t[name])
	return nil
}

// TestFillWeightDecodes: a DecodeSource's tensors are decoded into the
// weight's memory, part after part, with no copy of their own, also
// behind CopyWeights; a part too large is an error naming the weight.
func TestFillWeightDecodes(t *testing.T) {
	copies := 0
	src := decodeTensors{t: map[string][]float32{"a": {1, 2, 3, 4}, "b": {5, 6}}, copies: &copies}
	w := &artifact.Weight{Name: "ab", Rows: 3, Cols: 2, Concat: []string{"a", "b"}}
	for _, ws := range []WeightSource{src, CopyWeights(src)} {
		dst := make([]float32, 6)
		require.NoError(t, FillWeight(w, ws, dst, nil))
		require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, dst)
	}
	require.Zero(t, copies, "decoded in place")
	short := &artifact.Weight{Name: "ab", Rows: 1, Cols: 4, Concat: []string{"a", "b"}}
	require.ErrorContains(t, FillWeight(short, src, make([]float32, 4), nil), "weight ab: b has more elements than the artifact's [1, 4]")
}
