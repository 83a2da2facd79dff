package llmruncmd

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/llmc-dev/llmc/internal/cli/cmdline"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/runtime"
)

// handOff runs a command whose artifact runs in its own executable (an
// engine.ExternalError) there, with the same arguments.
func handOff(err error, args []string, stdout, stderr io.Writer) (int, bool) {
	var ext *engine.ExternalError
	if !errors.As(err, &ext) {
		return 0, false
	}
	return runExternal(ext.Binary, args, stdout, stderr), true
}

// runExternal runs an artifact's own executable with the same arguments,
// passing the terminal through, and returns its exit status. SIGINT and
// SIGTERM are passed on to it, so that llmrun serve in the artifact's
// executable shuts down gracefully when llmrun is told to stop.
func runExternal(bin string, args []string, stdout, stderr io.Writer) int {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(os.Environ(), engine.HandoffEnv+"=1")
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	err := cmd.Start()
	if err == nil {
		done := make(chan struct{})
		go func() {
			for {
				select {
				case s := <-sigs:
					cmd.Process.Signal(s)
				case <-done:
					return
				}
			}
		}()
		err = cmd.Wait()
		close(done)
	}
	err = childExit(bin, err)
	var exit *cmdline.ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	if err != nil {
		fmt.Fprintf(stderr, "llmrun: %v\n", err)
		return 1
	}
	return 0
}

// childExit turns the error of running an artifact's executable bin into
// an ExitError when the child exited by itself (it has said why, and its
// status, 2 for usage errors and 1 otherwise, is passed on), or into an
// error naming bin when it could not run or was killed.
func childExit(bin string, err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() > 0 {
		return &cmdline.ExitError{Code: exit.ExitCode()}
	}
	if err != nil {
		return fmt.Errorf("running %s: %w", bin, err)
	}
	return nil
}

// parseIDs parses a comma-separated list of token ids.
func parseIDs(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, cmdline.Usagef("--ids is empty")
	}
	var ids []int
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return nil, cmdline.Usagef("--ids: item %d is %q, want a non-negative integer", i+1, f)
		}
		ids = append(ids, n)
	}
	return ids, nil
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
