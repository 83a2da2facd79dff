package runtime

import (
	"runtime"
	"slices"
	"sync"

	"github.com/llmc-dev/llmc/artifact"
)

// FillAll calls fill for every weight not used in place (skip), on as many
// goroutines as there are CPUs, largest weights first: a load spends most
// of its time in the kernel zeroing the pages the copies fault in, which
// two cores do twice as fast as one. The weights' memory is disjoint and
// their sources are read-only maps, so the fills are independent. It
// returns the first error.
func FillAll(ws []artifact.Weight, skip []bool, fill func(i int) error) error {
	var order []int
	for i := range ws {
		if !skip[i] {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return ws[b].Bytes() - ws[a].Bytes() })
	next := make(chan int, len(order))
	for _, i := range order {
		next <- i
	}
	close(next)
	errs := make([]error, len(ws))
	var wg sync.WaitGroup
	for range min(runtime.NumCPU(), len(order)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = fill(i)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
