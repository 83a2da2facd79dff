package chattemplate

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

type tokenKind int

const (
	tEOF        tokenKind = iota
	tText                 // template data between tags
	tVarBegin             // {{
	tVarEnd               // }}
	tBlockBegin           // {%
	tBlockEnd             // %}
	tName                 // identifier or keyword
	tString               // string literal, val already unescaped
	tInt                  // integer literal as written
	tFloat                // float literal as written
	tOp                   // operator or punctuation, val is its text
)

type token struct {
	kind tokenKind
	val  string
	pos  int // byte offset in the normalised source
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of template"
	case tText:
		return "template data"
	case tVarBegin:
		return `"{{"`
	case tVarEnd:
		return `"}}"`
	case tBlockBegin:
		return `"{%"`
	case tBlockEnd:
		return `"%}"`
	case tString:
		return "string " + repr(t.val)
	}
	return fmt.Sprintf("%q", t.val)
}

// normalize does what jinja2 does before lexing: every "\r\n", "\r" and
// "\n" becomes "\n", and one trailing newline is dropped
// (keep_trailing_newline=False).
func normalize(src string) string {
	if strings.IndexByte(src, '\r') >= 0 {
		src = strings.ReplaceAll(src, "\r\n", "\n")
		src = strings.ReplaceAll(src, "\r", "\n")
	}
	return strings.TrimSuffix(src, "\n")
}

// lexer splits a normalised template into tokens, applying the whitespace
// rules of jinja2 with trim_blocks=True and lstrip_blocks=True:
//
//   - "{%-", "{{-", "{#-" remove all whitespace before the tag;
//     "-%}", "-}}", "-#}" remove all whitespace after it.
//   - lstrip_blocks: spaces and tabs from the start of a line up to a block
//     or comment tag are removed, unless the tag opens with "{%+".
//     Expression tags "{{" are never lstripped.
//   - trim_blocks: the first newline after a block or comment tag is
//     removed, unless the tag closes with "+%}".
type lexer struct {
	src  string
	pos  int
	toks []token
	// lineStarting tells whether the last consumed piece ended with a
	// newline, which lets lstrip_blocks apply to text with no newline in it.
	lineStarting bool
}

func lex(src string) ([]token, error) {
	l := &lexer{src: src, lineStarting: true}
	if err := l.run(); err != nil {
		return nil, err
	}
	l.toks = append(l.toks, token{kind: tEOF, pos: len(src)})
	return l.toks, nil
}

func (l *lexer) errorf(pos int, format string, args ...any) error {
	return newError(l.src, pos, fmt.Sprintf(format, args...))
}

func (l *lexer) emit(kind tokenKind, val string, pos int) {
	l.toks = append(l.toks, token{kind: kind, val: val, pos: pos})
}

// nextTag finds the next "{{", "{%" or "{#" at or after from.
func (l *lexer) nextTag(from int) int {
	for i := from; ; {
		j := strings.IndexByte(l.src[i:], '{')
		if j < 0 || i+j+1 >= len(l.src) {
			return -1
		}
		i += j
		switch l.src[i+1] {
		case '{', '%', '#':
			return i
		}
		i++
	}
}

// stripText applies left whitespace control to the text before a tag whose
// opener is kind ('{', '%' or '#') with sign ('-', '+' or 0).
func (l *lexer) stripText(text string, kind, sign byte) string {
	if sign == '-' {
		return strings.TrimRightFunc(text, pyIsSpace)
	}
	if sign == '+' || kind == '{' {
		return text
	}
	lpos := strings.LastIndexByte(text, '\n') + 1
	if (lpos > 0 || l.lineStarting) && lpos < len(text) && strings.TrimLeftFunc(text[lpos:], pyIsSpace) == "" {
		return text[:lpos]
	}
	return text
}

func (l *lexer) run() error {
	for l.pos < len(l.src) {
		start := l.pos
		i := l.nextTag(start)
		if i < 0 {
			l.emit(tText, l.src[start:], start)
			return nil
		}
		kind := l.src[i+1]
		var sign byte
		if i+2 < len(l.src) && (l.src[i+2] == '-' || l.src[i+2] == '+') {
			sign = l.src[i+2]
		}
		rawEnd := -1
		if kind == '%' {
			rawEnd = l.matchRawBegin(i)
		}
		if text := l.stripText(l.src[start:i], kind, sign); text != "" {
			l.emit(tText, text, start)
		}
		l.pos = i + 2
		if sign != 0 {
			l.pos++
		}
		l.lineStarting = false
		var err error
		switch {
		case rawEnd >= 0:
			err = l.lexRaw(i, rawEnd)
		case kind == '#':
			err = l.lexComment(i)
		case kind == '{':
			l.emit(tVarBegin, "{{", i)
			err = l.lexInside(i, "}}", tVarEnd)
		default:
			l.emit(tBlockBegin, "{%", i)
			err = l.lexInside(i, "%}", tBlockEnd)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// skipSpace returns the offset of the first non-whitespace at or after i.
func (l *lexer) skipSpace(i int) int {
	for i < len(l.src) {
		r, n := utf8.DecodeRuneInString(l.src[i:])
		if !pyIsSpace(r) {
			break
		}
		i += n
	}
	return i
}

// afterClose consumes what follows a closing delimiter that ends at end:
// all whitespace after a "-" closer, or one newline after a block or
// comment closer (trim_blocks) unless it is a "+" closer.
func (l *lexer) afterClose(end int, sign byte, block bool) {
	switch {
	case sign == '-':
		end = l.skipSpace(end)
	case sign != '+' && block && end < len(l.src) && l.src[end] == '\n':
		end++
	}
	l.pos = end
	l.lineStarting = end > 0 && l.src[end-1] == '\n'
}

// matchRawBegin reports whether a "{% raw %}" tag starts at i and returns
// the offset just after it, or -1.
func (l *lexer) matchRawBegin(i int) int {
	j := i + 2
	if j < len(l.src) && (l.src[j] == '-' || l.src[j] == '+') {
		j++
	}
	j = l.skipSpace(j)
	if !strings.HasPrefix(l.src[j:], "raw") {
		return -1
	}
	j = l.skipSpace(j + 3)
	switch {
	case strings.HasPrefix(l.src[j:], "-%}"):
		return l.skipSpace(j + 3)
	case strings.HasPrefix(l.src[j:], "%}"):
		return j + 2
	}
	return -1
}

// lexRaw emits the body of a raw block starting at begin as text.
func (l *lexer) lexRaw(begin, bodyStart int) error {
	l.lineStarting = bodyStart > 0 && l.src[bodyStart-1] == '\n'
	for from := bodyStart; ; {
		i := strings.Index(l.src[from:], "{%")
		if i < 0 {
			return l.errorf(begin, `missing "endraw" for "raw" block`)
		}
		i += from
		j := i + 2
		var sign byte
		if j < len(l.src) && (l.src[j] == '-' || l.src[j] == '+') {
			sign = l.src[j]
			j++
		}
		j = l.skipSpace(j)
		if !strings.HasPrefix(l.src[j:], "endraw") {
			from = i + 2
			continue
		}
		j = l.skipSpace(j + 6)
		var closeSign byte
		if j < len(l.src) && (l.src[j] == '-' || l.src[j] == '+') {
			closeSign = l.src[j]
			j++
		}
		if !strings.HasPrefix(l.src[j:], "%}") {
			from = i + 2
			continue
		}
		if text := l.stripText(l.src[bodyStart:i], '%', sign); text != "" {
			l.emit(tText, text, bodyStart)
		}
		l.afterClose(j+2, closeSign, true)
		return nil
	}
}

func (l *lexer) lexComment(begin int) error {
	i := strings.Index(l.src[l.pos:], "#}")
	if i < 0 {
		return l.errorf(begin, "unclosed comment")
	}
	end := l.pos + i
	var sign byte
	if end > l.pos && (l.src[end-1] == '-' || l.src[end-1] == '+') {
		sign = l.src[end-1]
	}
	l.afterClose(end+2, sign, true)
	return nil
}

var twoCharOps = []string{"//", "**", "==", "!=", ">=", "<="}

// lexInside tokenizes the inside of a "{{ }}" or "{% %}" tag opened at
// begin, up to and including the closer.
func (l *lexer) lexInside(begin int, closer string, endKind tokenKind) error {
	var brackets []byte
	src := l.src
	for {
		l.pos = l.skipSpace(l.pos)
		p := l.pos
		if p >= len(src) {
			return l.errorf(begin, "unclosed tag: missing %q", closer)
		}
		if len(brackets) == 0 {
			for _, sign := range []byte{'-', '+', 0} {
				c := closer
				if sign != 0 {
					if sign == '+' && endKind == tVarEnd {
						continue
					}
					c = string(sign) + closer
				}
				if strings.HasPrefix(src[p:], c) {
					l.emit(endKind, closer, p)
					l.afterClose(p+len(c), sign, endKind == tBlockEnd)
					return nil
				}
			}
		}
		c := src[p]
		r, n := utf8.DecodeRuneInString(src[p:])
		switch {
		case c >= '0' && c <= '9':
			if err := l.lexNumber(); err != nil {
				return err
			}
		case c == '_' || unicode.IsLetter(r):
			e := p + n
			for e < len(src) {
				r, n := utf8.DecodeRuneInString(src[e:])
				if r != '_' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
					break
				}
				e += n
			}
			l.emit(tName, src[p:e], p)
			l.pos = e
		case c == '\'' || c == '"':
			if err := l.lexString(); err != nil {
				return err
			}
		default:
			op := ""
			for _, o := range twoCharOps {
				if strings.HasPrefix(src[p:], o) {
					op = o
					break
				}
			}
			if op == "" {
				if !strings.ContainsRune("+-*/%~[](){}<>=.:|,;", r) {
					return l.errorf(p, "unexpected character %q", r)
				}
				op = string(c)
			}
			switch op {
			case "(", "[", "{":
				brackets = append(brackets, op[0])
			case ")", "]", "}":
				open := map[string]byte{")": '(', "]": '[', "}": '{'}[op]
				if len(brackets) == 0 || brackets[len(brackets)-1] != open {
					return l.errorf(p, "unexpected %q", op)
				}
				brackets = brackets[:len(brackets)-1]
			}
			l.emit(tOp, op, p)
			l.pos = p + len(op)
		}
	}
}

func isDigitOrUnderscore(c byte) bool { return c >= '0' && c <= '9' || c == '_' }

// lexNumber reads an integer or float literal; digits may be grouped with
// underscores and integers may be written 0b, 0o or 0x.
func (l *lexer) lexNumber() error {
	src, p := l.src, l.pos
	e := p
	kind := tInt
	if src[p] == '0' && p+1 < len(src) && strings.ContainsRune("bBoOxX", rune(src[p+1])) {
		e = p + 2
		for e < len(src) && (isHex(src[e]) || src[e] == '_') {
			e++
		}
	} else {
		for e < len(src) && isDigitOrUnderscore(src[e]) {
			e++
		}
		if e+1 < len(src) && src[e] == '.' && src[e+1] >= '0' && src[e+1] <= '9' {
			kind = tFloat
			e++
			for e < len(src) && isDigitOrUnderscore(src[e]) {
				e++
			}
		}
		if e < len(src) && (src[e] == 'e' || src[e] == 'E') {
			f := e + 1
			if f < len(src) && (src[f] == '+' || src[f] == '-') {
				f++
			}
			if f < len(src) && src[f] >= '0' && src[f] <= '9' {
				kind = tFloat
				e = f
				for e < len(src) && isDigitOrUnderscore(src[e]) {
					e++
				}
			}
		}
	}
	l.emit(kind, src[p:e], p)
	l.pos = e
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// lexString reads a quoted literal and decodes Python escapes.
func (l *lexer) lexString() error {
	src, p := l.src, l.pos
	q := src[p]
	var b strings.Builder
	for i := p + 1; i < len(src); {
		c := src[i]
		switch c {
		case q:
			l.emit(tString, b.String(), p)
			l.pos = i + 1
			return nil
		case '\\':
			n, err := decodeEscape(&b, src[i:])
			if err != nil {
				return l.errorf(i, "%v", err)
			}
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	return l.errorf(p, "unterminated string")
}

// decodeEscape decodes one backslash escape at the start of s (Python's
// unicode-escape rules), writes it to b and returns how much of s it used.
func decodeEscape(b *strings.Builder, s string) (int, error) {
	if len(s) < 2 {
		b.WriteByte('\\')
		return 1, nil
	}
	simple := map[byte]byte{'\\': '\\', '\'': '\'', '"': '"', 'a': 7, 'b': 8, 'f': 12, 'n': '\n', 'r': '\r', 't': '\t', 'v': 11}
	c := s[1]
	if r, ok := simple[c]; ok {
		b.WriteByte(r)
		return 2, nil
	}
	switch c {
	case '\n':
		return 2, nil // line continuation
	case '0', '1', '2', '3', '4', '5', '6', '7':
		n, v := 1, 0
		for n < 4 && n < len(s) && s[n] >= '0' && s[n] <= '7' {
			v = v*8 + int(s[n]-'0')
			n++
		}
		b.WriteRune(rune(v))
		return n, nil
	case 'x', 'u', 'U':
		digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
		if len(s) < 2+digits {
			return 0, fmt.Errorf(`truncated \%c escape`, c)
		}
		v := 0
		for _, d := range []byte(s[2 : 2+digits]) {
			if !isHex(d) {
				return 0, fmt.Errorf(`truncated \%c escape`, c)
			}
			v = v*16 + hexVal(d)
		}
		if v > unicode.MaxRune {
			return 0, fmt.Errorf(`illegal Unicode character in \U escape`)
		}
		b.WriteRune(rune(v))
		return 2 + digits, nil
	}
	b.WriteByte('\\')
	return 1, nil
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return int(c-'A') + 10
}
