// Package cli implements the llmc and llmrun commands, so that their mains
// stay one line long and tests can run them in-process.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/runtime"
)

// runExternal runs an artifact's own executable with the same arguments,
// passing the terminal through, and returns its exit status.
func runExternal(bin string, args []string, stdout, stderr io.Writer) int {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(os.Environ(), engine.HandoffEnv+"=1")
	err := childExit(bin, cmd.Run())
	var exit *exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	if err != nil {
		fmt.Fprintf(stderr, "llmrun: %v\n", err)
		return 1
	}
	return 0
}

// exitError ends a command with an exit status whose message has been
// printed already, by an artifact's executable that ran in its place.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// childExit turns the error of running an artifact's executable bin into
// an exitError when the child exited by itself (it has said why, and its
// status, 2 for usage errors and 1 otherwise, is passed on), or into an
// error naming bin when it could not run or was killed.
func childExit(bin string, err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() > 0 {
		return &exitError{code: exit.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	return nil
}

// usageError marks errors caused by how the command was called; they exit
// with status 2 and print the subcommand's usage hint.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// command is one subcommand of llmc or llmrun.
type command struct {
	name     string
	args     string // positional arguments, for the usage line
	summary  string
	examples []string
	flags    func(fs *flag.FlagSet) func(pos []string) error
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

// run dispatches args to one of cmds and turns errors into an exit status.
func run(prog string, cmds []*command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(prog, cmds, stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	var cmd *command
	for _, c := range cmds {
		if c.name == args[0] {
			cmd = c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", prog, args[0])
		printUsage(prog, cmds, stderr)
		return 2
	}
	fs := flag.NewFlagSet(prog+" "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s %s %s\n\n%s\n", prog, cmd.name, cmd.args, cmd.summary)
		if len(cmd.examples) > 0 {
			fmt.Fprintf(stderr, "\nexamples:\n")
			for _, e := range cmd.examples {
				fmt.Fprintf(stderr, "  %s\n", e)
			}
		}
		fmt.Fprintf(stderr, "\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\n%s\n", exitStatusDoc)
	}
	exec := cmd.flags(fs)
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
	var ext *engine.ExternalError
	if errors.As(err, &ext) {
		return runExternal(ext.Binary, args, stdout, stderr)
	}
	var exit *exitError
	if errors.As(err, &exit) {
		return exit.code
	}
	fmt.Fprintf(stderr, "%s: %v\n", prog, err)
	if hint := nonFiniteHint(fs, err); hint != "" {
		fmt.Fprintf(stderr, "%s\n", hint)
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "run '%s %s --help' for usage\n", prog, cmd.name)
		return 2
	}
	return 1
}

func printUsage(prog string, cmds []*command, w io.Writer) {
	fmt.Fprintf(w, "usage: %s COMMAND [arguments]\n\ncommands:\n", prog)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, firstLine(c.summary))
	}
	fmt.Fprintf(w, "\nrun '%s COMMAND --help' for a command's flags and examples\n\n%s\n", prog, exitStatusDoc)
}

// exitStatusDoc is the one rule for exit statuses, which every command
// keeps: usage errors are usagef errors or flag parse errors.
const exitStatusDoc = "exit status: 0 on success, 2 for a usage error (a bad flag, argument or command), 1 for any other error"

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// parseIDs parses a comma-separated list of token ids.
func parseIDs(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, usagef("--ids is empty")
	}
	var ids []int
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, usagef("--ids: item %d is %q, want a non-negative integer", i+1, f)
		}
		ids = append(ids, n)
	}
	return ids, nil
}

// onePositional returns the single positional argument named what.
func onePositional(pos []string, what string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("missing %s", what)
	case 1:
		return pos[0], nil
	}
	return "", usagef("want one %s, got %d arguments: %s", what, len(pos), strings.Join(pos, " "))
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// checkPositive refuses an integer flag that the command line set to 0 or
// less where only a positive number makes sense; a flag left out gets its
// default (def says what that is), so an explicit 0 is not taken for it.
func checkPositive(set map[string]bool, name string, v int, def string) error {
	if set[name] && v <= 0 {
		return usagef("--%s is %d, want a positive number (leave --%s out for %s)", name, v, name, def)
	}
	return nil
}

// nonFiniteHint points at --debug-nan when a command that has it found
// NaN or Inf in the logits without it.
func nonFiniteHint(fs *flag.FlagSet, err error) string {
	f := fs.Lookup("debug-nan")
	if _, ok := errors.AsType[*runtime.NonFiniteError](err); !ok || f == nil || f.Value.String() == "true" {
		return ""
	}
	return "run again with --debug-nan to find the op that first produced a non-finite value " +
		"(it runs the model with the interpreter, checking every op; for an artifact, the model folder it was compiled from)"
}
