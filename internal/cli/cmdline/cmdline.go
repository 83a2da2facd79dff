// Package cmdline is what the llmc and llmrun command lines share: a
// program of subcommands with their usage, the one rule for exit statuses,
// and small flag helpers. It knows neither the compiler nor the runtime,
// so that each command links only its own side.
package cmdline

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"strings"

	"github.com/llmc-dev/llmc/internal/sysmem"
)

// UsageError marks errors caused by how the command was called; they exit
// with status 2 and print the subcommand's usage hint.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{msg: fmt.Sprintf(format, args...)}
}

// ExitError ends a command with an exit status whose message has been
// printed already (by an artifact's executable that ran in its place).
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Command is one subcommand of llmc or llmrun.
type Command struct {
	Name string
	Args string // positional arguments, for the usage line
	// Short is the one-line summary of the program's command list; when
	// empty, it is the first paragraph of Summary, which must then be one
	// sentence.
	Short    string
	Summary  string
	Examples []string
	// Flags registers the command's flags on fs and returns the function
	// that runs it with the positional arguments.
	Flags func(fs *flag.FlagSet) func(pos []string) error
}

// Program is a command line of subcommands.
type Program struct {
	Name     string
	Commands []*Command
	// Handle, if not nil, sees the error a command returned first: when it
	// deals with the error itself it returns the exit status and true.
	// args are the command line, without the program name.
	Handle func(err error, args []string, stdout, stderr io.Writer) (int, bool)
	// Hint, if not nil, returns a line to print after an error's message,
	// or "".
	Hint func(fs *flag.FlagSet, err error) string
}

// parseInterspersed parses flags that may come before or after positional
// arguments (llmrun generate MODEL --ids 1,2), returning the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// Run dispatches args to one of the commands and turns errors into an exit
// status.
func (p *Program) Run(args []string, stdout, stderr io.Writer) int {
	prog, cmds := p.Name, p.commands(stdout)
	if len(args) > 0 && (args[0] == "-version" || args[0] == "--version") {
		args = append([]string{"version"}, args[1:]...)
	}
	help := len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help")
	if help && len(args) > 2 {
		fmt.Fprintf(stderr, "%s: help takes one command, got %d arguments: %s\n", prog, len(args)-1, strings.Join(args[1:], " "))
		fmt.Fprintf(stderr, "run '%s --help' for usage\n", prog)
		return 2
	}
	if len(args) == 0 || help && (len(args) == 1 || args[1] == "help" || args[1] == "-h" || args[1] == "--help") {
		p.printUsage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	if help {
		name = args[1] // help CMD is CMD --help
		args = []string{name, "--help"}
	}
	var cmd *Command
	for _, c := range cmds {
		if c.Name == name {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", prog, name)
		p.printUsage(stderr, cmds)
		return 2
	}
	fs := flag.NewFlagSet(prog+" "+cmd.Name, flag.ContinueOnError)
	exec := cmd.Flags(fs)
	// The flag package prints a parse error and then the whole usage; Run
	// prints the error as one line and points at --help instead, like every
	// other usage error, and prints the usage only when it is asked for.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	pos, err := parseInterspersed(fs, args[1:])
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(stderr, prog, cmd, fs)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", prog, flagError(fs, err))
		fmt.Fprintf(stderr, "run '%s %s --help' for usage\n", prog, cmd.Name)
		return 2
	}
	err = exec(pos)
	if err == nil {
		return 0
	}
	if p.Handle != nil {
		if code, ok := p.Handle(err, args, stdout, stderr); ok {
			return code
		}
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	if p.Hint != nil {
		if hint := p.Hint(fs, err); hint != "" {
			fmt.Fprintf(stderr, "%s\n", hint)
		}
	}
	var ue *UsageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "run '%s %s --help' for usage\n", prog, cmd.Name)
		return 2
	}
	return 1
}

// printHelp prints a command's help: usage line, summary, examples, flags
// (without the heading when it has none) and the exit status rule.
func printHelp(w io.Writer, prog string, cmd *Command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s\n\n%s\n", strings.TrimSpace(prog+" "+cmd.Name+" "+cmd.Args), cmd.Summary)
	if len(cmd.Examples) > 0 {
		fmt.Fprintf(w, "\nexamples:\n")
		for _, e := range cmd.Examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		fmt.Fprintf(w, "\nflags:\n")
		PrintFlags(w, fs)
	}
	fmt.Fprintf(w, "\n%s\n", exitStatusDoc)
}

// PrintFlags prints fs's flags as fs.PrintDefaults does, except that a
// flag whose usage says its default itself ("(default: ...)", "(default 4,
// or ...)") does not get the flag package's "(default X)" after it too.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		var b strings.Builder
		fmt.Fprintf(&b, "  -%s", f.Name)
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			b.WriteString(" " + name)
		}
		// As the flag package does: a one-letter bool flag keeps its usage
		// on its line, others go under it, indented to a tab stop.
		if b.Len() <= 4 {
			b.WriteString("\t")
		} else {
			b.WriteString("\n    \t")
		}
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
		if note := defaultNote(f); note != "" {
			b.WriteString(" " + note)
		}
		fmt.Fprintln(w, b.String())
	})
}

// defaultNote is "(default X)" for a flag whose default is not its type's
// zero value and whose usage does not say the default already.
func defaultNote(f *flag.Flag) string {
	if strings.Contains(f.Usage, "(default") || isZeroValue(f) {
		return ""
	}
	if g, ok := f.Value.(flag.Getter); ok {
		if _, ok := g.Get().(string); ok {
			return fmt.Sprintf("(default %q)", f.DefValue)
		}
	}
	return fmt.Sprintf("(default %v)", f.DefValue)
}

// isZeroValue reports whether f's default is the zero value of its type,
// as the flag package decides: a new Value's String.
func isZeroValue(f *flag.Flag) (zero bool) {
	typ := reflect.TypeOf(f.Value)
	var z reflect.Value
	if typ.Kind() == reflect.Pointer {
		z = reflect.New(typ.Elem())
	} else {
		z = reflect.Zero(typ)
	}
	defer func() {
		if recover() != nil {
			zero = false
		}
	}()
	return f.DefValue == z.Interface().(flag.Value).String()
}

func (p *Program) printUsage(w io.Writer, cmds []*Command) {
	fmt.Fprintf(w, "usage: %s COMMAND [arguments]\n\ncommands:\n", p.Name)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.Name, c.ShortSummary())
	}
	fmt.Fprintf(w, "\nrun '%s help COMMAND' or '%s COMMAND --help' for a command's flags and examples\n\n%s\n", p.Name, p.Name, exitStatusDoc)
}

// ShortSummary is the command's line in the program's command list: Short,
// or else Summary's first paragraph on one line.
func (c *Command) ShortSummary() string {
	if c.Short != "" {
		return c.Short
	}
	para, _, _ := strings.Cut(c.Summary, "\n\n")
	return strings.Join(strings.Fields(para), " ")
}

// exitStatusDoc is the one rule for exit statuses, which every command
// keeps: usage errors are Usagef errors or flag parse errors.
const exitStatusDoc = "exit status: 0 on success, 2 for a usage error (a bad flag, argument or command), 1 for any other error"

// OnePositional returns the single positional argument named what.
func OnePositional(pos []string, what string) (string, error) {
	switch len(pos) {
	case 0:
		return "", Usagef("missing %s", what)
	case 1:
		return pos[0], nil
	}
	return "", Usagef("want one %s, got %d arguments: %s", what, len(pos), strings.Join(pos, " "))
}

// SetFlags returns the names of the flags given on the command line.
func SetFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// CheckPositive refuses an integer flag that the command line set to 0 or
// less where only a positive number makes sense; a flag left out gets its
// default (def says what that is), so an explicit 0 is not taken for it.
func CheckPositive(set map[string]bool, name string, v int, def string) error {
	if set[name] && v <= 0 {
		return Usagef("--%s is %d, want a positive number (leave --%s out for %s)", name, v, name, def)
	}
	return nil
}

// MaxThreads is the largest --threads a command takes on this machine:
// eight threads per CPU, and at least 64, so that a deliberately
// oversubscribed run (a contention benchmark) still works while a typo
// such as --threads 10000 does not start thousands of threads.
func MaxThreads() int { return max(64, 8*runtime.NumCPU()) }

// CheckThreads refuses a --threads value below 0 or above MaxThreads: a
// usage error naming the flag, the value, the range and this machine's
// CPUs.
func CheckThreads(n int) error {
	if n < 0 || n > MaxThreads() {
		cpus := runtime.NumCPU()
		plural := "s"
		if cpus == 1 {
			plural = ""
		}
		return Usagef("--threads is %d, want 0 (one per CPU) to %d; this machine has %d CPU%s", n, MaxThreads(), cpus, plural)
	}
	return nil
}

// CheckFolder refuses a path given where a folder is wanted (want says
// which, "a Hugging Face model folder") when it does not exist or is not a
// folder, in llmrun's words; other errors of reading it are left to what
// opens it.
func CheckFolder(path, want string) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s does not exist: want %s", path, want)
	case err == nil && !st.IsDir():
		return fmt.Errorf("%s is not a folder: want %s", path, want)
	}
	return nil
}

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// HumanBytes formats n bytes in binary units (KiB, MiB, ...).
func HumanBytes(n int) string { return sysmem.Human(int64(n)) }
