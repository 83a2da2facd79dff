package tokenizer

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzByteLevelRoundTrip checks that byte-level BPE loses nothing: for any
// valid UTF-8 text, GPT-2's Decode(Encode(text)) is the text, and so is the
// StreamDecoder's output. (SmolLM2 would not do: its vocabulary lacks 21 of
// the 256 byte characters, such as that of 0x13, and the reference drops
// those bytes.)
func FuzzByteLevelRoundTrip(f *testing.F) {
	f.Add("Hello world")
	f.Add(" leading and trailing  \n\t\r\n ")
	f.Add("I'M 12345 ünïcödé 😀👍🏽 中文 \u00a0\u3000<|endoftext|><|im_start|>")
	f.Add("\x00\x01\u200d\ufeff\U0010ffff")
	gpt2 := loadFixture(f, "gpt2")
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) {
			return
		}
		ids, err := gpt2.Encode(text, false)
		require.NoError(t, err)
		got, err := gpt2.Decode(ids, false)
		require.NoError(t, err)
		require.Equal(t, text, got, "Decode(Encode(%q)) = %v", text, ids)
		require.Equal(t, text, streamDecode(t, gpt2, ids, false), "stream")
	})
}

// FuzzEncode feeds arbitrary bytes, including invalid UTF-8, to the four
// tokenizers: no panic; invalid input is reported at the right offset;
// valid input gives ids that decode without error, the same in one call
// and streamed; and the ▁ shortcut of the SentencePiece-style tokenizers
// changes nothing.
func FuzzEncode(f *testing.F) {
	f.Add("The quick brown fox.", true)
	f.Add("<s> Hello </s><|user|>\n<|end|>", false)
	f.Add("bad \xe2\x82 utf8 \xff", true)
	f.Add("  ▁▁ x\u3000y\n\n\ttab 𝄞 \ue000", true)
	var toks []*Tokenizer
	for _, name := range fixtureNames {
		toks = append(toks, loadFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, text string, special bool) {
		for _, tok := range toks {
			ids, err := tok.Encode(text, special)
			if !utf8.ValidString(text) {
				var ie *InvalidUTF8Error
				require.True(t, errors.As(err, &ie), "want InvalidUTF8Error, got %v", err)
				require.True(t, utf8.ValidString(text[:ie.Offset]), "offset %d", ie.Offset)
				r, n := utf8.DecodeRuneInString(text[ie.Offset:])
				require.True(t, r == utf8.RuneError && n == 1, "offset %d", ie.Offset)
				continue
			}
			require.NoError(t, err)
			for _, skip := range []bool{false, true} {
				got, err := tok.Decode(ids, skip)
				require.NoError(t, err)
				require.True(t, utf8.ValidString(got))
				require.Equal(t, got, streamDecode(t, tok, ids, skip), "stream, skip=%v", skip)
			}
			if tok.model.splitAt != "" {
				whole := *tok
				m := *tok.model
				m.splitAt = ""
				whole.model = &m
				want, err := whole.Encode(text, special)
				require.NoError(t, err)
				require.Equal(t, want, ids, "splitAt shortcut")
			}
		}
	})
}

// FuzzStreamDecode decodes arbitrary id sequences (two bytes per id) with
// every tokenizer, in one call and streamed, with and without special
// tokens, and requires the same text.
func FuzzStreamDecode(f *testing.F) {
	f.Add([]byte{0x01, 0x00, 0x17, 0x3c, 0xff, 0xff, 0xe5, 0x00})
	f.Add([]byte{0xe6, 0x00, 0x84, 0x00, 0xad, 0x00, 0x20, 0x00})
	var toks []*Tokenizer
	for _, name := range fixtureNames {
		toks = append(toks, loadFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tok := range toks {
			ids := make([]int, 0, len(data)/2)
			for i := 0; i+1 < len(data); i += 2 {
				id := int(binary.LittleEndian.Uint16(data[i:])) % tok.VocabSize()
				if tok.valid(id) {
					ids = append(ids, id)
				}
			}
			for _, skip := range []bool{false, true} {
				want, err := tok.Decode(ids, skip)
				require.NoError(t, err)
				require.Equal(t, want, streamDecode(t, tok, ids, skip), "ids %v skip %v", ids, skip)
			}
		}
	})
}

// FuzzDecoderChains builds a decoder chain and a token list from the input
// and compares the streaming decoders with the batch ones, feeding tokens
// whole and cut into chunks.
func FuzzDecoderChains(f *testing.F) {
	f.Add([]byte{0x12, 0x34, 0x56, 0x78, 0x9a})
	f.Add([]byte{0x01, 0x05, 0x08, 0x09, 0x0a, 0x0b, 0x02})
	parts := chainParts(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		r := rand.New(rand.NewPCG(uint64(len(data)), uint64(data[0])))
		var chain seqDec
		for k := int(data[0]%4) + 1; k > 0; k-- {
			chain.items = append(chain.items, parts[r.IntN(len(parts))])
		}
		var toks []string
		for _, b := range data[1:] {
			toks = append(toks, chainVocab[int(b)%len(chainVocab)])
		}
		want := strings.Join(chain.decodeChain(toks), "")
		require.Equal(t, want, streamAll(chain, toks, nil), "chain %#v tokens %q", chain, toks)
		require.Equal(t, want, streamAll(chain, toks, r), "chunked: chain %#v tokens %q", chain, toks)
	})
}
