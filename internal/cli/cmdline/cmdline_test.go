package cmdline

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testProgram is a program "p" with a command "c" of every kind of flag
// and a command "bare" without flags.
func testProgram() *Program {
	return &Program{Name: "p", Commands: []*Command{
		{
			Name: "c", Args: "X [flags]",
			Summary:  "Do c to X,\nwhich takes two lines.\n\nMore about c.",
			Examples: []string{"p c x --n 2"},
			Flags: func(fs *flag.FlagSet) func([]string) error {
				fs.Int("n", 64, "how many (default: the file's, else 64)")
				fs.Int("count", 3, "a count")
				fs.Uint64("seed", 0, "a seed")
				fs.Float64("top", 1, "a fraction")
				fs.Bool("on", false, "a switch")
				fs.Duration("wait", time.Second, "a wait")
				fs.String("o", "", "output")
				fs.String("prompt", "", "a prompt")
				fs.String("profile", "", "a profile")
				return func(pos []string) error { return nil }
			},
		},
		{
			Name: "bare", Args: "X", Short: "Bare.", Summary: "Bare, with a summary\nof two lines.",
			Flags: func(fs *flag.FlagSet) func([]string) error {
				return func(pos []string) error { return nil }
			},
		},
	}}
}

func runProgram(p *Program, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = p.Run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestFlagErrorIsOneLine: a flag the flag package refuses is one line
// naming the flag, then the pointer at --help; not the whole usage.
func TestFlagErrorIsOneLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"c", "x", "--frobnicate"}, "p: unknown flag --frobnicate"},
		{[]string{"c", "x", "--promt", "hi"}, "p: unknown flag --promt (did you mean --prompt?)"},
		{[]string{"c", "x", "--cou", "1"}, "p: unknown flag --cou (did you mean --count?)"},
		{[]string{"c", "x", "--pro", "hi"}, "p: unknown flag --pro"}, // prompt or profile
		{[]string{"c", "x", "--sede", "1"}, "p: unknown flag --sede (did you mean --seed?)"},
		{[]string{"c", "x", "--promtp", "1"}, "p: unknown flag --promtp (did you mean --prompt?)"},
		{[]string{"c", "x", "--xo", "1"}, "p: unknown flag --xo"},
		{[]string{"c", "x", "--profiel", "1"}, "p: unknown flag --profiel (did you mean --profile?)"},
		{[]string{"c", "x", "--seed", "-1"}, `p: invalid value "-1" for --seed: want a non-negative integer`},
		{[]string{"c", "x", "--count", "many"}, `p: invalid value "many" for --count: want an integer`},
		{[]string{"c", "x", "--count", "99999999999999999999999"}, `p: invalid value "99999999999999999999999" for --count: out of range`},
		{[]string{"c", "x", "--top", "x"}, `p: invalid value "x" for --top: want a number`},
		{[]string{"c", "x", "--on=maybe"}, `p: invalid value "maybe" for --on: want true or false`},
		{[]string{"c", "x", "--wait", "5"}, `p: invalid value "5" for --wait: want a duration such as 30s, 5m or 1h30m`},
		{[]string{"c", "x", "--count"}, "p: --count needs a value"},
		{[]string{"c", "x", "-o"}, "p: -o needs a value"},
		{[]string{"bare", "x", "--n", "1"}, "p: unknown flag -n"}, // one letter: -n, as in -o
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runProgram(testProgram(), tt.args...)
			assert.Equal(t, 2, code)
			assert.Empty(t, stdout)
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			require.Len(t, lines, 2, stderr)
			assert.Equal(t, tt.want, lines[0])
			assert.Equal(t, "run 'p "+tt.args[0]+" --help' for usage", lines[1])
		})
	}
}

// TestHelpCommand: help CMD is CMD --help; help of an unknown command is
// a usage error.
func TestHelpCommand(t *testing.T) {
	_, _, cHelp := runProgram(testProgram(), "c", "--help")
	require.Contains(t, cHelp, "usage: p c X [flags]")
	for _, args := range [][]string{{"help", "c"}, {"--help", "c"}, {"-h", "c"}, {"c", "-h"}, {"c", "x", "--n", "2", "-help"}} {
		code, stdout, stderr := runProgram(testProgram(), args...)
		assert.Equalf(t, 0, code, "%q", args)
		assert.Emptyf(t, stdout, "%q", args)
		assert.Equalf(t, cHelp, stderr, "%q", args)
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"help", "help"}, {"help", "-h"}} {
		code, _, stderr := runProgram(testProgram(), args...)
		assert.Equalf(t, 0, code, "%q", args)
		assert.Containsf(t, stderr, "usage: p COMMAND", "%q", args)
	}
	code, _, stderr := runProgram(testProgram(), "help", "nosuch")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `p: unknown command "nosuch"`)
	code, _, stderr = runProgram(testProgram(), "help", "c", "bare")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "help takes one command")
}

// TestTopLevelSummaries: the command list has one line per command, its
// Short or its Summary's first paragraph joined.
func TestTopLevelSummaries(t *testing.T) {
	_, _, stderr := runProgram(testProgram(), "--help")
	assert.Contains(t, stderr, "  c            Do c to X, which takes two lines.\n")
	assert.Contains(t, stderr, "  bare         Bare.\n")
	assert.Contains(t, stderr, "  version      Print the version and VCS revision of this build.\n")
	assert.Contains(t, stderr, "run 'p help COMMAND' or 'p COMMAND --help'")
}

// TestNoFlagsNoHeading: a command without flags has no flags: heading.
func TestNoFlagsNoHeading(t *testing.T) {
	code, _, stderr := runProgram(testProgram(), "bare", "--help")
	assert.Equal(t, 0, code)
	assert.NotContains(t, stderr, "flags:")
	assert.Contains(t, stderr, "usage: p bare X\n")
	assert.Contains(t, stderr, exitStatusDoc)
	_, _, stderr = runProgram(testProgram(), "c", "--help")
	assert.Contains(t, stderr, "\nflags:\n")
}

// TestPrintFlags: the flags print as the flag package prints them, except
// that a usage that says its default does not get "(default X)" too.
func TestPrintFlags(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Int("n", 64, "how many (default: the file's, else 64)")
	fs.Int("slots", 4, "sequences (default 4, or 1 where the model runs one at a time)")
	var b bytes.Buffer
	PrintFlags(&b, fs)
	assert.Equal(t, "  -n int\n    \thow many (default: the file's, else 64)\n"+
		"  -slots int\n    \tsequences (default 4, or 1 where the model runs one at a time)\n", b.String())

	// Every other flag as fs.PrintDefaults prints it.
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Int("count", 3, "a `number` of things")
	fs.Int("zero", 0, "zero")
	fs.Uint64("seed", 7, "a seed")
	fs.Float64("top", 1, "a fraction")
	fs.Float64("p", 0, "p")
	fs.Bool("on", true, "a switch")
	fs.Bool("v", false, "one letter")
	fs.Duration("wait", time.Second, "a wait")
	fs.String("format", "text", "text or json")
	fs.String("o", "", "output\non two lines")
	fs.Func("f", "a func", func(string) error { return nil })
	var want bytes.Buffer
	fs.SetOutput(&want)
	fs.PrintDefaults()
	b.Reset()
	PrintFlags(&b, fs)
	assert.Equal(t, want.String(), b.String())
}

func TestVersionLine(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Path: "m", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.modified", Value: "false"}, {Key: "GOOS", Value: "linux"},
			{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2025-01-02T03:04:05Z"},
		}}
	assert.Equal(t, "p v1.2.3 vcs.revision=abc123 vcs.time=2025-01-02T03:04:05Z vcs.modified=false go1.99 "+runtime.GOOS+"/"+runtime.GOARCH,
		VersionLine("p", bi))
	bi = &debug.BuildInfo{Main: debug.Module{Path: "m", Version: "(devel)"}}
	assert.Equal(t, "p (devel) "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH, VersionLine("p", bi))
	assert.Equal(t, "p (devel) "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH, VersionLine("p", nil))
}

func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		code, stdout, stderr := runProgram(testProgram(), args...)
		assert.Equalf(t, 0, code, "%q", args)
		assert.Emptyf(t, stderr, "%q", args)
		assert.Truef(t, strings.HasPrefix(stdout, "p "), "%q: %q", args, stdout)
		assert.Containsf(t, stdout, runtime.Version(), "%q", args)
		assert.Equalf(t, 1, strings.Count(stdout, "\n"), "%q: one line", args)
	}
	code, stdout, stderr := runProgram(testProgram(), "version", "x")
	assert.Equal(t, 2, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "version takes no arguments")
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"promt", "prompt", 1}, {"seed", "sede", 1}, {"ca", "abc", 3}, {"abc", "", 3}, {"kitten", "sitting", 3}} {
		assert.Equalf(t, tt.d, editDistance(tt.a, tt.b), "%q %q", tt.a, tt.b)
		assert.Equalf(t, tt.d, editDistance(tt.b, tt.a), "%q %q", tt.b, tt.a)
	}
}

// TestCheckThreads: --threads takes 0 (one per CPU) to MaxThreads, which
// is at least 64 and 8 per CPU; beyond either end it is a usage error
// naming the flag, the value, the range and the CPUs.
func TestCheckThreads(t *testing.T) {
	most := MaxThreads()
	require.GreaterOrEqual(t, most, 64)
	require.GreaterOrEqual(t, most, 8*runtime.NumCPU())
	for _, c := range []struct {
		n  int
		ok bool
	}{{0, true}, {1, true}, {64, true}, {most, true}, {-1, false}, {most + 1, false}, {10000, false}, {1000000, false}} {
		err := CheckThreads(c.n)
		if c.ok {
			assert.NoErrorf(t, err, "--threads %d", c.n)
			continue
		}
		var ue *UsageError
		require.ErrorAsf(t, err, &ue, "--threads %d", c.n)
		for _, w := range []string{
			"--threads is " + strconv.Itoa(c.n), "want 0 (one per CPU) to " + strconv.Itoa(most),
			"this machine has " + strconv.Itoa(runtime.NumCPU()) + " CPU",
		} {
			assert.Contains(t, err.Error(), w)
		}
	}
}

// TestCheckFolder: a folder passes, a missing path or a file is refused
// in llmrun's words.
func TestCheckFolder(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(file, []byte("{}"), 0o644))
	for _, c := range []struct{ path, want string }{
		{dir, ""},
		{file, file + " is not a folder: want a model folder"},
		{filepath.Join(dir, "missing"), filepath.Join(dir, "missing") + " does not exist: want a model folder"},
	} {
		err := CheckFolder(c.path, "a model folder")
		if c.want == "" {
			assert.NoError(t, err, c.path)
		} else {
			assert.EqualError(t, err, c.want)
		}
	}
}
