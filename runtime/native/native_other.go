//go:build !(linux || darwin || freebsd)

package native

import (
	"fmt"
	goruntime "runtime"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/runtime"
)

// Artifact says where an LLVM-backend artifact's code is.
type Artifact struct {
	Dir, Library, BuildID, CPU string
	Features                   []string
}

// Program is unavailable on this system.
type Program struct{}

var errUnsupported = fmt.Errorf("native code of the LLVM backend loads on linux, darwin and freebsd, not %s", goruntime.GOOS)

func Open(Artifact, runtime.WeightSource, runtime.Parallel) (*Program, error) {
	return nil, errUnsupported
}

func New(string, *artifact.Layout, [][]float32, runtime.Parallel) (*Program, error) {
	return nil, errUnsupported
}

func (*Program) Run(string, []int32, int) ([]float32, []int, error) { return nil, nil, errUnsupported }
func (*Program) Close() error                                       { return nil }
