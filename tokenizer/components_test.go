package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/text/unicode/norm"
)

func texts(ps []piece) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.text)
	}
	return out
}

func TestPreTokenizers(t *testing.T) {
	bl := newByteLevelTables()
	bytePre := byteLevelPre{addPrefixSpace: true, useRegex: true, bl: bl}
	tests := []struct {
		name string
		pre  preTokenizer
		in   string
		want []string
	}{
		{"Metaspace", metaspacePre{repl: "▁", scheme: prependAlways, split: true}, "Hey   friend!",
			[]string{"▁Hey", "▁", "▁", "▁friend!"}},
		{"Metaspace no split", metaspacePre{repl: "▁", scheme: prependAlways}, "Hey friend", []string{"▁Hey▁friend"}},
		{"Metaspace never", metaspacePre{repl: "▁", scheme: prependNever, split: true}, "Hey friend", []string{"Hey", "▁friend"}},
		{"Metaspace first", metaspacePre{repl: "▁", scheme: prependFirst, split: true}, "Hey", []string{"▁Hey"}},
		{"Whitespace", whitespacePre{}, "Hey man!\t How's it, çok_iyi?", []string{"Hey", "man", "!", "How", "'", "s", "it", ",", "çok_iyi", "?"}},
		{"WhitespaceSplit", splitPre{m: runeMatcher{isWhitespace}, behavior: splitRemoved}, "Hey  man!\u3000x", []string{"Hey", "man!", "x"}},
		{"Digits individual", splitPre{m: runeMatcher{isNumeric}, behavior: splitIsolated}, "Call 123 please", []string{"Call ", "1", "2", "3", " please"}},
		{"Digits", splitPre{m: runeMatcher{isNumeric}, behavior: splitContiguous}, "Call 123 please", []string{"Call ", "123", " please"}},
		{"BertPreTokenizer", seqPre{bl: bl, items: []preTokenizer{
			splitPre{m: runeMatcher{isWhitespace}, behavior: splitRemoved},
			splitPre{m: runeMatcher{isPunctuation}, behavior: splitIsolated},
		}}, "Hey friend!     How are you?!?", []string{"Hey", "friend", "!", "How", "are", "you", "?", "!", "?"}},
		{"ByteLevel", bytePre, "Hello my friend,\nok", []string{"ĠHello", "Ġmy", "Ġfriend", ",", "Ċ", "ok"}},
		// A step after ByteLevel sees the mapped text.
		{"ByteLevel then Split", seqPre{bl: bl, items: []preTokenizer{bytePre, splitPre{m: literalMatcher{"Ġ"}, behavior: splitMergedWithPrevious}}},
			"a b", []string{"Ġ", "a", "Ġ", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.pre.preTokenize(&encodeState{}, piece{text: tt.in, id: -1, first: true}, nil)
			var s []string
			for _, p := range got {
				if p.raw { // ByteLevel leaves the byte mapping to the model
					p.text = bl.mapBytes(p.text)
				}
				s = append(s, p.text)
			}
			assert.Equal(t, tt.want, s)
		})
	}
}

func TestMetaspacePrependFirst(t *testing.T) {
	// As in the reference: with prepend_scheme "first" only the piece at
	// the start of the input gets the ▁.
	m := metaspacePre{repl: "▁", scheme: prependFirst}
	st := &encodeState{}
	assert.Equal(t, []string{"▁Hey▁"}, texts(m.preTokenize(st, piece{text: "Hey ", first: true}, nil)))
	assert.Equal(t, []string{"how"}, texts(m.preTokenize(st, piece{text: "how", first: false}, nil)))
	assert.Equal(t, []string{"▁you"}, texts(m.preTokenize(st, piece{text: " you", first: false}, nil)))
}

func TestNormalizers(t *testing.T) {
	re, err := compileRegex(`\s+`)
	require.NoError(t, err)
	tests := []struct {
		name string
		n    normalizer
		in   string
		want string
	}{
		{"Prepend", prependNorm{"▁"}, "Hey", "▁Hey"},
		{"Prepend empty", prependNorm{"▁"}, "", ""},
		{"Replace string", replaceNorm{literalMatcher{" "}, "▁"}, " a  b ", "▁a▁▁b▁"},
		{"Replace regex", replaceNorm{re, " "}, "a \t\u3000b\n", "a b "},
		{"Replace content is literal", replaceNorm{literalMatcher{"x"}, "$1"}, "axb", "a$1b"},
		{"NFC", unicodeNorm{norm.NFC}, "e\u0301", "é"},
		{"NFD", unicodeNorm{norm.NFD}, "é", "e\u0301"},
		{"NFKC", unicodeNorm{norm.NFKC}, "ﬁ ＦＵＬＬ １２３ ℌ", "fi FULL 123 H"},
		{"NFKD", unicodeNorm{norm.NFKD}, "ﬁé", "fie\u0301"},
		{"Lowercase", lowercaseNorm{}, "HELLO İstanbul ΣΑΣ Ǆ", "hello i\u0307stanbul σασ ǆ"},
		{"Strip", stripNorm{true, true}, " \t a b \u3000", "a b"},
		{"Strip left", stripNorm{left: true}, "  a ", "a "},
		{"StripAccents", seqNorm{[]normalizer{unicodeNorm{norm.NFD}, stripAccentsNorm{}}}, "çok güzel", "cok guzel"},
		{"Sequence", seqNorm{[]normalizer{prependNorm{"▁"}, replaceNorm{literalMatcher{" "}, "▁"}}}, "a b", "▁a▁b"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.n.normalize(tt.in), tt.name)
	}
}

// extract runs the added-token split the way Encode does and returns the
// pieces with their ids (-1 for text).
func extract(a *addedVocab, n normalizer, text string) [][2]any {
	var out [][2]any
	for _, p := range a.split(a.raw, piece{text: text, id: -1, first: true}, nil) {
		if p.id >= 0 {
			out = append(out, [2]any{p.text, int(p.id)})
			continue
		}
		if n != nil {
			p.text = n.normalize(p.text)
		}
		for _, q := range a.split(a.norm, p, nil) {
			out = append(out, [2]any{q.text, int(q.id)})
		}
	}
	return out
}

func TestAddedTokens(t *testing.T) {
	// The cases of the reference's added_vocabulary tests.
	lower := lowercaseNorm{}
	a := newAddedVocab([]addedToken{
		{id: 0, content: "my", lstrip: true, rstrip: true, normalized: true},
		{id: 1, content: "name", normalized: true},
		{id: 2, content: "ony", singleWord: true, normalized: true},
		{id: 3, content: "[CLS]", special: true},
		{id: 4, content: "[SEP]", special: true},
	}, lower)
	assert.Equal(t, [][2]any{
		{"[CLS]", 3}, {" my ", 0}, {"name", 1}, {" is anthony ", -1}, {"[SEP]", 4},
	}, extract(a, lower, "[CLS] My name is Anthony [SEP]"))

	mask := newAddedVocab([]addedToken{{id: 0, content: "<mask>", singleWord: true, normalized: true}}, lower)
	assert.Equal(t, [][2]any{
		{"<mask>", 0}, {" my name ", -1}, {"<mask>", 0}, {" a<mask> <mask>ony ", -1}, {"<mask>", 0},
	}, extract(mask, lower, "<mask> My name <mask> A<mask> <mask>ony <mask>"))
	// Punctuation is not a word character; a combining mark is.
	assert.Equal(t, [][2]any{
		{"<mask>", 0}, {", ", -1}, {"<mask>", 0}, {"- ◌̰<mask>", -1},
	}, extract(mask, lower, "<mask>, <mask>- ◌̰<mask>"))

	strip := newAddedVocab([]addedToken{{id: 0, content: "<mask>", lstrip: true, rstrip: true, singleWord: true, normalized: true}}, lower)
	assert.Equal(t, [][2]any{
		{"hi", -1}, {" <mask> ", 0}, {"there", -1}, {"\t<mask>\t", 0}, {"<mask>\u2000", 0},
	}, extract(strip, lower, "Hi <mask> there\t<mask>\t<mask>\u2000"))

	// The longest token wins at the leftmost position.
	long := newAddedVocab([]addedToken{{id: 0, content: "<a>"}, {id: 1, content: "<a><b>"}, {id: 2, content: "b>"}}, nil)
	assert.Equal(t, [][2]any{{"x", -1}, {"<a><b>", 1}, {"<a>", 0}, {"b>", 2}}, extract(long, nil, "x<a><b><a>b>"))
}

func TestDecoders(t *testing.T) {
	bl := newByteLevelTables()
	tests := []struct {
		name string
		d    decoder
		in   []string
		want []string
	}{
		{"Strip start", stripDec{'H', 1, 0}, []string{"Hey", " friend!", "HHH"}, []string{"ey", " friend!", "HH"}},
		{"Strip stop", stripDec{'y', 0, 1}, []string{"Hey", " friend!"}, []string{"He", " friend!"}},
		{"Strip overlap", stripDec{' ', 2, 3}, []string{"  ", "   ", "    a ", " "}, []string{"", "", "  a", ""}},
		{"ByteFallback", byteFallbackDec{}, []string{"Hey", "friend!"}, []string{"Hey", "friend!"}},
		{"ByteFallback byte", byteFallbackDec{}, []string{"<0x61>"}, []string{"a"}},
		{"ByteFallback incomplete", byteFallbackDec{}, []string{"<0xE5>", "<0x8f>"}, []string{"\uFFFD", "\uFFFD"}},
		{"ByteFallback complete", byteFallbackDec{}, []string{"<0xE5>", "<0x8f>", "<0xab>", "a"}, []string{"叫", "a"}},
		{"ByteFallback broken run", byteFallbackDec{}, []string{"<0xE5>", "<0x8f>", "a"}, []string{"\uFFFD", "\uFFFD", "a"}},
		{"Metaspace", metaspaceDec{repl: '▁'}, []string{"▁Hey", "▁friend!", "▁▁a"}, []string{"Hey", " friend!", "  a"}},
		{"Metaspace never", metaspaceDec{repl: '▁', never: true}, []string{"▁Hey", "▁friend!"}, []string{" Hey", " friend!"}},
		{"Metaspace first token", metaspaceDec{repl: '▁'}, []string{"▁a▁b"}, []string{"ab"}},
		{"Replace", replaceDec{replaceNorm{literalMatcher{"▁"}, " "}}, []string{"▁a", "b▁"}, []string{" a", "b "}},
		{"Fuse", fuseDec{}, []string{"a", "b", "c"}, []string{"abc"}},
		{"Fuse nothing", fuseDec{}, nil, []string{""}},
		{"BPEDecoder", bpeSuffixDec{"</w>"}, []string{"My</w>", "na", "me</w>"}, []string{"My ", "na", "me"}},
		{"ByteLevel", byteLevelDec{bl}, []string{"Hello", "Ġmy", "Ġfriend", ","}, []string{"Hello my friend,"}},
		{"ByteLevel foreign token", byteLevelDec{bl}, []string{"a", "▁b"}, []string{"a▁b"}},
		// The bytes E2 82 are the start of "€": one U+FFFD for both (a
		// maximal subpart), one for the lone FF.
		{"ByteLevel lossy", byteLevelDec{bl}, []string{"âĤ", "ÿ", "a"}, []string{"\uFFFD\uFFFDa"}},
		{"join", joinDec{}, []string{"a", "b"}, []string{"a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.d.decodeChain(tt.in))
			assert.Equal(t, strings.Join(tt.want, ""), streamAll(tt.d, tt.in, nil))
		})
	}
}

// streamAll runs tokens through the streaming form of d, one at a time or,
// when cut is set, each cut into chunks.
func streamAll(d decoder, tokens []string, r *rand.Rand) string {
	out := &sink{}
	s := d.newStage(out)
	for _, tok := range tokens {
		for r != nil && tok != "" && r.IntN(2) == 0 {
			n := 1 + r.IntN(len(tok))
			for n < len(tok) && !utfStart(tok[n]) {
				n++
			}
			s.push(tok[:n], false)
			tok = tok[n:]
		}
		s.push(tok, true)
	}
	s.flush()
	return string(out.buf)
}

func utfStart(b byte) bool { return b&0xC0 != 0x80 }

// chainParts are decoders to build random chains from, and chainVocab
// tokens to feed them: byte tokens, metaspace, byte-level characters,
// pattern and suffix pieces.
func chainParts(tb testing.TB) []decoder {
	bl := newByteLevelTables()
	re, err := compileRegex(`a+`)
	require.NoError(tb, err)
	return []decoder{
		byteLevelDec{bl}, byteFallbackDec{}, fuseDec{}, stripDec{' ', 1, 0}, stripDec{'▁', 2, 2},
		stripDec{'a', 0, 1}, metaspaceDec{repl: '▁'}, metaspaceDec{repl: '▁', never: true},
		replaceDec{replaceNorm{literalMatcher{"▁"}, " "}}, replaceDec{replaceNorm{literalMatcher{"aba"}, "X"}},
		replaceDec{replaceNorm{re, "-"}}, bpeSuffixDec{"</w>"}, joinDec{},
	}
}

var chainVocab = []string{"a", "b", "ab", "aba", " ", "▁", "▁a", "▁▁", "<0xE2>", "<0x82>", "<0xAC>", "<0x41>", "<0xFF>",
	"Ġ", "âĤ", "¬", "ÿ", "</w>", "a</w>", "é", "€", "Ċ", "<s>", ""}

// TestStreamMatchesBatch runs random decoder chains over random tokens,
// whole and in chunks, and compares the stream with the batch decode.
func TestStreamMatchesBatch(t *testing.T) {
	parts := chainParts(t)
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 3000; i++ {
		var chain seqDec
		for k := r.IntN(4) + 1; k > 0; k-- {
			chain.items = append(chain.items, parts[r.IntN(len(parts))])
		}
		var toks []string
		for k := r.IntN(8); k > 0; k-- {
			toks = append(toks, chainVocab[r.IntN(len(chainVocab))])
		}
		want := strings.Join(chain.decodeChain(toks), "")
		require.Equal(t, want, streamAll(chain, toks, nil), "chain %#v tokens %q", chain, toks)
		require.Equal(t, want, streamAll(chain, toks, r), "chunked: chain %#v tokens %q", chain, toks)
	}
}

// synthetic builds a tokenizer.json from the given parts.
func synthetic(t *testing.T, parts map[string]any) []byte {
	t.Helper()
	f := map[string]any{"version": "1.0", "added_tokens": []any{}}
	for k, v := range parts {
		f[k] = v
	}
	data, err := json.Marshal(f)
	require.NoError(t, err)
	return data
}

func TestSyntheticBPE(t *testing.T) {
	vocab := map[string]int{"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "abc": 5, "bc": 6, "<0xC3>": 7, "<0xA9>": 8, " ": 9}
	tests := []struct {
		name  string
		model map[string]any
		in    string
		want  []int
	}{
		{"string merges", map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"a b", "ab c"}}, "abcab", []int{5, 4}},
		{"pair merges", map[string]any{"type": "BPE", "vocab": vocab, "merges": [][]string{{"a", "b"}, {"ab", "c"}}}, "abc", []int{5}},
		// Lower rank first: b c (rank 0) beats a b (rank 1).
		{"rank order", map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"b c", "a b"}}, "abc", []int{1, 6}},
		{"no type", map[string]any{"vocab": vocab, "merges": []string{"a b"}}, "ab", []int{4}},
		{"unk", map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}, "unk_token": "<unk>"}, "axxb", []int{1, 0, 0, 2}},
		{"fuse unk", map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}, "unk_token": "<unk>", "fuse_unk": true}, "axxbx", []int{1, 0, 2, 0}},
		{"dropped unknown", map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}}, "axb", []int{1, 2}},
		{"byte fallback", map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}, "byte_fallback": true, "unk_token": "<unk>"}, "aéx", []int{1, 7, 8, 0}},
		{"ignore merges", map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"b c"}, "ignore_merges": true}, "abc", []int{5}},
		{"merges apply without ignore", map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"b c"}}, "abc", []int{1, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := Parse(synthetic(t, map[string]any{"model": tt.model}), nil)
			require.NoError(t, err)
			ids, err := tok.Encode(tt.in, true)
			require.NoError(t, err)
			assert.Equal(t, tt.want, ids)
		})
	}

	// continuing_subword_prefix and end_of_word_suffix.
	model := map[string]any{"type": "BPE", "continuing_subword_prefix": "##", "end_of_word_suffix": "</w>",
		"vocab":  map[string]int{"a": 0, "##b": 1, "##c</w>": 2, "a##b": 3, "ab": 4, "c</w>": 5},
		"merges": []string{"a ##b"}}
	tok, err := Parse(synthetic(t, map[string]any{"model": model,
		"pre_tokenizer": map[string]any{"type": "WhitespaceSplit"},
		"decoder":       map[string]any{"type": "BPEDecoder", "suffix": "</w>"}}), nil)
	require.NoError(t, err)
	ids, err := tok.Encode("abc c", false)
	require.NoError(t, err)
	assert.Equal(t, []int{4, 2, 5}, ids)
}

func TestSyntheticPipeline(t *testing.T) {
	vocab := map[string]int{"[CLS]": 0, "[SEP]": 1, "h": 2, "i": 3, "hi": 4, "!": 5, "<x>": 6, "ı": 7}
	base := map[string]any{
		"model":      map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"h i"}},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "Lowercase"}, map[string]any{"type": "Strip", "strip_left": true, "strip_right": true}}},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "WhitespaceSplit"}, map[string]any{"type": "Punctuation", "behavior": "Isolated"}}},
		"added_tokens": []any{
			map[string]any{"id": 6, "content": "<X>", "special": false, "normalized": true},
			map[string]any{"id": 0, "content": "[CLS]", "special": true, "normalized": false},
			map[string]any{"id": 1, "content": "[SEP]", "special": true, "normalized": false},
		},
	}
	for _, post := range []map[string]any{
		{"type": "BertProcessing", "sep": []any{"[SEP]", 1}, "cls": []any{"[CLS]", 0}},
		{"type": "RobertaProcessing", "sep": []any{"[SEP]", 1}, "cls": []any{"[CLS]", 0}, "trim_offsets": true, "add_prefix_space": false},
		{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"SpecialToken": map[string]any{"id": "[CLS]", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "[SEP]", "type_id": 0}}},
			"pair":           []any{},
			"special_tokens": map[string]any{"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{0}, "tokens": []string{"[CLS]"}}, "[SEP]": map[string]any{"id": "[SEP]", "ids": []int{1}, "tokens": []string{"[SEP]"}}}},
		{"type": "Sequence", "processors": []any{map[string]any{"type": "ByteLevel"}, map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 1}, "cls": []any{"[CLS]", 0}}}},
	} {
		parts := map[string]any{"post_processor": post}
		for k, v := range base {
			parts[k] = v
		}
		tok, err := Parse(synthetic(t, parts), nil)
		require.NoError(t, err, post["type"])
		// The normalized added token <X> is found in the lowercased text
		// as "<x>"; [CLS] is matched before normalization.
		ids, err := tok.Encode("  HI! [CLS]hi <X>", true)
		require.NoError(t, err)
		assert.Equal(t, []int{0, 4, 5, 0, 4, 6, 1}, ids, post["type"])
		ids, err = tok.Encode("HI!", false)
		require.NoError(t, err)
		assert.Equal(t, []int{4, 5}, ids)
		text, err := tok.Decode([]int{0, 4, 5, 6, 1}, true)
		require.NoError(t, err)
		assert.Equal(t, "hi ! <X>", text, "no decoder: tokens joined by spaces")
		assert.True(t, tok.IsSpecial(0))
		assert.False(t, tok.IsSpecial(6))
	}
}

func TestLoadErrors(t *testing.T) {
	model := map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0, "b": 1, "ab": 2}, "merges": []string{"a b"}}
	tests := []struct {
		name  string
		parts map[string]any
		want  string
	}{
		{"pre_tokenizer", map[string]any{"model": model, "pre_tokenizer": map[string]any{"type": "UnicodeScripts"}},
			`tokenizer.json: pre_tokenizer type "UnicodeScripts" is not supported`},
		{"nested", map[string]any{"model": model, "pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Digits"}, map[string]any{"type": "Nope"}}}},
			`tokenizer.json: pre_tokenizer.pretokenizers[1] type "Nope" is not supported`},
		{"normalizer", map[string]any{"model": model, "normalizer": map[string]any{"type": "Precompiled"}},
			`tokenizer.json: normalizer type "Precompiled" is not supported`},
		{"decoder", map[string]any{"model": model, "decoder": map[string]any{"type": "CTC"}},
			`tokenizer.json: decoder type "CTC" is not supported`},
		{"post_processor", map[string]any{"model": model, "post_processor": map[string]any{"type": "Magic"}},
			`tokenizer.json: post_processor type "Magic" is not supported`},
		{"model", map[string]any{"model": map[string]any{"type": "Unigram", "vocab": []any{}}},
			`tokenizer.json: model type "Unigram" is not supported`},
		{"model inferred", map[string]any{"model": map[string]any{"vocab": []any{}}},
			`tokenizer.json: model type "Unigram" is not supported`},
		{"wordpiece inferred", map[string]any{"model": map[string]any{"vocab": map[string]int{}, "max_input_chars_per_word": 100}},
			`tokenizer.json: model type "WordPiece" is not supported`},
		{"lookaround", map[string]any{"model": model, "pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `a(?=b)`}, "behavior": "Isolated"}},
			`pre_tokenizer (Split): regex "a(?=b)": look-around`},
		{"behavior", map[string]any{"model": model, "pre_tokenizer": map[string]any{"type": "Split", "pattern": map[string]any{"String": "x"}, "behavior": "Sideways"}},
			`split behavior "Sideways" is not supported`},
		{"dropout", map[string]any{"model": map[string]any{"type": "BPE", "vocab": map[string]int{}, "merges": []string{}, "dropout": 0.1}},
			`dropout 0.1 is not supported`},
		{"unk", map[string]any{"model": map[string]any{"type": "BPE", "vocab": map[string]int{}, "merges": []string{}, "unk_token": "<unk>"}},
			`unk_token "<unk>" is not in the vocabulary`},
		{"merge", map[string]any{"model": map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0}, "merges": []string{"a b"}}},
			`merges[0]: token "b" is not in the vocabulary`},
		{"merge format", map[string]any{"model": map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0}, "merges": []string{"ab"}}},
			`merges[0] "ab": want two tokens`},
		{"missing model", map[string]any{}, `model is missing`},
		{"missing type", map[string]any{"model": model, "decoder": map[string]any{"x": 1}}, `decoder: missing "type"`},
		{"template", map[string]any{"model": model, "post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>"}}}, "special_tokens": map[string]any{}}},
			`special token "<s>" is missing from special_tokens`},
		{"metaspace", map[string]any{"model": model, "pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "ab"}},
			`replacement "ab" is not a single character`},
		{"added id", map[string]any{"model": model, "added_tokens": []any{map[string]any{"id": -1, "content": "x"}}},
			`added_tokens[0] "x": id -1 out of range`},
	}
	for _, tt := range tests {
		_, err := Parse(synthetic(t, tt.parts), nil)
		require.Error(t, err, tt.name)
		assert.Contains(t, err.Error(), tt.want, tt.name)
	}
	_, err := Parse([]byte("{"), nil)
	assert.Error(t, err)
	_, err = Load(t.TempDir())
	assert.ErrorContains(t, err, "tokenizer.json")
}

func TestConfig(t *testing.T) {
	model := map[string]any{"type": "BPE", "vocab": map[string]int{"<s>": 0, "</s>": 1, "a": 2}, "merges": []string{}}
	data := synthetic(t, map[string]any{"model": model})
	tok, err := Parse(data, []byte(`{"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
		"eos_token": "</s>", "unk_token": null, "pad_token": "<pad>"}`))
	require.NoError(t, err)
	bos, ok := tok.BOS()
	assert.True(t, ok)
	assert.Equal(t, SpecialToken{"<s>", 0}, bos)
	eos, ok := tok.EOS()
	assert.True(t, ok)
	assert.Equal(t, SpecialToken{"</s>", 1}, eos)
	_, ok = tok.UNK()
	assert.False(t, ok)
	pad, ok := tok.PAD()
	assert.False(t, ok, "named but not in the vocabulary")
	assert.Equal(t, SpecialToken{"<pad>", -1}, pad)

	_, err = Parse(data, []byte(`{"bos_token": 3}`))
	assert.ErrorContains(t, err, "tokenizer_config.json: bos_token")
}

func TestFixtureAccessors(t *testing.T) {
	tests := []struct {
		name       string
		vocabSize  int
		bos, eos   SpecialToken
		hasBOS     bool
		specialIDs []int
	}{
		{"gpt2", 50257, SpecialToken{ID: -1}, SpecialToken{ID: -1}, false, []int{50256}},
		{"tinyllama-1.1b-chat-v1.0", 32000, SpecialToken{"<s>", 1}, SpecialToken{"</s>", 2}, true, []int{0, 1, 2}},
		{"smollm2-135m-instruct", 49152, SpecialToken{"<|im_start|>", 1}, SpecialToken{"<|im_end|>", 2}, true, []int{0, 1, 2, 16}},
		{"phi-3.5-mini-instruct", 32011, SpecialToken{"<s>", 1}, SpecialToken{"<|endoftext|>", 32000}, true, []int{0, 1, 32000, 32007}},
	}
	for _, tt := range tests {
		tok := loadFixture(t, tt.name)
		assert.Equal(t, tt.vocabSize, tok.VocabSize(), tt.name)
		bos, ok := tok.BOS()
		assert.Equal(t, tt.hasBOS, ok, tt.name)
		assert.Equal(t, tt.bos, bos, tt.name)
		eos, _ := tok.EOS()
		assert.Equal(t, tt.eos, eos, tt.name)
		for _, id := range tt.specialIDs {
			assert.True(t, tok.IsSpecial(id), "%s: %d", tt.name, id)
			id2, ok := tok.ID(tok.Token(id))
			assert.True(t, ok)
			assert.Equal(t, id, id2)
		}
		assert.False(t, tok.IsSpecial(100), tt.name)
		assert.False(t, tok.IsSpecial(-1), tt.name)
		assert.Equal(t, "", tok.Token(tok.VocabSize()))
		_, ok = tok.ID("no such token \x00")
		assert.False(t, ok)
	}
	phi := loadFixture(t, "phi-3.5-mini-instruct")
	assert.False(t, phi.IsSpecial(2), "</s> is a non-special added token in Phi-3.5")
	gpt2 := loadFixture(t, "gpt2")
	id, ok := gpt2.ID("Hello")
	assert.True(t, ok)
	assert.Equal(t, 15496, id)
	assert.Equal(t, "Ġthe", gpt2.Token(262))
}

func TestEncodeInvalidUTF8(t *testing.T) {
	tok := loadFixture(t, "gpt2")
	for _, tt := range []struct {
		in     string
		offset int
	}{{"\xff", 0}, {"abc\xe2\x82", 3}, {"é\xc3(", 2}, {"ok\xed\xa0\x80", 2}} {
		_, err := tok.Encode(tt.in, false)
		var ie *InvalidUTF8Error
		require.ErrorAs(t, err, &ie, "%q", tt.in)
		assert.Equal(t, tt.offset, ie.Offset, "%q", tt.in)
		assert.Contains(t, err.Error(), "not valid UTF-8")
	}
}

func TestDecodeBadID(t *testing.T) {
	tok := loadFixture(t, "tinyllama-1.1b-chat-v1.0")
	_, err := tok.Decode([]int{1, 32000}, false)
	assert.ErrorContains(t, err, "id 32000 at position 1 is not in the vocabulary")
	_, err = tok.Decode([]int{-1}, true)
	assert.Error(t, err)
	d := tok.NewStreamDecoder(false)
	_, err = d.Add(99999)
	assert.ErrorContains(t, err, "id 99999 is not in the vocabulary")
	s, err := d.Add(15043) // "▁Hello": the decoder goes on after the error
	require.NoError(t, err)
	assert.Equal(t, "Hello", s)
	assert.Equal(t, "", d.Flush())
}

func TestStreamDecoderHoldsBack(t *testing.T) {
	// "€" is E2 82 AC: byte fallback tokens in TinyLlama, three byte-level
	// characters in GPT-2. Nothing is printed until the character is whole.
	llama := loadFixture(t, "tinyllama-1.1b-chat-v1.0")
	d := llama.NewStreamDecoder(false)
	var got []string
	for _, tok := range []string{"▁Hello", "▁", "<0xE2>", "<0x82>", "<0xAC>", "!"} {
		id, ok := llama.ID(tok)
		require.True(t, ok, tok)
		s, err := d.Add(id)
		require.NoError(t, err)
		got = append(got, s)
	}
	got = append(got, d.Flush())
	assert.Equal(t, []string{"Hello", " ", "", "", "", "€!", ""}, got)

	// A run of bytes that can no longer become UTF-8 is U+FFFD per byte
	// whatever follows (the batch decoder's rule), so it is not held
	// back: E2 then 41 is invalid at the second byte, and later bytes of
	// the run are printed as they come.
	got = nil
	for _, tok := range []string{"<0xE2>", "<0x41>", "<0xE2>", "<0x82>", "!"} {
		id, ok := llama.ID(tok)
		require.True(t, ok, tok)
		s, err := d.Add(id)
		require.NoError(t, err)
		got = append(got, s)
	}
	got = append(got, d.Flush())
	assert.Equal(t, []string{"", "\uFFFD\uFFFD", "\uFFFD", "\uFFFD", "!", ""}, got)

	gpt2 := loadFixture(t, "gpt2")
	ids, err := gpt2.Encode("a €", false)
	require.NoError(t, err)
	d = gpt2.NewStreamDecoder(false)
	got = nil
	for _, id := range ids {
		s, err := d.Add(id)
		require.NoError(t, err)
		got = append(got, s)
	}
	got = append(got, d.Flush())
	assert.Equal(t, "a €", strings.Join(got, ""))
	assert.NotContains(t, got, "\uFFFD")
}

// TestSplitAtShortcut checks that cutting SentencePiece-style words in front
// of ▁ (bpe.splitAt) gives the same ids as merging the whole piece.
func TestSplitAtShortcut(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	inputs := []string{proseText(20000), "  a  b   c\n\n d", "▁▁x ▁ y", "ab▁▁▁cd  ", "İstanbul'da 2024 ▁x"}
	for i := 0; i < 300; i++ {
		inputs = append(inputs, randomPatternText(r, r.IntN(30)))
	}
	for _, name := range []string{"tinyllama-1.1b-chat-v1.0", "phi-3.5-mini-instruct"} {
		tok := loadFixture(t, name)
		require.Equal(t, "▁", tok.model.splitAt, "the shortcut applies to %s", name)
		whole := *tok
		m := *tok.model
		m.splitAt = ""
		whole.model = &m
		for _, s := range inputs {
			want, err := whole.Encode(s, true)
			require.NoError(t, err)
			got, err := tok.Encode(s, true)
			require.NoError(t, err)
			require.Equal(t, want, got, "%s: %q", name, s)
		}
	}
	// A merge that joins a character with a following ▁ disables it.
	assert.Equal(t, "", findSplitAt(map[string]int32{"▁": 0}, []string{"a▁"}))
	assert.Equal(t, "▁", findSplitAt(map[string]int32{"▁": 0}, []string{"▁▁", "▁a", "▁▁▁b"}))
	assert.Equal(t, "", findSplitAt(map[string]int32{"▁": 0}, []string{"▁x▁"}))
	assert.Equal(t, "", findSplitAt(map[string]int32{}, nil))
}

// TestLlama3StylePipeline rebuilds GPT-2's vocabulary with the pipeline of
// Llama 3 and Qwen2 tokenizer.json files (Split with their regex, then
// ByteLevel without its own regex, ignore_merges) and checks the split and
// the round trip.
func TestLlama3StylePipeline(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(loadFixtureDir(t, "gpt2"), "tokenizer.json"))
	require.NoError(t, err)
	for _, pattern := range []string{patternLlama3, patternQwen2} {
		var f map[string]any
		require.NoError(t, json.Unmarshal(data, &f))
		f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}}
		f["model"].(map[string]any)["ignore_merges"] = true
		patched, err := json.Marshal(f)
		require.NoError(t, err)
		tok, err := Parse(patched, nil)
		require.NoError(t, err)

		var got []string
		for _, p := range tok.pre.preTokenize(&encodeState{}, piece{text: "I'VE 12345 apples.\n\nOK", id: -1, first: true}, nil) {
			require.True(t, p.raw)
			got = append(got, tok.model.bl.mapBytes(p.text))
		}
		want := []string{"I", "'VE", "Ġ", "123", "45", "Ġapples", ".ĊĊ", "OK"}
		if pattern == patternQwen2 {
			want = []string{"I", "'VE", "Ġ", "1", "2", "3", "4", "5", "Ġapples", ".ĊĊ", "OK"}
		}
		assert.Equal(t, want, got)
		for _, text := range []string{proseText(5000), "  x\u00a0y\r\n\r\n z 😀 İ", ""} {
			ids, err := tok.Encode(text, false)
			require.NoError(t, err)
			back, err := tok.Decode(ids, false)
			require.NoError(t, err)
			assert.Equal(t, text, back)
		}
	}
}

// TestConcurrentEncode uses one Tokenizer from several goroutines (run with
// -race).
func TestConcurrentEncode(t *testing.T) {
	tok := loadFixture(t, "tinyllama-1.1b-chat-v1.0")
	text := proseText(20000)
	want, err := tok.Encode(text, true)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := tok.Encode(text, true)
			assert.NoError(t, err)
			assert.Equal(t, want, got)
		}()
	}
	wg.Wait()
}

func TestLossyUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		// The example of the Unicode Standard, section 3.9 (U+FFFD
		// substitution of maximal subparts).
		{"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", "a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd"},
		{"\xED\xA0\x80", "\uFFFD\uFFFD\uFFFD"}, // a surrogate
		{"\xE2\x82", "\uFFFD"},                 // truncated at the end
		{"\xF4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
		{"ok €", "ok €"},
	}
	for _, tt := range tests {
		got, rest := appendLossy(nil, []byte(tt.in), true)
		assert.Equal(t, tt.want, string(got), "%q", tt.in)
		assert.Zero(t, rest)
	}
	got, rest := appendLossy(nil, []byte("a\xE2\x82"), false)
	assert.Equal(t, "a", string(got))
	assert.Equal(t, 2, rest, "an unfinished sequence is kept back")
}

func TestByteToken(t *testing.T) {
	for tok, want := range map[string]int{"<0x0A>": 10, "<0xff>": 255, "<0x+A>": 10, "<0xZZ>": -1, "<0x0A": -1, "<0x0AA>": -1, "0x0A": -1} {
		b, ok := byteToken(tok)
		if want < 0 {
			assert.False(t, ok, tok)
			continue
		}
		assert.True(t, ok, tok)
		assert.Equal(t, byte(want), b, tok)
	}
	assert.Equal(t, "<0x0A>", byteTokenName(10))
}
