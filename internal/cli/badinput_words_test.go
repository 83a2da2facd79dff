package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The cases below are issue 11's "errors in the user's words": each bad
// input is built from a good one (a copy of llama-tiny, or an artifact
// compiled from it), and the message must name the flag, file or field
// the user wrote, in the user's terms, with the exit status of the one
// rule: 2 for usage errors, 1 for everything else.

// wordsCase is one bad input: args builds it and returns the command line.
type wordsCase struct {
	name string
	main func(*testing.T, ...string) result
	args func(t *testing.T) []string
	code int
	want []string // in stderr
	not  []string // never in stderr: the words of the implementation
}

// tiny returns a writable copy of llama-tiny with damage applied.
func tiny(t *testing.T, damage ...func(t *testing.T, dir string)) string {
	t.Helper()
	dir := copyModel(t, "llama-tiny")
	for _, d := range damage {
		d(t, dir)
	}
	return dir
}

// tinyArtifact compiles a copy of llama-tiny (interpreter backend, 32
// positions) and applies damage to the artifact. It returns the artifact
// and the model folder it was compiled from.
func tinyArtifact(t *testing.T, damage ...func(t *testing.T, dir string)) (art, modelDir string) {
	t.Helper()
	modelDir = tiny(t)
	art = filepath.Join(t.TempDir(), "tiny.llmc")
	requireOK(t, llmc(t, "compile", modelDir, "--backend", "interp", "--max-seq", "32", "-o", art, "--quiet"))
	for _, d := range damage {
		d(t, art)
	}
	return art, modelDir
}

// onTiny builds the args of a command on a damaged llama-tiny: "DIR" in
// args stands for the damaged folder.
func onTiny(damage func(t *testing.T, dir string), args ...string) func(t *testing.T) []string {
	return func(t *testing.T) []string {
		var ds []func(*testing.T, string)
		if damage != nil {
			ds = append(ds, damage)
		}
		dir := tiny(t, ds...)
		return substitute(args, "DIR", dir)
	}
}

func substitute(args []string, from, to string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, from, to)
	}
	return out
}

func genConfig(content string) func(t *testing.T, dir string) {
	return writeFile("generation_config.json", content)
}

func setConfig(field string, v any) func(t *testing.T, dir string) {
	return editConfig(func(c map[string]any) { c[field] = v })
}

func checkWords(t *testing.T, r result, code int, want, not []string) {
	t.Helper()
	t.Logf("exit %d: %s", r.code, r.stderr)
	assert.Equalf(t, code, r.code, "exit status; stderr:\n%s", r.stderr)
	for _, w := range want {
		assert.Contains(t, r.stderr, w)
	}
	for _, n := range not {
		assert.NotContains(t, r.stderr, n)
	}
	if code == 2 && !strings.Contains(r.stderr, "usage:") {
		assert.Contains(t, r.stderr, "--help", "a usage error shows the usage or points at it")
	}
	if code == 1 {
		assert.NotContains(t, r.stderr, "--help' for usage", "only usage errors point at --help")
	}
}

func TestBadInputWords(t *testing.T) {
	t.Parallel()
	gen := []string{"generate", "DIR", "--ids", "1,2", "--max-new-tokens", "2"}
	impl := []string{"Options.", "sample:", "Go struct", "rawConfig", "cannot unmarshal", "stat "}
	missing := "/nonexistent-llmc-tokenizer"
	tests := []wordsCase{
		// Sampling values from generation_config.json name the file and
		// its field, and the flag that overrides it; exit 1.
		{name: "generation config temperature negative", main: llmrun,
			args: onTiny(genConfig(`{"do_sample": true, "temperature": -2}`), gen...), code: 1,
			want: []string{"generation_config.json", `field "temperature" is -2`, ">= 0", "--temperature"}, not: impl},
		{name: "generation config top_p above 1", main: llmrun,
			args: onTiny(genConfig(`{"do_sample": true, "top_p": 2}`), gen...), code: 1,
			want: []string{"generation_config.json", `field "top_p" is 2`, "(0, 1]", "--top-p"}, not: impl},
		{name: "generation config top_k negative", main: llmrun,
			args: onTiny(genConfig(`{"do_sample": true, "top_k": -5}`), gen...), code: 1,
			want: []string{"generation_config.json", `field "top_k" is -5`, "--top-k"}, not: impl},
		{name: "generation config min_p above 1", main: llmrun,
			args: onTiny(genConfig(`{"do_sample": true, "min_p": 3}`), gen...), code: 1,
			want: []string{"generation_config.json", `field "min_p" is 3`, "--min-p"}, not: impl},
		{name: "generation config repetition_penalty negative", main: llmrun,
			args: onTiny(genConfig(`{"repetition_penalty": -1}`), gen...), code: 1,
			want: []string{"generation_config.json", `field "repetition_penalty" is -1`, "--repetition-penalty"}, not: impl},
		{name: "generation config value overridden by its flag", main: llmrun,
			args: onTiny(genConfig(`{"do_sample": true, "temperature": -2}`), append(gen, "--temperature", "0")...), code: 0},
		{name: "generation config temperature ignored without do_sample", main: llmrun,
			args: onTiny(genConfig(`{"temperature": -2}`), gen...), code: 0},

		// Sampling flags name the flag; usage errors, refused before the
		// model is read (the folder here has no weights at all).
		{name: "temperature flag negative", main: llmrun,
			args: onTiny(removeFile("model.safetensors"), append(gen, "--temperature", "-2")...), code: 2,
			want: []string{"--temperature is -2", ">= 0"}, not: append(impl, "safetensors")},
		{name: "top-p flag above 1", main: llmrun,
			args: onTiny(nil, append(gen, "--top-p", "1.5")...), code: 2,
			want: []string{"--top-p is 1.5", "(0, 1]"}, not: impl},
		{name: "top-k flag negative", main: llmrun,
			args: onTiny(nil, append(gen, "--top-k", "-3")...), code: 2,
			want: []string{"--top-k is -3"}, not: impl},
		{name: "min-p flag above 1", main: llmrun,
			args: onTiny(nil, append(gen, "--temperature", "1", "--min-p", "2")...), code: 2,
			want: []string{"--min-p is 2"}, not: impl},
		{name: "repetition-penalty flag negative", main: llmrun,
			args: onTiny(nil, append(gen, "--repetition-penalty", "-1")...), code: 2,
			want: []string{"--repetition-penalty is -1"}, not: impl},
		{name: "flag beats a bad file value in the message", main: llmrun,
			args: onTiny(genConfig(`{"do_sample": true, "temperature": -2}`), append(gen, "--temperature", "-3")...), code: 2,
			want: []string{"--temperature is -3"}, not: append(impl, "generation_config.json")},
		{name: "chat temperature flag negative", main: llmrun,
			args: onTiny(nil, "chat", "DIR", "--temperature", "-2"), code: 2,
			want: []string{"--temperature is -2"}, not: impl},

		// JSON type errors in config.json and generation_config.json name
		// the field and the type it must have; exit 1.
		{name: "config rms_norm_eps a string", main: llmrun,
			args: onTiny(setConfig("rms_norm_eps", "1e-5"), gen...), code: 1,
			want: []string{`config.json: field "rms_norm_eps" must be a number (got a string)`}, not: impl},
		{name: "config rms_norm_eps a string, llmc kv", main: llmc,
			args: onTiny(setConfig("rms_norm_eps", "1e-5"), "kv", "DIR", "--max-seq", "8"), code: 1,
			want: []string{`config.json: field "rms_norm_eps" must be a number (got a string)`}, not: impl},
		{name: "config num_hidden_layers fractional", main: llmc,
			args: onTiny(setConfig("num_hidden_layers", 2.5), "ir", "DIR"), code: 1,
			want: []string{`config.json: field "num_hidden_layers" must be an integer (got 2.5)`}, not: impl},
		{name: "config hidden_size a list", main: llmc,
			args: onTiny(setConfig("hidden_size", []int{64}), "compile", "DIR", "-o", "DIR.llmc"), code: 1,
			want: []string{`config.json: field "hidden_size" must be an integer (got a list)`}, not: impl},
		{name: "config architectures a string", main: llmrun,
			args: onTiny(setConfig("architectures", "LlamaForCausalLM"), "score", "DIR", "--ids", "1,2"), code: 1,
			want: []string{`config.json: field "architectures" must be a list of strings (got a string)`}, not: impl},
		{name: "config tie_word_embeddings a string", main: llmrun,
			args: onTiny(setConfig("tie_word_embeddings", "yes"), gen...), code: 1,
			want: []string{`config.json: field "tie_word_embeddings" must be true or false (got a string)`}, not: impl},
		{name: "config rope_scaling factor a string", main: llmrun,
			args: onTiny(setConfig("rope_scaling", map[string]any{"type": "linear", "factor": "2"}), gen...), code: 1,
			want: []string{`config.json: field "rope_scaling.factor" must be a number (got a string)`}, not: impl},
		{name: "generation config temperature a string", main: llmrun,
			args: onTiny(genConfig(`{"do_sample": true, "temperature": "hot"}`), gen...), code: 1,
			want: []string{`generation_config.json: field "temperature" must be a number (got a string)`}, not: impl},
		{name: "generation config do_sample a string", main: llmc,
			args: onTiny(genConfig(`{"do_sample": "true"}`), "kv", "DIR"), code: 1,
			want: []string{`generation_config.json: field "do_sample" must be true or false (got a string)`}, not: impl},
		{name: "generation config max_new_tokens fractional", main: llmrun,
			args: onTiny(genConfig(`{"max_new_tokens": 1.5}`), gen...), code: 1,
			want: []string{`generation_config.json: field "max_new_tokens" must be an integer (got 1.5)`}, not: impl},

		// --tokenizer names itself.
		{name: "tokenizer flag missing folder", main: llmrun,
			args: onTiny(nil, "generate", "DIR", "--prompt", "hi", "--tokenizer", missing), code: 1,
			want: []string{"--tokenizer", missing, "does not exist"}, not: impl},
		{name: "tokenizer flag folder without tokenizer", main: llmrun,
			args: onTiny(nil, "generate", "DIR", "--prompt", "hi", "--tokenizer", "DIR"), code: 1,
			want: []string{"--tokenizer", "has no tokenizer.json"}, not: impl},
		{name: "chat tokenizer flag missing folder", main: llmrun,
			args: onTiny(nil, "chat", "DIR", "--tokenizer", missing), code: 1,
			want: []string{"--tokenizer", missing, "does not exist"}, not: impl},
		{name: "synth tokenizer flag missing folder", main: llmc,
			args: onTiny(nil, "synth", "--shape", "stories15M", "--tokenizer", missing, "-o", "DIR/synth"), code: 1,
			want: []string{"--tokenizer", missing, "does not exist"}, not: impl},
		{name: "tokenize of a missing folder", main: llmrun,
			args: func(t *testing.T) []string { return []string{"tokenize", missing, "--text", "hi"} }, code: 1,
			want: []string{missing, "does not exist"}, not: impl},

		// An artifact that lost its manifest.json.
		{name: "artifact without manifest, generate", main: llmrun,
			args: func(t *testing.T) []string {
				art, _ := tinyArtifact(t, removeFile("manifest.json"))
				return []string{"generate", art, "--ids", "1,2"}
			}, code: 1,
			want: []string{"looks like an llmc artifact", "program.ir", "without its manifest.json", "compile it again"},
			not:  []string{"safetensors"}},
		{name: "artifact without manifest, score", main: llmrun,
			args: func(t *testing.T) []string {
				art, _ := tinyArtifact(t, removeFile("manifest.json"))
				return []string{"score", art, "--ids", "1,2"}
			}, code: 1,
			want: []string{"looks like an llmc artifact", "without its manifest.json"}, not: []string{"safetensors"}},
		{name: "artifact without manifest given to compile", main: llmc,
			args: func(t *testing.T) []string {
				art, _ := tinyArtifact(t, removeFile("manifest.json"))
				return []string{"compile", art, "-o", art + "2"}
			}, code: 1,
			want: []string{"looks like an llmc artifact", "without its manifest.json", "model folder it was compiled from"},
			not:  []string{"safetensors"}},

		// An artifact where a model folder is wanted.
		{name: "artifact given to compile", main: llmc,
			args: func(t *testing.T) []string {
				art, modelDir := tinyArtifact(t)
				return []string{"compile", art, "-o", art + "2", "--max-seq", "16", "WANT:" + modelDir}
			}, code: 1,
			want: []string{"is an llmc artifact", "compiled from", "pass llmc compile that model folder"},
			not:  []string{"safetensors"}},
		{name: "artifact given to ir", main: llmc,
			args: func(t *testing.T) []string {
				art, modelDir := tinyArtifact(t)
				return []string{"ir", art, "WANT:" + modelDir}
			}, code: 1,
			want: []string{"is an llmc artifact", "compiled from", "pass llmc ir that model folder"},
			not:  []string{"safetensors"}},

		// An explicit 0 (or less) where only a positive number makes sense
		// is refused, saying to leave the flag out for the default.
		{name: "compile max-seq 0", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--max-seq", "0"), code: 2,
			want: []string{"--max-seq is 0", "positive", "leave --max-seq out"}},
		{name: "compile max-seq negative", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--max-seq", "-4"), code: 2,
			want: []string{"--max-seq is -4", "leave --max-seq out"}},
		{name: "compile prefill-chunk 0", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--prefill-chunk", "0"), code: 2,
			want: []string{"--prefill-chunk is 0", "leave --prefill-chunk out"}},
		{name: "compile prefill-chunk negative", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--prefill-chunk", "-4"), code: 2,
			want: []string{"--prefill-chunk is -4"}},
		{name: "kv max-seq 0", main: llmc,
			args: onTiny(nil, "kv", "DIR", "--max-seq", "0"), code: 2,
			want: []string{"--max-seq is 0", "leave --max-seq out"}},
		{name: "synth vocab 0", main: llmc,
			args: onTiny(nil, "synth", "--shape", "stories15M", "--vocab", "0", "-o", "DIR/synth"), code: 2,
			want: []string{"--vocab is 0", "leave --vocab out"}},
		{name: "synth vocab negative", main: llmc,
			args: onTiny(nil, "synth", "--shape", "stories15M", "--vocab", "-4", "-o", "DIR/synth"), code: 2,
			want: []string{"--vocab is -4"}},
		{name: "synth max-positions 0", main: llmc,
			args: onTiny(nil, "synth", "--shape", "stories15M", "--max-positions", "0", "-o", "DIR/synth"), code: 2,
			want: []string{"--max-positions is 0", "leave --max-positions out"}},
		{name: "bench prompt 0", main: llmrun,
			args: onTiny(nil, "bench", "DIR", "--prompt", "0"), code: 2, want: []string{"--prompt is 0"}},
		{name: "bench gen 1", main: llmrun,
			args: onTiny(nil, "bench", "DIR", "--gen", "1"), code: 2, want: []string{"--gen is 1"}},
		{name: "bench runs 0", main: llmrun,
			args: onTiny(nil, "bench", "DIR", "--runs", "0"), code: 2, want: []string{"--runs is 0"}},
		{name: "bench threads negative", main: llmrun,
			args: onTiny(nil, "bench", "DIR", "--threads", "-2", "--no-bandwidth"), code: 2, want: []string{"--threads is -2"}},
		{name: "score threads negative", main: llmrun,
			args: onTiny(nil, "score", "DIR", "--ids", "1,2", "--threads", "-2"), code: 2, want: []string{"--threads is -2"}},
		{name: "chat max-new-tokens 0", main: llmrun,
			args: onTiny(nil, "chat", "DIR", "--max-new-tokens", "0"), code: 2, want: []string{"--max-new-tokens is 0"}},

		// One rule for exit statuses: bad flags of llmc compile that only
		// the compiler can judge are usage errors too.
		{name: "compile max-seq beyond the model", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--max-seq", "100000"), code: 2,
			want: []string{"--max-seq 100000", "max_position_embeddings"}},
		{name: "compile unknown backend", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--backend", "cuda"), code: 2,
			want: []string{`--backend "cuda"`, "interp"}},
		{name: "compile unknown kv", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--kv", "paged"), code: 2,
			want: []string{`--kv is "paged"`}},
		{name: "compile generated backend with a dynamic cache", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--kv", "dynamic", "--backend", "llvm"), code: 2,
			want: []string{"--backend llvm needs a static KV cache"}},
		{name: "compile unknown kv-dtype", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--kv-dtype", "q8_0"), code: 2,
			want: []string{`--kv-dtype "q8_0": want f32, f16 or bf16`}},
		{name: "compile 16-bit cache for the interpreter", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--backend", "interp", "--kv-dtype", "f16"), code: 2,
			want: []string{"--kv-dtype f16: backend interp stores its KV cache in float32 only (backends that store f16: go, llvm)"}},
		{name: "compile 16-bit dynamic cache", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--kv", "dynamic", "--kv-dtype", "bf16"), code: 2,
			want: []string{"--kv-dtype bf16 needs a static KV cache (--kv static)"}},
		{name: "compile disables a required pass", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--disable-pass", "static-kv"), code: 2,
			want: []string{"--disable-pass", "required"}},
		{name: "compile prints after an unknown pass", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--print-after", "regalloc"), code: 2,
			want: []string{"--print-after", `"regalloc"`}},
		{name: "compile unknown emit", main: llmc,
			args: onTiny(nil, "compile", "DIR", "-o", "DIR.llmc", "--emit", "wasm"), code: 2,
			want: []string{`--emit "wasm"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args(t)
			want := tt.want
			// A "WANT:" argument is not passed: it is one more substring
			// the message must have (a path known only once built).
			var cmd []string
			for _, a := range args {
				if w, ok := strings.CutPrefix(a, "WANT:"); ok {
					want = append(append([]string(nil), want...), w)
				} else {
					cmd = append(cmd, a)
				}
			}
			r := tt.main(t, cmd...)
			checkWords(t, r, tt.code, want, tt.not)
			if tt.code != 0 {
				assert.Empty(t, r.stdout)
			}
		})
	}
}

// TestExitStatusRuleInHelp: the rule is written in the --help of both
// commands and of their subcommands.
func TestExitStatusRuleInHelp(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		main func(*testing.T, ...string) result
		args []string
		code int
	}{
		{llmc, []string{"--help"}, 0},
		{llmrun, []string{"--help"}, 0},
		{llmc, nil, 2},
		{llmrun, nil, 2},
		{llmc, []string{"compile", "--help"}, 0},
		{llmrun, []string{"generate", "--help"}, 0},
		{llmrun, []string{"help", "generate"}, 0},
		{llmrun, []string{"verify", "--help"}, 0},
	} {
		r := tt.main(t, tt.args...)
		assert.Equalf(t, tt.code, r.code, "%q", tt.args)
		assert.Containsf(t, r.stderr, "2 for a usage error", "%q", tt.args)
		assert.Containsf(t, r.stderr, "1 for any other error", "%q", tt.args)
	}
}

// TestArtifactExecutableErrors runs a Go-backend artifact through llmrun,
// which hands off to the artifact's own executable: an error the
// executable finds is printed once, by it, and its exit status is passed
// on unchanged.
func TestArtifactExecutableErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go-backend artifact's executable")
	}
	t.Parallel()
	dir := tiny(t)
	art := filepath.Join(t.TempDir(), "tiny-go.llmc")
	requireOK(t, llmc(t, "compile", dir, "--backend", "go", "--max-seq", "32", "-o", art, "--quiet"))
	var man struct {
		Backend string `json:"backend"`
	}
	data, err := os.ReadFile(filepath.Join(art, "manifest.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &man))
	require.Equal(t, "go", man.Backend)
	noDir := filepath.Join(t.TempDir(), "missing", "logits.jsonl")

	tests := []struct {
		name string
		args []string
		code int
		once []string // exactly once in stderr
	}{
		{"usage error in generate", []string{"generate", art, "--ids", "1,9999", "--max-new-tokens", "2"}, 2,
			[]string{"token id 9999", "run 'llmrun generate --help' for usage"}},
		{"usage error in bench", []string{"bench", art, "--prompt", "30", "--gen", "10", "--runs", "1", "--no-bandwidth"}, 2,
			[]string{"exceed the 32 positions", "run 'llmrun bench --help' for usage"}},
		{"other error in score", []string{"score", art, "--ids", "1,2", "--logits", noDir}, 1,
			[]string{"writing " + noDir}},
		{"success", []string{"generate", art, "--ids", "1,2", "--max-new-tokens", "2"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := llmrun(t, tt.args...)
			t.Logf("exit %d: %s", r.code, r.stderr)
			assert.Equalf(t, tt.code, r.code, "exit status; stderr:\n%s", r.stderr)
			for _, w := range tt.once {
				assert.Equalf(t, 1, strings.Count(r.stderr, w), "%q once in:\n%s", w, r.stderr)
			}
			assert.NotContains(t, r.stderr, "exit status", "the parent adds nothing to the child's message")
			if tt.code != 0 {
				assert.Equal(t, 1, strings.Count(r.stderr, "llmrun:"), "one error line:\n%s", r.stderr)
			}
		})
	}
}
