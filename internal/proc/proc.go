// Package proc starts the external tools llmc compile runs (go build, opt,
// llc, cc) so that they stop with it: each child leads its own process
// group, which is killed as a whole when the command's context is done,
// and on Linux the kernel kills the child if llmc itself dies, even by
// SIGKILL.
package proc

import (
	"context"
	"os/exec"
	"time"
)

// waitDelay bounds how long Wait waits for a killed group's output pipes
// to close (a grandchild outside the group could hold them open).
const waitDelay = 5 * time.Second

// Command is exec.CommandContext(ctx, name, args...) with the process
// group and parent-death settings above: when ctx is done, the child and
// everything it started in its group (go build's compile and link steps)
// are killed.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	setGroup(cmd)
	cmd.WaitDelay = waitDelay
	return cmd
}
