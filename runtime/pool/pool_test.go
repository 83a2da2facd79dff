package pool

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chunk is one call of fn.
type chunk struct{ start, end int }

// collect runs ParallelForGrain and returns the calls and how often each
// index was visited. The counts are plain ints: chunks that overlapped
// would be a data race for -race to report.
func collect(p *Pool, n, grain int) ([]chunk, []int) {
	var mu sync.Mutex
	var calls []chunk
	visits := make([]int, max(n, 0))
	p.ParallelForGrain(n, grain, func(start, end int) {
		for i := start; i < end; i++ {
			visits[i]++
		}
		mu.Lock()
		calls = append(calls, chunk{start, end})
		mu.Unlock()
	})
	return calls, visits
}

func TestParallelForCoverage(t *testing.T) {
	sizes := []int{-1, 0, 1, 2, 3, 5, 15, 16, 17, 100, 1023, 4096}
	grains := []int{0, 1, 3, 8, 64}
	iterations := 30
	if testing.Short() {
		iterations = 3
	}
	for _, threads := range []int{1, 2, 3, 4, 7, 16} {
		p := New(threads)
		for range iterations {
			for _, n := range sizes {
				for _, grain := range grains {
					name := fmt.Sprintf("threads=%d n=%d grain=%d", threads, n, grain)
					calls, visits := collect(p, n, grain)
					checkChunks(t, name, calls, visits, n, max(grain, 1), threads)
				}
			}
		}
		p.Close()
	}
}

func checkChunks(t *testing.T, name string, calls []chunk, visits []int, n, grain, threads int) {
	t.Helper()
	for i, v := range visits {
		if v != 1 {
			t.Fatalf("%s: index %d visited %d times", name, i, v)
		}
	}
	units := (max(n, 0) + grain - 1) / grain
	if want := min(threads, units); len(calls) != want {
		t.Fatalf("%s: %d chunks %v, want %d", name, len(calls), calls, want)
	}
	sizes := map[int]bool{}
	for _, c := range calls {
		if c.start >= c.end {
			t.Fatalf("%s: empty chunk %v", name, c)
		}
		if c.start%grain != 0 {
			t.Fatalf("%s: chunk %v does not start at a multiple of the grain", name, c)
		}
		if c.end != n {
			if (c.end-c.start)%grain != 0 {
				t.Fatalf("%s: chunk %v is not a multiple of the grain", name, c)
			}
			sizes[(c.end-c.start)/grain] = true
		}
	}
	if len(sizes) > 2 {
		t.Fatalf("%s: unbalanced chunks %v", name, calls)
	}
}

func TestDefaultThreads(t *testing.T) {
	p := New(0)
	defer p.Close()
	if got, want := p.Threads(), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("New(0).Threads() = %d, want GOMAXPROCS = %d", got, want)
	}
	if got := New(-3); got.Threads() != runtime.GOMAXPROCS(0) {
		t.Errorf("New(-3).Threads() = %d", got.Threads())
	}
}

func TestSingleThreadRunsInline(t *testing.T) {
	before := runtime.NumGoroutine()
	p := New(1)
	if n := runtime.NumGoroutine(); n != before {
		t.Errorf("New(1) started %d goroutines", n-before)
	}
	var calls []chunk
	fn := func(start, end int) { calls = append(calls, chunk{start, end}) }
	p.ParallelFor(10, fn)
	if len(calls) != 1 || calls[0] != (chunk{0, 10}) {
		t.Errorf("calls = %v, want one call [0, 10)", calls)
	}
	// Inline, a panic is the caller's own, unchanged.
	func() {
		defer func() {
			if r := recover(); r != "inline" {
				t.Errorf("recovered %v, want the original value", r)
			}
		}()
		p.ParallelFor(3, func(int, int) { panic("inline") })
	}()
	p.Close()
	mustPanic(t, "ParallelFor after Close", "closed", func() { p.ParallelFor(1, fn) })
}

func TestNoAllocations(t *testing.T) {
	for _, threads := range []int{1, 2, 4} {
		p := New(threads)
		var sum atomic.Int64
		fn := func(start, end int) { sum.Add(int64(end - start)) }
		if a := testing.AllocsPerRun(1000, func() { p.ParallelFor(64, fn) }); a != 0 {
			t.Errorf("threads=%d: %v allocations per ParallelFor, want 0", threads, a)
		}
		p.Close()
	}
}

// mustPanic calls f and checks that it panics with a value whose text
// contains want.
func mustPanic(t *testing.T, what, want string, f func()) (r any) {
	t.Helper()
	defer func() {
		r = recover()
		if r == nil || !strings.Contains(fmt.Sprint(r), want) {
			t.Errorf("%s: recovered %v, want a panic containing %q", what, r, want)
		}
	}()
	f()
	return nil
}

func TestPanicPropagation(t *testing.T) {
	p := New(4)
	defer p.Close()
	errBoom := errors.New("boom")
	for _, bad := range []int{0, 1, 2, 3} {
		r := mustPanic(t, fmt.Sprintf("panic in chunk %d", bad), "boom", func() {
			p.ParallelFor(4, func(start, end int) {
				if start == bad {
					panicInChunk(errBoom)
				}
			})
		})
		pv, ok := r.(*Panic)
		if !ok {
			t.Fatalf("recovered %T, want *Panic", r)
		}
		if !errors.Is(pv, errBoom) {
			t.Errorf("errors.Is(%v, errBoom) = false", pv)
		}
		if !strings.Contains(string(pv.Stack), "panicInChunk") {
			t.Errorf("stack does not show where fn panicked:\n%s", pv.Stack)
		}
		// The pool still works.
		calls, visits := collect(p, 100, 1)
		checkChunks(t, "after a panic", calls, visits, 100, 1, 4)
	}
	// Every chunk panics: one value comes out.
	mustPanic(t, "all chunks panic", "chunk", func() {
		p.ParallelFor(4, func(start, _ int) { panic(fmt.Sprint("chunk ", start)) })
	})
	// panic(nil) is a panic too.
	mustPanic(t, "panic(nil)", "nil", func() {
		p.ParallelFor(4, func(start, _ int) {
			if start == 2 {
				panic(nil)
			}
		})
	})
}

//go:noinline
func panicInChunk(err error) { panic(err) }

func TestGoexit(t *testing.T) {
	p := New(3)
	defer p.Close()
	for _, bad := range []int{0, 1, 2} {
		var reached, deferred atomic.Bool
		var done sync.WaitGroup
		done.Add(1)
		go func() {
			defer done.Done()
			defer deferred.Store(true)
			p.ParallelFor(3, func(start, _ int) {
				if start == bad {
					runtime.Goexit()
				}
			})
			reached.Store(true)
		}()
		done.Wait()
		if reached.Load() || !deferred.Load() {
			t.Errorf("Goexit in chunk %d: code after ParallelFor ran = %v, deferred calls ran = %v; want false, true",
				bad, reached.Load(), deferred.Load())
		}
		// The pool still works, with a worker replaced.
		calls, visits := collect(p, 3, 1)
		checkChunks(t, "after Goexit", calls, visits, 3, 1, 3)
	}
}

func TestMisuseDetected(t *testing.T) {
	p := New(2)
	defer p.Close()

	// Nested: the inner call fails inside fn and the outer call reports it.
	mustPanic(t, "nested ParallelFor", "serialised", func() {
		p.ParallelFor(2, func(int, int) {
			p.ParallelFor(2, func(int, int) {})
		})
	})

	// Overlapping calls from two goroutines.
	started, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.ParallelFor(2, func(start, _ int) {
			if start == 0 {
				close(started)
				<-release
			}
		})
	}()
	<-started
	mustPanic(t, "overlapping ParallelFor", "serialised", func() { p.ParallelFor(2, func(int, int) {}) })
	mustPanic(t, "Close during ParallelFor", "running", p.Close)
	close(release)
	wg.Wait()
	calls, visits := collect(p, 10, 1)
	checkChunks(t, "after misuse", calls, visits, 10, 1, 2)
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	p := New(5)
	if n := runtime.NumGoroutine() - before; n != 4 {
		t.Errorf("New(5) started %d goroutines, want 4", n)
	}
	calls, visits := collect(p, 50, 1)
	checkChunks(t, "before Close", calls, visits, 50, 1, 5)
	p.Close()
	// Close waits for the workers, but their goroutines may take a moment
	// to leave the count.
	waitFor(t, "the workers exit", func() bool { return runtime.NumGoroutine() <= before })
	p.Close() // a no-op
	mustPanic(t, "ParallelFor after Close", "closed", func() { p.ParallelFor(50, func(int, int) {}) })
	// Closing parked workers.
	q := New(3)
	q.ParallelFor(3, func(int, int) {})
	waitFor(t, "the workers park", func() bool { return parked(q) == 2 })
	q.Close()
}

func TestCleanupClosesDroppedPool(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		p := New(4)
		p.ParallelFor(4, func(int, int) {})
	}()
	waitFor(t, "a dropped pool's workers exit", func() bool {
		runtime.GC()
		return runtime.NumGoroutine() <= before
	})
}

// parked counts the workers that are parked.
func parked(p *Pool) int {
	n := 0
	for i := range p.s.workers {
		if p.s.workers[i].sleeping.Load() {
			n++
		}
	}
	return n
}

func TestIdleWorkersPark(t *testing.T) {
	p := New(4)
	defer p.Close()
	for round := range 3 {
		waitFor(t, "the idle workers park", func() bool { return parked(p) == 3 })
		// Waking parked workers: only the ones a job needs wake up.
		calls, visits := collect(p, 2, 1)
		checkChunks(t, "two chunks after parking", calls, visits, 2, 1, 4)
		calls, visits = collect(p, 1000, 1)
		checkChunks(t, fmt.Sprintf("round %d after parking", round), calls, visits, 1000, 1, 4)
	}
}

func TestCallerParksForSlowWorkers(t *testing.T) {
	p := New(3)
	defer p.Close()
	for range 5 {
		var sum atomic.Int64
		p.ParallelFor(3, func(start, end int) {
			if start != 0 {
				time.Sleep(5 * ParkAfter) // the caller parks meanwhile
			}
			sum.Add(int64(end - start))
		})
		if sum.Load() != 3 {
			t.Fatalf("visited %d indices, want 3", sum.Load())
		}
	}
}

func TestMoreThreadsThanProcs(t *testing.T) {
	p := New(4 * runtime.GOMAXPROCS(0))
	defer p.Close()
	for range 200 {
		calls, visits := collect(p, 997, 1)
		checkChunks(t, "oversubscribed", calls, visits, 997, 1, p.Threads())
	}
}

func TestPoolsInParallel(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := New(2 + g%2)
			defer p.Close()
			for n := range 300 {
				calls, visits := collect(p, n, 1+g)
				checkChunks(t, "parallel pools", calls, visits, n, 1+g, p.Threads())
			}
		}()
	}
	wg.Wait()
}

func TestResultsVisibleToCaller(t *testing.T) {
	p := New(4)
	defer p.Close()
	out := make([]float32, 4096)
	for iter := range 100 {
		p.ParallelFor(len(out), func(start, end int) {
			for i := start; i < end; i++ {
				out[i] = float32(i + iter)
			}
		})
		for i, x := range out {
			if x != float32(i+iter) {
				t.Fatalf("iteration %d: out[%d] = %v, want %v", iter, i, x, float32(i+iter))
			}
		}
	}
}

// TestCallerRunsUnclaimedChunks runs loops on pools whose workers never
// start, like workers the operating system has descheduled: the caller must
// claim and run every chunk itself, with the usual boundaries.
func TestCallerRunsUnclaimedChunks(t *testing.T) {
	for _, tc := range []struct{ threads, n, grain int }{
		{2, 2, 1}, {2, 100, 1}, {3, 3, 1}, {4, 1000, 8}, {8, 5, 1}, {16, 4096, 64},
	} {
		name := fmt.Sprintf("threads=%d n=%d grain=%d", tc.threads, tc.n, tc.grain)
		p := &Pool{s: newState(tc.threads, ParkAfter, WaitSpin)}
		for range 3 {
			calls, visits := collect(p, tc.n, tc.grain)
			checkChunks(t, name, calls, visits, tc.n, tc.grain, tc.threads)
		}
		p.Close()
	}
}

// TestParkAndWake runs many short loops, with pauses that let the workers
// and the caller park, on pools that park at once, never, or in between.
func TestParkAndWake(t *testing.T) {
	const never = time.Hour
	jobs := 2000
	if testing.Short() {
		jobs = 200
	}
	for _, tc := range []struct {
		name               string
		idleSpin, waitSpin time.Duration
	}{
		{"park-at-once", 0, 0},
		{"workers-park-caller-spins", 0, never},
		{"workers-spin-caller-parks", never, 0},
		{"short-spins", time.Microsecond, time.Microsecond},
		{"defaults", ParkAfter, WaitSpin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, threads := range []int{2, 3, 5} {
				p := newPool(threads, tc.idleSpin, tc.waitSpin)
				for job := range jobs {
					n := 1 + job%(3*threads)
					var slow int
					if job%97 == 0 {
						slow = 1 + job%threads // a chunk the caller waits for
					}
					var mu sync.Mutex
					var calls []chunk
					visits := make([]int, n)
					p.ParallelFor(n, func(start, end int) {
						if start == slow && job%97 == 0 {
							time.Sleep(50 * time.Microsecond)
						}
						for i := start; i < end; i++ {
							visits[i]++
						}
						mu.Lock()
						calls = append(calls, chunk{start, end})
						mu.Unlock()
					})
					checkChunks(t, fmt.Sprintf("threads=%d job=%d", threads, job), calls, visits, n, 1, threads)
					if job%101 == 0 {
						time.Sleep(200 * time.Microsecond) // idle: workers may park
					}
				}
				p.Close()
			}
		})
	}
}

// TestCloseWhileIdle closes pools whose workers are starting, spinning or
// parked.
func TestCloseWhileIdle(t *testing.T) {
	for _, tc := range []struct {
		name     string
		idleSpin time.Duration
		jobs     int
		pause    time.Duration
	}{
		{"just-made", ParkAfter, 0, 0},
		{"spinning", time.Hour, 1, 0},
		{"parked-at-once", 0, 1, time.Millisecond},
		{"parked-after-spinning", 10 * time.Microsecond, 3, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			p := newPool(4, tc.idleSpin, WaitSpin)
			for range tc.jobs {
				calls, visits := collect(p, 4, 1)
				checkChunks(t, tc.name, calls, visits, 4, 1, 4)
			}
			time.Sleep(tc.pause)
			p.Close()
			waitFor(t, "the workers exit", func() bool { return runtime.NumGoroutine() <= before })
			mustPanic(t, "ParallelFor after Close", "closed", func() { p.ParallelFor(4, func(int, int) {}) })
		})
	}
}
