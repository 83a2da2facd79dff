package runtime

import (
	"errors"
	"fmt"
)

// Slots are independent sequences over one loaded model, each with its own
// KV cache: the sequences a server decodes side by side. Slots share the
// model's weights and its worker pool, so their methods must not be called
// concurrently: one step of the model runs at a time.
type Slots interface {
	// Len is the number of slots.
	Len() int
	// Slot is slot i's own decoder: prefill, single steps and rewinds on
	// its cache alone.
	Slot(i int) Decoder
	// Step runs one decode step for several distinct slots: tokens[j] is
	// placed in slot slots[j] at that slot's Pos(). The result holds one
	// row of logits per slot, in the order of slots.
	Step(slots, tokens []int) ([]float32, error)
	// Batched reports whether Step reads the weights once for all the
	// slots it steps (a compiled batched entry point) rather than running
	// them one after another.
	Batched() bool
	// StepRuns runs several distinct slots' tokens in one step: each run's
	// tokens are placed in its slot from that slot's Pos() on, and the
	// result holds, per run in order, the logits after its last token.
	// A batched program reads the weights once for up to Rows() tokens
	// of all the runs together, so a decode step of some slots can carry
	// a piece of another slot's prefill.
	StepRuns(runs []Run) ([]float32, error)
	// Rows is how many tokens StepRuns runs in one call that reads the
	// weights once, and MaxRun the most tokens of one run in it; both 0
	// when the slots run one after another.
	Rows() int
	MaxRun() int
}

// Run is one slot's tokens in a step: one for a decode step, more for a
// piece of a prefill.
type Run struct {
	Slot   int
	Tokens []int
}

// SequentialSlots are slots over separate decoders: Step runs each slot's
// decode step in turn.
func SequentialSlots(ds []Decoder) (Slots, error) {
	if len(ds) == 0 {
		return nil, errors.New("no slots")
	}
	return sequential(ds), nil
}

type sequential []Decoder

func (s sequential) Len() int           { return len(s) }
func (s sequential) Slot(i int) Decoder { return s[i] }
func (s sequential) Batched() bool      { return false }
func (s sequential) Rows() int          { return 0 }
func (s sequential) MaxRun() int        { return 0 }

func (s sequential) StepRuns(runs []Run) ([]float32, error) {
	if err := checkRuns(len(s), runs); err != nil {
		return nil, err
	}
	var out []float32
	for _, r := range runs {
		logits, err := s[r.Slot].Forward(r.Tokens, false)
		if err != nil {
			return nil, fmt.Errorf("slot %d: %w", r.Slot, err)
		}
		out = append(out, logits...)
	}
	return out, nil
}

func (s sequential) Step(slots, tokens []int) ([]float32, error) {
	if err := checkStep(len(s), slots, tokens); err != nil {
		return nil, err
	}
	var out []float32
	for j, i := range slots {
		logits, err := s[i].Forward(tokens[j:j+1], false)
		if err != nil {
			return nil, fmt.Errorf("slot %d: %w", i, err)
		}
		out = append(out, logits...)
	}
	return out, nil
}

// checkStep checks a Step's arguments: as many tokens as slots, each slot
// in range and stepped at most once.
func checkStep(n int, slots, tokens []int) error {
	if len(slots) != len(tokens) {
		return fmt.Errorf("%d slots but %d tokens", len(slots), len(tokens))
	}
	return checkRuns(n, singleRuns(slots, tokens))
}

// singleRuns are the runs of one token each of a Step.
func singleRuns(slots, tokens []int) []Run {
	runs := make([]Run, len(slots))
	for j, i := range slots {
		runs[j] = Run{Slot: i, Tokens: tokens[j : j+1]}
	}
	return runs
}

// checkRuns checks a StepRuns's arguments: each slot in range, stepped at
// most once, with at least one token.
func checkRuns(n int, runs []Run) error {
	if len(runs) == 0 {
		return errors.New("no slots to step")
	}
	seen := make([]bool, n)
	for _, r := range runs {
		if r.Slot < 0 || r.Slot >= n {
			return fmt.Errorf("slot %d is outside 0..%d", r.Slot, n-1)
		}
		if seen[r.Slot] {
			return fmt.Errorf("slot %d is stepped twice", r.Slot)
		}
		if len(r.Tokens) == 0 {
			return fmt.Errorf("slot %d has no tokens to run", r.Slot)
		}
		seen[r.Slot] = true
	}
	return nil
}
