// Package artifactmain is the main of the executable that llmc compile
// --backend go builds inside an artifact: the llmrun commands, running the
// kernels generated for that artifact in-process.
package artifactmain

import (
	"os"

	"github.com/llmc-dev/llmc/internal/cli/llmruncmd"
	"github.com/llmc-dev/llmc/runtime"
)

// Main runs the llmrun command line with lp linked in and returns the exit
// status.
func Main(lp *runtime.LinkedProgram) int {
	return llmruncmd.RunLinked(os.Args[1:], os.Stdout, os.Stderr, lp)
}
