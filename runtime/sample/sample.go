// Package sample picks the next token from a vector of logits, the way
// Hugging Face transformers' generate does with do_sample.
//
// A [Sampler] applies, in this order:
//
//  1. repetition penalty over the ids seen so far (positive logits are
//     divided by the penalty, negative ones multiplied);
//  2. temperature (a temperature of 0 selects greedy decoding: the argmax of
//     the penalised logits, and the remaining steps are skipped);
//  3. top-k: keep the k largest logits;
//  4. top-p (nucleus): keep the smallest set of most probable tokens whose
//     probability mass is at least p;
//  5. min-p: keep the tokens whose probability is at least min_p times the
//     largest probability;
//
// and then draws a token from the renormalised distribution with a PCG
// generator seeded from [Options.Seed], so a given seed and input always give
// the same tokens.
//
// # Invalid logits
//
// A NaN logit is treated as -Inf: its token is never chosen. A -Inf logit
// has zero probability. When no logit is usable (the vector is empty or every
// entry is NaN or -Inf) there is no distribution to sample from, and
// [Sampler.Sample] and [Argmax] return -1, the way strings.Index reports "not
// found"; callers should treat that as a model failure. [NLL], which measures
// a model, propagates NaN instead of hiding it.
//
// # Differences from transformers
//
// Ties are broken towards the lower token id everywhere: greedy decoding
// returns the lowest id among equal maxima, and top-k keeps exactly k tokens
// (transformers keeps every token tied with the k-th). Top-k with k = 1 is
// therefore greedy decoding at any temperature. A zero option turns its step
// off, whereas transformers' GenerationConfig defaults to top_k=50: set
// TopK to 50 to match it. Probabilities are computed in float64 and stored
// as float32.
package sample

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Options configures a [Sampler]. The zero value is greedy decoding with no
// repetition penalty. A zero TopK, TopP, MinP or RepetitionPenalty turns that
// step off, so only the options a caller sets take effect.
type Options struct {
	// Temperature divides the logits before softmax. 0 selects greedy
	// decoding (argmax, ties to the lowest id). It must be finite and >= 0.
	Temperature float64

	// TopK keeps the TopK most likely tokens; 0 keeps all. It must be >= 0.
	TopK int

	// TopP keeps the smallest set of most likely tokens whose probability
	// mass is at least TopP (always at least one token). It must be in
	// (0, 1]; 1, or 0 meaning unset, turns the step off.
	TopP float64

	// MinP keeps the tokens whose probability is at least MinP times the
	// probability of the most likely token. It must be in [0, 1]; 0 turns
	// the step off.
	MinP float64

	// RepetitionPenalty penalises every token id in the history passed to
	// Sample: a positive logit is divided by it and a negative one
	// multiplied by it, so values above 1 discourage repetition. It must be
	// finite and > 0; 1, or 0 meaning unset, turns the step off.
	RepetitionPenalty float64

	// Seed seeds the random generator. Every seed, 0 included, is an
	// ordinary deterministic seed.
	Seed uint64
}

// Validate reports the first option that is out of range.
func (o Options) Validate() error {
	switch {
	case !(o.Temperature >= 0) || math.IsInf(o.Temperature, 1):
		return optionError("Temperature", o.Temperature, "must be finite and >= 0 (0 is greedy)")
	case o.TopK < 0:
		return optionError("TopK", o.TopK, "must be >= 0 (0 keeps all tokens)")
	case !(o.TopP >= 0 && o.TopP <= 1):
		return optionError("TopP", o.TopP, "must be in (0, 1] (0 means unset)")
	case !(o.MinP >= 0 && o.MinP <= 1):
		return optionError("MinP", o.MinP, "must be in [0, 1]")
	case !(o.RepetitionPenalty >= 0) || math.IsInf(o.RepetitionPenalty, 1):
		return optionError("RepetitionPenalty", o.RepetitionPenalty, "must be finite and > 0 (0 means unset)")
	}
	return nil
}

// OptionError is the error of an option out of range. Callers that know
// where the value came from (a flag, a config file) can say so with Name,
// Value and Why.
type OptionError struct {
	Name  string // the Options field: "Temperature", "TopK", ...
	Value any
	Why   string // what the value must be: "must be finite and >= 0 (0 is greedy)"
}

func (e *OptionError) Error() string {
	return fmt.Sprintf("sample: Options.%s = %v: %s", e.Name, e.Value, e.Why)
}

func optionError(name string, v any, why string) error {
	return &OptionError{Name: name, Value: v, Why: why}
}

// A Sampler draws tokens from logits. It owns scratch buffers that are reused
// from call to call, so after the first call for a given vocabulary size
// Sample does not allocate. A Sampler is not safe for concurrent use: give
// each decoding stream its own.
type Sampler struct {
	opts    Options
	penalty float32 // 1 when off
	topP    float64 // 1 when off
	rng     *rand.Rand

	pen  []float32 // logits after the repetition penalty
	cand []cand    // candidate tokens
}

// cand is a candidate token: its weight (its logit, before softmax) and id.
type cand struct {
	p  float32
	id int32
}

// pcgStream is the PCG stream selector; Options.Seed is the state seed.
const pcgStream = 0x6c6c6d632d73616d // "llmc-sam"

// New returns a Sampler for opts, or an error naming the first invalid option.
func New(opts Options) (*Sampler, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	s := &Sampler{
		opts:    opts,
		penalty: float32(opts.RepetitionPenalty),
		topP:    opts.TopP,
		rng:     rand.New(rand.NewPCG(opts.Seed, pcgStream)),
	}
	if s.penalty == 0 {
		s.penalty = 1
	}
	if s.topP == 0 {
		s.topP = 1
	}
	return s, nil
}

// Sample returns the next token id for logits, one entry per vocabulary
// token. history holds the token ids the repetition penalty applies to (in
// transformers, the prompt and the tokens generated so far); ids outside
// [0, len(logits)) and repeated ids are ignored. Sample does not modify
// logits or history. It returns -1 when no logit is usable (see the package
// documentation).
func (s *Sampler) Sample(logits []float32, history []int) int {
	l := s.penalise(logits, history)
	if s.opts.Temperature == 0 {
		return Argmax(l)
	}

	c, total := s.filter(l)
	if len(c) == 0 {
		return -1
	}
	return s.draw(c, total)
}

// filter returns the candidates that survive top-k, top-p and min-p, with
// their weights after temperature, and the sum of those weights.
func (s *Sampler) filter(l []float32) ([]cand, float64) {
	var c []cand
	var m float32
	if k := s.opts.TopK; k > 0 && k < len(l) {
		c, m = s.topK(l, k)
	} else {
		c, m = s.usable(l)
	}
	if len(c) == 0 {
		return c, 0
	}
	total, heavy := softmax(c, m, s.opts.Temperature)
	if s.topP < 1 {
		target := s.topP * total
		if heavy >= target {
			// The nucleus lies within the heavy tokens, usually a
			// small share of the vocabulary: select among them only.
			c = keepHeavy(c)
		}
		c, total = nucleus(c, target)
	}
	if s.opts.MinP > 0 {
		c, total = minP(c, s.opts.MinP)
	}
	return c, total
}

// penalise returns logits with the repetition penalty applied, copying them
// into scratch when the penalty changes anything.
func (s *Sampler) penalise(logits []float32, history []int) []float32 {
	if s.penalty == 1 || len(history) == 0 {
		return logits
	}
	s.pen = append(s.pen[:0], logits...)
	for _, id := range history {
		if uint(id) >= uint(len(logits)) {
			continue
		}
		// Read the original so repeated ids are penalised once.
		if x := logits[id]; x < 0 {
			s.pen[id] = x * s.penalty
		} else {
			s.pen[id] = x / s.penalty
		}
	}
	return s.pen
}

// usable returns every token whose logit is neither NaN nor -Inf, and
// the largest logit.
func (s *Sampler) usable(l []float32) ([]cand, float32) {
	c := s.scratch(len(l))[:len(l)]
	m := float32(math.Inf(-1))
	n := 0
	for i, x := range l {
		// Write every token and advance past the usable ones: no branch
		// to mispredict on the write.
		c[n] = cand{p: x, id: int32(i)}
		if usable(x) {
			n++
		}
		if x > m {
			m = x
		}
	}
	return c[:n], m
}

// topK returns the k best usable tokens of l, 0 < k < len(l), in no
// particular order, and the largest logit.
func (s *Sampler) topK(l []float32, k int) ([]cand, float32) {
	var c []cand
	if k <= len(l)/8 {
		c = topKHeap(l, k, s.scratch(k))
	} else {
		c, _ = s.usable(l)
		if k < len(c) {
			selectTop(c, k)
			c = c[:k]
		}
	}
	m := float32(math.Inf(-1))
	for _, x := range c {
		m = max(m, x.p)
	}
	return c, m
}

// usable reports whether x can carry probability: it is neither NaN nor -Inf.
func usable(x float32) bool { return x >= -math.MaxFloat32 }

func (s *Sampler) scratch(n int) []cand {
	if cap(s.cand) < n {
		s.cand = make([]cand, 0, n)
	}
	return s.cand[:0]
}

// draw picks a candidate with probability proportional to its weight;
// total is the sum of the weights.
func (s *Sampler) draw(c []cand, total float64) int {
	u := s.rng.Float64() * total
	acc := 0.0
	last := 0
	for i, x := range c {
		acc += float64(x.p)
		if u < acc {
			return int(x.id)
		}
		if x.p > 0 {
			last = i
		}
	}
	// Rounding left u at or past the final sum: take the last candidate
	// that has any weight.
	return int(c[last].id)
}

// softmax replaces the logits in c by exp((logit-m)/temperature), where m
// is their maximum, so the most likely token has weight exactly 1, and
// returns the sum of the weights and the sum of the weights of at least
// heavyWeight. The arithmetic is float64; the weights are stored as
// float32, which is ample for sampling. A +Inf logit takes all the mass,
// shared with any other +Inf logits.
func softmax(c []cand, m float32, temperature float64) (total, heavy float64) {
	if math.IsInf(float64(m), 1) {
		for i := range c {
			if math.IsInf(float64(c[i].p), 1) {
				c[i].p = 1
				total++
			} else {
				c[i].p = 0
			}
		}
		return total, total
	}
	// A subnormal temperature would make inv infinite and 0·inv NaN.
	inv := min(1/temperature, math.MaxFloat64)
	m64 := float64(m)
	for i := range c {
		w := float32(expNeg((float64(c[i].p) - m64) * inv))
		c[i].p = w
		total += float64(w)
		if w >= heavyWeight {
			heavy += float64(w)
		}
	}
	return total, heavy
}
