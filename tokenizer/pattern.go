package tokenizer

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// span is the byte range [start, end) of a string.
type span struct{ start, end int }

// matcher finds the non-overlapping matches of a split or replace pattern,
// left to right, the way the reference's Oniguruma regexes iterate. Empty
// matches are allowed; an empty match right after a previous match is not
// reported.
type matcher interface {
	find(s string, dst []span) []span
}

// The split patterns of the GPT-2, Llama 3 and Qwen2 families. They need the
// look-ahead (?!\S), which Go's regexp (RE2) lacks, so they are implemented
// by hand-written scanners, recognised by their exact text.
const (
	patternGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patternQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// compileRegex returns a matcher for an Oniguruma pattern from tokenizer.json.
//
// The well-known split patterns get their scanners. Any other pattern is
// translated to RE2 syntax (Oniguruma's Unicode \s, \d, \w become explicit
// classes). A pattern with look-around is accepted only when every
// look-around is a whole top-level alternative \s+(?!\S); then the
// alternatives are tried in order at each position, each as its own RE2
// regexp. Anything else is an error naming the pattern.
func compileRegex(pattern string) (matcher, error) {
	switch pattern {
	case patternGPT2:
		return gpt2Matcher{}, nil
	case patternLlama3:
		return llama3Matcher{maxDigits: 3}, nil
	case patternQwen2:
		return llama3Matcher{maxDigits: 1}, nil
	}
	re, err := translateRegex(pattern)
	if err == nil {
		c, cerr := regexp.Compile(re)
		if cerr != nil {
			return nil, fmt.Errorf("regex %q: %w", pattern, cerr)
		}
		return regexpMatcher{c}, nil
	}
	if !errors.Is(err, errLookaround) {
		return nil, fmt.Errorf("regex %q: %w", pattern, err)
	}
	m, aerr := compileAlternation(pattern)
	if aerr != nil {
		return nil, fmt.Errorf("regex %q: %w", pattern, aerr)
	}
	return m, nil
}

var errLookaround = errors.New("look-around assertions are not supported by Go's regexp")

// Oniguruma's Unicode classes spelled for RE2, whose \s, \d, \w are ASCII.
const (
	onigSpace = `\t-\r\x{85}\p{Z}`
	onigWord  = `\p{L}\p{M}\p{Nd}\p{Pc}`
)

// translateRegex rewrites an Oniguruma (Ruby syntax) pattern for RE2. It
// reports errLookaround for look-ahead or look-behind, and an error for
// atomic groups and for negated classes (\S, \W) inside brackets.
func translateRegex(p string) (string, error) {
	var b strings.Builder
	b.WriteString("(?m)") // In Ruby syntax ^ and $ always match at line breaks.
	inClass := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\' && i+1 < len(p):
			i++
			e := p[i]
			switch e {
			case 's':
				if inClass > 0 {
					b.WriteString(onigSpace)
				} else {
					b.WriteString("[" + onigSpace + "]")
				}
			case 'S':
				if inClass > 0 {
					return "", errors.New(`\S inside a character class is not supported`)
				}
				b.WriteString("[^" + onigSpace + "]")
			case 'd':
				b.WriteString(`\p{Nd}`)
			case 'D':
				b.WriteString(`\P{Nd}`)
			case 'w':
				if inClass > 0 {
					b.WriteString(onigWord)
				} else {
					b.WriteString("[" + onigWord + "]")
				}
			case 'W':
				if inClass > 0 {
					return "", errors.New(`\W inside a character class is not supported`)
				}
				b.WriteString("[^" + onigWord + "]")
			case 'h':
				if inClass > 0 {
					b.WriteString("0-9a-fA-F")
				} else {
					b.WriteString("[0-9a-fA-F]")
				}
			case 'u':
				if i+4 < len(p) && isHex(p[i+1:i+5]) {
					b.WriteString(`\x{` + p[i+1:i+5] + `}`)
					i += 4
				} else {
					b.WriteString(`\u`)
				}
			case 'p', 'P':
				if strings.HasPrefix(p[i+1:], "{^") { // Oniguruma's negation \p{^L}
					if e == 'p' {
						b.WriteString(`\P{`)
					} else {
						b.WriteString(`\p{`)
					}
					i += 2
				} else {
					b.WriteByte('\\')
					b.WriteByte(e)
				}
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		case c == '[':
			if inClass > 0 && strings.HasPrefix(p[i:], "[:") {
				end := strings.Index(p[i:], ":]")
				if end > 0 {
					b.WriteString(p[i : i+end+2])
					i += end + 1
					continue
				}
			}
			inClass++
			b.WriteByte(c)
			// A ']' right after '[' or '[^' is a literal.
			if strings.HasPrefix(p[i+1:], "^]") {
				b.WriteString(`^\]`)
				i += 2
			} else if strings.HasPrefix(p[i+1:], "]") {
				b.WriteString(`\]`)
				i++
			}
		case c == ']' && inClass > 0:
			inClass--
			b.WriteByte(c)
		case c == '(' && inClass == 0 && strings.HasPrefix(p[i:], "(?"):
			rest := p[i+2:]
			switch {
			case strings.HasPrefix(rest, "="), strings.HasPrefix(rest, "!"),
				strings.HasPrefix(rest, "<="), strings.HasPrefix(rest, "<!"):
				return "", errLookaround
			case strings.HasPrefix(rest, ">"):
				return "", errors.New("atomic groups (?>...) are not supported")
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// regexpMatcher is a pattern without look-around, run by Go's regexp. Its
// iteration (no empty match right after a match) is the same as the
// reference's.
type regexpMatcher struct{ re *regexp.Regexp }

func (m regexpMatcher) find(s string, dst []span) []span {
	for _, loc := range m.re.FindAllStringIndex(s, -1) {
		dst = append(dst, span{loc[0], loc[1]})
	}
	return dst
}

// literalMatcher matches a plain string (a pattern given as {"String": ...}).
type literalMatcher struct{ lit string }

func (m literalMatcher) find(s string, dst []span) []span {
	if m.lit == "" { // An empty regex matches at every character boundary.
		for i := range s {
			dst = append(dst, span{i, i})
		}
		return append(dst, span{len(s), len(s)})
	}
	for i := 0; ; {
		j := strings.Index(s[i:], m.lit)
		if j < 0 {
			return dst
		}
		dst = append(dst, span{i + j, i + j + len(m.lit)})
		i += j + len(m.lit)
	}
}

// runeMatcher matches every single character for which f is true, one match
// per character (the reference's Fn(char) -> bool patterns).
type runeMatcher struct{ f func(rune) bool }

func (m runeMatcher) find(s string, dst []span) []span {
	for i, r := range s {
		if m.f(r) {
			dst = append(dst, span{i, i + utf8.RuneLen(r)})
		}
	}
	return dst
}

// compileAlternation builds an altMatcher from a pattern whose only
// look-arounds are top-level alternatives \s+(?!\S).
func compileAlternation(pattern string) (matcher, error) {
	var m altMatcher
	for _, alt := range splitAlternatives(pattern) {
		if alt == `\s+(?!\S)` {
			m.alts = append(m.alts, alternative{spaceLookahead: true})
			continue
		}
		re, err := translateRegex(alt)
		if err != nil {
			if errors.Is(err, errLookaround) {
				return nil, fmt.Errorf("%w (only a whole alternative \\s+(?!\\S) is)", err)
			}
			return nil, err
		}
		c, err := regexp.Compile(`^(?:` + re + `)`)
		if err != nil {
			return nil, err
		}
		m.alts = append(m.alts, alternative{re: c})
	}
	return m, nil
}

// splitAlternatives splits a pattern at its top-level '|'.
func splitAlternatives(p string) []string {
	var alts []string
	depth, inClass, start := 0, 0, 0
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '[':
			inClass++
		case ']':
			if inClass > 0 {
				inClass--
			}
		case '(':
			if inClass == 0 {
				depth++
			}
		case ')':
			if inClass == 0 {
				depth--
			}
		case '|':
			if depth == 0 && inClass == 0 {
				alts = append(alts, p[start:i])
				start = i + 1
			}
		}
	}
	return append(alts, p[start:])
}

// altMatcher runs a top-level alternation the way a backtracking engine
// does: at each position the alternatives are tried in order and the first
// that matches wins.
type altMatcher struct{ alts []alternative }

type alternative struct {
	re             *regexp.Regexp // anchored with ^
	spaceLookahead bool           // \s+(?!\S)
}

func (m altMatcher) find(s string, dst []span) []span {
	lastEnd := -1
	for i := 0; i <= len(s); {
		end := -1
		for _, a := range m.alts {
			if a.spaceLookahead {
				if e, ok := spaceNotFollowed(s, i); ok {
					end = e
					break
				}
				continue
			}
			if loc := a.re.FindStringIndex(s[i:]); loc != nil {
				end = i + loc[1]
				break
			}
		}
		switch {
		case end > i:
			dst = append(dst, span{i, end})
			lastEnd = end
			i = end
			continue
		case end == i && i != lastEnd:
			dst = append(dst, span{i, i})
			lastEnd = i
		}
		if i == len(s) {
			break
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	return dst
}

// spaceNotFollowed matches \s+(?!\S) at i: a run of whitespace, less its
// last character when a non-space follows. It fails for a single whitespace
// character followed by a non-space.
func spaceNotFollowed(s string, i int) (int, bool) {
	k, last := i, -1
	for k < len(s) {
		r, n := decodeAt(s, k)
		if classOf(r) != classSpace {
			break
		}
		last = k
		k += n
	}
	switch {
	case last < 0:
		return 0, false
	case k == len(s):
		return k, true
	case last > i:
		return last, true
	}
	return 0, false
}

func decodeAt(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

// runEnd returns the end of the run of characters of class c from i.
func runEnd(s string, i int, c charClass) int {
	for i < len(s) {
		r, n := decodeAt(s, i)
		if classOf(r) != c {
			break
		}
		i += n
	}
	return i
}

// contraction reports the length of the English contraction suffix ('s, 't,
// 're, 've, 'm, 'll, 'd, without the apostrophe) at the start of s, matching
// case-insensitively when fold is set (Oniguruma's (?i) folds U+017F ſ to s).
func contraction(s string, fold bool) int {
	lower := func(i int) (byte, int) {
		if i >= len(s) {
			return 0, 0
		}
		c := s[i]
		if fold {
			if c >= 'A' && c <= 'Z' {
				return c + 'a' - 'A', 1
			}
			if c == 0xC5 && i+1 < len(s) && s[i+1] == 0xBF { // ſ
				return 's', 2
			}
		}
		return c, 1
	}
	c, n := lower(0)
	switch c {
	case 's', 't', 'm', 'd':
		return n
	case 'r', 'v', 'l':
		want := byte('e')
		if c == 'l' {
			want = 'l'
		}
		if c2, n2 := lower(n); c2 == want && n2 == 1 {
			return n + 1
		}
	}
	return 0
}

// gpt2Matcher scans patternGPT2:
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Every character belongs to some match, so the matches tile the input.
type gpt2Matcher struct{}

func (gpt2Matcher) find(s string, dst []span) []span {
	for i := 0; i < len(s); {
		j := gpt2Next(s, i)
		dst = append(dst, span{i, j})
		i = j
	}
	return dst
}

func gpt2Next(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s[i+1:], false); n > 0 {
			return i + 1 + n
		}
	}
	r, size := decodeAt(s, i)
	if r == ' ' && i+1 < len(s) {
		r2, n2 := decodeAt(s, i+1)
		if c2 := classOf(r2); c2 != classSpace {
			return runEnd(s, i+1+n2, c2)
		}
	}
	if c := classOf(r); c != classSpace {
		return runEnd(s, i+size, c)
	}
	if e, ok := spaceNotFollowed(s, i); ok {
		return e
	}
	return runEnd(s, i, classSpace)
}

// llama3Matcher scans patternLlama3 (maxDigits 3) and patternQwen2
// (maxDigits 1):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//	 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
type llama3Matcher struct{ maxDigits int }

func (m llama3Matcher) find(s string, dst []span) []span {
	for i := 0; i < len(s); {
		j := m.next(s, i)
		dst = append(dst, span{i, j})
		i = j
	}
	return dst
}

func (m llama3Matcher) next(s string, i int) int {
	if s[i] == '\'' {
		if n := contraction(s[i+1:], true); n > 0 {
			return i + 1 + n
		}
	}
	r, size := decodeAt(s, i)
	switch classOf(r) {
	case classLetter:
		return runEnd(s, i+size, classLetter)
	case classNumber:
		j := i + size
		for d := 1; d < m.maxDigits && j < len(s); d++ {
			r2, n2 := decodeAt(s, j)
			if classOf(r2) != classNumber {
				break
			}
			j += n2
		}
		return j
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+ with the optional character present.
	if r != '\r' && r != '\n' && i+size < len(s) {
		if r2, n2 := decodeAt(s, i+size); classOf(r2) == classLetter {
			return runEnd(s, i+size+n2, classLetter)
		}
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	j := i
	if r == ' ' {
		j++
	}
	if j < len(s) {
		if r2, n2 := decodeAt(s, j); classOf(r2) == classOther {
			k := runEnd(s, j+n2, classOther)
			for k < len(s) && (s[k] == '\r' || s[k] == '\n') {
				k++
			}
			return k
		}
	}
	// r is whitespace. \s*[\r\n]+ backtracks to the last line break of the
	// whitespace run.
	k, lastNL := i, -1
	for k < len(s) {
		r2, n2 := decodeAt(s, k)
		if classOf(r2) != classSpace {
			break
		}
		if r2 == '\r' || r2 == '\n' {
			lastNL = k
		}
		k += n2
	}
	if lastNL >= 0 {
		return lastNL + 1
	}
	if e, ok := spaceNotFollowed(s, i); ok {
		return e
	}
	return k
}
