package artifactmain_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// compileSide are the package trees of the compiler side, which an
// artifact's executable must not link: it runs a compiled model, through
// package artifact's contract, and nothing else.
var compileSide = []string{
	"github.com/llmc-dev/llmc/passes",
	"github.com/llmc-dev/llmc/codegen",
	"github.com/llmc-dev/llmc/internal/compiler",
	"github.com/llir/llvm",
	"github.com/dave/jennifer",
}

// llmcCommands is the package of llmc's commands, which imports the
// compiler; its subpackages llmruncmd and cmdline are the run side's.
const llmcCommands = "github.com/llmc-dev/llmc/internal/cli"

func ofCompileSide(dep string) bool {
	for _, tree := range compileSide {
		if dep == tree || strings.HasPrefix(dep, tree+"/") {
			return true
		}
	}
	return dep == llmcCommands
}

// TestLinksOnlyTheRuntime lists the dependencies of the artifact
// executable's main package, on every platform whose sources llmc embeds
// (see internal/gensource), and fails if any is of the compiler side.
func TestLinksOnlyTheRuntime(t *testing.T) {
	for _, platform := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"} {
		goos, goarch, _ := strings.Cut(platform, "/")
		cmd := exec.Command("go", "list", "-deps", ".")
		cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "GOEXPERIMENT=simd")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		require.NoError(t, err, "go list -deps for %s: %s", platform, stderr.String())
		deps := strings.Fields(string(out))
		require.Contains(t, deps, "github.com/llmc-dev/llmc/runtime", platform)
		for _, dep := range deps {
			if ofCompileSide(dep) {
				t.Errorf("%s: the artifact executable links %s, which belongs to the compiler", platform, dep)
			}
		}
	}
}
