package tokenizer

import (
	"fmt"
	"strings"
)

// piece is one part of the input on its way through the added-token split,
// the normalizer, the pre-tokenizer and the model.
type piece struct {
	text string
	// id is the token of an added token found in the text, which the later
	// steps leave alone, or -1.
	id int32
	// first is set when the piece starts at byte 0 of the input (the
	// reference's offsets_original().0 == 0), which Metaspace's
	// prepend_scheme "first" looks at.
	first bool
	// raw is set by the ByteLevel pre-tokenizer: text still has to be
	// mapped to byte-level characters. The mapping is left to whoever
	// needs it, usually the model, which looks bytes up in a table without
	// building the mapped string.
	raw bool
}

// splitBehavior says what happens to the matches of a pattern when a piece
// is split (the reference's SplitDelimiterBehavior).
type splitBehavior uint8

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

func parseBehavior(s string) (splitBehavior, error) {
	switch s {
	case "Removed":
		return splitRemoved, nil
	case "Isolated":
		return splitIsolated, nil
	case "MergedWithPrevious":
		return splitMergedWithPrevious, nil
	case "MergedWithNext":
		return splitMergedWithNext, nil
	case "Contiguous":
		return splitContiguous, nil
	}
	return 0, fmt.Errorf("split behavior %q is not supported", s)
}

// segment is a part of a piece that either matched the pattern or not.
type segment struct {
	span
	match bool
}

// splitPiece cuts p at the matches m of a pattern (invert swaps matches and
// the text between them), applies behavior, and appends the non-empty parts.
func splitPiece(st *encodeState, p piece, m []span, behavior splitBehavior, invert bool, dst []piece) []piece {
	segs := st.segs[:0]
	prev := 0
	for _, s := range m {
		if prev != s.start {
			segs = append(segs, segment{span{prev, s.start}, invert})
		}
		segs = append(segs, segment{s, !invert})
		prev = s.end
	}
	if prev != len(p.text) || len(segs) == 0 {
		segs = append(segs, segment{span{prev, len(p.text)}, invert})
	}

	out := st.segsOut[:0]
	switch behavior {
	case splitRemoved:
		for _, s := range segs {
			if !s.match {
				out = append(out, s)
			}
		}
	case splitIsolated:
		out = append(out, segs...)
	case splitMergedWithPrevious:
		prevMatch := false
		for _, s := range segs {
			if s.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
	case splitMergedWithNext:
		prevMatch := false
		for k := len(segs) - 1; k >= 0; k-- {
			s := segs[k]
			if s.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = s.start
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
		for a, b := 0, len(out)-1; a < b; a, b = a+1, b-1 {
			out[a], out[b] = out[b], out[a]
		}
	case splitContiguous:
		prevMatch := false
		for _, s := range segs {
			if s.match == prevMatch && len(out) > 0 {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, s)
			}
			prevMatch = s.match
		}
	}
	for _, s := range out {
		if s.start < s.end {
			dst = append(dst, piece{text: p.text[s.start:s.end], id: -1, first: p.first && s.start == 0})
		}
	}
	st.segs, st.segsOut = segs, out
	return dst
}

// preTokenizer cuts a piece into the words the model sees, possibly
// rewriting them. Pieces that hold an added token never reach it.
type preTokenizer interface {
	preTokenize(st *encodeState, p piece, dst []piece) []piece
}

// splitPre is the Split pre-tokenizer and the fixed-pattern ones built on the
// same mechanism (Digits, WhitespaceSplit, Punctuation, CharDelimiterSplit).
type splitPre struct {
	m        matcher
	behavior splitBehavior
	invert   bool
}

func (s splitPre) preTokenize(st *encodeState, p piece, dst []piece) []piece {
	st.spans = s.m.find(p.text, st.spans[:0])
	return splitPiece(st, p, st.spans, s.behavior, s.invert, dst)
}

// byteLevelPre is the ByteLevel pre-tokenizer: optional prefix space, the
// GPT-2 split, then every byte mapped to its printable stand-in.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
	bl             *byteLevelTables
}

func (b byteLevelPre) preTokenize(st *encodeState, p piece, dst []piece) []piece {
	text := p.text
	if b.addPrefixSpace && !strings.HasPrefix(text, " ") {
		text = " " + text
	}
	if !b.useRegex {
		if text == "" {
			return dst
		}
		return append(dst, piece{text: text, id: -1, first: p.first, raw: true})
	}
	for i := 0; i < len(text); {
		j := gpt2Next(text, i)
		dst = append(dst, piece{text: text[i:j], id: -1, first: p.first && i == 0, raw: true})
		i = j
	}
	return dst
}

// prependScheme says when Metaspace puts the replacement in front of a piece.
type prependScheme uint8

const (
	prependAlways prependScheme = iota
	prependNever
	prependFirst
)

// metaspacePre is the Metaspace pre-tokenizer: spaces become the replacement
// character (▁), which is prepended as prependScheme says, and the piece is
// cut in front of every replacement character when split is set.
type metaspacePre struct {
	repl   string
	scheme prependScheme
	split  bool
}

func (m metaspacePre) preTokenize(st *encodeState, p piece, dst []piece) []piece {
	text := strings.ReplaceAll(p.text, " ", m.repl)
	if !strings.HasPrefix(text, m.repl) && (m.scheme == prependAlways || m.scheme == prependFirst && p.first) {
		text = m.repl + text
	}
	q := piece{text: text, id: -1, first: p.first}
	if !m.split {
		if text == "" {
			return dst
		}
		return append(dst, q)
	}
	st.spans = literalMatcher{m.repl}.find(text, st.spans[:0])
	return splitPiece(st, q, st.spans, splitMergedWithNext, false, dst)
}

// whitespacePre is the Whitespace pre-tokenizer: the runs of word
// characters and the runs of other non-space characters (\w+|[^\w\s]+).
type whitespacePre struct{}

func (whitespacePre) preTokenize(_ *encodeState, p piece, dst []piece) []piece {
	s := p.text
	for i := 0; i < len(s); {
		r, n := decodeAt(s, i)
		if isWhitespace(r) {
			i += n
			continue
		}
		word := isOnigWord(r)
		j := i + n
		for j < len(s) {
			r2, n2 := decodeAt(s, j)
			if isWhitespace(r2) || isOnigWord(r2) != word {
				break
			}
			j += n2
		}
		dst = append(dst, piece{text: s[i:j], id: -1, first: p.first && i == 0})
		i = j
	}
	return dst
}

// seqPre runs pre-tokenizers one after the other.
type seqPre struct {
	items []preTokenizer
	bl    *byteLevelTables
}

func (s seqPre) preTokenize(st *encodeState, p piece, dst []piece) []piece {
	cur := []piece{p}
	for k, pt := range s.items {
		var next []piece
		if k == len(s.items)-1 {
			next = dst // the last step appends straight to the output
		}
		for _, q := range cur {
			if q.raw {
				q.text, q.raw = s.bl.mapBytes(q.text), false
			}
			next = pt.preTokenize(st, q, next)
		}
		cur = next
	}
	if len(s.items) == 0 {
		return append(dst, p)
	}
	return cur
}
