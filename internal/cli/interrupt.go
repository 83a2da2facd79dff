package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// interruptedError is the cause of a context cancelled by a signal.
type interruptedError struct{ sig os.Signal }

func (e interruptedError) Error() string {
	switch e.sig {
	case os.Interrupt:
		return "interrupted (SIGINT)"
	case syscall.SIGTERM:
		return "interrupted (SIGTERM)"
	}
	return "interrupted (" + e.sig.String() + ")"
}

// interruptible returns a context that is cancelled, with an
// interruptedError as its cause, when SIGINT or SIGTERM arrives, and the
// function that stops watching. Only the first signal is caught: a second
// one has its default effect and ends the process at once.
func interruptible(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			cancel(interruptedError{s})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel(context.Canceled)
	}
}

// leftAsItWas returns err, of a command that writes out under a temporary
// name (compile, synth), with the note that out is as it was and the
// temporary folder was removed when a signal cancelled ctx (see
// interruptible); otherwise err unchanged.
func leftAsItWas(ctx context.Context, err error, out string) error {
	if err != nil && errors.As(context.Cause(ctx), new(interruptedError)) {
		return fmt.Errorf("%w; %s is as it was, and the unfinished temporary folder was removed", err, out)
	}
	return err
}
