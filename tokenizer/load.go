package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Load reads a tokenizer.json file, or the tokenizer.json inside a
// directory, and the tokenizer_config.json next to it when there is one.
func Load(path string) (*Tokenizer, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "tokenizer.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parseTokenizer(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cfg != nil {
		if err := t.applyConfig(cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", cfgPath, err)
		}
	}
	return t, nil
}

// Parse builds a tokenizer from the contents of a tokenizer.json file and,
// optionally (nil), of its tokenizer_config.json.
func Parse(tokenizerJSON, tokenizerConfigJSON []byte) (*Tokenizer, error) {
	t, err := parseTokenizer(tokenizerJSON)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	if tokenizerConfigJSON != nil {
		if err := t.applyConfig(tokenizerConfigJSON); err != nil {
			return nil, fmt.Errorf("tokenizer_config.json: %w", err)
		}
	}
	return t, nil
}

type fileJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	Model         json.RawMessage  `json:"model"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
}

type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

// maxVocab bounds token ids, so that a corrupt file cannot make Load
// allocate without limit.
const maxVocab = 1 << 24

func parseTokenizer(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	bl := newByteLevelTables()
	none := SpecialToken{ID: -1}
	t := &Tokenizer{bos: none, eos: none, unk: none, pad: none}
	var err error
	if t.normalizer, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer, "pre_tokenizer", bl); err != nil {
		return nil, err
	}
	if t.model, err = parseModel(f.Model, bl); err != nil {
		return nil, err
	}
	if t.decoder, err = parseDecoder(f.Decoder, "decoder", bl); err != nil {
		return nil, err
	}
	if t.decoder == nil {
		t.decoder = joinDec{}
	}

	// The id table: the model's vocabulary, then the added tokens on top.
	size := 0
	for _, id := range t.model.vocab {
		size = max(size, int(id)+1)
	}
	added := make([]addedToken, 0, len(f.AddedTokens))
	for i, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, fmt.Errorf("added_tokens[%d]: empty content", i)
		}
		if a.ID < 0 || a.ID >= maxVocab {
			return nil, fmt.Errorf("added_tokens[%d] %q: id %d out of range", i, a.Content, a.ID)
		}
		id := int32(a.ID)
		// Like the reference, a token the model already knows keeps the
		// model's id.
		if mid, ok := t.model.vocab[a.Content]; ok {
			id = mid
		}
		normalized := !a.Special // the reference's default
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		added = append(added, addedToken{
			id: id, content: a.Content, singleWord: a.SingleWord, lstrip: a.LStrip,
			rstrip: a.RStrip, normalized: normalized, special: a.Special,
		})
		size = max(size, int(id)+1)
	}
	if size > maxVocab {
		return nil, fmt.Errorf("model: vocabulary of %d ids is too large", size)
	}
	t.tokens = make([]string, size)
	t.present = make([]bool, size)
	t.special = make([]bool, size)
	for tok, id := range t.model.vocab {
		t.tokens[id], t.present[id] = tok, true
	}
	t.addedIDs = make(map[string]int32, len(added))
	specials := make(map[string]bool)
	for _, a := range added {
		t.tokens[a.id], t.present[a.id] = a.content, true
		if _, dup := t.addedIDs[a.content]; !dup {
			t.addedIDs[a.content] = a.id
		}
		if a.special {
			specials[a.content] = true
		}
	}
	for id, tok := range t.tokens {
		t.special[id] = t.present[id] && specials[tok]
	}
	t.added = newAddedVocab(added, t.normalizer)

	if t.post, err = parsePostProcessor(f.PostProcessor, "post_processor", t); err != nil {
		return nil, err
	}
	return t, nil
}

// componentType reads the "type" field of a component; raw null is "".
func componentType(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var c struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", err
	}
	if c.Type == nil {
		return "", errors.New(`missing "type"`)
	}
	return *c.Type, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

func unsupported(where, typ string) error {
	return fmt.Errorf("%s type %q is not supported", where, typ)
}

// patternJSON is a pattern written {"String": "..."} or {"Regex": "..."}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p patternJSON) compile() (matcher, error) {
	switch {
	case p.String != nil:
		return literalMatcher{*p.String}, nil
	case p.Regex != nil:
		return compileRegex(*p.Regex)
	}
	return nil, errors.New(`pattern needs "String" or "Regex"`)
}

// oneRune reads a one-character string field such as Metaspace's
// "replacement".
func oneRune(s, field string) (rune, error) {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || n != len(s) || r == utf8.RuneError {
		return 0, fmt.Errorf("%s %q is not a single character", field, s)
	}
	return r, nil
}

func parseNormalizer(raw json.RawMessage, where string) (normalizer, error) {
	typ, err := componentType(raw)
	if err != nil || typ == "" {
		return nil, wrapWhere(where, err)
	}
	bad := func(err error) (normalizer, error) { return nil, fmt.Errorf("%s (%s): %w", where, typ, err) }
	switch typ {
	case "Sequence":
		items, err := parseSequence(raw, "normalizers", where, func(item json.RawMessage, w string) (normalizer, error) {
			return parseNormalizer(item, w)
		})
		if err != nil {
			return nil, err
		}
		return seqNorm{items: items}, nil
	case "Prepend":
		var c struct {
			Prepend string `json:"prepend"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		return prependNorm{c.Prepend}, nil
	case "Replace":
		r, err := parseReplace(raw)
		if err != nil {
			return bad(err)
		}
		return r, nil
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Lowercase":
		return lowercaseNorm{}, nil
	case "Strip":
		var c struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		return stripNorm{c.Left, c.Right}, nil
	case "StripAccents":
		return stripAccentsNorm{}, nil
	}
	return nil, unsupported(where, typ)
}

func parseReplace(raw json.RawMessage) (replaceNorm, error) {
	var c struct {
		Pattern patternJSON `json:"pattern"`
		Content string      `json:"content"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return replaceNorm{}, err
	}
	m, err := c.Pattern.compile()
	if err != nil {
		return replaceNorm{}, err
	}
	return replaceNorm{m: m, content: c.Content}, nil
}

func wrapWhere(where string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", where, err)
}

func parsePreTokenizer(raw json.RawMessage, where string, bl *byteLevelTables) (preTokenizer, error) {
	typ, err := componentType(raw)
	if err != nil || typ == "" {
		return nil, wrapWhere(where, err)
	}
	bad := func(err error) (preTokenizer, error) { return nil, fmt.Errorf("%s (%s): %w", where, typ, err) }
	switch typ {
	case "Sequence":
		items, err := parseSequence(raw, "pretokenizers", where, func(item json.RawMessage, w string) (preTokenizer, error) {
			return parsePreTokenizer(item, w, bl)
		})
		if err != nil {
			return nil, err
		}
		return seqPre{items: items, bl: bl}, nil
	case "ByteLevel":
		c := struct {
			AddPrefixSpace bool `json:"add_prefix_space"`
			UseRegex       bool `json:"use_regex"`
		}{AddPrefixSpace: true, UseRegex: true}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		return byteLevelPre{addPrefixSpace: c.AddPrefixSpace, useRegex: c.UseRegex, bl: bl}, nil
	case "Split":
		var c struct {
			Pattern  patternJSON `json:"pattern"`
			Behavior string      `json:"behavior"`
			Invert   bool        `json:"invert"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		m, err := c.Pattern.compile()
		if err != nil {
			return bad(err)
		}
		b, err := parseBehavior(c.Behavior)
		if err != nil {
			return bad(err)
		}
		return splitPre{m: m, behavior: b, invert: c.Invert}, nil
	case "Digits":
		var c struct {
			IndividualDigits bool `json:"individual_digits"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		b := splitContiguous
		if c.IndividualDigits {
			b = splitIsolated
		}
		return splitPre{m: runeMatcher{isNumeric}, behavior: b}, nil
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return bad(err)
		}
		return metaspacePre{repl: string(m.repl), scheme: m.scheme, split: m.split}, nil
	case "Whitespace":
		return whitespacePre{}, nil
	case "WhitespaceSplit":
		return splitPre{m: runeMatcher{isWhitespace}, behavior: splitRemoved}, nil
	case "Punctuation":
		c := struct {
			Behavior string `json:"behavior"`
		}{Behavior: "Isolated"}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		b, err := parseBehavior(c.Behavior)
		if err != nil {
			return bad(err)
		}
		return splitPre{m: runeMatcher{isPunctuation}, behavior: b}, nil
	case "CharDelimiterSplit":
		var c struct {
			Delimiter string `json:"delimiter"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		d, err := oneRune(c.Delimiter, "delimiter")
		if err != nil {
			return bad(err)
		}
		return splitPre{m: runeMatcher{func(r rune) bool { return r == d }}, behavior: splitRemoved}, nil
	case "BertPreTokenizer":
		return seqPre{bl: bl, items: []preTokenizer{
			splitPre{m: runeMatcher{isWhitespace}, behavior: splitRemoved},
			splitPre{m: runeMatcher{isPunctuation}, behavior: splitIsolated},
		}}, nil
	}
	return nil, unsupported(where, typ)
}

type metaspaceJSON struct {
	repl   rune
	scheme prependScheme
	split  bool
}

// parseMetaspace reads the Metaspace fields shared by the pre-tokenizer and
// the decoder, including the older add_prefix_space form.
func parseMetaspace(raw json.RawMessage) (metaspaceJSON, error) {
	var c struct {
		Replacement    string  `json:"replacement"`
		AddPrefixSpace *bool   `json:"add_prefix_space"`
		PrependScheme  *string `json:"prepend_scheme"`
		Split          *bool   `json:"split"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return metaspaceJSON{}, err
	}
	r, err := oneRune(c.Replacement, "replacement")
	if err != nil {
		return metaspaceJSON{}, err
	}
	m := metaspaceJSON{repl: r, scheme: prependAlways, split: true}
	if c.PrependScheme != nil {
		switch *c.PrependScheme {
		case "always":
		case "never":
			m.scheme = prependNever
		case "first":
			m.scheme = prependFirst
		default:
			return m, fmt.Errorf("prepend_scheme %q is not supported", *c.PrependScheme)
		}
	}
	if c.AddPrefixSpace != nil && !*c.AddPrefixSpace {
		if m.scheme != prependNever && c.PrependScheme != nil {
			return m, errors.New("add_prefix_space does not match declared prepend_scheme")
		}
		m.scheme = prependNever
	}
	if c.Split != nil {
		m.split = *c.Split
	}
	return m, nil
}

func parseModel(raw json.RawMessage, bl *byteLevelTables) (*bpe, error) {
	if isNull(raw) {
		return nil, errors.New("model is missing")
	}
	var c struct {
		Type                    *string          `json:"type"`
		Dropout                 *float64         `json:"dropout"`
		UnkToken                *string          `json:"unk_token"`
		ContinuingSubwordPrefix *string          `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string          `json:"end_of_word_suffix"`
		FuseUnk                 bool             `json:"fuse_unk"`
		ByteFallback            bool             `json:"byte_fallback"`
		IgnoreMerges            bool             `json:"ignore_merges"`
		Vocab                   json.RawMessage  `json:"vocab"`
		Merges                  json.RawMessage  `json:"merges"`
		MaxInputCharsPerWord    *json.RawMessage `json:"max_input_chars_per_word"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	typ := ""
	switch {
	case c.Type != nil:
		typ = *c.Type
	case c.Merges != nil: // older files have no "type"; the fields tell
		typ = "BPE"
	case c.MaxInputCharsPerWord != nil:
		typ = "WordPiece"
	case bytes.HasPrefix(bytes.TrimSpace(c.Vocab), []byte("[")):
		typ = "Unigram"
	default:
		typ = "WordLevel"
	}
	if typ != "BPE" {
		return nil, unsupported("model", typ)
	}
	bad := func(format string, args ...any) (*bpe, error) {
		return nil, fmt.Errorf("model (BPE): "+format, args...)
	}
	if c.Dropout != nil && *c.Dropout > 0 {
		return bad("dropout %v is not supported (it makes encoding random)", *c.Dropout)
	}
	m := &bpe{unk: -1, fuseUnk: c.FuseUnk, byteFallback: c.ByteFallback, ignoreMerges: c.IgnoreMerges, bl: bl}
	if c.ContinuingSubwordPrefix != nil {
		m.prefix = *c.ContinuingSubwordPrefix
	}
	if c.EndOfWordSuffix != nil {
		m.suffix = *c.EndOfWordSuffix
	}
	if err := json.Unmarshal(c.Vocab, &m.vocab); err != nil {
		return bad("vocab: %v", err)
	}
	for tok, id := range m.vocab {
		if id < 0 || id >= maxVocab {
			return bad("vocab: token %q has id %d out of range", tok, id)
		}
	}
	if c.UnkToken != nil {
		id, ok := m.vocab[*c.UnkToken]
		if !ok {
			return bad("unk_token %q is not in the vocabulary", *c.UnkToken)
		}
		m.unk = id
	}
	merges, err := parseMerges(c.Merges)
	if err != nil {
		return bad("%v", err)
	}
	m.merges = make(map[uint64]bpeMerge, len(merges))
	var results []string
	for rank, pair := range merges {
		a, okA := m.vocab[pair[0]]
		b, okB := m.vocab[pair[1]]
		if !okA || !okB {
			missing := pair[0]
			if okA {
				missing = pair[1]
			}
			return bad("merges[%d]: token %q is not in the vocabulary", rank, missing)
		}
		right := pair[1]
		if m.prefix != "" {
			right = strings.TrimPrefix(right, m.prefix)
		}
		merged := pair[0] + right
		id, ok := m.vocab[merged]
		if !ok {
			return bad("merges[%d]: merged token %q is not in the vocabulary", rank, merged)
		}
		m.merges[pairKey(a, b)] = bpeMerge{rank: int32(rank), newID: id}
		results = append(results, merged)
	}
	for b := 0; b < 256; b++ {
		m.byteIDs[b] = -1
		if id, ok := m.vocab[byteTokenName(byte(b))]; ok {
			m.byteIDs[b] = id
		}
	}
	if m.prefix == "" && m.suffix == "" {
		m.runeIDs = make([]int32, 0x800)
		for r := range m.runeIDs {
			m.runeIDs[r] = -1
			if id, ok := m.vocab[string(rune(r))]; ok {
				m.runeIDs[r] = id
			}
		}
		if !m.ignoreMerges {
			m.splitAt = findSplitAt(m.vocab, results)
		}
		m.byteCharIDs = new([256]int32)
		for b := range m.byteCharIDs {
			m.byteCharIDs[b] = -1
			if id, ok := m.vocab[bl.toStr[b]]; ok {
				m.byteCharIDs[b] = id
			}
		}
	}
	return m, nil
}

// findSplitAt returns "▁" when no merge can join a character other than ▁
// with a following ▁: then words can be cut in front of every ▁ that does
// not follow another one (see bpe.splitAt).
func findSplitAt(vocab map[string]int32, merged []string) string {
	const meta = "▁"
	if _, ok := vocab[meta]; !ok {
		return ""
	}
	for _, tok := range merged {
		for i := strings.Index(tok, meta); i >= 0; {
			if i > 0 && !strings.HasSuffix(tok[:i], meta) {
				return ""
			}
			j := strings.Index(tok[i+len(meta):], meta)
			if j < 0 {
				break
			}
			i += len(meta) + j
		}
	}
	return meta
}

// parseMerges reads merges written as "a b" strings or as ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err == nil {
		return pairs, nil
	}
	var lines []string
	if err := json.Unmarshal(raw, &lines); err != nil {
		return nil, fmt.Errorf("merges: %w", err)
	}
	pairs = make([][2]string, len(lines))
	for i, l := range lines {
		a, b, ok := strings.Cut(l, " ")
		if !ok {
			return nil, fmt.Errorf("merges[%d] %q: want two tokens separated by a space", i, l)
		}
		pairs[i] = [2]string{a, b}
	}
	return pairs, nil
}

func parsePostProcessor(raw json.RawMessage, where string, t *Tokenizer) (postProcessor, error) {
	typ, err := componentType(raw)
	if err != nil || typ == "" {
		return nil, wrapWhere(where, err)
	}
	bad := func(err error) (postProcessor, error) { return nil, fmt.Errorf("%s (%s): %w", where, typ, err) }
	switch typ {
	case "Sequence":
		items, err := parseSequence(raw, "processors", where, func(item json.RawMessage, w string) (postProcessor, error) {
			return parsePostProcessor(item, w, t)
		})
		if err != nil {
			return nil, err
		}
		return seqPost{items: items}, nil
	case "ByteLevel":
		return nopPost{}, nil
	case "TemplateProcessing":
		p, err := parseTemplate(raw, t)
		if err != nil {
			return bad(err)
		}
		return p, nil
	case "BertProcessing", "RobertaProcessing":
		var c struct {
			Sep [2]json.RawMessage `json:"sep"`
			Cls [2]json.RawMessage `json:"cls"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		var p clsSepPost
		if err := json.Unmarshal(c.Cls[1], &p.cls); err != nil {
			return bad(fmt.Errorf("cls: %w", err))
		}
		if err := json.Unmarshal(c.Sep[1], &p.sep); err != nil {
			return bad(fmt.Errorf("sep: %w", err))
		}
		if !t.valid(p.cls) || !t.valid(p.sep) {
			return bad(fmt.Errorf("cls id %d or sep id %d is not in the vocabulary", p.cls, p.sep))
		}
		return p, nil
	}
	return nil, unsupported(where, typ)
}

func parseTemplate(raw json.RawMessage, t *Tokenizer) (postProcessor, error) {
	var c struct {
		Single        []map[string]json.RawMessage `json:"single"`
		SpecialTokens map[string]struct {
			IDs []int `json:"ids"`
		} `json:"special_tokens"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, err
	}
	var p templatePost
	for i, item := range c.Single {
		var ref struct {
			ID string `json:"id"`
		}
		switch {
		case item["Sequence"] != nil:
			if err := json.Unmarshal(item["Sequence"], &ref); err != nil {
				return nil, fmt.Errorf("single[%d]: %w", i, err)
			}
			if ref.ID != "A" {
				return nil, fmt.Errorf("single[%d]: sequence %q in a single-sequence template", i, ref.ID)
			}
			p.single = append(p.single, templatePart{sequence: true})
		case item["SpecialToken"] != nil:
			if err := json.Unmarshal(item["SpecialToken"], &ref); err != nil {
				return nil, fmt.Errorf("single[%d]: %w", i, err)
			}
			st, ok := c.SpecialTokens[ref.ID]
			if !ok {
				return nil, fmt.Errorf("single[%d]: special token %q is missing from special_tokens", i, ref.ID)
			}
			for _, id := range st.IDs {
				if !t.valid(id) {
					return nil, fmt.Errorf("special token %q: id %d is not in the vocabulary", ref.ID, id)
				}
			}
			p.single = append(p.single, templatePart{ids: st.IDs})
		default:
			return nil, fmt.Errorf("single[%d]: want a Sequence or a SpecialToken", i)
		}
	}
	return p, nil
}

func parseDecoder(raw json.RawMessage, where string, bl *byteLevelTables) (decoder, error) {
	typ, err := componentType(raw)
	if err != nil || typ == "" {
		return nil, wrapWhere(where, err)
	}
	bad := func(err error) (decoder, error) { return nil, fmt.Errorf("%s (%s): %w", where, typ, err) }
	switch typ {
	case "Sequence":
		items, err := parseSequence(raw, "decoders", where, func(item json.RawMessage, w string) (decoder, error) {
			return parseDecoder(item, w, bl)
		})
		if err != nil {
			return nil, err
		}
		return seqDec{items: items}, nil
	case "ByteLevel":
		return byteLevelDec{bl}, nil
	case "Replace":
		r, err := parseReplace(raw)
		if err != nil {
			return bad(err)
		}
		return replaceDec{r}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		var c struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		r, err := oneRune(c.Content, "content")
		if err != nil {
			return bad(err)
		}
		if c.Start < 0 || c.Stop < 0 {
			return bad(fmt.Errorf("negative start %d or stop %d", c.Start, c.Stop))
		}
		return stripDec{content: r, start: c.Start, stop: c.Stop}, nil
	case "Metaspace":
		m, err := parseMetaspace(raw)
		if err != nil {
			return bad(err)
		}
		return metaspaceDec{repl: m.repl, never: m.scheme == prependNever}, nil
	case "BPEDecoder":
		c := struct {
			Suffix string `json:"suffix"`
		}{Suffix: "</w>"}
		if err := json.Unmarshal(raw, &c); err != nil {
			return bad(err)
		}
		return bpeSuffixDec{c.Suffix}, nil
	}
	return nil, unsupported(where, typ)
}

// applyConfig reads the special token strings of tokenizer_config.json.
// Each may be a string or an object with a "content" field (the serialized
// AddedToken), or null.
func (t *Tokenizer) applyConfig(data []byte) error {
	var c map[string]json.RawMessage
	if err := json.Unmarshal(data, &c); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		dst  *SpecialToken
	}{{"bos_token", &t.bos}, {"eos_token", &t.eos}, {"unk_token", &t.unk}, {"pad_token", &t.pad}} {
		raw, ok := c[f.name]
		if !ok || isNull(raw) {
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			var obj struct {
				Content *string `json:"content"`
			}
			if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
				return fmt.Errorf("%s: want a string or an object with \"content\"", f.name)
			}
			s = *obj.Content
		}
		*f.dst = SpecialToken{Text: s, ID: -1}
		if id, ok := t.ID(s); ok {
			f.dst.ID = id
		}
	}
	return nil
}

// parseSequence parses the members of a Sequence component (the JSON list
// under key), dropping the ones that parse to nothing. A member's error
// already says where it is.
func parseSequence[T comparable](raw json.RawMessage, key, where string, parse func(json.RawMessage, string) (T, error)) ([]T, error) {
	var c map[string]json.RawMessage
	var list []json.RawMessage
	err := json.Unmarshal(raw, &c)
	if err == nil && c[key] != nil {
		err = json.Unmarshal(c[key], &list)
	}
	if err != nil {
		return nil, fmt.Errorf("%s (Sequence): %w", where, err)
	}
	var items []T
	var zero T
	for i, item := range list {
		v, err := parse(item, fmt.Sprintf("%s.%s[%d]", where, key, i))
		if err != nil {
			return nil, err
		}
		if v != zero {
			items = append(items, v)
		}
	}
	return items, nil
}
