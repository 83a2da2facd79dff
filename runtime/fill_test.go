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
