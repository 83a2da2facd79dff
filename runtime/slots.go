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
	if len(slots) == 0 {
		return errors.New("no slots to step")
	}
	if len(slots) != len(tokens) {
		return fmt.Errorf("%d slots but %d tokens", len(slots), len(tokens))
	}
	seen := make([]bool, n)
	for _, i := range slots {
		if i < 0 || i >= n {
			return fmt.Errorf("slot %d is outside 0..%d", i, n-1)
		}
		if seen[i] {
			return fmt.Errorf("slot %d is stepped twice", i)
		}
		seen[i] = true
	}
	return nil
}
