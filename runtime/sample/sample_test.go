package sample

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

var (
	inf = float32(math.Inf(1))
	nan = float32(math.NaN())
)

// randomLogits returns n logits drawn from N(0, scale²), like a model's.
func randomLogits(n int, scale float64, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 1))
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * scale)
	}
	return l
}

func mustNew(t testing.TB, o Options) *Sampler {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidate(t *testing.T) {
	nanf := math.NaN()
	tests := []struct {
		name string
		opts Options
		want string // substring of the error; "" for valid
	}{
		{"zero", Options{}, ""},
		{"typical", Options{Temperature: 0.7, TopK: 40, TopP: 0.95, MinP: 0.05, RepetitionPenalty: 1.1, Seed: 7}, ""},
		{"bounds", Options{Temperature: 1e-6, TopP: 1, MinP: 1, RepetitionPenalty: 1e-3}, ""},
		{"negative temperature", Options{Temperature: -0.5}, "Options.Temperature = -0.5"},
		{"NaN temperature", Options{Temperature: nanf}, "Options.Temperature = NaN"},
		{"infinite temperature", Options{Temperature: math.Inf(1)}, "Options.Temperature"},
		{"negative top-k", Options{TopK: -1}, "Options.TopK = -1"},
		{"top-p above 1", Options{TopP: 1.5}, "Options.TopP = 1.5"},
		{"negative top-p", Options{TopP: -0.1}, "Options.TopP = -0.1"},
		{"NaN top-p", Options{TopP: nanf}, "Options.TopP"},
		{"min-p above 1", Options{MinP: 1.01}, "Options.MinP = 1.01"},
		{"negative min-p", Options{MinP: -1}, "Options.MinP"},
		{"negative penalty", Options{RepetitionPenalty: -1}, "Options.RepetitionPenalty = -1"},
		{"infinite penalty", Options{RepetitionPenalty: math.Inf(1)}, "Options.RepetitionPenalty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := New(tt.opts)
			if tt.want == "" {
				if err != nil || s == nil {
					t.Fatalf("New(%+v) = %v, %v; want a sampler", tt.opts, s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) error = %v; want one containing %q", tt.opts, err, tt.want)
			}
			if s != nil {
				t.Errorf("New returned a sampler with an error")
			}
		})
	}
}

func TestGreedy(t *testing.T) {
	tests := []struct {
		name    string
		logits  []float32
		history []int
		penalty float64
		want    int
	}{
		{"simple", []float32{0.1, 3, -2, 2.9}, nil, 0, 1},
		{"ties to lowest id", []float32{1, 5, 5, 5}, nil, 0, 1},
		{"negative", []float32{-3, -1, -2}, nil, 0, 1},
		{"NaN skipped", []float32{nan, 1, nan, 2, nan}, nil, 0, 3},
		{"-Inf and NaN", []float32{float32(math.Inf(-1)), nan, -1e30}, nil, 0, 2},
		{"+Inf wins", []float32{1, inf, 2}, nil, 0, 1},
		{"all NaN", []float32{nan, nan}, nil, 0, -1},
		{"all -Inf", []float32{-inf, -inf}, nil, 0, -1},
		{"empty", nil, nil, 0, -1},
		{"penalty moves argmax", []float32{2, 1.9, -1}, []int{0}, 1.5, 1},
		{"penalty on negatives", []float32{-1, -1.5}, []int{0}, 2, 1},
		{"history out of range ignored", []float32{2, 1}, []int{-1, 5}, 10, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustNew(t, Options{RepetitionPenalty: tt.penalty})
			if got := s.Sample(tt.logits, tt.history); got != tt.want {
				t.Errorf("Sample = %d, want %d", got, tt.want)
			}
			if tt.penalty == 0 {
				if got := Argmax(tt.logits); got != tt.want {
					t.Errorf("Argmax = %d, want %d", got, tt.want)
				}
			}
		})
	}
}

func TestTopK1IsGreedy(t *testing.T) {
	for _, vocab := range []int{2, 7, 1000, 32000} {
		logits := randomLogits(vocab, 3, uint64(vocab))
		logits[vocab/2] = logits[Argmax(logits)] // a tie, resolved to the lower id
		want := Argmax(logits)
		for _, temp := range []float64{1e-3, 0.5, 1, 10, 1e6} {
			s := mustNew(t, Options{Temperature: temp, TopK: 1, Seed: uint64(vocab)})
			for range 20 {
				if got := s.Sample(logits, nil); got != want {
					t.Fatalf("vocab %d temperature %g: Sample = %d, want argmax %d", vocab, temp, got, want)
				}
			}
		}
	}
}

func TestTinyTemperatureIsArgmax(t *testing.T) {
	logits := randomLogits(1000, 1, 3)
	want := Argmax(logits)
	for _, temp := range []float64{1e-30, 5e-324} { // 1/5e-324 overflows
		s := mustNew(t, Options{Temperature: temp, Seed: 3})
		for range 100 {
			if got := s.Sample(logits, nil); got != want {
				t.Fatalf("temperature %g: Sample = %d, want argmax %d", temp, got, want)
			}
		}
	}
}

func TestDeterministic(t *testing.T) {
	logits := randomLogits(32000, 2, 1)
	history := []int{5, 17, 17, 31999}
	run := func(seed uint64) []int {
		s := mustNew(t, Options{Temperature: 0.8, TopK: 100, TopP: 0.9, RepetitionPenalty: 1.2, Seed: seed})
		out := make([]int, 500)
		for i := range out {
			out[i] = s.Sample(logits, history)
		}
		return out
	}
	a, b, c := run(42), run(42), run(43)
	if !slices.Equal(a, b) {
		t.Errorf("the same seed gave different tokens")
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same 500 tokens")
	}
}

// TestDistribution samples many times and compares frequencies with the
// distribution the options should produce.
func TestDistribution(t *testing.T) {
	probs := []float64{0.1, 0.2, 0.3, 0.4}
	logits := make([]float32, len(probs))
	for i, p := range probs {
		logits[i] = float32(math.Log(p))
	}
	sqrtNorm := math.Sqrt(0.1) + math.Sqrt(0.2) + math.Sqrt(0.3) + math.Sqrt(0.4)
	tests := []struct {
		name    string
		opts    Options
		history []int
		want    []float64
	}{
		{"temperature 1", Options{Temperature: 1}, nil, probs},
		{"temperature 2", Options{Temperature: 2}, nil, []float64{
			math.Sqrt(0.1) / sqrtNorm, math.Sqrt(0.2) / sqrtNorm, math.Sqrt(0.3) / sqrtNorm, math.Sqrt(0.4) / sqrtNorm}},
		{"top-k 2", Options{Temperature: 1, TopK: 2}, nil, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"top-p 0.5", Options{Temperature: 1, TopP: 0.5}, nil, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"top-p 0.75", Options{Temperature: 1, TopP: 0.75}, nil, []float64{0, 2.0 / 9, 3.0 / 9, 4.0 / 9}},
		{"top-p 0.95", Options{Temperature: 1, TopP: 0.95}, nil, probs},
		{"top-p 0.3", Options{Temperature: 1, TopP: 0.3}, nil, []float64{0, 0, 0, 1}},
		{"min-p 0.6", Options{Temperature: 1, MinP: 0.6}, nil, []float64{0, 0, 3.0 / 7, 4.0 / 7}},
		{"top-k 3 then min-p 0.45", Options{Temperature: 1, TopK: 3, MinP: 0.45}, nil, []float64{0, 2.0 / 9, 3.0 / 9, 4.0 / 9}},
		// log(0.4) < 0 is multiplied by 2: its weight becomes 0.4² = 0.16.
		{"penalty 2", Options{Temperature: 1, RepetitionPenalty: 2}, []int{3, 3}, []float64{
			0.1 / 0.76, 0.2 / 0.76, 0.3 / 0.76, 0.16 / 0.76}},
	}
	const n = 100_000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Seed = 2024
			s := mustNew(t, tt.opts)
			counts := make([]int, len(logits))
			for range n {
				counts[s.Sample(logits, tt.history)]++
			}
			for i, p := range tt.want {
				got := float64(counts[i]) / n
				if p == 0 {
					if counts[i] != 0 {
						t.Errorf("token %d drawn %d times, want never", i, counts[i])
					}
					continue
				}
				// Five standard deviations of a binomial frequency.
				tol := 5 * math.Sqrt(p*(1-p)/n)
				if math.Abs(got-p) > tol {
					t.Errorf("token %d: frequency %.4f, want %.4f ± %.4f", i, got, p, tol)
				}
			}
		})
	}
}

func TestInvalidLogitsNeverSampled(t *testing.T) {
	logits := []float32{nan, 0, float32(math.Inf(-1)), 0.5, nan}
	s := mustNew(t, Options{Temperature: 5, Seed: 1})
	for range 10_000 {
		if got := s.Sample(logits, nil); got != 1 && got != 3 {
			t.Fatalf("Sample = %d: drew a NaN or -Inf logit", got)
		}
	}
	for _, l := range [][]float32{nil, {nan}, {nan, float32(math.Inf(-1))}} {
		for _, k := range []int{0, 1} {
			s := mustNew(t, Options{Temperature: 1, TopK: k, TopP: 0.9})
			if got := s.Sample(l, nil); got != -1 {
				t.Errorf("Sample(%v) with top-k %d = %d, want -1", l, k, got)
			}
		}
	}
	// +Inf takes all the mass, shared between the +Inf logits.
	s = mustNew(t, Options{Temperature: 1})
	seen := map[int]bool{}
	for range 1000 {
		seen[s.Sample([]float32{1, inf, 2, inf}, nil)] = true
	}
	if len(seen) != 2 || !seen[1] || !seen[3] {
		t.Errorf("with two +Inf logits drew %v, want both and only 1 and 3", seen)
	}
}

func TestRepetitionPenalty(t *testing.T) {
	logits := []float32{3, 2, -1, -2, 0}
	orig := slices.Clone(logits)
	s := mustNew(t, Options{Temperature: 1, RepetitionPenalty: 2})
	got := s.penalise(logits, []int{0, 0, 0, 2, 4, 99, -3})
	want := []float32{1.5, 2, -2, -2, 0}
	if !slices.Equal(got, want) {
		t.Errorf("penalise = %v, want %v", got, want)
	}
	if !slices.Equal(logits, orig) {
		t.Errorf("penalise modified its input: %v", logits)
	}
	// Penalising a token makes it rarer.
	count := func(history []int) int {
		s := mustNew(t, Options{Temperature: 1, RepetitionPenalty: 1.5, Seed: 3})
		n := 0
		for range 20_000 {
			if s.Sample([]float32{1, 1, 1}, history) == 0 {
				n++
			}
		}
		return n
	}
	// The weight of token 0 drops from e to e^(2/3): from 1/3 to 0.264.
	if free, penalised := count(nil), count([]int{0}); float64(penalised) > 0.85*float64(free) {
		t.Errorf("token 0 drawn %d times penalised, %d times free: want clearly fewer", penalised, free)
	}
}

// weightsOf turns probabilities into candidates with ids 0, 1, ...
func weightsOf(p ...float64) []cand {
	c := make([]cand, len(p))
	for i := range p {
		c[i] = cand{p: float32(p[i]), id: int32(i)}
	}
	return c
}

func ids(c []cand) []int {
	out := make([]int, len(c))
	for i, x := range c {
		out[i] = int(x.id)
	}
	slices.Sort(out)
	return out
}

func TestNucleus(t *testing.T) {
	tests := []struct {
		name   string
		p      []float64
		target float64
		want   []int
	}{
		{"first alone", []float64{0.1, 0.6, 0.3}, 0.5, []int{1}},
		{"exact mass kept", []float64{0.1, 0.6, 0.3}, 0.6, []int{1}},
		{"two", []float64{0.1, 0.6, 0.3}, 0.61, []int{1, 2}},
		{"all", []float64{0.1, 0.6, 0.3}, 1, []int{0, 1, 2}},
		{"short total keeps all", []float64{0.1, 0.6, 0.3}, 1.5, []int{0, 1, 2}},
		{"tiny target keeps one", []float64{0.25, 0.25, 0.25, 0.25}, 1e-9, []int{0}},
		{"ties to lower id", []float64{0.25, 0.25, 0.25, 0.25}, 0.5, []int{0, 1}},
		{"single", []float64{1}, 0.9, []int{0}},
		{"unnormalised", []float64{1, 0.5, 0.25, 0.25}, 0.85 * 2, []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, mass := nucleus(weightsOf(tt.p...), tt.target)
			if got := ids(kept); !slices.Equal(got, tt.want) {
				t.Errorf("nucleus = %v, want %v", got, tt.want)
			}
			want := 0.0
			for _, i := range tt.want {
				want += float64(float32(tt.p[i]))
			}
			if math.Abs(mass-want) > 1e-12 {
				t.Errorf("nucleus mass = %v, want %v", mass, want)
			}
		})
	}
}

// refRank sorts candidates best first, the order every filter uses.
func refRank(c []cand) []cand {
	c = slices.Clone(c)
	slices.SortFunc(c, func(a, b cand) int {
		return cmp.Or(cmp.Compare(b.p, a.p), cmp.Compare(a.id, b.id))
	})
	return c
}

func TestNucleusMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for iter := range 500 {
		n := 1 + r.IntN(3000)
		c := make([]cand, n)
		total := 0.0
		for i := range c {
			w := math.Exp(r.NormFloat64() * 3)
			if iter%5 == 0 {
				w = float64(r.IntN(4)) // many ties and zeros
			}
			c[i] = cand{p: float32(w), id: int32(i)}
			total += float64(c[i].p)
		}
		topP := r.Float64()
		sorted := refRank(c)
		want, acc := len(sorted), 0.0
		for i, x := range sorted {
			acc += float64(x.p)
			if acc >= topP*total {
				want = i + 1
				break
			}
		}
		kept, _ := nucleus(c, topP*total)
		if len(kept) != want || !slices.Equal(ids(kept), ids(sorted[:want])) {
			t.Fatalf("iteration %d (n=%d, p=%.3f): nucleus kept %d tokens, sort keeps %d", iter, n, topP, len(kept), want)
		}
	}
}

func TestMinP(t *testing.T) {
	tests := []struct {
		name string
		p    []float64
		minp float64
		want []int
	}{
		{"half", []float64{1, 0.5, 0.49, 0.9}, 0.5, []int{0, 1, 3}},
		{"one keeps ties with max", []float64{0.3, 1, 1, 0.99}, 1, []int{1, 2}},
		{"unnormalised", []float64{0.2, 0.1, 0.05}, 0.5, []int{0, 1}},
		{"tiny keeps all", []float64{1, 1e-9, 0.5}, 1e-10, []int{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, mass := minP(weightsOf(tt.p...), tt.minp)
			if got := ids(kept); !slices.Equal(got, tt.want) {
				t.Errorf("minP = %v, want %v", got, tt.want)
			}
			want := 0.0
			for _, i := range tt.want {
				want += float64(float32(tt.p[i]))
			}
			if math.Abs(mass-want) > 1e-12 {
				t.Errorf("minP mass = %v, want %v", mass, want)
			}
		})
	}
}

func TestTopKMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	s := mustNew(t, Options{Temperature: 1})
	for iter := range 300 {
		n := 2 + r.IntN(5000)
		l := make([]float32, n)
		for i := range l {
			switch x := r.IntN(20); {
			case x == 0:
				l[i] = nan
			case x == 1:
				l[i] = float32(math.Inf(-1))
			case iter%3 == 0:
				l[i] = float32(r.IntN(8)) // ties
			default:
				l[i] = float32(r.NormFloat64())
			}
		}
		var all []cand
		for i, x := range l {
			if usable(x) {
				all = append(all, cand{p: x, id: int32(i)})
			}
		}
		all = refRank(all)
		k := 1 + r.IntN(n-1) // exercises both the heap and quickselect
		want := ids(all[:min(k, len(all))])
		got, _ := s.topK(l, k)
		if got := ids(got); !slices.Equal(got, want) {
			t.Fatalf("iteration %d (n=%d, k=%d): topK = %v, want %v", iter, n, k, got, want)
		}
	}
}

func TestNLL(t *testing.T) {
	logits := []float32{1, 2, 3, -1}
	sum := 0.0
	for _, x := range logits {
		sum += math.Exp(float64(x))
	}
	for target, x := range logits {
		want := -math.Log(math.Exp(float64(x)) / sum)
		if got := NLL(logits, target); math.Abs(got-want) > 1e-12 {
			t.Errorf("NLL(target %d) = %v, want %v", target, got, want)
		}
	}
	// Large logits do not overflow.
	if got, want := NLL([]float32{1000, 1000}, 0), math.Ln2; math.Abs(got-want) > 1e-12 {
		t.Errorf("NLL of two equal large logits = %v, want ln 2", got)
	}
	edge := []struct {
		name   string
		logits []float32
		target int
		want   float64
	}{
		{"-Inf target", []float32{0, float32(math.Inf(-1))}, 1, math.Inf(1)},
		{"other +Inf", []float32{0, inf}, 0, math.Inf(1)},
		{"two +Inf", []float32{inf, 0, inf}, 2, math.Ln2},
		{"NaN anywhere", []float32{0, nan}, 0, math.NaN()},
		{"all -Inf", []float32{float32(math.Inf(-1))}, 0, math.NaN()},
	}
	for _, tt := range edge {
		got := NLL(tt.logits, tt.target)
		if !(got == tt.want || math.IsNaN(got) && math.IsNaN(tt.want)) {
			t.Errorf("%s: NLL = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSampleDoesNotAllocate(t *testing.T) {
	logits := randomLogits(32000, 3, 5)
	history := []int{1, 2, 3}
	for _, o := range []Options{
		{},
		{Temperature: 1},
		{Temperature: 0.7, TopK: 40, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1},
		{Temperature: 0.7, TopK: 20000, TopP: 0.9},
	} {
		s := mustNew(t, o)
		if n := testing.AllocsPerRun(20, func() { s.Sample(logits, history) }); n != 0 {
			t.Errorf("%+v: %v allocations per Sample, want 0", o, n)
		}
	}
}

func BenchmarkSample(b *testing.B) {
	history := make([]int, 64)
	for i := range history {
		history[i] = i * 97
	}
	benchmarks := []struct {
		name string
		opts Options
	}{
		{"greedy", Options{}},
		{"temperature", Options{Temperature: 0.8}},
		{"top-k=40", Options{Temperature: 0.8, TopK: 40}},
		{"top-p=0.9", Options{Temperature: 0.8, TopP: 0.9}},
		{"min-p=0.05", Options{Temperature: 0.8, MinP: 0.05}},
		{"k=40,p=0.95,penalty=1.1", Options{Temperature: 0.8, TopK: 40, TopP: 0.95, RepetitionPenalty: 1.1}},
	}
	for _, vocab := range []int{32000, 151936} {
		logits := randomLogits(vocab, 3, 1)
		for _, bm := range benchmarks {
			b.Run(bm.name+"/vocab="+itoa(vocab), func(b *testing.B) {
				s := mustNew(b, bm.opts)
				b.ReportAllocs()
				for b.Loop() {
					s.Sample(logits, history)
				}
			})
		}
	}
}

func BenchmarkNLL(b *testing.B) {
	logits := randomLogits(32000, 3, 1)
	for b.Loop() {
		NLL(logits, 123)
	}
}

func itoa(n int) string {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(buf[i:])
		}
	}
}

// refFilter is a plain reference for Sampler.filter: sort everything, then
// apply top-k, top-p and min-p as transformers describes them. Weights are
// rounded to float32 as the sampler stores them.
func refFilter(l []float32, o Options) []int {
	var c []cand
	for i, x := range l {
		if usable(x) {
			c = append(c, cand{p: x, id: int32(i)})
		}
	}
	c = refRank(c)
	if o.TopK > 0 && o.TopK < len(c) {
		c = c[:o.TopK]
	}
	if len(c) == 0 {
		return []int{}
	}
	m := float64(c[0].p)
	total := 0.0
	for i := range c {
		c[i].p = float32(math.Exp((float64(c[i].p) - m) / o.Temperature))
		total += float64(c[i].p)
	}
	c = refRank(c) // weight ties after rounding
	if o.TopP > 0 && o.TopP < 1 {
		acc := 0.0
		for i, x := range c {
			acc += float64(x.p)
			if acc >= o.TopP*total {
				c = c[:i+1]
				break
			}
		}
	}
	if o.MinP > 0 {
		var kept []cand
		for _, x := range c {
			if float64(x.p) >= o.MinP*float64(c[0].p) {
				kept = append(kept, x)
			}
		}
		c = kept
	}
	return ids(c)
}

func TestFilterMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	shapes := []struct {
		name   string
		logits func(n int) []float32
	}{
		{"normal", func(n int) []float32 { return randomLogits(n, 2, r.Uint64()) }},
		{"peaked", func(n int) []float32 {
			l := randomLogits(n, 1, r.Uint64())
			for range 5 {
				l[r.IntN(n)] += 12
			}
			return l
		}},
		// Most of the mass in many light tokens: the nucleus is not
		// among the heavy ones.
		{"long tail", func(n int) []float32 {
			l := make([]float32, n)
			for i := range l {
				l[i] = -10 + float32(r.Float64())
			}
			l[r.IntN(n)] = 0
			return l
		}},
		{"with NaN and -Inf", func(n int) []float32 {
			l := randomLogits(n, 3, r.Uint64())
			for range n / 10 {
				l[r.IntN(n)] = nan
				l[r.IntN(n)] = float32(math.Inf(-1))
			}
			return l
		}},
	}
	options := []Options{
		{Temperature: 1},
		{Temperature: 0.7, TopK: 40},
		{Temperature: 0.7, TopP: 0.9},
		{Temperature: 1.3, TopP: 0.5},
		{Temperature: 1, MinP: 0.05},
		{Temperature: 0.8, TopK: 50, TopP: 0.95, MinP: 0.02},
		{Temperature: 0.8, TopK: 3000, TopP: 0.8},
		{Temperature: 2, TopP: 0.99, MinP: 0.5},
	}
	for _, shape := range shapes {
		for _, o := range options {
			for _, n := range []int{1, 10, 5000, 32000} {
				l := shape.logits(n)
				s := mustNew(t, o)
				got, _ := s.filter(l)
				if want := refFilter(l, o); !slices.Equal(ids(got), want) {
					t.Errorf("%s n=%d %+v: kept %d tokens, reference keeps %d", shape.name, n, o, len(got), len(want))
				}
			}
		}
	}
}
