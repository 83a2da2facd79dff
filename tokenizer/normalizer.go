package tokenizer

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites the text of a piece before pre-tokenization. Offsets
// are not tracked: only the ids matter here.
type normalizer interface {
	normalize(s string) string
}

type seqNorm struct{ items []normalizer }

func (n seqNorm) normalize(s string) string {
	for _, it := range n.items {
		s = it.normalize(s)
	}
	return s
}

// prependNorm puts a string in front of non-empty text.
type prependNorm struct{ prefix string }

func (n prependNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.prefix + s
}

// replaceNorm replaces every match of a pattern with content. It is also
// the Replace decoder, applied to each token.
type replaceNorm struct {
	m       matcher
	content string
}

func (n replaceNorm) normalize(s string) string {
	if lm, ok := n.m.(literalMatcher); ok && lm.lit != "" {
		return strings.ReplaceAll(s, lm.lit, n.content)
	}
	matches := n.m.find(s, nil)
	if len(matches) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, m := range matches {
		b.WriteString(s[prev:m.start])
		b.WriteString(n.content)
		prev = m.end
	}
	b.WriteString(s[prev:])
	return b.String()
}

// unicodeNorm is NFC, NFD, NFKC or NFKD.
type unicodeNorm struct{ form norm.Form }

func (n unicodeNorm) normalize(s string) string { return n.form.String(s) }

// lowercaseNorm lowercases every character as Rust's char::to_lowercase
// does: Go's simple case mapping, except that U+0130 (İ) becomes "i̇".
type lowercaseNorm struct{}

func (lowercaseNorm) normalize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == 'İ' {
			b.WriteString("i\u0307")
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// stripNorm removes whitespace at either end.
type stripNorm struct{ left, right bool }

func (n stripNorm) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, isWhitespace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, isWhitespace)
	}
	return s
}

// stripAccentsNorm removes combining marks (meant to follow NFD or NFKD).
type stripAccentsNorm struct{}

func (stripAccentsNorm) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsMark(r) {
			return -1
		}
		return r
	}, s)
}
