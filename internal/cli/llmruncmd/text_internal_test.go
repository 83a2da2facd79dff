package llmruncmd

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/tokenizer"
)

// writes records every write, to check what a stream prints at each step.
type writes []string

func (w *writes) Write(p []byte) (int, error) {
	*w = append(*w, string(p))
	return len(p), nil
}

func streamAll(t *testing.T, tm *textModel, ids, eos []int, stops []string) (string, writes, bool) {
	t.Helper()
	return streamAfter(t, tm, nil, ids, eos, stops)
}

// streamAfter streams ids generated after prompt.
func streamAfter(t *testing.T, tm *textModel, prompt, ids, eos []int, stops []string) (string, writes, bool) {
	t.Helper()
	var w writes
	s, err := tm.newStream(prompt, eos, stops, &w, nil)
	require.NoError(t, err)
	stopped := false
	for _, id := range ids {
		stop, err := s.add(id)
		require.NoError(t, err)
		if stop {
			stopped = true
			break
		}
	}
	require.NoError(t, s.finish())
	assert.Equal(t, strings.Join(w, ""), s.text.String())
	return s.text.String(), w, stopped
}

func TestTextStream(t *testing.T) {
	for _, name := range []string{"phi-3.5-mini-instruct", "smollm2-135m-instruct", "gpt2"} {
		t.Run(name, func(t *testing.T) {
			tok, err := tokenizer.Load(testshared.Path(t, "tokenizers", name))
			require.NoError(t, err)
			tm := &textModel{tok: tok}
			text := "héllo wörld 😀👩‍👩‍👧 日本語 done. Stop here, STOP there"
			ids, err := tok.Encode(text, false)
			require.NoError(t, err)
			want, err := tok.Decode(ids, false)
			require.NoError(t, err)

			got, w, stopped := streamAll(t, tm, ids, nil, nil)
			assert.False(t, stopped)
			assert.Equal(t, want, got, "streamed text equals Decode")
			for _, piece := range w {
				assert.True(t, utf8.ValidString(piece), "a write splits a UTF-8 sequence: %q", piece)
			}

			// A stop string: nothing from it on is printed, whatever the
			// token boundaries.
			for _, stop := range []string{"Stop", "😀", "語 d", "ö", "e, ST"} {
				got, _, stopped := streamAll(t, tm, ids, nil, []string{stop, "never there"})
				assert.True(t, stopped, stop)
				assert.Equal(t, want[:strings.Index(want, stop)], got, "stop %q", stop)
			}
			// A stop string that only completes at the end of the text.
			got, _, _ = streamAll(t, tm, ids, nil, []string{"there"})
			assert.Equal(t, strings.TrimSuffix(want, "there"), got)
			// A partial match at the end is printed after all.
			got, _, stopped = streamAll(t, tm, ids, nil, []string{"there!"})
			assert.False(t, stopped)
			assert.Equal(t, want, got)

			// EOS ids end nothing by themselves (Generate does) and print
			// nothing.
			eos := ids[3]
			got, _, _ = streamAll(t, tm, ids[:4], []int{eos}, nil)
			d, err := tok.Decode(ids[:3], false)
			require.NoError(t, err)
			assert.Equal(t, d, got)
		})
	}
}

// TestTextStreamContinuesThePrompt: the printed text is the exact
// continuation of the prompt, prompt + text == decode(prompt ids + new
// ids), also where the first new token starts with a space that a
// SentencePiece decoder strips at the start of a sequence (the text used
// to lose it: "…a big dog" + "named Max"); special tokens are left out as
// batch_decode(..., skip_special_tokens=True) does.
func TestTextStreamContinuesThePrompt(t *testing.T) {
	for _, tc := range []struct{ tokenizer, special string }{
		{"stories260K", "</s>"},                 // SentencePiece, prepended ▁, byte fallback
		{"tinyllama-1.1b-chat-v1.0", "</s>"},    // Llama 2 vocabulary
		{"gemma-2b-it", "<end_of_turn>"},        // SentencePiece without the ▁ prefix
		{"gpt2", "<|endoftext|>"},               // byte-level BPE
		{"smollm2-135m-instruct", "<|im_end|>"}, // byte-level BPE, special added tokens
	} {
		t.Run(tc.tokenizer, func(t *testing.T) {
			tok, err := tokenizer.Load(testshared.Path(t, "tokenizers", tc.tokenizer))
			require.NoError(t, err)
			tm := &textModel{tok: tok}
			special, ok := tok.ID(tc.special)
			require.True(t, ok, tc.special)
			require.True(t, tok.IsSpecial(special))
			prompt, err := tok.Encode("there was a big dog", true)
			require.NoError(t, err)
			for _, next := range []string{" named Max. Ü 😀", ", and\n a cat", " "} {
				all, err := tok.Encode("there was a big dog"+next, true)
				require.NoError(t, err)
				require.Equal(t, prompt, all[:len(prompt)])
				gen := append(slices.Clone(all[len(prompt):]), special)
				gen = append(gen, all[len(prompt):]...)
				want, err := tok.Decode(append(slices.Clone(prompt), gen...), true)
				require.NoError(t, err)
				head, err := tok.Decode(prompt, true)
				require.NoError(t, err)
				require.Equal(t, "there was a big dog", head)
				got, _, _ := streamAfter(t, tm, prompt, gen, nil, nil)
				assert.Equal(t, want, head+got, "next %q", next)
				assert.Equal(t, next+next, got, "next %q: the special token is not printed", next)
			}
		})
	}
}

func TestCheckUTF8(t *testing.T) {
	require.NoError(t, checkUTF8("--prompt", "héllo"))
	err := checkUTF8("--prompt", "ab\xffcd")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--prompt is not valid UTF-8")
	assert.Contains(t, err.Error(), "byte offset 2")
	err = checkUTF8("--prompt", "hé\xc3")
	assert.Contains(t, err.Error(), "byte offset 3")
}

func TestStopEscapes(t *testing.T) {
	var f stopsFlag
	for _, s := range []string{`\n\n`, `a\tb`, `\\n`, `x\ry`, "plain"} {
		require.NoError(t, f.Set(s))
	}
	assert.Equal(t, stopsFlag{"\n\n", "a\tb", `\n`, "x\ry", "plain"}, f)
	require.Error(t, f.Set(""))
}

// TestStopWording: the summary line says why a generation stopped.
func TestStopWording(t *testing.T) {
	eos := &runtime.Generation{IDs: []int{5, 2}, StopReason: "eos"}
	str := &runtime.Generation{IDs: []int{5, 6}, StopReason: "stop"}
	length := &runtime.Generation{IDs: []int{5, 6, 7}, StopReason: "length"}
	for _, tc := range []struct {
		res        *runtime.Generation
		stream     *textStream
		contextCap bool
		reason     string
		want       string
	}{
		{eos, nil, false, stopEOS, "eos id 2"},
		{eos, nil, true, stopEOS, "eos id 2"},
		{str, &textStream{stop: "\n"}, false, stopString, `stop string "\n"`},
		{length, nil, false, stopLength, "max tokens (3)"},
		{length, nil, true, stopContextFull, "context full (512 positions)"},
	} {
		s := describeStop(tc.res, tc.stream, tc.contextCap, 512)
		assert.Equal(t, tc.reason, s.Reason, tc.want)
		assert.Equal(t, tc.want, s.String())
	}
}

// TestStopIDs: the model's EOS ids (a list where given), the tokenizer's
// EOS, and with a chat template the turn-ending token, also when
// generation_config.json names EOS ids without it (Gemma-it).
func TestStopIDs(t *testing.T) {
	tok, err := tokenizer.Load(testshared.Path(t, "tokenizers", "gemma-2b-it"))
	require.NoError(t, err)
	tm := &textModel{tok: tok}
	eot, ok := tok.ID("<end_of_turn>")
	require.True(t, ok)
	eos, ok := tok.EOS()
	require.True(t, ok)
	bos, ok := tok.BOS()
	require.True(t, ok)
	gen := &hf.GenerationConfig{EOS: []int{1}}
	for _, tc := range []struct {
		name string
		cfg  *hf.Config
		chat bool
		want []int
	}{
		{"config list, the tokenizer's BOS", &hf.Config{EOS: []int{1, 5}}, false, []int{1, 5, bos.ID}},
		{"tokenizer's EOS added", &hf.Config{EOS: []int{7}}, false, []int{7, eos.ID, bos.ID}},
		{"config's BOS", &hf.Config{EOS: []int{7}, BOS: []int{9}}, false, []int{7, 9, eos.ID, bos.ID}},
		{"chat adds the turn end", &hf.Config{EOS: []int{1}, Generation: gen}, true, []int{1, bos.ID, eot}},
	} {
		assert.Equal(t, tc.want, tm.stopIDs(tc.cfg, tc.chat), tc.name)
	}
	assert.Equal(t, []int{3, 4, 1}, (*textModel)(nil).stopIDs(&hf.Config{EOS: []int{3, 4}, BOS: []int{1}}, false), "--ids: no tokenizer")
}
