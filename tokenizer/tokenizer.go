package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Tokenizer encodes text to token ids and decodes ids to text. It does not
// change after Load, so one Tokenizer may be used from several goroutines.
type Tokenizer struct {
	normalizer normalizer    // nil: none
	pre        preTokenizer  // nil: the whole piece is one word
	model      *bpe          // never nil
	post       postProcessor // nil: no special tokens are added
	decoder    decoder       // joinDec when tokenizer.json has none
	added      *addedVocab

	tokens   []string // by id; "" where present is false
	present  []bool   // by id: some token has this id
	special  []bool   // by id: the token is a special added token
	addedIDs map[string]int32

	bos, eos, unk, pad SpecialToken
}

// SpecialToken is a token named in tokenizer_config.json.
type SpecialToken struct {
	Text string // the token as written in tokenizer_config.json
	ID   int    // its id, or -1 when the vocabulary lacks it
}

// encodeState holds the scratch space of one Encode call.
type encodeState struct {
	spans    []span
	segs     []segment
	segsOut  []segment
	syms     []symbol
	heap     []mergeItem
	cache    map[string][]int32 // word -> ids
	rawCache map[string][]int32 // raw (not yet byte-mapped) word -> ids
}

// Encode returns the token ids of text. With addSpecialTokens the
// post-processor adds its special tokens (such as a leading <s>); special
// tokens written in the text are recognised either way. Truncation and
// padding settings in tokenizer.json are ignored.
//
// Text that is not valid UTF-8 is an error (an *InvalidUTF8Error).
func (t *Tokenizer) Encode(text string, addSpecialTokens bool) ([]int, error) {
	if !utf8.ValidString(text) {
		return nil, invalidUTF8(text)
	}
	st := &encodeState{}
	ids := make([]int, 0, len(text)/4+4)
	var parts, words []piece
	for _, p := range t.added.split(t.added.raw, piece{text: text, id: -1, first: true}, nil) {
		if p.id >= 0 {
			ids = append(ids, int(p.id))
			continue
		}
		if t.normalizer != nil {
			p.text = t.normalizer.normalize(p.text)
		}
		parts = t.added.split(t.added.norm, p, parts[:0])
		for _, q := range parts {
			switch {
			case q.id >= 0:
				ids = append(ids, int(q.id))
			case q.text == "":
			case t.pre == nil:
				ids = t.model.tokenize(st, q, ids)
			default:
				if words == nil {
					words = make([]piece, 0, len(q.text)/3+1)
				}
				words = t.pre.preTokenize(st, q, words[:0])
				for _, w := range words {
					ids = t.model.tokenize(st, w, ids)
				}
			}
		}
	}
	if addSpecialTokens && t.post != nil {
		ids = t.post.process(ids)
	}
	return ids, nil
}

// Decode returns the text of ids. With skipSpecialTokens the special added
// tokens (those marked "special" in tokenizer.json) are left out. An id
// outside the vocabulary is an error.
func (t *Tokenizer) Decode(ids []int, skipSpecialTokens bool) (string, error) {
	toks := make([]string, 0, len(ids))
	for i, id := range ids {
		if !t.valid(id) {
			return "", t.badID(id, i)
		}
		if skipSpecialTokens && t.special[id] {
			continue
		}
		toks = append(toks, t.tokens[id])
	}
	return strings.Join(t.decoder.decodeChain(toks), ""), nil
}

// badID describes an id outside the vocabulary, at position pos of the
// input (-1: a single id).
func (t *Tokenizer) badID(id, pos int) error {
	if pos < 0 {
		return fmt.Errorf("tokenizer: id %d is not in the vocabulary (size %d)", id, len(t.tokens))
	}
	return fmt.Errorf("tokenizer: id %d at position %d is not in the vocabulary (size %d)", id, pos, len(t.tokens))
}

func (t *Tokenizer) valid(id int) bool { return id >= 0 && id < len(t.tokens) && t.present[id] }

// VocabSize is one more than the largest token id, counting added tokens:
// the number of rows an embedding table needs.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// Token returns the vocabulary entry of id as stored in tokenizer.json
// (for example "Ġthe" or "▁the"), or "" when there is none.
func (t *Tokenizer) Token(id int) string {
	if !t.valid(id) {
		return ""
	}
	return t.tokens[id]
}

// ID returns the id of a vocabulary entry or added token.
func (t *Tokenizer) ID(token string) (int, bool) {
	if id, ok := t.addedIDs[token]; ok {
		return int(id), true
	}
	id, ok := t.model.vocab[token]
	return int(id), ok
}

// IsSpecial reports whether id is a special added token, one that Decode
// leaves out when asked to skip special tokens.
func (t *Tokenizer) IsSpecial(id int) bool { return t.valid(id) && t.special[id] }

// BOS returns the beginning-of-sequence token named in
// tokenizer_config.json. ok is false when none is named or the vocabulary
// lacks it.
func (t *Tokenizer) BOS() (tok SpecialToken, ok bool) { return t.bos, t.bos.ID >= 0 }

// EOS returns the end-of-sequence token named in tokenizer_config.json.
func (t *Tokenizer) EOS() (tok SpecialToken, ok bool) { return t.eos, t.eos.ID >= 0 }

// UNK returns the unknown token named in tokenizer_config.json.
func (t *Tokenizer) UNK() (tok SpecialToken, ok bool) { return t.unk, t.unk.ID >= 0 }

// PAD returns the padding token named in tokenizer_config.json.
func (t *Tokenizer) PAD() (tok SpecialToken, ok bool) { return t.pad, t.pad.ID >= 0 }
