package tokenizer

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
}

// NewStreamDecoder returns a StreamDecoder for t. With skipSpecialTokens it
// leaves out special tokens, like Decode.
func (t *Tokenizer) NewStreamDecoder(skipSpecialTokens bool) *StreamDecoder {
	d := &StreamDecoder{t: t, skip: skipSpecialTokens}
	d.reset()
	return d
}

func (d *StreamDecoder) reset() {
	d.out = &sink{}
	d.head = d.t.decoder.newStage(d.out)
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
// then ready for a new sequence.
func (d *StreamDecoder) Flush() string {
	d.head.flush()
	s := d.take()
	d.reset()
	return s
}

func (d *StreamDecoder) take() string {
	s := string(d.out.buf)
	d.out.buf = d.out.buf[:0]
	return s
}
