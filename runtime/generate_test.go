package runtime

import (
	"testing"

	"github.com/llmc-dev/llmc/runtime/sample"
)

// fixedDecoder returns the same logits for every step.
type fixedDecoder struct {
	logits []float32
	pos    int
}

func (d *fixedDecoder) VocabSize() int { return len(d.logits) }
func (d *fixedDecoder) Context() int   { return 100 }
func (d *fixedDecoder) Pos() int       { return d.pos }
func (d *fixedDecoder) Rewind(p int) error {
	d.pos = p
	return nil
}
func (d *fixedDecoder) Forward(tokens []int, all bool) ([]float32, error) {
	d.pos += len(tokens)
	return d.logits, nil
}

// TestGenerateContextPenalised checks that the repetition penalty sees the
// tokens of earlier turns (Context), not only this call's prompt.
func TestGenerateContextPenalised(t *testing.T) {
	s, err := sample.New(sample.Options{RepetitionPenalty: 100})
	if err != nil {
		t.Fatal(err)
	}
	run := func(context []int) int {
		d := &fixedDecoder{logits: []float32{0, 5, 4, 0}}
		res, err := Generate(d, []int{3}, GenerateOptions{MaxNewTokens: 1, Sampler: s, Context: context})
		if err != nil {
			t.Fatal(err)
		}
		return res.IDs[0]
	}
	if got := run(nil); got != 1 {
		t.Fatalf("without context: picked %d, want 1", got)
	}
	if got := run([]int{1}); got != 2 {
		t.Fatalf("with token 1 in the context: picked %d, want 2", got)
	}
}
