//go:build linux

package proc

import "syscall"

// setDeathSignal has the kernel SIGKILL the child when the thread that
// started it exits, which for llmc means when llmc dies: the Go runtime
// does not end its threads while the program runs (only threads locked
// with LockOSThread, which llmc does not start children from). A SIGKILLed
// llmc so leaves no go build or llc running; the child's own children end
// when their step is done.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
