package tokenizer

import (
	"unicode/utf8"
)

// addedToken is an entry of "added_tokens" in tokenizer.json.
type addedToken struct {
	id         int32
	content    string
	singleWord bool
	lstrip     bool
	rstrip     bool
	normalized bool
	special    bool
}

// trie finds added tokens in text: at the leftmost position where any
// token starts, the longest one (the reference uses an Aho-Corasick
// automaton with MatchKind::LeftmostLongest, which finds the same matches).
type trie struct {
	root  [256]int32 // child of the root for each byte, 0 when none
	nodes []trieNode // nodes[0] is the root
}

type trieNode struct {
	tok   int32 // index into the token list, -1 when no token ends here
	edges []trieEdge
}

type trieEdge struct {
	b    byte
	node int32
}

func newTrie() *trie { return &trie{nodes: []trieNode{{tok: -1}}} }

func (t *trie) insert(s string, tok int32) {
	n := int32(0)
	for i := 0; i < len(s); i++ {
		next := t.child(n, s[i])
		if next == 0 {
			next = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{tok: -1})
			if n == 0 {
				t.root[s[i]] = next
			}
			t.nodes[n].edges = append(t.nodes[n].edges, trieEdge{s[i], next})
		}
		n = next
	}
	if t.nodes[n].tok < 0 { // the first of equal contents wins
		t.nodes[n].tok = tok
	}
}

func (t *trie) child(n int32, b byte) int32 {
	if n == 0 {
		return t.root[b]
	}
	for _, e := range t.nodes[n].edges {
		if e.b == b {
			return e.node
		}
	}
	return 0
}

// longest returns the token and end of the longest token starting at s[i:].
func (t *trie) longest(s string, i int) (tok int32, end int) {
	tok, end = -1, -1
	n := t.root[s[i]]
	for j := i + 1; n != 0; j++ {
		if k := t.nodes[n].tok; k >= 0 {
			tok, end = k, j
		}
		if j == len(s) {
			break
		}
		n = t.child(n, s[j])
	}
	return tok, end
}

// addedVocab holds the added tokens and the two tries the reference
// matches them with: one for tokens with normalized=false, searched in the
// raw input, and one for normalized=true, searched (in normalized form) in
// the normalized text.
type addedVocab struct {
	tokens []addedToken
	raw    *trie
	norm   *trie
}

func newAddedVocab(tokens []addedToken, n normalizer) *addedVocab {
	a := &addedVocab{tokens: tokens, raw: newTrie(), norm: newTrie()}
	// Special tokens first, then the others, as the reference orders them.
	for pass := 0; pass < 2; pass++ {
		for i, t := range tokens {
			if t.content == "" || t.special != (pass == 0) {
				continue
			}
			if t.normalized {
				c := t.content
				if n != nil {
					c = n.normalize(c)
				}
				if c != "" {
					a.norm.insert(c, int32(i))
				}
			} else {
				a.raw.insert(t.content, int32(i))
			}
		}
	}
	return a
}

// split cuts p at the added tokens found by tr and appends the parts: the
// tokens themselves (with their id set) and the text between them. It
// follows the reference's find_matches, including single_word, lstrip and
// rstrip.
func (a *addedVocab) split(tr *trie, p piece, dst []piece) []piece {
	s := p.text
	if len(tr.nodes) == 1 || s == "" {
		return append(dst, p)
	}
	startOffset := 0
	for i := 0; i < len(s); {
		if tr.root[s[i]] == 0 {
			i++
			continue
		}
		k, stop := tr.longest(s, i)
		if k < 0 {
			i++
			continue
		}
		start := i
		i = stop // the automaton resumes after the match, used or not
		t := &a.tokens[k]
		if t.singleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if t.lstrip {
			newStart := trailingSpaceStart(s[:start])
			start = max(newStart, startOffset)
		}
		if t.rstrip {
			stop += leadingSpaceLen(s[stop:])
		}
		if startOffset < start {
			dst = append(dst, piece{text: s[startOffset:start], id: -1, first: p.first && startOffset == 0})
		}
		dst = append(dst, piece{text: s[start:stop], id: t.id, first: p.first && start == 0})
		startOffset = stop
	}
	if startOffset != len(s) {
		dst = append(dst, piece{text: s[startOffset:], id: -1, first: p.first && startOffset == 0})
	}
	return dst
}

func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isRegexWord(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isRegexWord(r)
}

// trailingSpaceStart is where the run of whitespace that ends s begins.
func trailingSpaceStart(s string) int {
	i := len(s)
	for i > 0 {
		r, n := utf8.DecodeLastRuneInString(s[:i])
		if !isWhitespace(r) {
			break
		}
		i -= n
	}
	return i
}

// leadingSpaceLen is the length of the run of whitespace that starts s.
func leadingSpaceLen(s string) int {
	i := 0
	for i < len(s) {
		r, n := decodeAt(s, i)
		if !isWhitespace(r) {
			break
		}
		i += n
	}
	return i
}
