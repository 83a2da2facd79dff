package runtime

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/llmc-dev/llmc/runtime/sample"
)

// Decoder runs a model forward over new tokens and keeps their keys and
// values in its cache. The interpreter and every compiled backend
// implement it, so generation and scoring work the same on all of them.
type Decoder interface {
	// VocabSize is the number of logits per position.
	VocabSize() int
	// Context is the most positions the decoder can hold.
	Context() int
	// Pos is the number of positions in the cache.
	Pos() int
	// Forward places tokens at positions Pos(), Pos()+1, ... and returns
	// their logits: all rows (len(tokens) × vocab) when all is set, else
	// the last row only.
	Forward(tokens []int, all bool) ([]float32, error)
	// Rewind drops cached positions from pos on.
	Rewind(pos int) error
}

// Interpreted is a Decoder that interprets graphs: entry point last returns
// the last position's logits, entry point all returns every position's.
type Interpreted struct {
	prog      *Program
	last, all string
	vocab     int
	context   int
	pos       int
}

// NewInterpreted returns a Decoder over prog's entry points last and all.
func NewInterpreted(prog *Program, last, all string, vocab, context int) (*Interpreted, error) {
	for _, e := range []string{last, all} {
		if _, ok := prog.Entry(e); !ok {
			return nil, fmt.Errorf("program has no entry point %q", e)
		}
	}
	return &Interpreted{prog: prog, last: last, all: all, vocab: vocab, context: context}, nil
}

func (d *Interpreted) VocabSize() int { return d.vocab }
func (d *Interpreted) Context() int   { return d.context }
func (d *Interpreted) Pos() int       { return d.pos }

func (d *Interpreted) Rewind(pos int) error {
	if pos < 0 || pos > d.pos {
		return fmt.Errorf("cannot rewind to position %d: the cache holds %d", pos, d.pos)
	}
	d.pos = pos
	if pos == 0 {
		d.prog.Reset()
	}
	return nil
}

func (d *Interpreted) Forward(tokens []int, all bool) ([]float32, error) {
	ids, err := checkTokens(tokens, d.vocab, d.pos, d.context)
	if err != nil {
		return nil, err
	}
	entry := d.last
	if all {
		entry = d.all
	}
	out, _, err := d.prog.Run(entry, ids, d.pos)
	if err != nil {
		return nil, err
	}
	d.pos += len(tokens)
	return out, nil
}

// checkTokens validates a forward call and converts the ids to int32.
func checkTokens(tokens []int, vocab, pos, context int) ([]int32, error) {
	if len(tokens) == 0 {
		return nil, errors.New("no tokens to run")
	}
	if pos+len(tokens) > context {
		return nil, fmt.Errorf("%d cached + %d new positions exceed the context of %d", pos, len(tokens), context)
	}
	ids := make([]int32, len(tokens))
	for i, t := range tokens {
		if t < 0 || t >= vocab {
			return nil, fmt.Errorf("token id %d (at index %d) is outside the vocabulary 0..%d", t, i, vocab-1)
		}
		ids[i] = int32(t)
	}
	return ids, nil
}

// GenerateOptions control a generation.
type GenerateOptions struct {
	MaxNewTokens int
	Sampler      *sample.Sampler // nil: greedy
	// EOS ids end the generation (the EOS token is kept in the output).
	EOS []int
	// OnToken is called with each new token; returning stop ends the
	// generation after it, an error aborts it.
	OnToken func(id int) (stop bool, err error)
	// Context is the tokens already in the decoder's cache before prompt
	// (earlier turns of a chat): the repetition penalty sees them too, as
	// it sees the whole input in transformers.
	Context []int
}

// Generation is the result of Generate.
type Generation struct {
	IDs          []int // the generated ids only
	PromptTokens int
	PrefillTime  time.Duration
	DecodeTime   time.Duration // for the len(IDs)-1 decode steps
	DecodeSteps  int
	StopReason   string // "eos", "length" or "stop"
}

// PrefillTokensPerSecond is the prompt processing speed.
func (g *Generation) PrefillTokensPerSecond() float64 {
	return rate(g.PromptTokens, g.PrefillTime)
}

// DecodeTokensPerSecond is the speed of the one-token decode steps.
func (g *Generation) DecodeTokensPerSecond() float64 {
	return rate(g.DecodeSteps, g.DecodeTime)
}

func rate(n int, d time.Duration) float64 {
	if n == 0 || d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Generate prefills prompt after whatever d already holds, then samples up
// to MaxNewTokens tokens one step at a time.
func Generate(d Decoder, prompt []int, opts GenerateOptions) (*Generation, error) {
	if len(prompt) == 0 {
		return nil, errors.New("the prompt is empty")
	}
	if opts.MaxNewTokens < 0 {
		return nil, fmt.Errorf("max new tokens is %d, want >= 0", opts.MaxNewTokens)
	}
	if need := d.Pos() + len(prompt) + opts.MaxNewTokens; need > d.Context()+1 {
		// The last generated token is never fed back, hence the +1.
		return nil, fmt.Errorf("%d cached + %d prompt tokens + %d new tokens exceed the model's %d positions",
			d.Pos(), len(prompt), opts.MaxNewTokens, d.Context())
	}
	res := &Generation{PromptTokens: len(prompt), StopReason: "length"}
	if opts.MaxNewTokens == 0 {
		return res, nil
	}
	history := append(slices.Clone(opts.Context), prompt...)
	pick := func(logits []float32) int {
		if opts.Sampler == nil {
			return sample.Argmax(logits)
		}
		return opts.Sampler.Sample(logits, history)
	}

	start := time.Now()
	logits, err := d.Forward(prompt, false)
	if err != nil {
		return nil, fmt.Errorf("prefill of %d prompt tokens at position %d: %w", len(prompt), d.Pos(), err)
	}
	// Every row of logits is checked before a token is picked from it: a
	// NaN would otherwise come out as token -1 (or a random token).
	if err := checkLogits(logits, "prefill", d.Pos()-1, len(prompt)-1, prompt[len(prompt)-1]); err != nil {
		return nil, err
	}
	res.PrefillTime = time.Since(start)
	start = time.Now()
	for {
		id := pick(logits)
		res.IDs = append(res.IDs, id)
		history = append(history, id)
		stop := false
		if opts.OnToken != nil {
			if stop, err = opts.OnToken(id); err != nil {
				return res, err
			}
		}
		switch {
		case slices.Contains(opts.EOS, id):
			res.StopReason = "eos"
		case stop:
			res.StopReason = "stop"
		case len(res.IDs) < opts.MaxNewTokens:
			if logits, err = d.Forward([]int{id}, false); err != nil {
				return res, fmt.Errorf("decode step %d at position %d: %w", res.DecodeSteps+1, d.Pos(), err)
			}
			res.DecodeSteps++
			step := fmt.Sprintf("decode step %d", res.DecodeSteps)
			if err := checkLogits(logits, step, d.Pos()-1, len(res.IDs)-1, id); err != nil {
				return res, err
			}
			continue
		}
		break
	}
	res.DecodeTime = time.Since(start)
	return res, nil
}

// Score is the result of running a whole sequence through a model.
type Score struct {
	Logits [][]float32 // the logits after each position
	// NLL is the mean negative log-likelihood of ids[1:] given the
	// tokens before each, in nats; Perplexity is exp(NLL).
	NLL        float64
	Perplexity float64
}

// ScoreSequence runs ids through d from an empty cache and scores them.
func ScoreSequence(d Decoder, ids []int) (*Score, error) {
	if len(ids) < 2 {
		return nil, fmt.Errorf("scoring needs at least 2 tokens, got %d", len(ids))
	}
	if err := d.Rewind(0); err != nil {
		return nil, err
	}
	flat, err := d.Forward(ids, true)
	if err != nil {
		return nil, fmt.Errorf("scoring %d tokens: %w", len(ids), err)
	}
	v := d.VocabSize()
	s := &Score{Logits: make([][]float32, len(ids))}
	for i := range ids {
		s.Logits[i] = flat[i*v : (i+1)*v]
		if err := checkLogits(s.Logits[i], "scoring", i, i, ids[i]); err != nil {
			return nil, err
		}
	}
	for i := 0; i+1 < len(ids); i++ {
		s.NLL += sample.NLL(s.Logits[i], ids[i+1])
	}
	s.NLL /= float64(len(ids) - 1)
	s.Perplexity = math.Exp(s.NLL)
	return s, nil
}

// Fork returns a decoder over the same program with an empty cache of its
// own (Program.Fork): another sequence over the same weights.
func (d *Interpreted) Fork() *Interpreted {
	return &Interpreted{prog: d.prog.Fork(), last: d.last, all: d.all, vocab: d.vocab, context: d.context}
}
