package tokenizer

import "unicode/utf8"

// StreamDecoder decodes ids one at a time, as a model generates them, and
// returns the text that is final at each step. Text is held back while a
// later token could still change it: an unfinished UTF-8 sequence (byte
// fallback tokens such as <0xE2>, or byte-level BPE bytes), a run of
// characters a Strip decoder may remove, a possible start of a Replace
// pattern. Everything Add returns, followed by what Flush returns, equals
// Decode of all the ids.
//
// A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t    *Tokenizer
	skip bool
	head stage
	out  *sink
	// prefix is text the decoder will still emit that belongs to the
	// prompt of NewContinuationDecoder: it is dropped, not returned.
	prefix string
}

// NewStreamDecoder returns a StreamDecoder for t. With skipSpecialTokens it
// leaves out special tokens, like Decode.
func (t *Tokenizer) NewStreamDecoder(skipSpecialTokens bool) *StreamDecoder {
	d := &StreamDecoder{t: t, skip: skipSpecialTokens}
	d.reset()
	return d
}

// NewContinuationDecoder returns a StreamDecoder for the ids that follow
// prompt: what Add and Flush return is the continuation, so that
// Decode(prompt) followed by it equals Decode(prompt + the added ids).
// Decoding the new ids on their own would differ at the start: a
// SentencePiece-style decoder strips the leading space of the first token
// of a sequence ("▁named" alone decodes to "named"), and a byte sequence
// may begin in the prompt.
//
// When Decode(prompt) is not a prefix of the whole decode (a decoder that
// rewrites text across the boundary), the continuation starts where the
// two first differ.
func (t *Tokenizer) NewContinuationDecoder(prompt []int, skipSpecialTokens bool) (*StreamDecoder, error) {
	whole, err := t.Decode(prompt, skipSpecialTokens)
	if err != nil {
		return nil, err
	}
	d := t.NewStreamDecoder(skipSpecialTokens)
	emitted := 0
	for _, id := range prompt {
		s, err := d.Add(id)
		if err != nil {
			return nil, err
		}
		emitted += len(s)
	}
	if emitted <= len(whole) {
		d.prefix = whole[emitted:]
	}
	return d, nil
}

func (d *StreamDecoder) reset() {
	d.out = &sink{}
	d.head = d.t.decoder.newStage(d.out)
	d.prefix = ""
}

// Add decodes the next id and returns the text that became final, often
// "". An id outside the vocabulary is an error and changes nothing.
func (d *StreamDecoder) Add(id int) (string, error) {
	if !d.t.valid(id) {
		return "", d.t.badID(id, -1)
	}
	if d.skip && d.t.special[id] {
		return "", nil
	}
	d.head.push(d.t.tokens[id], true)
	return d.take(), nil
}

// Flush ends the sequence and returns the rest of the text. The decoder is
// then ready for a new sequence (with no prompt).
func (d *StreamDecoder) Flush() string {
	d.head.flush()
	s := d.take()
	d.reset()
	return s
}

func (d *StreamDecoder) take() string {
	s := string(d.out.buf)
	d.out.buf = d.out.buf[:0]
	if d.prefix == "" {
		return s
	}
	// Drop what is still the prompt's text; from the first difference on,
	// everything is the continuation's.
	n := min(len(s), len(d.prefix))
	i := 0
	for i < n && s[i] == d.prefix[i] {
		i++
	}
	if i == n { // all of s, or all of the prefix, matched
		d.prefix = d.prefix[i:]
		return s[i:]
	}
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	d.prefix = ""
	return s[i:]
}
