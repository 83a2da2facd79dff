package serve

import (
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmc-dev/llmc/chattemplate"
	"github.com/llmc-dev/llmc/runtime"
)

// The fake model's vocabulary: id 0 is unused, 1 is EOS, 2..27 are the
// letters a..z and 28 is a space.
const (
	fakeEOS   = 1
	fakeVocab = 29
)

// fakeDecoder is a deterministic "model": the logits after a sequence
// depend on every token of it, so that a request decoded with another's
// tokens, or at the wrong position, gives different text.
type fakeDecoder struct {
	toks    []int
	context int
}

func (d *fakeDecoder) VocabSize() int { return fakeVocab }
func (d *fakeDecoder) Context() int   { return d.context }
func (d *fakeDecoder) Pos() int       { return len(d.toks) }

func (d *fakeDecoder) Rewind(pos int) error {
	if pos < 0 || pos > len(d.toks) {
		return fmt.Errorf("cannot rewind to %d: the cache holds %d", pos, len(d.toks))
	}
	d.toks = d.toks[:pos]
	return nil
}

func (d *fakeDecoder) Forward(tokens []int, all bool) ([]float32, error) {
	if len(tokens) == 0 || len(d.toks)+len(tokens) > d.context {
		return nil, fmt.Errorf("%d tokens at position %d do not fit %d positions", len(tokens), len(d.toks), d.context)
	}
	if all {
		return nil, errors.New("fake decoder: all rows are not implemented")
	}
	d.toks = append(d.toks, tokens...)
	h := fnv.New64a()
	for _, t := range d.toks {
		fmt.Fprintf(h, "%d,", t)
	}
	seed := h.Sum64()
	row := make([]float32, fakeVocab)
	for k := range row {
		x := seed ^ uint64(k)*0x9e3779b97f4a7c15
		x ^= x >> 29
		x *= 0xbf58476d1ce4e5b9
		x ^= x >> 32
		row[k] = float32(x%1000) / 250 // 0 .. 4
	}
	row[0] = -1e9
	row[fakeEOS] -= 1.5 // EOS now and then, not always
	return row, nil
}

// fakeSlots are slots over fake decoders. gate, when set, must deliver a
// value before each step, and delay makes each step take that long;
// inUse catches concurrent calls; widest is the most slots one step ran.
type fakeSlots struct {
	t      testing.TB
	ds     []*fakeDecoder
	gate   chan struct{}
	delay  time.Duration
	inUse  atomic.Bool
	steps  atomic.Int64
	widest atomic.Int64
	// rows and maxRun make it a batched program (Slots.Rows, MaxRun):
	// prefills then ride along with decode steps; mixed counts the runs
	// of more than one token it was given.
	rows, maxRun int
	mixed        atomic.Int64
}

func newFakeSlots(t testing.TB, n, context int) *fakeSlots {
	s := &fakeSlots{t: t}
	for range n {
		s.ds = append(s.ds, &fakeDecoder{context: context})
	}
	return s
}

func (s *fakeSlots) Len() int                   { return len(s.ds) }
func (s *fakeSlots) Slot(i int) runtime.Decoder { return s.ds[i] }
func (s *fakeSlots) Batched() bool              { return s.rows > 0 }
func (s *fakeSlots) Rows() int                  { return s.rows }
func (s *fakeSlots) MaxRun() int                { return s.maxRun }

func (s *fakeSlots) Step(slots, tokens []int) ([]float32, error) {
	runs := make([]runtime.Run, len(slots))
	for j, i := range slots {
		runs[j] = runtime.Run{Slot: i, Tokens: tokens[j : j+1]}
	}
	return s.StepRuns(runs)
}

func (s *fakeSlots) StepRuns(runs []runtime.Run) ([]float32, error) {
	if s.gate != nil {
		<-s.gate
	}
	if !s.inUse.CompareAndSwap(false, true) {
		s.t.Error("Slots.Step called concurrently")
	}
	defer s.inUse.Store(false)
	s.steps.Add(1)
	if int64(len(runs)) > s.widest.Load() {
		s.widest.Store(int64(len(runs)))
	}
	rows := 0
	for _, r := range runs {
		rows += len(r.Tokens)
		if len(r.Tokens) > 1 {
			s.mixed.Add(1)
			if len(r.Tokens) > s.maxRun {
				s.t.Errorf("a run of %d tokens, MaxRun is %d", len(r.Tokens), s.maxRun)
			}
		}
	}
	if s.rows > 0 && rows > s.rows {
		s.t.Errorf("a step of %d rows, Rows is %d", rows, s.rows)
	}
	time.Sleep(s.delay)
	var out []float32
	for _, r := range runs {
		row, err := s.ds[r.Slot].Forward(r.Tokens, false)
		if err != nil {
			return nil, err
		}
		out = append(out, row...)
	}
	return out, nil
}

// fakeText spells ids as letters. With noEOS, no id ends a generation.
type fakeText struct{ noChat, noEOS bool }

func (fakeText) Encode(text string) ([]int, error) {
	ids := []int{}
	for _, r := range text {
		switch {
		case r >= 'a' && r <= 'z':
			ids = append(ids, int(r-'a')+2)
		case r == ' ':
			ids = append(ids, 28)
		default:
			return nil, fmt.Errorf("fake tokenizer: no token for %q", r)
		}
	}
	return ids, nil
}

func (t fakeText) EncodeChat(msgs []chattemplate.Message) ([]int, error) {
	if t.noChat {
		return nil, t.ChatError()
	}
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%s %s ", m.Role, m.Content)
	}
	b.WriteString("assistant ")
	return t.Encode(b.String())
}

func (t fakeText) ChatError() error {
	if t.noChat {
		return fmt.Errorf("%w (fake)", ErrNoChatTemplate)
	}
	return nil
}

func (t fakeText) EOS(chat bool) []int {
	if t.noEOS {
		return nil
	}
	return []int{fakeEOS}
}

func spell(id int) string {
	switch {
	case id >= 2 && id <= 27:
		return string(rune('a' + id - 2))
	case id == 28:
		return " "
	}
	return ""
}

func (fakeText) NewStream(prompt, eos []int, stops []string, emit func(string)) (Stream, error) {
	return &fakeStream{stops: stops, emit: emit}, nil
}

// fakeStream holds back text that may start a stop string, as llmrun's
// textStream does.
type fakeStream struct {
	stops   []string
	emit    func(string)
	pending string
	stopped bool
	text    strings.Builder // everything emitted
}

func (s *fakeStream) out(t string) {
	s.text.WriteString(t)
	s.emit(t)
}

func (s *fakeStream) Add(id int) (bool, error) {
	if s.stopped {
		return true, nil
	}
	s.pending += spell(id)
	first := -1
	for _, st := range s.stops {
		if i := strings.Index(s.pending, st); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		s.out(s.pending[:first])
		s.pending, s.stopped = "", true
		return true, nil
	}
	keep := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.pending)); k > keep; k-- {
			if strings.HasSuffix(s.pending, st[:k]) {
				keep = k
				break
			}
		}
	}
	s.out(s.pending[:len(s.pending)-keep])
	s.pending = s.pending[len(s.pending)-keep:]
	return false, nil
}

func (s *fakeStream) Finish() error {
	if !s.stopped {
		s.out(s.pending)
		s.pending = ""
	}
	return nil
}
