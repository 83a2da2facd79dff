package tokenizer

import (
	"fmt"
	"unicode/utf8"
)

// byteLevelTables maps each byte to the printable character GPT-2 uses for it
// (bytes_to_unicode in the GPT-2 release) and back. Printable Latin-1 bytes
// stand for themselves; the other 68 bytes take U+0100 onwards, in order.
type byteLevelTables struct {
	toRune  [256]rune
	toStr   [256]string
	fromRne map[rune]byte
}

func newByteLevelTables() *byteLevelTables {
	t := &byteLevelTables{fromRne: make(map[rune]byte, 256)}
	next := rune(256)
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		r := rune(b)
		if !printable {
			r = next
			next++
		}
		t.toRune[b] = r
		t.toStr[b] = string(r)
		t.fromRne[r] = byte(b)
	}
	return t
}

// mapBytes returns s with every byte replaced by its byte-level character.
func (t *byteLevelTables) mapBytes(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		n += len(t.toStr[s[i]])
	}
	buf := make([]byte, 0, n)
	for i := 0; i < len(s); i++ {
		buf = append(buf, t.toStr[s[i]]...)
	}
	return string(buf)
}

// unmapToken appends the bytes a byte-level token stands for. A token holding
// any character outside the byte-level alphabet (an added token such as
// "<|endoftext|>" is fine, but "▁" is not) is taken as its own UTF-8 bytes,
// as the reference decoder does.
func (t *byteLevelTables) unmapToken(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := t.fromRne[r]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}

// utf8Prefix classifies the bytes at the start of b. It returns n > 0 and
// valid when b starts with a complete UTF-8 sequence of n bytes. Otherwise it
// returns the length n of the maximal subpart of an ill-formed sequence (at
// least 1), with incomplete set when those n bytes are a valid but unfinished
// prefix that reaches the end of b, so that more bytes could complete it.
func utf8Prefix(b []byte) (n int, valid, incomplete bool) {
	c := b[0]
	if c < 0x80 {
		return 1, true, false
	}
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1, false, false
	}
	for k := 1; k <= need; k++ {
		if k >= len(b) {
			return k, false, true
		}
		if b[k] < lo || b[k] > hi {
			return k, false, false
		}
		lo, hi = 0x80, 0xBF
	}
	return need + 1, true, false
}

// appendLossy appends b decoded as UTF-8 with every maximal ill-formed
// subpart replaced by one U+FFFD, which is what Rust's
// String::from_utf8_lossy does (and differs from Go's per-byte replacement).
// When final is false, a trailing incomplete sequence is not decoded; its
// length is returned as rest so the caller can keep it for more bytes.
func appendLossy(dst []byte, b []byte, final bool) (out []byte, rest int) {
	i := 0
	for i < len(b) {
		if b[i] < utf8.RuneSelf {
			dst = append(dst, b[i])
			i++
			continue
		}
		n, valid, incomplete := utf8Prefix(b[i:])
		switch {
		case valid:
			dst = append(dst, b[i:i+n]...)
		case incomplete && !final:
			return dst, len(b) - i
		default:
			dst = append(dst, "\uFFFD"...)
		}
		i += n
	}
	return dst, 0
}

// byteToken reports the byte a byte-fallback token such as "<0x0A>" stands
// for. Like the reference it accepts any six-byte token "<0x" + two
// characters that parse as a hexadecimal byte + ">".
func byteToken(tok string) (byte, bool) {
	if len(tok) != 6 || tok[:3] != "<0x" || tok[5] != '>' {
		return 0, false
	}
	hexVal := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	lo, ok := hexVal(tok[4])
	if !ok {
		return 0, false
	}
	if tok[3] == '+' { // Rust's u8::from_str_radix accepts a leading plus sign.
		return lo, true
	}
	hi, ok := hexVal(tok[3])
	if !ok {
		return 0, false
	}
	return hi<<4 | lo, true
}

// byteTokenName is the vocabulary entry byte fallback looks up for b.
func byteTokenName(b byte) string { return fmt.Sprintf("<0x%02X>", b) }

// invalidUTF8 returns an error locating the first ill-formed byte of s.
func invalidUTF8(s string) error {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return &InvalidUTF8Error{Offset: i}
		}
		i += n
	}
	return nil
}

// InvalidUTF8Error is returned by Encode for input that is not valid UTF-8.
// The reference implementation takes Rust strings, which cannot hold such
// input, so there is no tokenization to imitate.
type InvalidUTF8Error struct {
	Offset int // byte offset of the first ill-formed sequence
}

func (e *InvalidUTF8Error) Error() string {
	return fmt.Sprintf("tokenizer: input is not valid UTF-8 (ill-formed sequence at byte offset %d)", e.Offset)
}
