// Package tokenizer implements the Hugging Face tokenizers format
// (tokenizer.json) for the BPE models of decoder-only LLMs: GPT-2 style
// byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2) and SentencePiece style BPE
// with byte fallback (Llama 2, TinyLlama, Mistral, Phi-3).
//
// The goal is the exact ids of the reference implementation (the Rust
// tokenizers crate): Encode follows its pipeline step by step. Added tokens
// are cut out of the raw text first (longest match, with their lstrip,
// rstrip, single_word and normalized settings), then each remaining piece is
// normalized, pre-tokenized into words and merged by the BPE model, and the
// post-processor adds the special tokens. Decode runs the decoder chain.
// StreamDecoder decodes generated ids one by one and never prints text that
// a later token could change.
//
// Supported components:
//
//   - model: BPE (merges as "a b" strings or pairs, byte_fallback, fuse_unk,
//     unk_token, continuing_subword_prefix, end_of_word_suffix,
//     ignore_merges; dropout must be off)
//   - normalizer: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD,
//     Lowercase, Strip, StripAccents
//   - pre_tokenizer: Sequence, ByteLevel, Split, Digits, Metaspace,
//     Whitespace, WhitespaceSplit, Punctuation, CharDelimiterSplit,
//     BertPreTokenizer
//   - post_processor: Sequence, TemplateProcessing, ByteLevel,
//     BertProcessing, RobertaProcessing
//   - decoder: Sequence, ByteLevel, Metaspace, Replace, ByteFallback, Fuse,
//     Strip, BPEDecoder
//
// Any other component type makes Load fail with an error naming it, such as
// `tokenizer.json: pre_tokenizer type "UnicodeScripts" is not supported`.
// Truncation and padding settings are ignored, and only single sequences
// are encoded (no pairs, no offsets).
//
// # Regular expressions
//
// tokenizer.json patterns are Oniguruma regexes. The split patterns of
// GPT-2, Llama 3 and Qwen2 use the look-ahead \s+(?!\S), which Go's regexp
// (RE2) does not have. Rather than depend on a backtracking engine
// (regexp2), the package recognises those three patterns by their text and
// runs hand-written scanners for them: a few dozen lines each, allocation
// free, and checked (by a test and a fuzz target) against an independent
// evaluation of the same patterns, one alternative at a time with Go's
// regexp. Other patterns are translated to RE2
// (Oniguruma's \s, \d and \w are Unicode-aware there, so they become
// explicit classes). A pattern whose only look-arounds are top-level
// alternatives \s+(?!\S) is run alternative by alternative; any other
// look-around is refused with an error naming the pattern.
//
// # Dependencies
//
// golang.org/x/text/unicode/norm provides the NFC, NFD, NFKC and NFKD
// normalizers: Unicode normalization needs the Unicode data tables, which
// the standard library does not ship.
package tokenizer
