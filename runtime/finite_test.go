package runtime

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/llmc-dev/llmc/ir"
)

// stepDecoder returns finite logits except at the forward call numbered
// bad (0 is the prefill), where logit badAt is replaced by bad value.
type stepDecoder struct {
	vocab, calls, pos int
	bad, badAt        int
	value             float32
}

func (d *stepDecoder) VocabSize() int { return d.vocab }
func (d *stepDecoder) Context() int   { return 100 }
func (d *stepDecoder) Pos() int       { return d.pos }
func (d *stepDecoder) Rewind(p int) error {
	d.pos = p
	return nil
}
func (d *stepDecoder) Forward(tokens []int, all bool) ([]float32, error) {
	rows := 1
	if all {
		rows = len(tokens)
	}
	out := make([]float32, rows*d.vocab)
	for i := range out {
		out[i] = float32(i % d.vocab)
	}
	if d.calls == d.bad {
		out[d.badAt] = d.value
	}
	d.calls++
	d.pos += len(tokens)
	return out, nil
}

func TestNonFiniteLogits(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name  string
		score bool
		d     *stepDecoder
		want  NonFiniteError
		msg   []string
	}{
		{name: "NaN at prefill", d: &stepDecoder{vocab: 4, bad: 0, badAt: 2, value: nan},
			want: NonFiniteError{Step: "prefill", Pos: 2, Index: 2, Token: 7, NaN: 1, First: 2, Vocab: 4},
			msg:  []string{"prefill", "position 2", "prompt token index 2 (id 7)", "NaN (1 of 4)", "non-finite"}},
		{name: "+Inf at the second decode step", d: &stepDecoder{vocab: 4, bad: 2, badAt: 0, value: inf},
			// Greedy picks 3 each step: the prompt fills 0..2, steps 1 and
			// 2 put generated tokens 0 and 1 at positions 3 and 4.
			want: NonFiniteError{Step: "decode step 2", Pos: 4, Index: 1, Token: 3, PosInf: 1, First: 0, Vocab: 4},
			msg:  []string{"decode step 2", "position 4", "generated token index 1 (id 3)", "+Inf (1 of 4)"}},
		{name: "-Inf in a scored row", score: true, d: &stepDecoder{vocab: 4, bad: 0, badAt: 4 + 1, value: float32(math.Inf(-1))},
			want: NonFiniteError{Step: "scoring", Pos: 1, Index: 1, Token: 8, NegInf: 1, First: 1, Vocab: 4},
			msg:  []string{"scoring", "position 1", "token index 1 (id 8)", "-Inf (1 of 4)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.score {
				_, err = ScoreSequence(tt.d, []int{5, 8, 6})
			} else {
				_, err = Generate(tt.d, []int{5, 6, 7}, GenerateOptions{MaxNewTokens: 5})
			}
			nf, ok := errors.AsType[*NonFiniteError](err)
			if !ok {
				t.Fatalf("err = %v, want a *NonFiniteError", err)
			}
			if *nf != tt.want {
				t.Errorf("error = %+v\nwant    %+v", *nf, tt.want)
			}
			for _, m := range tt.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not say %q", err, m)
				}
			}
		})
	}
}

// sliceWeights serves weights from memory.
type sliceWeights map[string][]float32

func (w sliceWeights) Float32(name string) ([]float32, []int, error) {
	x, ok := w[name]
	if !ok {
		return nil, nil, fmt.Errorf("no weight %s", name)
	}
	return x, []int{len(x) / 2, 2}, nil
}

func TestDebugNaN(t *testing.T) {
	const src = `graph forward[seq, ctx](%tokens: i32[seq], %pos: i32[]) {
  weight @emb: f32[3, 2]
  weight @w: f32[2, 2]
  %x = embedding @emb, %tokens : f32[seq, 2]
  %y = linear %x, @w : f32[seq, 2]
  %z = scale %y {factor=1e+38} : f32[seq, 2]
  %out = add %z, %x : f32[seq, 2]
  return %out
}
`
	nan := float32(math.NaN())
	tests := []struct {
		name   string
		emb, w []float32
		tokens []int32
		want   []string // in the message; nil: no error
	}{
		{name: "finite", emb: []float32{0, 0, 0, 0, 0, 0}, w: []float32{1, 0, 0, 1}, tokens: []int32{0, 1}},
		{name: "NaN weight", emb: []float32{1, 1, 1, 1, 1, 1}, w: []float32{1, nan, 0, 1}, tokens: []int32{0},
			want: []string{"graph forward", "op %y (linear)", "NaN (1 of 2)", "@w holds NaN (1 of 4), the first at [0 1]", "linear %x, @w"}},
		{name: "NaN embedding row", emb: []float32{1, 1, nan, 1, 1, 1}, w: []float32{1, 0, 0, 1}, tokens: []int32{0, 1},
			want: []string{"op %x (embedding)", "positions 0..1", "@emb holds NaN (1 of 6), the first at [1 0]"}},
		{name: "overflow to Inf", emb: []float32{10, 10, 1, 1, 1, 1}, w: []float32{1, 0, 0, 1}, tokens: []int32{0},
			want: []string{"op %z (scale)", "+Inf (2 of 2)", "all its inputs were finite"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ir.Parse(src)
			if err != nil {
				t.Fatal(err)
			}
			p, err := NewProgram([]*ir.Graph{g}, sliceWeights{"emb": tt.emb, "w": tt.w}, nil)
			if err != nil {
				t.Fatal(err)
			}
			p.SetDebugNaN(true)
			_, _, err = p.Run("forward", tt.tokens, 0)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if _, ok := errors.AsType[*NonFiniteOpError](err); !ok {
				t.Fatalf("err = %v, want a *NonFiniteOpError", err)
			}
			for _, m := range tt.want {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message %q does not say %q", err, m)
				}
			}
		})
	}
}
