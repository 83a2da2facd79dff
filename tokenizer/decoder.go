package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// decoder turns token strings back into text. Each decoder exists twice:
// decodeChain follows the reference's batch decode_chain step by step and
// is what Decode uses; newStage builds the incremental form StreamDecoder
// uses. Tests check that the two agree.
type decoder interface {
	decodeChain(tokens []string) []string
	newStage(next stage) stage
}

// stage is one decoder in streaming form. Tokens flow through a chain of
// stages as chunks: push hands over a chunk of the current token, and end
// marks that the token is complete. A stage emits downstream only text that
// later tokens cannot change, always cut at character boundaries. flush
// ends the input: the stage emits what it holds, closes its current token
// and flushes the next stage.
type stage interface {
	push(chunk string, end bool)
	flush()
}

// sink collects the output of the last stage.
type sink struct{ buf []byte }

func (s *sink) push(chunk string, _ bool) { s.buf = append(s.buf, chunk...) }
func (s *sink) flush()                    {}

// partial accumulates the chunks of a token that a stage can only handle
// whole.
type partial struct{ buf []byte }

// take returns the whole token once chunk ends it.
func (p *partial) take(chunk string, end bool) (string, bool) {
	if !end {
		p.buf = append(p.buf, chunk...)
		return "", false
	}
	if len(p.buf) == 0 {
		return chunk, true
	}
	tok := string(append(p.buf, chunk...))
	p.buf = p.buf[:0]
	return tok, true
}

// --- ByteLevel ---

type byteLevelDec struct{ bl *byteLevelTables }

func (d byteLevelDec) decodeChain(tokens []string) []string {
	var b []byte
	for _, t := range tokens {
		b = d.bl.unmapToken(b, t)
	}
	out, _ := appendLossy(nil, b, true)
	return []string{string(out)}
}

func (d byteLevelDec) newStage(next stage) stage { return &byteLevelStage{bl: d.bl, next: next} }

type byteLevelStage struct {
	bl      *byteLevelTables
	next    stage
	tok     partial
	pending []byte // bytes of an unfinished UTF-8 sequence
	out     []byte
}

func (s *byteLevelStage) push(chunk string, end bool) {
	tok, ok := s.tok.take(chunk, end)
	if !ok {
		return
	}
	s.pending = s.bl.unmapToken(s.pending, tok)
	var rest int
	s.out, rest = appendLossy(s.out[:0], s.pending, false)
	s.pending = append(s.pending[:0], s.pending[len(s.pending)-rest:]...)
	if len(s.out) > 0 {
		s.next.push(string(s.out), false)
	}
}

func (s *byteLevelStage) flush() {
	if len(s.tok.buf) > 0 {
		s.push("", true)
	}
	s.out, _ = appendLossy(s.out[:0], s.pending, true)
	s.pending = s.pending[:0]
	s.next.push(string(s.out), true)
	s.next.flush()
}

// --- Replace ---

type replaceDec struct{ r replaceNorm }

func (d replaceDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = d.r.normalize(t)
	}
	return out
}

func (d replaceDec) newStage(next stage) stage { return &replaceStage{r: d.r, next: next} }

type replaceStage struct {
	r    replaceNorm
	next stage
	buf  []byte
}

func (s *replaceStage) push(chunk string, end bool) {
	if end {
		tok := chunk
		if len(s.buf) > 0 {
			tok = string(append(s.buf, chunk...))
			s.buf = s.buf[:0]
		}
		s.next.push(s.r.normalize(tok), true)
		return
	}
	lm, literal := s.r.m.(literalMatcher)
	if !literal || lm.lit == "" { // a regex may match across chunks: wait for the whole token
		s.buf = append(s.buf, chunk...)
		return
	}
	text := string(append(s.buf, chunk...))
	var b strings.Builder
	i := 0
	for {
		j := strings.Index(text[i:], lm.lit)
		if j < 0 {
			break
		}
		b.WriteString(text[i : i+j])
		b.WriteString(s.r.content)
		i += j + len(lm.lit)
	}
	// A match starting at or after safe could still be completed by the
	// next chunk.
	safe := max(i, len(text)-len(lm.lit)+1)
	for safe > i && safe < len(text) && !utf8.RuneStart(text[safe]) {
		safe--
	}
	b.WriteString(text[i:safe])
	s.buf = append(s.buf[:0], text[safe:]...)
	if b.Len() > 0 {
		s.next.push(b.String(), false)
	}
}

func (s *replaceStage) flush() {
	if len(s.buf) > 0 {
		s.push("", true)
	}
	s.next.flush()
}

// --- ByteFallback ---

type byteFallbackDec struct{}

func (byteFallbackDec) decodeChain(tokens []string) []string {
	var out []string
	var run []byte
	flushRun := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, t := range tokens {
		if b, ok := byteToken(t); ok {
			run = append(run, b)
			continue
		}
		flushRun()
		out = append(out, t)
	}
	flushRun()
	return out
}

func (byteFallbackDec) newStage(next stage) stage { return &byteFallbackStage{next: next} }

type byteFallbackStage struct {
	next stage
	tok  partial
	run  []byte
	// invalid: the run can no longer become valid UTF-8, so every byte
	// of it is U+FFFD whatever follows, and each is passed on at once
	// instead of when the run ends.
	invalid bool
}

func (s *byteFallbackStage) push(chunk string, end bool) {
	tok, ok := s.tok.take(chunk, end)
	if !ok {
		return
	}
	if b, ok := byteToken(tok); ok {
		switch {
		case s.invalid:
			s.next.push("\uFFFD", true)
		case !validPrefix(append(s.run, b)):
			for range len(s.run) + 1 {
				s.next.push("\uFFFD", true)
			}
			s.run, s.invalid = s.run[:0], true
		default:
			s.run = append(s.run, b)
		}
		return
	}
	s.flushRun()
	s.next.push(tok, true)
}

// validPrefix reports whether b is valid UTF-8 or the start of some: at
// most an incomplete rune at its end.
func validPrefix(b []byte) bool {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return !utf8.FullRune(b[i:])
		}
		i += n
	}
	return true
}

func (s *byteFallbackStage) flushRun() {
	s.invalid = false
	if len(s.run) == 0 {
		return
	}
	if utf8.Valid(s.run) {
		s.next.push(string(s.run), true)
	} else {
		for range s.run {
			s.next.push("\uFFFD", true)
		}
	}
	s.run = s.run[:0]
}

func (s *byteFallbackStage) flush() {
	if len(s.tok.buf) > 0 {
		s.push("", true)
	}
	s.flushRun()
	s.next.flush()
}

// --- Fuse ---

type fuseDec struct{}

func (fuseDec) decodeChain(tokens []string) []string { return []string{strings.Join(tokens, "")} }

func (fuseDec) newStage(next stage) stage { return &fuseStage{next: next} }

type fuseStage struct{ next stage }

func (s *fuseStage) push(chunk string, _ bool) {
	if chunk != "" {
		s.next.push(chunk, false)
	}
}

func (s *fuseStage) flush() {
	s.next.push("", true)
	s.next.flush()
}

// --- Strip ---

// stripDec removes up to start copies of content from the beginning of each
// token and up to stop from its end.
type stripDec struct {
	content     rune
	start, stop int
}

func (d stripDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		for k := 0; k < d.start && t != ""; k++ {
			r, n := utf8.DecodeRuneInString(t)
			if r != d.content {
				break
			}
			t = t[n:]
		}
		// The end is stripped within what the start left, as in the
		// reference (stop is capped at the remaining length).
		for k := 0; k < d.stop && t != ""; k++ {
			r, n := utf8.DecodeLastRuneInString(t)
			if r != d.content {
				break
			}
			t = t[:len(t)-n]
		}
		out[i] = t
	}
	return out
}

func (d stripDec) newStage(next stage) stage { return &stripStage{d: d, next: next} }

type stripStage struct {
	d        stripDec
	next     stage
	stripped int  // copies of content removed at the start of this token
	inBody   bool // past the start of the token
	held     int  // trailing copies of content not yet emitted
	out      []byte
}

func (s *stripStage) push(chunk string, end bool) {
	out := s.out[:0]
	for _, r := range chunk {
		if !s.inBody {
			if r == s.d.content && s.stripped < s.d.start {
				s.stripped++
				continue
			}
			s.inBody = true
		}
		if r == s.d.content && s.d.stop > 0 {
			s.held++
			if s.held > s.d.stop {
				out = utf8.AppendRune(out, r)
				s.held--
			}
			continue
		}
		for ; s.held > 0; s.held-- {
			out = utf8.AppendRune(out, s.d.content)
		}
		out = utf8.AppendRune(out, r)
	}
	if end {
		s.stripped, s.inBody, s.held = 0, false, 0
	}
	s.out = out
	if len(out) > 0 || end {
		s.next.push(string(out), end)
	}
}

func (s *stripStage) flush() { s.next.flush() }

// --- Metaspace ---

// metaspaceDec turns the replacement character back into spaces; in the
// first token it drops them, unless the prepend scheme is "never".
type metaspaceDec struct {
	repl  rune
	never bool
}

func (d metaspaceDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = d.mapToken(t, i == 0, nil)
	}
	return out
}

func (d metaspaceDec) mapToken(t string, first bool, buf []byte) string {
	buf = buf[:0]
	for _, r := range t {
		if r == d.repl {
			if first && !d.never {
				continue
			}
			r = ' '
		}
		buf = utf8.AppendRune(buf, r)
	}
	return string(buf)
}

func (d metaspaceDec) newStage(next stage) stage { return &metaspaceStage{d: d, next: next} }

type metaspaceStage struct {
	d     metaspaceDec
	next  stage
	index int
	buf   []byte
}

func (s *metaspaceStage) push(chunk string, end bool) {
	s.next.push(s.d.mapToken(chunk, s.index == 0, s.buf), end)
	if end {
		s.index++
	}
}

func (s *metaspaceStage) flush() { s.next.flush() }

// --- BPEDecoder ---

// bpeSuffixDec replaces the end-of-word suffix by a space, or by nothing in
// the last token.
type bpeSuffixDec struct{ suffix string }

func (d bpeSuffixDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		repl := " "
		if i == len(tokens)-1 {
			repl = ""
		}
		out[i] = strings.ReplaceAll(t, d.suffix, repl)
	}
	return out
}

func (d bpeSuffixDec) newStage(next stage) stage { return &bpeSuffixStage{d: d, next: next} }

type bpeSuffixStage struct {
	d    bpeSuffixDec
	next stage
	tok  partial
	prev string
	have bool
}

func (s *bpeSuffixStage) push(chunk string, end bool) {
	tok, ok := s.tok.take(chunk, end)
	if !ok {
		return
	}
	if s.have {
		s.next.push(strings.ReplaceAll(s.prev, s.d.suffix, " "), true)
	}
	s.prev, s.have = tok, true
}

func (s *bpeSuffixStage) flush() {
	if len(s.tok.buf) > 0 {
		s.push("", true)
	}
	if s.have {
		s.next.push(strings.ReplaceAll(s.prev, s.d.suffix, ""), true)
		s.have = false
	}
	s.next.flush()
}

// --- Sequence ---

type seqDec struct{ items []decoder }

func (d seqDec) decodeChain(tokens []string) []string {
	for _, it := range d.items {
		tokens = it.decodeChain(tokens)
	}
	return tokens
}

func (d seqDec) newStage(next stage) stage {
	for i := len(d.items) - 1; i >= 0; i-- {
		next = d.items[i].newStage(next)
	}
	return next
}

// --- no decoder: tokens joined by spaces ---

type joinDec struct{}

func (joinDec) decodeChain(tokens []string) []string { return []string{strings.Join(tokens, " ")} }

func (joinDec) newStage(next stage) stage { return &joinStage{next: next} }

type joinStage struct {
	next    stage
	n       int  // tokens started
	inToken bool // a token has started but not ended
}

// push passes the text on as one growing token, like Fuse: the batch form
// returns a single string.
func (s *joinStage) push(chunk string, end bool) {
	if !s.inToken {
		if s.n > 0 {
			s.next.push(" ", false)
		}
		s.n++
		s.inToken = true
	}
	if chunk != "" {
		s.next.push(chunk, false)
	}
	if end {
		s.inToken = false
	}
}

func (s *joinStage) flush() {
	s.next.push("", true)
	s.next.flush()
}
