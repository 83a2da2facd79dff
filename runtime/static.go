package runtime

import (
	"fmt"

	"github.com/llmc-dev/llmc/artifact"
)

// Runner runs a program's entry points. The interpreter (Program) and the
// compiled backends implement it.
type Runner interface {
	// Run executes entry point name on tokens at positions pos, pos+1, ...
	// and returns its output and the output's shape.
	Run(name string, tokens []int32, pos int) ([]float32, []int, error)
}

// A RowRunner is a Runner whose step's rows each have their own position
// and slot (artifact.FillRows): a compiled program, whose states may hold
// several sequences.
type RowRunner interface {
	Runner
	// RunRows executes entry point name on tokens, token i at
	// positions[i] in slot slots[i] (nil: slot 0).
	RunRows(name string, tokens, positions, slots []int32) ([]float32, []int, error)
	// Slots is how many sequences the states hold.
	Slots() int
}

// StaticEntries names the entry points of a program compiled for a static
// KV cache.
type StaticEntries struct {
	Decode     string // one token, the last logits
	Prefill    string // Chunk tokens (padded), logits of the last real one
	PrefillAll string // Chunk tokens (padded), logits of every one
	Chunk      int
	// SafeRewind, when > 0, is the furthest back Rewind may go without
	// recomputing: sliding-window layers keep their keys in a ring, and
	// going back further would need keys the ring has overwritten.
	SafeRewind int
	// DecodeBatch, if set, runs up to BatchRows tokens of several slots
	// at once, each row at its own position in its own slot, and returns
	// every row's logits.
	DecodeBatch string
	BatchRows   int
	// PrefillBatch, if set, runs up to PrefillBatchRows tokens of several
	// slots at once and returns the logits after each slot's last row
	// (artifact.EntryPrefillBatch): for steps longer than DecodeBatch's.
	PrefillBatch     string
	PrefillBatchRows int
}

// Static is a Decoder over a program compiled for a static KV cache of
// Context positions: one token at a time through the decode entry point,
// longer inputs in chunks through the prefill entry points.
type Static struct {
	r       Runner
	rows    RowRunner // r, when it is one
	slot    int32     // the sequence of rows' states this decoder uses
	e       StaticEntries
	vocab   int
	context int
	pos     int
	history []int // the tokens at positions 0..pos-1, to replay a far rewind
}

// NewStatic returns a Decoder over r.
func NewStatic(r Runner, e StaticEntries, vocab, context int) (*Static, error) {
	if e.Chunk <= 0 {
		return nil, fmt.Errorf("prefill chunk is %d, want > 0", e.Chunk)
	}
	d := &Static{r: r, e: e, vocab: vocab, context: context}
	d.rows, _ = r.(RowRunner)
	return d, nil
}

// run runs entry on ids at the decoder's next positions in its slot.
func (d *Static) run(entry string, ids []int32) ([]float32, error) {
	var out []float32
	var err error
	switch {
	case d.rows != nil:
		var slots []int32
		if d.slot != 0 {
			slots = make([]int32, len(ids))
			for i := range slots {
				slots[i] = d.slot
			}
		}
		out, _, err = d.rows.RunRows(entry, ids, artifact.Consecutive(d.pos, len(ids)), slots)
	case d.slot != 0:
		err = fmt.Errorf("runner %T holds one sequence, not slot %d", d.r, d.slot)
	default:
		out, _, err = d.r.Run(entry, ids, d.pos)
	}
	return out, err
}

func (d *Static) VocabSize() int { return d.vocab }
func (d *Static) Context() int   { return d.context }
func (d *Static) Pos() int       { return d.pos }

// Rewind drops positions from pos on. The static cache keeps their rows,
// but attention never reads past the current position, and the next
// tokens overwrite them. Past SafeRewind, the tokens before pos are run
// again, since ring caches no longer hold all the keys they need.
func (d *Static) Rewind(pos int) error {
	if pos < 0 || pos > d.pos {
		return fmt.Errorf("cannot rewind to position %d: the cache holds %d", pos, d.pos)
	}
	far := d.e.SafeRewind > 0 && d.pos-pos > d.e.SafeRewind
	d.pos = pos
	d.history = d.history[:pos]
	if far && pos > 0 {
		replay := append([]int(nil), d.history...)
		d.pos, d.history = 0, d.history[:0]
		if _, err := d.Forward(replay, false); err != nil {
			return fmt.Errorf("recomputing the cache after a rewind: %w", err)
		}
	}
	return nil
}

func (d *Static) Forward(tokens []int, all bool) ([]float32, error) {
	ids, err := checkTokens(tokens, d.vocab, d.pos, d.context)
	if err != nil {
		return nil, err
	}
	d.history = append(d.history, tokens...)
	if len(ids) == 1 && !all {
		out, err := d.run(d.e.Decode, ids)
		if err != nil {
			d.history = d.history[:d.pos]
			return nil, err
		}
		d.pos++
		return out, nil
	}
	entry := d.e.Prefill
	if all {
		entry = d.e.PrefillAll
	}
	var rows []float32
	var last []float32
	for start := 0; start < len(ids); start += d.e.Chunk {
		chunk := ids[start:min(start+d.e.Chunk, len(ids))]
		out, err := d.run(entry, chunk)
		if err != nil {
			d.history = d.history[:d.pos]
			return nil, err
		}
		d.pos += len(chunk)
		if all {
			rows = append(rows, out[:len(chunk)*d.vocab]...)
		} else {
			last = out
		}
	}
	if all {
		return rows, nil
	}
	return last, nil
}

// NewStaticSlots returns a slot for each sequence r's states hold. Step
// runs e.DecodeBatch, one call for up to e.BatchRows tokens, when e names
// one; otherwise each slot's decode step in turn.
func NewStaticSlots(r RowRunner, e StaticEntries, vocab, context int) (*StaticSlots, error) {
	if e.DecodeBatch != "" && e.BatchRows < 1 {
		return nil, fmt.Errorf("batched entry point %s has %d rows", e.DecodeBatch, e.BatchRows)
	}
	if e.PrefillBatch != "" && (e.DecodeBatch == "" || e.PrefillBatchRows <= e.BatchRows) {
		return nil, fmt.Errorf("batched entry point %s has %d rows, want more than %s's %d", e.PrefillBatch, e.PrefillBatchRows, e.DecodeBatch, e.BatchRows)
	}
	s := &StaticSlots{r: r, e: e}
	for i := range r.Slots() {
		d, err := NewStatic(r, e, vocab, context)
		if err != nil {
			return nil, err
		}
		d.slot = int32(i)
		s.ds = append(s.ds, d)
	}
	return s, nil
}

// StaticSlots are the sequences of one program's states (NewStaticSlots).
type StaticSlots struct {
	r  RowRunner
	e  StaticEntries
	ds []*Static
}

// First returns the first n slots.
func (s *StaticSlots) First(n int) (*StaticSlots, error) {
	if n < 1 || n > len(s.ds) {
		return nil, fmt.Errorf("%d slots: the program holds 1 to %d sequences", n, len(s.ds))
	}
	return &StaticSlots{r: s.r, e: s.e, ds: s.ds[:n]}, nil
}

func (s *StaticSlots) Len() int           { return len(s.ds) }
func (s *StaticSlots) Slot(i int) Decoder { return s.ds[i] }
func (s *StaticSlots) Batched() bool      { return s.e.DecodeBatch != "" }

// Rows is the most tokens one batched call takes, MaxRun the most of one
// slot's: a prefill chunk, since a ring cache holds a window and one
// chunk of each sequence.
func (s *StaticSlots) Rows() int {
	switch {
	case !s.Batched():
		return 0
	case s.e.PrefillBatch != "":
		return s.e.PrefillBatchRows
	}
	return s.e.BatchRows
}

func (s *StaticSlots) MaxRun() int {
	if !s.Batched() {
		return 0
	}
	return min(s.Rows(), s.e.Chunk)
}

func (s *StaticSlots) Step(slots, tokens []int) ([]float32, error) {
	if err := checkStep(len(s.ds), slots, tokens); err != nil {
		return nil, err
	}
	return s.StepRuns(singleRuns(slots, tokens))
}

// StepRuns packs the runs into as few calls of the batched entry point as
// their tokens need (a run longer than MaxRun, or a single one-token run,
// goes through its slot's own decoder).
func (s *StaticSlots) StepRuns(runs []Run) ([]float32, error) {
	if err := checkRuns(len(s.ds), runs); err != nil {
		return nil, err
	}
	vocab := s.ds[0].vocab
	out := make([]float32, len(runs)*vocab)
	var batch []int // indices of runs for the next call
	rows := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.call(runs, batch, rows, out); err != nil {
			return err
		}
		batch, rows = batch[:0], 0
		return nil
	}
	for k, r := range runs {
		n := len(r.Tokens)
		if !s.Batched() || n > s.MaxRun() || (len(runs) == 1 && n == 1) {
			logits, err := s.ds[r.Slot].Forward(r.Tokens, false)
			if err != nil {
				return nil, fmt.Errorf("slot %d: %w", r.Slot, err)
			}
			copy(out[k*vocab:], logits)
			continue
		}
		if rows+n > s.Rows() {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		batch, rows = append(batch, k), rows+n
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// call runs the runs batch (indices into runs, rows tokens in all) in one
// call of the batched entry point, and writes each one's last logits to
// out[k·vocab:].
func (s *StaticSlots) call(runs []Run, batch []int, rows int, out []float32) error {
	vocab := s.ds[0].vocab
	ids, pos, sl := make([]int32, 0, rows), make([]int32, 0, rows), make([]int32, 0, rows)
	for _, k := range batch {
		r := runs[k]
		d := s.ds[r.Slot]
		checked, err := checkTokens(r.Tokens, d.vocab, d.pos, d.context)
		if err != nil {
			return fmt.Errorf("slot %d: %w", r.Slot, err)
		}
		for i, id := range checked {
			ids, pos, sl = append(ids, id), append(pos, int32(d.pos+i)), append(sl, int32(r.Slot))
		}
	}
	// The short entry point returns every row's logits, the long one
	// those after each run's last row (artifact.RowOutputs).
	entry, perRun := s.e.DecodeBatch, false
	if rows > s.e.BatchRows {
		entry, perRun = s.e.PrefillBatch, true
	}
	logits, _, err := s.r.RunRows(entry, ids, pos, sl)
	if err != nil {
		return err
	}
	if want := len(batch) * vocab; len(logits) < want || (!perRun && len(logits) < rows*vocab) {
		return fmt.Errorf("%s returned %d logits for %d runs of %d rows", entry, len(logits), len(batch), rows)
	}
	row := 0
	for o, k := range batch {
		r := runs[k]
		d := s.ds[r.Slot]
		row += len(r.Tokens)
		out := out[k*vocab : (k+1)*vocab]
		if perRun {
			copy(out, logits[o*vocab:(o+1)*vocab])
		} else {
			copy(out, logits[(row-1)*vocab:row*vocab])
		}
		d.history = append(d.history, r.Tokens...)
		d.pos += len(r.Tokens)
	}
	return nil
}
