// Package pool runs parallel loops for compute kernels that last only
// microseconds, such as one matrix-vector product of a decode step split
// across a few threads.
//
// A [Pool] keeps Threads()-1 worker goroutines alive. [Pool.ParallelFor]
// publishes a job by storing one atomic word (a generation number, the
// number of chunks and how many of them have been claimed), runs the first
// chunk on the calling goroutine, and waits for a countdown of the other
// chunks to reach zero. There is no channel operation or allocation per
// call while the workers are awake.
//
// Chunks other than the first are claimed, not assigned: a worker claims
// one by incrementing the job word, and so does the caller once its own
// chunk is done. A worker that is descheduled by the operating system (the
// machine is busier than the pool has threads), or slow to wake, therefore
// never holds up a loop it has not started: the caller runs its chunk.
//
// Waiting is bounded spinning, then parking. An idle worker polls the job
// word for [ParkAfter] (yielding to other goroutines now and then) and then
// parks on a channel, so an idle pool costs no CPU. The caller, waiting for
// chunks that workers have claimed and not finished, polls for [WaitSpin]
// and then parks, which hands its processor to whatever
// the scheduler runs next, perhaps the very worker it waits for. Waking a
// parked goroutine costs a few microseconds.
//
// A Pool with one thread runs every loop inline on the caller, with no
// synchronisation at all.
package pool

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// ParkAfter is how long an idle worker polls for a job before it blocks on
// a channel. It is short because an idle spinning worker, on a machine
// with more busy threads than cores, takes time slices from the caller
// that is preparing the next job; the caller runs the chunks of a worker
// that is slow to wake.
const ParkAfter = 20 * time.Microsecond

// WaitSpin is how long the caller of ParallelFor polls for the chunks that
// workers are still running before it blocks on a channel. It is short:
// balanced chunks end within a few microseconds of each other, so a longer
// wait means a worker is not running, and spinning would only keep a
// processor from it.
const WaitSpin = 20 * time.Microsecond

// MaxThreads is the largest pool New creates.
const MaxThreads = 1<<chunkBits - 1

const (
	// The job word is generation<<genShift | chunks<<chunkBits | claimed.
	// The generation wraps; a worker compares it only with the last one it
	// saw, and a parked worker is woken by a token, not by the compare.
	chunkBits = 16
	chunkMask = 1<<chunkBits - 1
	genShift  = 2 * chunkBits

	// A spinning goroutine looks at the clock every pollsPerCheck polls
	// and calls runtime.Gosched every yieldEvery polls (about a
	// microsecond), so that goroutines without a processor of their own,
	// such as a woken worker when the pool has more threads than
	// GOMAXPROCS, get to run.
	pollsPerCheck = 64
	yieldEvery    = 1 << 10
)

// A Pool runs parallel loops on a fixed set of goroutines.
//
// ParallelFor is not re-entrant, and calls on one Pool must not overlap:
// the goroutines that use a Pool must serialise their calls. Overlapping or
// nested calls are detected and panic rather than deadlock. Close must not
// overlap a call either. Separate Pools are independent.
//
// Idle workers spin for [ParkAfter] before they park, so a Pool with
// more threads than GOMAXPROCS, or several busy Pools at once, compete for
// processors and run short loops slower than a right-sized Pool; they
// still make progress, because the caller runs the chunks that no worker
// has claimed.
type Pool struct {
	s *state
}

// state is the part of a Pool that the workers reference, so that a Pool
// the program drops can be closed by a cleanup.
type state struct {
	// Written by the caller once per job, before the word is published;
	// read by the goroutines that claim a chunk of the job.
	word    atomic.Uint64 // generation<<genShift | chunks<<chunkBits | claimed
	fn      func(start, end int)
	n       int
	grain   int
	units   int // ceil(n/grain)
	threads int

	// How long idle workers and the waiting caller poll before parking:
	// ParkAfter and WaitSpin, fields so that tests can vary them.
	idleSpin, waitSpin time.Duration

	_       [64]byte     // keep the workers' writes off the line they poll
	pending atomic.Int64 // chunks other than the first not yet done
	_       [64]byte

	gen      uint64 // owned by the caller while busy
	busy     atomic.Bool
	closed   atomic.Bool
	waiting  atomic.Bool   // the caller is parked, or about to park, on done
	done     chan struct{} // the last worker's wake-up for a parked caller
	panicked atomic.Pointer[Panic]
	goexit   atomic.Bool
	workers  []worker
	wg       sync.WaitGroup
}

type worker struct {
	sleeping atomic.Bool   // parked, or about to park, on wake
	wake     chan struct{} // buffered: one token per claimed wake-up
	_        [48]byte
}

// New returns a Pool that runs loops on threads goroutines, the caller's
// included. threads <= 0 means runtime.GOMAXPROCS(0); more than MaxThreads
// means MaxThreads. Close releases the workers; a Pool that becomes
// unreachable is closed by a cleanup.
func New(threads int) *Pool {
	return newPool(threads, ParkAfter, WaitSpin)
}

func newPool(threads int, idleSpin, waitSpin time.Duration) *Pool {
	s := newState(threads, idleSpin, waitSpin)
	for i := range s.workers {
		s.wg.Add(1)
		go s.work(i+1, 0)
	}
	p := &Pool{s: s}
	if threads > 1 {
		runtime.AddCleanup(p, func(s *state) { s.shutdown() }, s)
	}
	return p
}

// newState returns the state of a Pool, its workers not yet started.
func newState(threads int, idleSpin, waitSpin time.Duration) *state {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	threads = min(threads, MaxThreads)
	s := &state{
		threads:  threads,
		idleSpin: idleSpin,
		waitSpin: waitSpin,
		done:     make(chan struct{}, 1),
		workers:  make([]worker, threads-1),
	}
	for i := range s.workers {
		s.workers[i].wake = make(chan struct{}, 1)
	}
	return s
}

// Threads returns the number of goroutines a loop can run on, the caller's
// included.
func (p *Pool) Threads() int { return p.s.threads }

// ParallelFor calls fn on contiguous chunks [start, end) that together cover
// [0, n) exactly once, min(n, Threads()) chunks of nearly equal size, and
// returns when every call has returned. The calling goroutine runs the
// first chunk, and any other chunk that no worker has started by the time
// it is done. Nothing is called when n <= 0.
//
// When there is a single chunk (n == 1, or a one-thread Pool), fn runs
// inline on the caller with no synchronisation, and a panic in it
// propagates unchanged. Otherwise, if fn panics in any chunk, ParallelFor
// waits for the other chunks and then panics on the calling goroutine with a
// *[Panic] holding the first value and the stack where it was raised. If fn
// calls runtime.Goexit (as t.FailNow does) and nothing panicked, ParallelFor
// calls runtime.Goexit on the calling goroutine once the other chunks are
// done.
//
// ParallelFor panics if the Pool is closed or another ParallelFor on it is
// running (see [Pool]).
func (p *Pool) ParallelFor(n int, fn func(start, end int)) {
	p.ParallelForGrain(n, 1, fn)
}

// ParallelForGrain is ParallelFor with chunk boundaries at multiples of
// grain: every chunk but the last holds a multiple of grain indices, and at
// least grain, so a loop gets no more than ceil(n/grain) chunks. Use it to
// keep tiny loops on one thread or to align chunks to a kernel's blocking.
// A grain below 1 means 1.
func (p *Pool) ParallelForGrain(n, grain int, fn func(start, end int)) {
	if n <= 0 {
		return
	}
	s := p.s
	grain = max(grain, 1)
	units := n / grain
	if n%grain != 0 {
		units++
	}
	chunks := min(s.threads, units)
	if chunks == 1 {
		if s.closed.Load() {
			panic("pool: ParallelFor on a closed Pool")
		}
		fn(0, n)
		return
	}

	if !s.busy.CompareAndSwap(false, true) {
		panic("pool: ParallelFor called while another call on the same Pool is running (calls must be serialised and not nested)")
	}
	if s.closed.Load() {
		s.busy.Store(false)
		panic("pool: ParallelFor on a closed Pool")
	}
	s.fn, s.n, s.grain, s.units = fn, n, grain, units
	s.pending.Store(int64(chunks - 1))
	s.gen++
	gen := s.gen << genShift >> genShift
	// Chunk 0 is the caller's: the word starts with one chunk claimed.
	s.word.Store(gen<<genShift | uint64(chunks)<<chunkBits | 1)
	for i := range chunks - 1 {
		s.workers[i].wakeIfParked()
	}

	s.run(0, 0)
	for {
		i, ok := s.claim(gen)
		if !ok {
			break
		}
		s.run(i, 0)
	}
	s.waitWorkers()
	if pv, goexit := s.endJob(); pv != nil {
		panic(pv)
	} else if goexit {
		runtime.Goexit()
	}
}

// Close stops the workers and waits for them to exit. Calling ParallelFor
// afterwards panics; calling Close again does nothing.
func (p *Pool) Close() {
	s := p.s
	if !s.busy.CompareAndSwap(false, true) {
		panic("pool: Close called while ParallelFor is running")
	}
	defer s.busy.Store(false)
	s.shutdown()
	s.wg.Wait()
}

// shutdown tells the workers to exit.
func (s *state) shutdown() {
	if s.closed.Swap(true) {
		return
	}
	// Only the word changes: a cleanup runs on its own goroutine, so it
	// must not touch the caller's fields.
	s.word.Add(1 << genShift)
	for i := range s.workers {
		s.workers[i].wakeIfParked()
	}
}

// claim takes the next unclaimed chunk of job gen. It reports false when
// every chunk has been claimed or gen is no longer the current job.
// Claiming a chunk is what entitles a goroutine to read the job's fields:
// the caller does not write the next job before every claimed chunk is
// done.
func (s *state) claim(gen uint64) (int, bool) {
	for {
		w := s.word.Load()
		if w>>genShift != gen {
			return 0, false
		}
		chunks, claimed := int(w>>chunkBits&chunkMask), int(w&chunkMask)
		if claimed >= chunks {
			return 0, false
		}
		if s.word.CompareAndSwap(w, w+1) {
			return claimed, true
		}
	}
}

// work is the loop of worker idx (1-based). It starts by claiming chunks
// of job gen, which lets a replacement worker carry on with the job its
// predecessor left.
func (s *state) work(idx int, gen uint64) {
	defer s.wg.Done()
	w := &s.workers[idx-1]
	for {
		for {
			i, ok := s.claim(gen)
			if !ok {
				break
			}
			s.run(i, idx)
		}
		gen = s.next(w, gen)
		if s.closed.Load() {
			return
		}
	}
}

// spin polls ready for about d, yielding to other goroutines now and then,
// and reports whether ready returned true.
func spin(d time.Duration, ready func() bool) bool {
	var start time.Time
	for i := 1; ; i++ {
		if ready() {
			return true
		}
		if i%pollsPerCheck != 0 {
			continue
		}
		if start.IsZero() {
			start = time.Now()
		} else if time.Since(start) >= d {
			return false
		}
		if i%yieldEvery == 0 {
			runtime.Gosched()
		}
	}
}

// next waits for a job word of a generation other than gen, or for a
// wake-up, and returns the generation of the current word.
func (s *state) next(w *worker, gen uint64) uint64 {
	if spin(s.idleSpin, func() bool { return s.word.Load()>>genShift != gen }) {
		return s.word.Load() >> genShift
	}
	w.sleeping.Store(true)
	if v := s.word.Load() >> genShift; v != gen {
		if !w.sleeping.CompareAndSwap(true, false) {
			<-w.wake // the caller claimed the wake-up: take its token
		}
		return v
	}
	<-w.wake
	// A wake-up may be late, for a job this worker has already seen (the
	// caller was descheduled between publishing it and waking us): then
	// claim finds nothing left and the worker comes back here.
	return s.word.Load() >> genShift
}

// wakeIfParked wakes w if it is parked or about to park. Its sleeping flag
// and wake channel form a handshake: whichever side clears the flag first
// owns the wake-up, so a token is sent only to a worker that will take it.
func (w *worker) wakeIfParked() {
	if w.sleeping.Load() && w.sleeping.CompareAndSwap(true, false) {
		w.wake <- struct{}{}
	}
}

// run runs chunk i of the current job on worker idx, or on the caller
// when idx is 0. A chunk other than the first is counted done on the way
// out, whatever fn did. If fn panics, run records the panic and returns. If
// fn calls runtime.Goexit, run records that and lets it proceed: a worker
// first starts its replacement, and the caller first waits for the
// workers, who claim whatever chunks it left.
func (s *state) run(i, idx int) {
	returned := false
	defer func() {
		goexit := false
		if !returned {
			if r := recover(); r != nil {
				s.panicked.CompareAndSwap(nil, &Panic{Value: r, Stack: debug.Stack()})
			} else {
				goexit = true
				s.goexit.Store(true)
			}
		}
		if goexit && idx > 0 {
			// Read the word before finish lets the next job in.
			s.wg.Add(1)
			go s.work(idx, s.word.Load()>>genShift)
		}
		if i > 0 {
			s.finish()
		}
		if goexit && idx == 0 {
			// The caller is exiting: finish the job first.
			s.waitWorkers()
			s.endJob()
		}
	}()
	chunks := int(s.word.Load() >> chunkBits & chunkMask)
	start, end := s.bounds(i, chunks)
	s.fn(start, end)
	returned = true
}

// bounds returns chunk i of chunks: units of grain indices shared out as
// evenly as possible, the first units%chunks chunks taking one more.
func (s *state) bounds(i, chunks int) (start, end int) {
	base, extra := s.units/chunks, s.units%chunks
	u := i*base + min(i, extra)
	start = u * s.grain
	if i == chunks-1 {
		return start, s.n
	}
	u += base
	if i < extra {
		u++
	}
	return start, u * s.grain
}

// finish counts a worker's chunk done, waking the caller if it is the last
// and the caller has parked.
func (s *state) finish() {
	if s.pending.Add(-1) == 0 && s.waiting.Load() && s.waiting.CompareAndSwap(true, false) {
		s.done <- struct{}{}
	}
}

// waitWorkers waits until every worker's chunk is done.
func (s *state) waitWorkers() {
	if spin(s.waitSpin, func() bool { return s.pending.Load() == 0 }) {
		return
	}
	for {
		s.waiting.Store(true)
		if s.pending.Load() == 0 {
			if !s.waiting.CompareAndSwap(true, false) {
				<-s.done // a worker claimed the wake-up: take its token
			}
			return
		}
		<-s.done
		if s.pending.Load() == 0 {
			return
		}
		// The wake-up came from the last worker of an earlier job, which
		// was descheduled between its countdown and its look at waiting.
	}
}

// endJob clears the finished job and returns how fn ended, if not normally.
func (s *state) endJob() (*Panic, bool) {
	s.fn = nil
	pv := s.panicked.Swap(nil)
	goexit := s.goexit.Swap(false)
	s.busy.Store(false)
	return pv, goexit
}

// A Panic is the value ParallelFor panics with when fn panicked: the first
// value recovered from any chunk and the stack of the goroutine that
// panicked, which is often a worker's.
type Panic struct {
	Value any
	Stack []byte
}

func (p *Panic) Error() string {
	return fmt.Sprintf("pool: panic in ParallelFor: %v\n\n%s", p.Value, p.Stack)
}

// Unwrap returns the panic value if it is an error.
func (p *Panic) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}
