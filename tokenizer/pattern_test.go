package tokenizer

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pieces returns the matched substrings.
func matchedText(s string, m []span) []string {
	out := []string{}
	for _, x := range m {
		out = append(out, s[x.start:x.end])
	}
	return out
}

// patternAlphabet mixes characters of every class the split patterns look
// at, including the corner cases: apostrophes and contraction letters,
// long s (ſ, case-folds to s), numbers of all kinds, Unicode spaces and line
// breaks, combining marks, format characters and controls.
var patternAlphabet = []string{
	"a", "b", "Z", "s", "t", "S", "T", "r", "e", "v", "l", "L", "d", "m", "ſ", "'", "'",
	"0", "7", "²", "Ⅻ", "٣", " ", " ", " ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2028",
	"\u0085", "\v", ".", ",", "!", "-", "\u0301", "😀", "中", "é", "\u200b", "_", "$", "\x00",
}

func randomPatternText(r *rand.Rand, n int) string {
	var b strings.Builder
	for k := 0; k < n; k++ {
		b.WriteString(patternAlphabet[r.IntN(len(patternAlphabet))])
	}
	return b.String()
}

func TestKnownPatternsUseScanners(t *testing.T) {
	tests := []struct {
		pattern string
		want    matcher
	}{
		{patternGPT2, gpt2Matcher{}},
		{patternLlama3, llama3Matcher{maxDigits: 3}},
		{patternQwen2, llama3Matcher{maxDigits: 1}},
	}
	for _, tt := range tests {
		m, err := compileRegex(tt.pattern)
		require.NoError(t, err)
		assert.Equal(t, tt.want, m)
	}
}

// TestScannersMatchAlternation checks each hand-written scanner against
// the alternative-by-alternative evaluation of its pattern with Go's
// regexp, an independent implementation of the same semantics.
func TestScannersMatchAlternation(t *testing.T) {
	fixed := []string{
		"", "Hello world", "I'm sure you don't know what they've done, but we'll see.",
		"I'M SURE YOU DON'T; it's he'S she'd y'all 'ſ", "   three leading   ", "a  b\n\n c\r\n\r\nd \n e",
		"12345678901234567890 and ²³ Ⅻ ٣٤٥", "x\u00a0y\u3000z \u2028 w", "tab\tsep\t\tend\t",
		"...hello!!! ?? (a)[b]", "e\u0301\u0301 Z͑̅a̶l̷g̸o̵", "😀👍 🇹🇷 x", "'", "''s", "'s's", " '", "\n",
	}
	r := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 3000; i++ {
		fixed = append(fixed, randomPatternText(r, r.IntN(16)))
	}
	for _, tt := range []struct {
		pattern string
		scanner matcher
	}{
		{patternGPT2, gpt2Matcher{}},
		{patternLlama3, llama3Matcher{maxDigits: 3}},
		{patternQwen2, llama3Matcher{maxDigits: 1}},
	} {
		ref, err := compileAlternation(tt.pattern)
		require.NoError(t, err)
		for _, s := range fixed {
			want := matchedText(s, ref.find(s, nil))
			got := matchedText(s, tt.scanner.find(s, nil))
			if !assert.Equal(t, want, got, "%T on %q", tt.scanner, s) {
				return
			}
		}
	}
}

func TestScannerExamples(t *testing.T) {
	tests := []struct {
		m    matcher
		in   string
		want []string
	}{
		{gpt2Matcher{}, "Hello my friend, how is your day going?",
			[]string{"Hello", " my", " friend", ",", " how", " is", " your", " day", " going", "?"}},
		{gpt2Matcher{}, "Hello there       dear", []string{"Hello", " there", "      ", " dear"}},
		{gpt2Matcher{}, "they've 42 times\n\n", []string{"they", "'ve", " 42", " times", "\n\n"}},
		{llama3Matcher{3}, "I'VE got 12345 apples.\n\nOK", []string{"I", "'VE", " got", " ", "123", "45", " apples", ".\n\n", "OK"}},
		{llama3Matcher{1}, "x 123", []string{"x", " ", "1", "2", "3"}},
		{llama3Matcher{3}, "a \n\n b", []string{"a", " \n\n", " b"}},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, matchedText(tt.in, tt.m.find(tt.in, nil)), "%T %q", tt.m, tt.in)
	}
}

// TestAlternationMatchesRegexp checks the alternation engine against Go's
// regexp on patterns without look-around, including empty matches.
func TestAlternationMatchesRegexp(t *testing.T) {
	patterns := []string{`a|b+`, `x*`, `\s|\d+|[^\s\d]+`, `ab|a|`, `(?i:k)|\w+`, `\s*[\r\n]+|\s+`}
	r := rand.New(rand.NewPCG(2, 2))
	texts := []string{"", "aab bxb", "xx yx", "abab a", "K k kelvin\n\n  \r\n", "١٢ 34 ab_c"}
	for i := 0; i < 500; i++ {
		texts = append(texts, randomPatternText(r, r.IntN(10)))
	}
	for _, p := range patterns {
		whole, err := compileRegex(p)
		require.NoError(t, err)
		require.IsType(t, regexpMatcher{}, whole)
		alt, err := compileAlternation(p)
		require.NoError(t, err)
		for _, s := range texts {
			assert.Equal(t, whole.find(s, nil), alt.find(s, nil), "pattern %q on %q", p, s)
		}
	}
}

func TestCompileRegex(t *testing.T) {
	// Oniguruma's \s, \d and \w are Unicode-aware.
	m, err := compileRegex(`\s+`)
	require.NoError(t, err)
	assert.Equal(t, []string{"\u3000 \u00a0"}, matchedText("a\u3000 \u00a0b", m.find("a\u3000 \u00a0b", nil)))
	m, err = compileRegex(`[\s\d]+`)
	require.NoError(t, err)
	assert.Equal(t, []string{" ٣ "}, matchedText("x ٣ y", m.find("x ٣ y", nil)))
	m, err = compileRegex(`\w+`)
	require.NoError(t, err)
	assert.Equal(t, []string{"añb_ç", "中文"}, matchedText("añb_ç, 中文", m.find("añb_ç, 中文", nil)))

	// A pattern with \s+(?!\S) as a top-level alternative runs through the
	// alternation engine.
	m, err = compileRegex(`\p{L}+|\s+(?!\S)|\s+`)
	require.NoError(t, err)
	require.IsType(t, altMatcher{}, m)
	assert.Equal(t, []string{"a", "  ", " ", "b"}, matchedText("a   b", m.find("a   b", nil)))

	for _, bad := range []string{`a(?=b)`, `(?<!x)y`, `\p{L}+|x(?!\S)`, `(?>a)`, `[a`, `[\S]`} {
		_, err := compileRegex(bad)
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), strconv.Quote(bad), "the error names the pattern")
	}
}

func TestSplitBehaviors(t *testing.T) {
	// The examples of the reference's SplitDelimiterBehavior documentation.
	const text = "the-final--countdown"
	tests := []struct {
		behavior splitBehavior
		invert   bool
		want     []string
	}{
		{splitRemoved, false, []string{"the", "final", "countdown"}},
		{splitIsolated, false, []string{"the", "-", "final", "-", "-", "countdown"}},
		{splitMergedWithPrevious, false, []string{"the-", "final-", "-", "countdown"}},
		{splitMergedWithNext, false, []string{"the", "-final", "-", "-countdown"}},
		{splitContiguous, false, []string{"the", "-", "final", "--", "countdown"}},
		{splitRemoved, true, []string{"-", "-", "-"}},
		{splitMergedWithNext, true, []string{"the-", "final-", "-", "countdown"}},
	}
	for _, tt := range tests {
		st := &encodeState{}
		p := piece{text: text, id: -1, first: true}
		got := splitPre{m: literalMatcher{"-"}, behavior: tt.behavior, invert: tt.invert}.preTokenize(st, p, nil)
		var texts []string
		for k, q := range got {
			texts = append(texts, q.text)
			assert.Equal(t, k == 0 && strings.HasPrefix(text, q.text), q.first, "first flag of %q", q.text)
		}
		assert.Equal(t, tt.want, texts, "behavior %d invert %v", tt.behavior, tt.invert)
	}
	_, err := parseBehavior("Sideways")
	assert.Error(t, err)
}

func TestRuneMatcherAndLiteral(t *testing.T) {
	assert.Equal(t, []span{{0, 0}, {1, 1}, {3, 3}}, literalMatcher{""}.find("aé", nil))
	assert.Equal(t, []span{{1, 3}, {5, 7}}, literalMatcher{"ab"}.find("xabxxaba", nil)[:2])
	assert.Equal(t, []string{"1", "٣"}, matchedText("a1b٣", runeMatcher{isNumeric}.find("a1b٣", nil)))
}

// FuzzSplitPatterns checks the scanners against the alternation engine on
// arbitrary text.
func FuzzSplitPatterns(f *testing.F) {
	f.Add("Hello world, it's 2024!\n\n  ok")
	f.Add("I'LL 'ſ x\u00a0\u3000\r\n\t 123456 ²")
	gpt2Ref, _ := compileAlternation(patternGPT2)
	l3Ref, _ := compileAlternation(patternLlama3)
	q2Ref, _ := compileAlternation(patternQwen2)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // pieces are always valid UTF-8
		}
		for _, c := range []struct{ scanner, ref matcher }{
			{gpt2Matcher{}, gpt2Ref}, {llama3Matcher{3}, l3Ref}, {llama3Matcher{1}, q2Ref},
		} {
			want, got := c.ref.find(s, nil), c.scanner.find(s, nil)
			if !assert.Equal(t, want, got, "%T on %q", c.scanner, s) {
				return
			}
		}
	})
}
