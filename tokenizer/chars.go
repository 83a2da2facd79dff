package tokenizer

import "unicode"

// Character classes as the reference implementation sees them. Go's unicode
// tables give the same General_Category and White_Space sets that Oniguruma
// (\p{L}, \p{N}, \s) and Rust (char::is_whitespace and friends) use.

// charClass is the class of a character for the GPT-2 style split patterns:
// letter (\p{L}), number (\p{N}), whitespace (\s) or anything else.
type charClass uint8

const (
	classOther charClass = iota
	classLetter
	classNumber
	classSpace
)

// asciiClass holds the class of every ASCII byte.
var asciiClass = func() (t [128]charClass) {
	for c := 0; c < 128; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			t[c] = classLetter
		case c >= '0' && c <= '9':
			t[c] = classNumber
		case c == ' ', c >= '\t' && c <= '\r':
			t[c] = classSpace
		}
	}
	return t
}()

func classOf(r rune) charClass {
	if r < 128 {
		return asciiClass[r]
	}
	switch {
	case unicode.IsLetter(r):
		return classLetter
	case unicode.IsNumber(r):
		return classNumber
	case unicode.IsSpace(r):
		return classSpace
	}
	return classOther
}

// isWhitespace is Rust's char::is_whitespace (the White_Space property),
// which is also what Oniguruma's \s matches.
func isWhitespace(r rune) bool { return unicode.IsSpace(r) }

// isNumeric is Rust's char::is_numeric (General_Category N).
func isNumeric(r rune) bool { return unicode.IsNumber(r) }

// isAlphabetic is Rust's char::is_alphabetic (the Alphabetic property).
func isAlphabetic(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_Alphabetic, r)
}

// isRegexWord is \w of Rust's regex crate, which the added-token matcher uses
// for single_word: Alphabetic, marks, decimal digits, connector punctuation
// and Join_Control.
func isRegexWord(r rune) bool {
	if r < 128 {
		return asciiClass[r] == classLetter || asciiClass[r] == classNumber || r == '_'
	}
	return isAlphabetic(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Pc, r) || unicode.Is(unicode.Join_Control, r)
}

// isOnigWord is Oniguruma's Unicode \w (letters, marks, decimal digits and
// connector punctuation), used by the Whitespace pre-tokenizer.
func isOnigWord(r rune) bool {
	if r < 128 {
		return asciiClass[r] == classLetter || asciiClass[r] == classNumber || r == '_'
	}
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) || unicode.Is(unicode.Pc, r)
}

// isPunctuation is the BERT notion: ASCII punctuation or General_Category P.
func isPunctuation(r rune) bool {
	if r < 128 {
		return (r >= '!' && r <= '/') || (r >= ':' && r <= '@') || (r >= '[' && r <= '`') || (r >= '{' && r <= '~')
	}
	return unicode.IsPunct(r)
}
