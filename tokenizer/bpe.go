package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// bpe is the BPE model: a vocabulary and a ranked list of merges.
type bpe struct {
	vocab  map[string]int32
	merges map[uint64]bpeMerge // key: pairKey(left, right)

	unk          int32 // id of unk_token, or -1
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix

	byteIDs [256]int32 // ids of "<0x00>".."<0xFF>", -1 where missing
	// runeIDs holds the ids of the one-character tokens below
	// len(runeIDs), -1 where missing; nil when prefix or suffix are set,
	// which make a character's token depend on its position.
	runeIDs []int32
	// byteCharIDs holds the ids of the 256 byte-level characters (-1 where
	// the vocabulary lacks one), so that raw pieces from the ByteLevel
	// pre-tokenizer need not be mapped to strings first. It is nil when
	// prefix or suffix are set.
	byteCharIDs *[256]int32
	bl          *byteLevelTables

	// splitAt, when not empty, is a character (▁) before which no merge
	// can ever reach: words are cut in front of it (unless another splitAt
	// precedes it) and the parts merged on their own, which gives the same
	// result and lets the per-call cache work for SentencePiece-style
	// tokenizers that have no pre-tokenizer.
	splitAt string
}

type bpeMerge struct {
	rank  int32
	newID int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// maxCachedWord is the longest word (in bytes) kept in the per-call cache.
const maxCachedWord = 256

// maxCacheEntries bounds the per-call cache.
const maxCacheEntries = 1 << 16

// symbol is one part of a word during merging, in a doubly linked list.
type symbol struct {
	id         int32
	prev, next int32
	removed    bool
}

// mergeItem is a candidate merge of the symbol at pos with its successor.
type mergeItem struct {
	rank, pos, newID int32
}

func (a mergeItem) less(b mergeItem) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.pos < b.pos
}

// tokenize appends the ids of the word p.
func (m *bpe) tokenize(st *encodeState, p piece, dst []int) []int {
	word := p.text
	if word == "" {
		return dst
	}
	if p.raw {
		if m.byteCharIDs != nil {
			return m.tokenizeRaw(st, word, dst)
		}
		word = m.bl.mapBytes(word)
	}
	if m.splitAt != "" {
		for {
			// Cut in front of the first splitAt that does not start the
			// word and does not follow another splitAt.
			cut := -1
			for off := len(m.splitAt); off < len(word); {
				j := strings.Index(word[off:], m.splitAt)
				if j < 0 {
					break
				}
				j += off
				if !strings.HasSuffix(word[:j], m.splitAt) {
					cut = j
					break
				}
				off = j + len(m.splitAt)
			}
			if cut < 0 {
				break
			}
			dst = m.tokenizeWord(st, word[:cut], dst)
			word = word[cut:]
		}
	}
	return m.tokenizeWord(st, word, dst)
}

func (m *bpe) tokenizeWord(st *encodeState, word string, dst []int) []int {
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(dst, int(id))
		}
	}
	if ids, ok := st.cache[word]; ok {
		return appendIDs(dst, ids)
	}
	start := len(dst)
	dst = m.merge(st, m.symbols(st, word), dst)
	st.cache = remember(st.cache, word, dst[start:])
	return dst
}

// tokenizeRaw is tokenizeWord for a word given as the bytes that the
// byte-level characters stand for.
func (m *bpe) tokenizeRaw(st *encodeState, word string, dst []int) []int {
	if ids, ok := st.rawCache[word]; ok {
		return appendIDs(dst, ids)
	}
	start := len(dst)
	id, whole := int32(0), false
	if m.ignoreMerges {
		id, whole = m.vocab[m.bl.mapBytes(word)]
	}
	if whole {
		dst = append(dst, int(id))
	} else {
		syms := st.syms[:0]
		for i := 0; i < len(word); i++ {
			id := m.byteCharIDs[word[i]]
			if id < 0 { // the vocabulary lacks this byte's character
				st.syms = syms
				return m.tokenizeWord(st, m.bl.mapBytes(word), dst)
			}
			syms = append(syms, symbol{id: id, prev: int32(i) - 1, next: int32(i) + 1})
		}
		dst = m.merge(st, syms, dst)
	}
	st.rawCache = remember(st.rawCache, word, dst[start:])
	return dst
}

func appendIDs(dst []int, ids []int32) []int {
	for _, id := range ids {
		dst = append(dst, int(id))
	}
	return dst
}

// remember adds the ids of a word to a per-call cache, within bounds.
func remember(cache map[string][]int32, word string, ids []int) map[string][]int32 {
	if len(word) > maxCachedWord {
		return cache
	}
	if cache == nil {
		cache = make(map[string][]int32)
	}
	if len(cache) < maxCacheEntries {
		c := make([]int32, len(ids))
		for i, id := range ids {
			c[i] = int32(id)
		}
		cache[word] = c
	}
	return cache
}

// charID looks up the token of the character word[i:j].
func (m *bpe) charID(word string, i, j int) (int32, bool) {
	if m.runeIDs != nil {
		r := rune(word[i])
		if r >= utf8.RuneSelf {
			r, _ = utf8.DecodeRuneInString(word[i:j])
		}
		if int(r) < len(m.runeIDs) {
			id := m.runeIDs[r]
			return id, id >= 0
		}
		id, ok := m.vocab[word[i:j]]
		return id, ok
	}
	s := word[i:j]
	if m.prefix != "" && i > 0 {
		s = m.prefix + s
	}
	if m.suffix != "" && j == len(word) {
		s += m.suffix
	}
	id, ok := m.vocab[s]
	return id, ok
}

// symbols splits word into characters, with byte fallback and
// unknown-token handling, as the initial symbols for merge.
func (m *bpe) symbols(st *encodeState, word string) []symbol {
	syms := st.syms[:0]
	add := func(id int32) {
		n := int32(len(syms))
		syms = append(syms, symbol{id: id, prev: n - 1, next: n + 1})
	}
	unk := int32(-1) // a pending unknown-token symbol
	for i := 0; i < len(word); {
		_, n := decodeAt(word, i)
		if id, ok := m.charID(word, i, i+n); ok {
			if unk >= 0 {
				add(unk)
				unk = -1
			}
			add(id)
			i += n
			continue
		}
		if m.byteFallback && m.hasBytes(word, i, i+n) {
			// As in the reference, a pending unknown token is not
			// flushed before the bytes.
			for k := i; k < i+n; k++ {
				add(m.byteIDs[word[k]])
			}
			i += n
			continue
		}
		if m.unk >= 0 {
			if unk >= 0 && !m.fuseUnk {
				add(unk)
			}
			unk = m.unk
		}
		i += n
	}
	if unk >= 0 {
		add(unk)
	}
	return syms
}

// merge applies the merges to the linked symbols, lowest rank first (and
// leftmost among equal ranks), and appends the resulting ids.
func (m *bpe) merge(st *encodeState, syms []symbol, dst []int) []int {
	if len(syms) == 0 {
		st.syms = syms
		return dst
	}
	syms[len(syms)-1].next = -1

	h := st.heap[:0]
	for i := 0; i+1 < len(syms); i++ {
		if mg, ok := m.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
			h = append(h, mergeItem{rank: mg.rank, pos: int32(i), newID: mg.newID})
		}
	}
	heapify(h)
	for len(h) > 0 {
		top := h[0]
		h = heapPop(h)
		cur := &syms[top.pos]
		if cur.removed || cur.next < 0 {
			continue
		}
		right := syms[cur.next]
		// Skip stale entries: the pair has changed since it was queued.
		if mg, ok := m.merges[pairKey(cur.id, right.id)]; !ok || mg.newID != top.newID {
			continue
		}
		cur.id = top.newID
		syms[cur.next].removed = true
		cur.next = right.next
		if right.next >= 0 {
			syms[right.next].prev = top.pos
		}
		if cur.prev >= 0 {
			if mg, ok := m.merges[pairKey(syms[cur.prev].id, cur.id)]; ok {
				h = heapPush(h, mergeItem{rank: mg.rank, pos: cur.prev, newID: mg.newID})
			}
		}
		if cur.next >= 0 {
			if mg, ok := m.merges[pairKey(cur.id, syms[cur.next].id)]; ok {
				h = heapPush(h, mergeItem{rank: mg.rank, pos: top.pos, newID: mg.newID})
			}
		}
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		dst = append(dst, int(syms[i].id))
	}
	st.syms, st.heap = syms, h
	return dst
}

func (m *bpe) hasBytes(word string, i, j int) bool {
	for k := i; k < j; k++ {
		if m.byteIDs[word[k]] < 0 {
			return false
		}
	}
	return true
}

// A binary min-heap of merge candidates, ordered by rank then position.

func heapify(h []mergeItem) {
	for i := len(h)/2 - 1; i >= 0; i-- {
		siftDown(h, i)
	}
}

func heapPush(h []mergeItem, x mergeItem) []mergeItem {
	h = append(h, x)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

func heapPop(h []mergeItem) []mergeItem {
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	siftDown(h, 0)
	return h
}

func siftDown(h []mergeItem, i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
