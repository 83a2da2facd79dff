package pool_test

import (
	"fmt"

	"github.com/llmc-dev/llmc/runtime/pool"
)

func ExamplePool_ParallelFor() {
	p := pool.New(4)
	defer p.Close()

	// y = W·x, rows split across the pool's threads.
	const rows, cols = 8, 3
	w := make([]float32, rows*cols)
	for i := range w {
		w[i] = float32(i)
	}
	x := []float32{1, 1, 1}
	y := make([]float32, rows)
	p.ParallelFor(rows, func(start, end int) {
		for r := start; r < end; r++ {
			var s float32
			for c := range cols {
				s += w[r*cols+c] * x[c]
			}
			y[r] = s
		}
	})
	fmt.Println(y)
	// Output: [3 12 21 30 39 48 57 66]
}
