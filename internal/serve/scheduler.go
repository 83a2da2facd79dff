package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// Finish reasons, as the OpenAI API names them.
const (
	finishStop   = "stop"   // an EOS token or a stop string
	finishLength = "length" // max_tokens, or the context is full
)

// job is one request's generation: what the handler queues and then reads
// back. The scheduler writes its output under mu and signals notify; the
// handler reads it until done is closed.
type job struct {
	ctx     context.Context
	prompt  []int
	maxNew  int
	sampler *sample.Sampler
	eos     []int
	stream  Stream // set by newStream once the job runs
	// newStream makes the job's Stream with its emit function.
	newStream func(emit func(string)) (Stream, error)
	queued    time.Time

	notify chan struct{} // capacity 1: something new under mu
	done   chan struct{} // closed when the job ended

	mu       sync.Mutex
	text     strings.Builder // not yet taken by the handler
	finish   string          // finishStop or finishLength, once done
	err      error           // why it failed, once done
	ids      int             // tokens generated
	cached   int             // prompt tokens that were in the slot's cache
	slot     int             // the slot it ran in
	firstTok time.Duration   // queue to first token
}

func newJob(ctx context.Context, prompt []int, maxNew int, s *sample.Sampler, eos []int, newStream func(func(string)) (Stream, error)) *job {
	return &job{ctx: ctx, prompt: prompt, maxNew: maxNew, sampler: s, eos: eos, newStream: newStream,
		queued: time.Now(), notify: make(chan struct{}, 1), done: make(chan struct{}), slot: -1}
}

func (j *job) emit(s string) {
	if s == "" {
		return
	}
	j.mu.Lock()
	j.text.WriteString(s)
	j.mu.Unlock()
	j.signal()
}

func (j *job) signal() {
	select {
	case j.notify <- struct{}{}:
	default:
	}
}

// take returns the text emitted since the last take.
func (j *job) take() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.text.String()
	j.text.Reset()
	return s
}

// end records how the job ended and wakes the handler; only the first
// call counts.
func (j *job) end(finish string, err error) {
	j.mu.Lock()
	select {
	case <-j.done:
		j.mu.Unlock()
		return
	default:
	}
	j.finish, j.err = finish, err
	close(j.done)
	j.mu.Unlock()
	j.signal()
}

// result is the outcome of an ended job.
type result struct {
	finish            string
	err               error
	promptTokens, ids int
	cached            int
}

func (j *job) result() result {
	j.mu.Lock()
	defer j.mu.Unlock()
	return result{finish: j.finish, err: j.err, promptTokens: len(j.prompt), ids: j.ids, cached: j.cached}
}

// slotState is what the scheduler knows of a slot.
type slotState struct {
	cached []int // the ids in its cache, positions 0..len-1
	job    *job  // nil when free
	next   int   // the token to feed at the next step
	// pending is the rest of the prompt still to prefill: with a batched
	// program it goes in pieces, along with the other slots' decode steps.
	pending []int
	history []int // prompt and generated ids: what the repetition penalty sees
	last    time.Time
}

// scheduler owns the model: it alone calls the Slots' methods.
type scheduler struct {
	slots   runtime.Slots
	vocab   int
	queue   chan *job
	stop    chan struct{} // closed: exit once no job is running
	exited  chan struct{}
	metrics *metrics
	state   []slotState
}

func newScheduler(s runtime.Slots, queue int, m *metrics) *scheduler {
	return &scheduler{slots: s, vocab: s.Slot(0).VocabSize(), queue: make(chan *job, queue),
		stop: make(chan struct{}), exited: make(chan struct{}), metrics: m, state: make([]slotState, s.Len())}
}

// errQueueFull is what submit returns when the queue holds its most jobs.
var errQueueFull = errors.New("the queue is full")

// submit queues j without waiting.
func (s *scheduler) submit(j *job) error {
	select {
	case s.queue <- j:
		s.metrics.queueLen.Store(int64(len(s.queue)))
		return nil
	default:
		return errQueueFull
	}
}

// run is the scheduler's loop: admit queued jobs into free slots, drop
// cancelled ones, step every decoding slot once; repeat.
func (s *scheduler) run() {
	defer close(s.exited)
	for {
		if s.busy() == 0 {
			select {
			case j := <-s.queue:
				s.admit(j)
			case <-s.stop:
				s.drainQueue()
				return
			}
		}
		// Between steps: new jobs into free slots, then cancellations.
		for s.free() >= 0 {
			select {
			case j := <-s.queue:
				s.admit(j)
				continue
			default:
			}
			break
		}
		s.metrics.queueLen.Store(int64(len(s.queue)))
		s.dropCancelled()
		s.step()
	}
}

// drainQueue fails what is still queued when the scheduler stops.
func (s *scheduler) drainQueue() {
	for {
		select {
		case j := <-s.queue:
			j.end("", errShuttingDown)
		default:
			s.metrics.queueLen.Store(0)
			return
		}
	}
}

var errShuttingDown = errors.New("the server is shutting down")

func (s *scheduler) busy() int {
	n := 0
	for i := range s.state {
		if s.state[i].job != nil {
			n++
		}
	}
	return n
}

func (s *scheduler) free() int {
	for i := range s.state {
		if s.state[i].job == nil {
			return i
		}
	}
	return -1
}

// pick chooses the free slot whose cache shares the longest prefix with
// prompt (the first free slot when none shares any) and how many of its
// cached ids can be kept: at least one prompt token must run, to give the
// logits of the first new token.
func (s *scheduler) pick(prompt []int) (slot, keep int) {
	slot, keep = -1, -1
	for i := range s.state {
		st := &s.state[i]
		if st.job != nil {
			continue
		}
		p := min(commonPrefix(st.cached, prompt), s.slots.Slot(i).Pos(), len(prompt)-1)
		if p > keep {
			slot, keep = i, p
		}
	}
	return slot, keep
}

func commonPrefix(a, b []int) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// admit prefills j in a free slot and samples its first token.
func (s *scheduler) admit(j *job) {
	if err := j.ctx.Err(); err != nil {
		j.end("", context.Cause(j.ctx))
		return
	}
	i, keep := s.pick(j.prompt)
	st := &s.state[i]
	d := s.slots.Slot(i)
	if keep < d.Pos() {
		if err := d.Rewind(keep); err != nil {
			// Start the slot over rather than fail the request.
			keep = 0
			if err := d.Rewind(0); err != nil {
				s.reset(i)
				j.end("", fmt.Errorf("slot %d: %w", i, err))
				return
			}
		}
	}
	st.cached = st.cached[:keep]
	var err error
	if j.stream, err = j.newStream(j.emit); err != nil {
		j.end("", err)
		return
	}
	st.job, st.history = j, append(st.history[:0], j.prompt...)
	j.mu.Lock()
	j.slot, j.cached = i, keep
	j.mu.Unlock()
	s.metrics.admitted(keep, len(j.prompt)-keep, time.Since(j.queued))
	s.metrics.busy.Store(int64(s.busy()))
	if s.slots.Rows() > s.slots.Len() && s.slots.MaxRun() > 1 && s.decodingBesides(i) > 0 {
		// A program with rows to spare beyond a decode step of each slot,
		// and slots decoding: the next steps prefill the prompt, a piece
		// at a time, in the same calls as their decode steps, so the
		// weights are read once for both and decoding does not wait for
		// the prompt. Alone, a prompt goes through the prefill entry
		// point, whose steps are shorter.
		st.pending = j.prompt[keep:]
		return
	}
	logits, err := d.Forward(j.prompt[keep:], false)
	if err != nil {
		s.fail(i, fmt.Errorf("prefill of %d prompt tokens at position %d: %w", len(j.prompt)-keep, keep, err))
		return
	}
	st.cached = append(st.cached, j.prompt[keep:]...)
	s.accept(i, logits, len(j.prompt)-1, j.prompt[len(j.prompt)-1], "prefill")
}

// decodingBesides counts the slots other than slot i past their prefill.
func (s *scheduler) decodingBesides(i int) int {
	n := 0
	for k := range s.state {
		if k != i && s.state[k].job != nil && s.state[k].pending == nil {
			n++
		}
	}
	return n
}

// dropCancelled frees the slots whose client went away or timed out.
func (s *scheduler) dropCancelled() {
	for i := range s.state {
		if j := s.state[i].job; j != nil && j.ctx.Err() != nil {
			s.metrics.cancelled.Add(1)
			s.release(i, "", context.Cause(j.ctx))
		}
	}
}

// maxPiece bounds the prompt tokens a step carries besides other slots'
// decode steps: each of those slots waits for the whole step, so a long
// piece (a program's prefill chunk is 128 rows by default) would show as a
// stall in their streams. 16 tokens keep such a step within a few decode
// steps' time.
const maxPiece = 16

// step runs one decode step for every decoding slot and, with a batched
// program, the next pieces of the slots still prefilling, as many of
// their tokens as the step's rows leave room for.
func (s *scheduler) step() {
	var runs []runtime.Run
	decoding := 0
	for i := range s.state {
		if st := &s.state[i]; st.job != nil && st.pending == nil {
			runs = append(runs, runtime.Run{Slot: i, Tokens: []int{st.next}})
			decoding++
		}
	}
	room := s.slots.Rows() - decoding
	for i := range s.state {
		st := &s.state[i]
		if st.job == nil || st.pending == nil || room <= 0 {
			continue
		}
		n := min(len(st.pending), s.slots.MaxRun(), room, maxPiece)
		runs = append(runs, runtime.Run{Slot: i, Tokens: st.pending[:n]})
		room -= n
	}
	if len(runs) == 0 {
		return
	}
	start := time.Now()
	logits, err := s.slots.StepRuns(runs)
	s.metrics.stepped(decoding, time.Since(start))
	if err == nil && len(logits) != len(runs)*s.vocab {
		err = fmt.Errorf("a step of %d slots returned %d logits, want %d", len(runs), len(logits), len(runs)*s.vocab)
	}
	if err != nil {
		for _, r := range runs {
			s.fail(r.Slot, fmt.Errorf("decode step: %w", err))
		}
		return
	}
	for k, r := range runs {
		i := r.Slot
		st := &s.state[i]
		st.cached = append(st.cached, r.Tokens...)
		j := st.job
		row := logits[k*s.vocab : (k+1)*s.vocab]
		if st.pending == nil {
			s.accept(i, row, len(j.prompt)+j.ids-1, r.Tokens[0], fmt.Sprintf("decode step %d", j.ids))
			continue
		}
		if st.pending = st.pending[len(r.Tokens):]; len(st.pending) == 0 {
			st.pending = nil
			s.accept(i, row, len(j.prompt)-1, j.prompt[len(j.prompt)-1], "prefill")
		}
	}
}

// accept samples the next token of slot i's job from row (the logits
// after the token at position pos) and ends the job or readies the next
// step, as runtime.Generate does.
func (s *scheduler) accept(i int, row []float32, pos, token int, step string) {
	st := &s.state[i]
	j := st.job
	if bad := nonFinite(row); bad >= 0 {
		s.fail(i, fmt.Errorf("%s: the logits at position %d, after token %d, are not finite (token id %d is %v): the model computed a non-finite value",
			step, pos, token, bad, row[bad]))
		return
	}
	id := j.sampler.Sample(row, st.history)
	if id < 0 {
		s.fail(i, fmt.Errorf("%s: no token can be sampled from the logits at position %d", step, pos))
		return
	}
	now := time.Now()
	j.mu.Lock()
	j.ids++
	n := j.ids
	if n == 1 {
		j.firstTok = now.Sub(j.queued)
	}
	j.mu.Unlock()
	if n == 1 {
		s.metrics.firstToken(now.Sub(j.queued))
	} else {
		s.metrics.tokenGapSeen(now.Sub(st.last))
	}
	st.last = now
	st.history = append(st.history, id)
	stop, err := j.stream.Add(id)
	switch {
	case err != nil:
		s.fail(i, err)
	case slices.Contains(j.eos, id) || stop:
		s.release(i, finishStop, nil)
	case n < j.maxNew:
		st.next = id
		j.signal()
	default:
		s.release(i, finishLength, nil)
	}
}

// release ends slot i's job and frees the slot; its cache keeps what was
// fed, for the next request with the same prefix.
func (s *scheduler) release(i int, finish string, err error) {
	st := &s.state[i]
	j := st.job
	if err == nil {
		err = j.stream.Finish()
	}
	if err != nil {
		finish = ""
	}
	s.metrics.finished(j.ids)
	st.job, st.pending = nil, nil
	if d := s.slots.Slot(i); len(st.cached) != d.Pos() {
		s.reset(i)
	}
	s.metrics.busy.Store(int64(s.busy()))
	j.end(finish, err)
}

// fail ends slot i's job with err; the slot starts over empty, as its
// cache may hold a half-run step.
func (s *scheduler) fail(i int, err error) {
	j := s.state[i].job
	s.state[i].job, s.state[i].pending = nil, nil
	s.reset(i)
	s.metrics.busy.Store(int64(s.busy()))
	j.end("", err)
}

// reset empties slot i's cache.
func (s *scheduler) reset(i int) {
	s.state[i].cached = s.state[i].cached[:0]
	_ = s.slots.Slot(i).Rewind(0) // to position 0 always works
}

// nonFinite is the index of the first NaN or ±Inf in row, or -1.
func nonFinite(row []float32) int {
	for k, x := range row {
		if x-x != 0 {
			return k
		}
	}
	return -1
}
