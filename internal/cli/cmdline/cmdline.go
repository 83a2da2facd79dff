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
	Name     string
	Args     string // positional arguments, for the usage line
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
	prog, cmds := p.Name, p.Commands
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		p.printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var cmd *Command
	for _, c := range cmds {
		if c.Name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", prog, args[0])
		p.printUsage(stderr)
		return 2
	}
	fs := flag.NewFlagSet(prog+" "+cmd.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s %s %s\n\n%s\n", prog, cmd.Name, cmd.Args, cmd.Summary)
		if len(cmd.Examples) > 0 {
			fmt.Fprintf(stderr, "\nexamples:\n")
			for _, e := range cmd.Examples {
				fmt.Fprintf(stderr, "  %s\n", e)
			}
		}
		fmt.Fprintf(stderr, "\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\n%s\n", exitStatusDoc)
	}
	exec := cmd.Flags(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return 2 // the flag package has printed the problem and usage
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

func (p *Program) printUsage(w io.Writer) {
	fmt.Fprintf(w, "usage: %s COMMAND [arguments]\n\ncommands:\n", p.Name)
	for _, c := range p.Commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.Name, firstLine(c.Summary))
	}
	fmt.Fprintf(w, "\nrun '%s COMMAND --help' for a command's flags and examples\n\n%s\n", p.Name, exitStatusDoc)
}

// exitStatusDoc is the one rule for exit statuses, which every command
// keeps: usage errors are Usagef errors or flag parse errors.
const exitStatusDoc = "exit status: 0 on success, 2 for a usage error (a bad flag, argument or command), 1 for any other error"

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

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
