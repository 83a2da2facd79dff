package compiler

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/llmc-dev/llmc/codegen/golang"
	"github.com/llmc-dev/llmc/codegen/kir"
	"github.com/llmc-dev/llmc/internal/artifact"
)

// Paths inside a Go-backend artifact.
const (
	GoSourceDir = "gosrc"
	GoBinary    = "bin/llmc-model"
	modulePath  = "github.com/llmc-dev/llmc"
)

// SourceDir finds the llmc module source that generated code builds
// against: $LLMC_SOURCE, else the tree this binary was built from.
func SourceDir() (string, error) {
	if dir := os.Getenv("LLMC_SOURCE"); dir != "" {
		return checkSource(dir)
	}
	_, file, _, ok := goruntime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the llmc source; set LLMC_SOURCE to an llmc checkout")
	}
	return checkSource(filepath.Join(filepath.Dir(file), "..", ".."))
}

func checkSource(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !bytes.Contains(data, []byte("module "+modulePath+"\n")) {
		return "", fmt.Errorf("%s is not an llmc source tree (the Go backend builds generated code against it); set LLMC_SOURCE to an llmc checkout", dir)
	}
	return filepath.Abs(dir)
}

// buildGo writes the generated package and a main into tmp/gosrc and
// builds the artifact's executable with the Go toolchain, with
// GOEXPERIMENT=simd so the vector kernels are compiled in.
func buildGo(tmp string, prog *kir.Program, man *artifact.Manifest, progress func(string, ...any)) error {
	src, err := SourceDir()
	if err != nil {
		return err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("backend go needs the Go toolchain (go) on PATH: %w", err)
	}
	files, err := golang.Emit(prog, "kernels", man.BuildID)
	if err != nil {
		return err
	}
	dir := filepath.Join(tmp, GoSourceDir)
	if err := os.MkdirAll(filepath.Join(dir, "kernels"), 0o755); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, "kernels", name), data, 0o644); err != nil {
			return err
		}
	}
	gomod := fmt.Sprintf("// %s\n\nmodule llmc.artifact/model\n\ngo 1.26\n\nrequire %s v0.0.0\n\nreplace %s => %s\n",
		golang.Header, modulePath, modulePath, src)
	main := fmt.Sprintf(`// %s

// Command llmc-model runs the model this artifact was compiled from:
// the llmrun commands with the generated kernels linked in.
package main

import (
	"os"

	"%s/runtime/artifactmain"
	"llmc.artifact/model/kernels"
)

func main() { os.Exit(artifactmain.Main(&kernels.Linked)) }
`, golang.Header, modulePath)
	gosum, err := os.ReadFile(filepath.Join(src, "go.sum"))
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"go.mod": []byte(gomod), "main.go": []byte(main), "go.sum": gosum} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	progress("building %s with %s", GoBinary, goTool)
	cmd := exec.Command(goTool, "build", "-o", filepath.Join("..", GoBinary), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=simd", "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("building the generated Go code (in %s): %w\n%s", dir, err, strings.TrimSpace(string(out)))
	}
	version, _ := exec.Command(goTool, "env", "GOVERSION").Output()
	man.Backends.Binary = GoBinary
	man.Backends.Tools = map[string]string{"go": strings.TrimSpace(string(version))}
	man.Files = append(man.Files, GoSourceDir, GoBinary)
	return nil
}
