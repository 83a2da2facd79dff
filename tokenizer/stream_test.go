package tokenizer

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// continueDecode decodes ids after prompt with a continuation decoder,
// one id at a time.
func continueDecode(tb testing.TB, tok *Tokenizer, prompt, ids []int, skip bool) string {
	tb.Helper()
	d, err := tok.NewContinuationDecoder(prompt, skip)
	require.NoError(tb, err)
	var b strings.Builder
	for _, id := range ids {
		s, err := d.Add(id)
		require.NoError(tb, err)
		b.WriteString(s)
	}
	b.WriteString(d.Flush())
	return b.String()
}

// TestContinuationDecoderLeadingSpace: the continuation of a prompt keeps
// the leading space of its first token, which decoding the new ids alone
// strips in SentencePiece-style tokenizers ("▁named" → "named"); a model's
// printed text is the exact continuation of its prompt.
func TestContinuationDecoderLeadingSpace(t *testing.T) {
	for _, tc := range []struct {
		tokenizer      string
		prompt, next   string
		alone, wantCon string // Decode(next ids), and the continuation
	}{
		// SentencePiece style, the Strip decoder removes one leading space.
		{"stories260K", "there was a big dog", " named Max", "named Max", " named Max"},
		{"tinyllama-1.1b-chat-v1.0", "Once upon a time", ", there was", ", there was", ", there was"},
		{"tinyllama-1.1b-chat-v1.0", "Once upon a time", " there was", "there was", " there was"},
		{"phi-3.5-mini-instruct", "Hello", " world", "world", " world"},
		// Byte-level BPE keeps spaces either way.
		{"gpt2", "Hello", " world", " world", " world"},
		{"smollm2-135m-instruct", "Hello", " world", " world", " world"},
	} {
		t.Run(tc.tokenizer+"/"+tc.next, func(t *testing.T) {
			tok := loadFixture(t, tc.tokenizer)
			all, err := tok.Encode(tc.prompt+tc.next, true)
			require.NoError(t, err)
			p, err := tok.Encode(tc.prompt, true)
			require.NoError(t, err)
			require.Equal(t, p, all[:len(p)], "the prompt's ids are a prefix of the whole text's")
			next := all[len(p):]
			for _, skip := range []bool{true, false} {
				alone, err := tok.Decode(next, skip)
				require.NoError(t, err)
				assert.Equal(t, tc.alone, alone, "Decode of the new ids alone")
				assert.Equal(t, tc.wantCon, continueDecode(t, tok, p, next, skip), "skip=%v", skip)
			}
		})
	}
}

// TestContinuationDecoderCases: over the reference cases of several
// tokenizers (SentencePiece with the prepended ▁, byte fallback,
// byte-level GPT-2 style), split the ids at a few places: Decode of the
// prompt followed by the continuation equals Decode of all the ids, with
// and without special tokens, wherever Decode of the prompt is a prefix of
// the whole (a split inside a UTF-8 sequence decodes the prompt with
// U+FFFD, which the whole does not have).
func TestContinuationDecoderCases(t *testing.T) {
	for _, name := range append([]string{"stories260K", "gemma-2b-it"}, fixtureNames...) {
		t.Run(name, func(t *testing.T) {
			tok := loadFixture(t, name)
			checked := 0
			for _, c := range readCases(t, name) {
				if len(c.IDs) < 2 || len(c.IDs) > 400 {
					continue
				}
				for _, skip := range []bool{false, true} {
					want, err := tok.Decode(c.IDs, skip)
					require.NoError(t, err)
					for _, k := range []int{1, len(c.IDs) / 2, len(c.IDs) - 1} {
						prompt, err := tok.Decode(c.IDs[:k], skip)
						require.NoError(t, err)
						if !strings.HasPrefix(want, prompt) {
							continue
						}
						got := continueDecode(t, tok, c.IDs[:k], c.IDs[k:], skip)
						if !assert.Equal(t, want, prompt+got, "%q split at %d, skip=%v", c.Text, k, skip) {
							return
						}
						checked++
					}
				}
			}
			require.Greater(t, checked, 100)
		})
	}
}
