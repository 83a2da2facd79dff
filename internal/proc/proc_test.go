//go:build unix

package proc_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/proc"
)

// TestCancelKillsGroup checks that cancelling kills the child's own
// children too (as go build's compile steps), not the child alone. Both
// hold the write end of a pipe, which reads end of file only once every
// holder is gone.
func TestCancelKillsGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	cmd := proc.Command(ctx, "sh", "-c", "sleep 60 & echo $!; wait")
	cmd.Stdout = w
	require.NoError(t, cmd.Start())
	w.Close()
	br := bufio.NewReader(r)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	grandchild, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Kill(grandchild, syscall.SIGKILL) })

	pgid, err := syscall.Getpgid(cmd.Process.Pid)
	require.NoError(t, err)
	require.Equal(t, cmd.Process.Pid, pgid, "the child leads its own process group")

	cancel()
	require.Error(t, cmd.Wait())
	require.NoError(t, r.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadAll(br)
	require.NoError(t, err, "the child's child %d still runs after cancel", grandchild)
}
