package runtime

import "fmt"

// Runner runs a program's entry points. The interpreter (Program) and the
// compiled backends implement it.
type Runner interface {
	// Run executes entry point name on tokens at positions pos, pos+1, ...
	// and returns its output and the output's shape.
	Run(name string, tokens []int32, pos int) ([]float32, []int, error)
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
}

// Static is a Decoder over a program compiled for a static KV cache of
// Context positions: one token at a time through the decode entry point,
// longer inputs in chunks through the prefill entry points.
type Static struct {
	r       Runner
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
	return &Static{r: r, e: e, vocab: vocab, context: context}, nil
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
		out, _, err := d.r.Run(d.e.Decode, ids, d.pos)
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
		out, _, err := d.r.Run(entry, chunk, d.pos)
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
