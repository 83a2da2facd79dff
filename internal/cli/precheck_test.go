package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/runtime"
)

// printedIR is how --print-after-all begins the IR of the decode entry
// point after a pass: a check that runs before compiling finds bad input
// before anything is printed.
const printedIR = "# decode after "

// TestUnknownISA: an LLMC_ISA that names no instruction set is refused,
// naming the variable and the values it takes, by llmc compile and by
// every llmrun command that runs a model, before anything is compiled or
// loaded; the values the cap reads still work. Not parallel: it sets the
// environment.
func TestUnknownISA(t *testing.T) {
	stories := model(t, "stories260K")
	missing := filepath.Join(t.TempDir(), "no-such-model")
	out := func() string { return filepath.Join(t.TempDir(), "s.llmc") }
	bad := []string{`LLMC_ISA="sse9": want avx512, avx2 or scalar`}
	tests := []struct {
		name string
		isa  string
		main func(*testing.T, ...string) result
		args []string
		code int
		want []string
		not  []string
	}{
		{"compile", "sse9", llmc, []string{"compile", stories, "--backend", "interp", "-o", out(), "--print-after-all"}, 1, bad, []string{printedIR}},
		{"compile, default backend", "sse9", llmc, []string{"compile", stories, "-o", out(), "--quiet"}, 1, bad, nil},
		{"generate", "sse9", llmrun, []string{"generate", stories, "--prompt", "hi", "--max-new-tokens", "2"}, 1, bad, nil},
		{"score", "sse9", llmrun, []string{"score", stories, "--ids", "1,2"}, 1, bad, nil},
		{"bench", "sse9", llmrun, []string{"bench", stories, "--prompt", "2", "--gen", "2", "--runs", "1", "--no-bandwidth"}, 1, bad, nil},
		{"chat", "sse9", llmrunNoInput, []string{"chat", stories}, 1, bad, nil},
		// A model that does not exist: refused before loading, which
		// without the check would fail on the model instead.
		{"serve", "sse9", llmrun, []string{"serve", missing, "--addr", "127.0.0.1:0"}, 1, bad, []string{"listening"}},
		{"empty", "", llmc, []string{"compile", stories, "--backend", "interp", "-o", out(), "--quiet"}, 0, nil, nil},
		{"compile capped, any case and spaces", " Scalar ", llmc, []string{"compile", stories, "--backend", "interp", "-o", out(), "--quiet"}, 0, nil, nil},
		{"generate capped", "avx2", llmrun, []string{"generate", stories, "--ids", "1,2", "--max-new-tokens", "2"}, 0, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(runtime.ISAEnv, tt.isa)
			r := tt.main(t, tt.args...)
			checkWords(t, r, tt.code, tt.want, tt.not)
		})
	}
}

// TestThreadsBound: --threads beyond cmdline.MaxThreads (or below 0) is a
// usage error of every command that takes it, naming the flag, the value,
// the range and the CPUs, before the model is loaded; the bound itself
// works.
func TestThreadsBound(t *testing.T) {
	t.Parallel()
	stories := model(t, "stories260K")
	missing := filepath.Join(t.TempDir(), "no-such-model")
	most := cmdline.MaxThreads()
	tooMany := strconv.Itoa(most + 1)
	want := func(n string) []string {
		return []string{"--threads is " + n, "want 0 (one per CPU) to " + strconv.Itoa(most),
			"this machine has " + strconv.Itoa(goruntime.NumCPU()) + " CPU"}
	}
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"generate", []string{"generate", stories, "--ids", "1,2", "--threads", "10000"}, 2, want("10000")},
		{"generate, one more than the bound", []string{"generate", stories, "--ids", "1,2", "--threads", tooMany}, 2, want(tooMany)},
		{"generate, a million", []string{"generate", stories, "--prompt", "hi", "--threads", "1000000"}, 2, want("1000000")},
		{"generate, negative", []string{"generate", stories, "--ids", "1,2", "--threads", "-1"}, 2, want("-1")},
		{"score", []string{"score", stories, "--ids", "1,2", "--threads", "10000"}, 2, want("10000")},
		{"bench", []string{"bench", stories, "--prompt", "2", "--gen", "2", "--runs", "1", "--no-bandwidth", "--threads", "10000"}, 2, want("10000")},
		{"chat", []string{"chat", stories, "--threads", "10000"}, 2, want("10000")},
		// A model that does not exist: refused before listening and
		// loading, which without the check would fail on the model.
		{"serve", []string{"serve", missing, "--addr", "127.0.0.1:0", "--threads", "10000"}, 2, want("10000")},
		{"at the bound", []string{"generate", stories, "--ids", "1,2", "--max-new-tokens", "2", "--threads", strconv.Itoa(most)}, 0, nil},
		{"one per CPU", []string{"generate", stories, "--ids", "1,2", "--max-new-tokens", "2", "--threads", "0"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := llmrunNoInput(t, tt.args...)
			checkWords(t, r, tt.code, tt.want, []string{"could not start", "listening"})
		})
	}
}

// TestCompileChecksFirst: what llmc compile would find only after
// compiling (an -o it will not replace), or after printing the IR (a
// --dump-dir it cannot write), or never (a MODEL that is a file) is
// refused first, naming the flag or the path; a broken tokenizer or chat
// template, which llmrun would find in the artifact's copy, is a warning
// naming the model folder's file.
func TestCompileChecksFirst(t *testing.T) {
	t.Parallel()
	// A writable copy of stories260K (it has tokenizer.json and
	// tokenizer_config.json) with damage applied; "DIR" in args stands
	// for it.
	onStories := func(damage func(t *testing.T, dir string), args ...string) func(t *testing.T) []string {
		return func(t *testing.T) []string {
			dir := copyModel(t, "stories260K")
			if damage != nil {
				damage(t, dir)
			}
			return substitute(args, "DIR", dir)
		}
	}
	compile := func(extra ...string) []string {
		return append([]string{"compile", "DIR", "--backend", "interp", "--print-after-all"}, extra...)
	}
	// out is an -o that already exists, made by make in a fresh folder.
	existing := func(make func(t *testing.T, path string)) func(t *testing.T) []string {
		return func(t *testing.T) []string {
			o := filepath.Join(t.TempDir(), "out")
			make(t, o)
			return append(onStories(nil, compile("-o", o)...)(t), "WANT:-o "+o+" exists and is not an llmc artifact; not replacing it")
		}
	}
	file := func(t *testing.T, path string) { require.NoError(t, os.WriteFile(path, []byte("x"), 0o644)) }
	// dumpDir compiles with --dump-dir dir(t); want(d) is what the
	// message must say of it.
	dumpDir := func(dir func(t *testing.T) string, want func(d string) string) func(t *testing.T) []string {
		return func(t *testing.T) []string {
			d := dir(t)
			return append(onStories(nil, compile("-o", filepath.Join(t.TempDir(), "s.llmc"), "--dump-dir", d)...)(t), "WANT:"+want(d))
		}
	}
	aFile := func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "passwd")
		file(t, p)
		return p
	}
	template := func(tmpl string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, "tokenizer_config.json")
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			var cfg map[string]any
			require.NoError(t, json.Unmarshal(data, &cfg))
			cfg["chat_template"] = tmpl
			data, err = json.Marshal(cfg)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(p, data, 0o644))
		}
	}
	// wantFile adds the damaged file of the model folder to what the
	// message must name.
	wantFile := func(args func(t *testing.T) []string, name string) func(t *testing.T) []string {
		return func(t *testing.T) []string {
			a := args(t)
			return append(a, "WANT:"+filepath.Join(a[1], name))
		}
	}
	out := func() string { return "DIR.llmc" }
	quiet := []string{"compile", "DIR", "--backend", "interp", "-o", "DIR.llmc", "--quiet"}
	noTokenizer := func(t *testing.T, dir string) {
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
			require.NoError(t, os.Remove(filepath.Join(dir, f)))
		}
	}

	tests := []wordsCase{
		// --dump-dir.
		{name: "dump-dir is a file", main: llmc, args: dumpDir(aFile, func(d string) string { return "--dump-dir " + d + " exists and is not a folder" }), code: 1,
			not: []string{printedIR, "mkdir"}},
		{name: "dump-dir under a file", main: llmc,
			args: dumpDir(func(t *testing.T) string { return filepath.Join(aFile(t), "dumps") }, func(d string) string { return "--dump-dir " + d + ": " }), code: 1,
			want: []string{"passwd is not a folder"}, not: []string{printedIR, "mkdir"}},
		{name: "dump-dir to make", main: llmc,
			args: dumpDir(func(t *testing.T) string { return filepath.Join(t.TempDir(), "a", "b") }, func(string) string { return "" }), code: 0},

		// MODEL is a file.
		{name: "compile of a file", main: llmc,
			args: onStories(nil, "compile", "DIR/config.json", "--backend", "interp", "-o", out()), code: 1,
			want: []string{"config.json is not a folder: want a Hugging Face model folder"}, not: []string{"config.json/config.json"}},
		{name: "ir of a file", main: llmc, args: onStories(nil, "ir", "DIR/config.json"), code: 1,
			want: []string{"config.json is not a folder: want a Hugging Face model folder"}, not: []string{"config.json/config.json"}},
		{name: "kv of a file", main: llmc, args: onStories(nil, "kv", "DIR/config.json"), code: 1,
			want: []string{"config.json is not a folder: want a Hugging Face model folder"}, not: []string{"config.json/config.json"}},
		{name: "compile of a missing folder", main: llmc, args: onStories(nil, "compile", "DIR/none", "-o", out()), code: 1,
			want: []string{"none does not exist: want a Hugging Face model folder"}},

		// An -o that is not an artifact.
		{name: "output is a file", main: llmc, args: existing(file), code: 1, not: []string{printedIR}},
		{name: "output is a folder with files", main: llmc, args: existing(func(t *testing.T, o string) {
			require.NoError(t, os.Mkdir(o, 0o755))
			file(t, filepath.Join(o, "notes.txt"))
		}), code: 1, not: []string{printedIR}},
		{name: "output is an empty folder", main: llmc, args: existing(func(t *testing.T, o string) {
			require.NoError(t, os.Mkdir(o, 0o755))
		}), code: 1, not: []string{printedIR}},

		// The tokenizer and the chat template: warnings naming the
		// model folder's file, and the compile goes on.
		{name: "tokenizer.json truncated", main: llmc,
			args: wantFile(onStories(writeFile("tokenizer.json", `{"model": `), quiet...), "tokenizer.json"), code: 0,
			want: []string{"llmc: warning: the model's tokenizer", "--ids"}},
		{name: "tokenizer_config.json not JSON", main: llmc,
			args: wantFile(onStories(writeFile("tokenizer_config.json", `{"add_bos_token": tru`), quiet...), "tokenizer_config.json"), code: 0,
			want: []string{"llmc: warning:"}},
		{name: "chat_template.jinja unclosed", main: llmc,
			args: wantFile(onStories(writeFile("chat_template.jinja", "{% for m in messages %}{{ m.content }}"), quiet...), "chat_template.jinja"), code: 0,
			want: []string{"llmc: warning: the model's chat template", "line 1"}},
		{name: "chat_template in tokenizer_config.json broken", main: llmc,
			args: wantFile(onStories(template("{{ messages[0].content | }}"), quiet...), "tokenizer_config.json"), code: 0,
			want: []string{"llmc: warning: the model's chat template", "chat template line 1"}},
		{name: "chat template that parses", main: llmc,
			args: onStories(template("{% for m in messages %}{{ m.content }}{% endfor %}"), "compile", "DIR", "--backend", "interp", "-o", out(), "--quiet"), code: 0},
		{name: "no tokenizer files", main: llmc,
			args: onStories(noTokenizer, "compile", "DIR", "--backend", "interp", "-o", out(), "--quiet"), code: 0, not: []string{"warning"}},
		{name: "tokenizer without a chat template", main: llmc,
			args: onStories(nil, "compile", "DIR", "--backend", "interp", "-o", out(), "--quiet"), code: 0, not: []string{"warning"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var cmd, want []string
			want = append(want, tt.want...)
			for _, a := range tt.args(t) {
				if w, ok := cutWant(a); ok {
					if w != "" {
						want = append(want, w)
					}
				} else {
					cmd = append(cmd, a)
				}
			}
			r := tt.main(t, cmd...)
			checkWords(t, r, tt.code, want, tt.not)
		})
	}
}

// TestDumpDirUnwritable: a --dump-dir in a folder llmc may not write in
// is refused before compiling.
func TestDumpDirUnwritable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root writes in any folder")
	}
	ro := t.TempDir()
	require.NoError(t, os.Chmod(ro, 0o555))
	t.Cleanup(func() { os.Chmod(ro, 0o755) })
	d := filepath.Join(ro, "dumps")
	r := llmc(t, "compile", model(t, "stories260K"), "--backend", "interp", "--print-after-all",
		"-o", filepath.Join(t.TempDir(), "s.llmc"), "--dump-dir", d)
	checkWords(t, r, 1, []string{"--dump-dir " + d + ": cannot write in " + ro}, []string{printedIR})
	assert.NoDirExists(t, d)
}

// cutWant reads a "WANT:" argument (see TestBadInputWords).
func cutWant(a string) (string, bool) { return strings.CutPrefix(a, "WANT:") }

// llmrunNoInput runs llmrun with an empty stdin (for chat).
func llmrunNoInput(t *testing.T, args ...string) result {
	t.Helper()
	return llmrunIn(t, "", args...)
}
