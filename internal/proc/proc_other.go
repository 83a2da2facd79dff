//go:build !unix

package proc

import "os/exec"

// setGroup leaves the child as exec.CommandContext makes it: cancelling
// kills the child alone.
func setGroup(*exec.Cmd) {}
