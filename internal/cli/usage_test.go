package cli_test

import (
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests below are the usability audit's: how the command lines answer
// a bad flag, --help, help CMD and version. None loads a model.

// TestFlagErrorsOneLine: a flag the flag package refuses prints one line
// naming the flag and the pointer at --help, exit 2, as every other usage
// error does; not the whole help, which would scroll the error away.
func TestFlagErrorsOneLine(t *testing.T) {
	t.Parallel()
	m := filepath.Join(t.TempDir(), "no-model") // never opened
	tests := []struct {
		main func(*testing.T, ...string) result
		args []string
		want string // the first line
	}{
		{llmrun, []string{"generate", m, "--promt", "hi"}, "llmrun: unknown flag --promt (did you mean --prompt?)"},
		{llmrun, []string{"generate", m, "--seed", "-1"}, `llmrun: invalid value "-1" for --seed: want a non-negative integer`},
		{llmrun, []string{"generate", m, "--ids", "1", "--max-new-tokens", "many"}, `llmrun: invalid value "many" for --max-new-tokens: want an integer`},
		{llmrun, []string{"generate", m, "--prompt"}, "llmrun: --prompt needs a value"},
		{llmrun, []string{"chat", m, "--temprature", "1"}, "llmrun: unknown flag --temprature (did you mean --temperature?)"},
		{llmrun, []string{"serve", m, "--timeout", "5"}, `llmrun: invalid value "5" for --timeout: want a duration such as 30s, 5m or 1h30m`},
		{llmrun, []string{"bench", m, "--bogus"}, "llmrun: unknown flag --bogus"},
		{llmrun, []string{"verify", m, "--quiet"}, "llmrun: unknown flag --quiet"},
		{llmc, []string{"compile", m, "--frobnicate"}, "llmc: unknown flag --frobnicate"},
		{llmc, []string{"compile", m, "-o"}, "llmc: -o needs a value"},
		{llmc, []string{"kv", m, "--max-seq", "1e3"}, `llmc: invalid value "1e3" for --max-seq: want an integer`},
		// --addr is checked before MODEL is opened.
		{llmrun, []string{"serve", m, "--addr", "127.0.0.1:99999"}, `llmrun: --addr is "127.0.0.1:99999": want a port number in 0..65535 (or a service name), not "99999"`},
		{llmrun, []string{"serve", m, "--addr", "localhost"}, `llmrun: --addr is "localhost": want HOST:PORT, such as 127.0.0.1:8080 (port 0 picks a free one)`},
		{llmrun, []string{"serve", m, "--addr", "127.0.0.1:-1"}, `llmrun: --addr is "127.0.0.1:-1": want a port number in 0..65535 (or a service name), not "-1"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:1], " ")+" "+strings.Join(tt.args[2:], " "), func(t *testing.T) {
			r := tt.main(t, tt.args...)
			assert.Equalf(t, 2, r.code, "exit status; stderr:\n%s", r.stderr)
			assert.Empty(t, r.stdout)
			prog := strings.TrimSuffix(strings.SplitN(tt.want, ":", 2)[0], ":")
			assert.Equal(t, tt.want+"\nrun '"+prog+" "+tt.args[0]+" --help' for usage\n", r.stderr)
		})
	}
}

// commandList returns the names and summaries of the commands main's
// --help lists.
func commandList(t *testing.T, main func(*testing.T, ...string) result) (names, lines []string) {
	t.Helper()
	r := main(t, "--help")
	require.Zero(t, r.code)
	_, list, ok := strings.Cut(r.stderr, "\ncommands:\n")
	require.True(t, ok, r.stderr)
	list, _, _ = strings.Cut(list, "\n\n")
	for _, line := range strings.Split(list, "\n") {
		names = append(names, strings.Fields(line)[0])
		lines = append(lines, line)
	}
	return names, lines
}

// TestCommandListOneLine: the top-level help gives each command a whole
// sentence on one line, not a summary cut where its first line breaks.
func TestCommandListOneLine(t *testing.T) {
	t.Parallel()
	for _, main := range []func(*testing.T, ...string) result{llmc, llmrun} {
		names, lines := commandList(t, main)
		assert.Contains(t, names, "version")
		for i, line := range lines {
			assert.Truef(t, strings.HasSuffix(line, "."), "%s: %q does not end a sentence", names[i], line)
			assert.LessOrEqualf(t, len([]rune(line)), 100, "%s: %q is too long for one line", names[i], line)
		}
	}
	_, lines := commandList(t, llmrun)
	assert.Contains(t, lines, "  verify       Hash every file an artifact depends on and report what differs.")
	assert.Contains(t, lines, "  loadgen      Load a server that speaks the OpenAI API and measure its throughput and latency.")
	_, lines = commandList(t, llmc)
	assert.Contains(t, lines, "  kv           Print the KV cache size of a model for N positions, with its breakdown.")
}

// defaultTwice matches a flag usage that says "(default" twice: its own
// words and the flag package's.
var defaultTwice = regexp.MustCompile(`\(default.*\(default`)

// TestEveryCommandHelp runs --help and help CMD of every command: the same
// help, exit 0, each default said once, and no flags: heading without
// flags.
func TestEveryCommandHelp(t *testing.T) {
	t.Parallel()
	for _, p := range []struct {
		name string
		main func(*testing.T, ...string) result
	}{{"llmc", llmc}, {"llmrun", llmrun}} {
		names, _ := commandList(t, p.main)
		for _, name := range names {
			t.Run(p.name+" "+name, func(t *testing.T) {
				r := p.main(t, name, "--help")
				require.Zerof(t, r.code, "stderr:\n%s", r.stderr)
				assert.Contains(t, r.stderr, "usage: "+p.name+" "+name)
				h := p.main(t, "help", name)
				assert.Zero(t, h.code)
				assert.Equal(t, r.stderr, h.stderr, "help CMD prints CMD --help")
				for _, line := range strings.Split(r.stderr, "\n") {
					assert.NotRegexp(t, defaultTwice, line)
				}
				assert.NotContains(t, r.stderr, "flags:\n\n", "a flags: heading without flags")
			})
		}
	}
}

// TestHelpDefaults: where a flag's usage says its default, the flag
// package's "(default X)" is not printed after it; elsewhere it still is.
func TestHelpDefaults(t *testing.T) {
	t.Parallel()
	flagHelp := func(help, name string) string {
		_, after, ok := strings.Cut(help, "\n  -"+name+" ")
		require.True(t, ok, "no -%s in\n%s", name, help)
		_, usage, _ := strings.Cut(after, "\n")
		usage, _, _ = strings.Cut(usage, "\n")
		return strings.TrimSpace(usage)
	}
	gen := llmrun(t, "generate", "--help").stderr
	assert.Equal(t, "the most tokens to generate (default: generation_config.json's max_new_tokens, else 64; at most what the context holds)", flagHelp(gen, "max-new-tokens"))
	assert.Equal(t, "nucleus sampling: keep the smallest set with this much probability; 1 keeps all (default: generation_config.json, else 1)", flagHelp(gen, "top-p"))
	assert.Equal(t, "penalise tokens already seen; 1 is off (default: generation_config.json, else 1)", flagHelp(gen, "repetition-penalty"))
	assert.Equal(t, `output format: text (the text, or with --ids the ids, as they are generated) or json (default "text")`, flagHelp(gen, "format"))
	serve := llmrun(t, "serve", "--help").stderr
	assert.Equal(t, "sequences decoded side by side, each with its own KV cache (default 4, or 1 where the model runs one at a time)", flagHelp(serve, "slots"))
	assert.Equal(t, "requests that may wait for a slot; more get 429 (default 64)", flagHelp(serve, "queue"))

	verify := llmrun(t, "verify", "--help")
	require.Zero(t, verify.code)
	assert.NotContains(t, verify.stderr, "flags:")
	assert.Contains(t, verify.stderr, "llmrun verify ~/tinyllama.llmc\n\nexit status:")
}

func TestHelpOfUnknownCommand(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		main func(*testing.T, ...string) result
		prog string
	}{{llmc, "llmc"}, {llmrun, "llmrun"}} {
		r := tt.main(t, "help", "nosuch")
		assert.Equal(t, 2, r.code)
		assert.Contains(t, r.stderr, tt.prog+`: unknown command "nosuch"`)
		assert.Empty(t, r.stdout)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		main func(*testing.T, ...string) result
		prog string
		args []string
	}{
		{llmc, "llmc", []string{"version"}}, {llmc, "llmc", []string{"--version"}},
		{llmrun, "llmrun", []string{"version"}}, {llmrun, "llmrun", []string{"--version"}},
	} {
		r := tt.main(t, tt.args...)
		assert.Zerof(t, r.code, "%s %q: stderr:\n%s", tt.prog, tt.args, r.stderr)
		assert.Empty(t, r.stderr)
		assert.Regexpf(t, `^`+tt.prog+` \S+ .*`+regexp.QuoteMeta(runtime.Version())+` \S+/\S+\n$`, r.stdout, "%s %q", tt.prog, tt.args)
	}
	r := llmrun(t, "version", "extra")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "version takes no arguments")
}
