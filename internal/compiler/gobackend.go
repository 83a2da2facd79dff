package compiler

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/llmc-dev/llmc/codegen/golang"
	"github.com/llmc-dev/llmc/internal/proc"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/native"
)

// Paths inside a Go-backend artifact.
const (
	GoSourceDir = "gosrc"
	GoBinary    = "bin/llmc-model"
	modulePath  = "github.com/llmc-dev/llmc"
)

// goWide reports whether the Go backend's float linears take sixteen-lane
// dot products here (kir.Options.Wide): where the CPU has what
// archsimd.X86.AVX512 asks for (AVX-512 F, CD, BW, DQ and VL) and
// LLMC_ISA does not cap the build at avx2. The artifact's vector kernels
// are then AVX-512 code, and on a CPU without AVX-512 its portable ones
// run: LLMC_ISA=avx2 at compile time builds eight-lane kernels for such
// machines.
func goWide() bool {
	feats, err := native.HostFeatures()
	if err != nil || nativeISA(feats, runtime.ISALimit()) != runtime.ISAAVX512 {
		return false
	}
	return feats["avx512cd"] && feats["avx512bw"] && feats["avx512dq"] && feats["avx512vl"]
}

// emitGo writes the generated package into tmp/gosrc/kernels.
func emitGo(b *targetBuild) error {
	files, err := golang.Emit(b.prog, "kernels", b.man.BuildID)
	if err != nil {
		return err
	}
	if hasWide(b.prog) {
		b.man.Backends.Lanes = 16
		b.progress("float linears: sixteen-lane dots (AVX-512)")
	}
	dir := filepath.Join(b.dir, GoSourceDir)
	if err := os.MkdirAll(filepath.Join(dir, "kernels"), 0o755); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := os.WriteFile(filepath.Join(dir, "kernels", name), files[name], 0o644); err != nil {
			return err
		}
		b.sources = append(b.sources, emittedSource{path.Join(GoSourceDir, "kernels", name), files[name]})
	}
	return nil
}

// buildGo writes a go.mod and a main next to the package emitGo wrote and
// builds the artifact's executable with the Go toolchain, with
// GOEXPERIMENT=simd so the vector kernels are compiled in, against the
// llmc sources goSource finds (embedded: the unpacked Options.Source).
func buildGo(b *targetBuild) error {
	ctx, progress := b.ctx, b.progress
	src, origin, err := goSource(b.source)
	if err != nil {
		return fmt.Errorf("backend go: %w", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("backend go needs the Go toolchain (go) on PATH: %w", err)
	}
	dir := filepath.Join(b.dir, GoSourceDir)
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
	progress("building %s with %s against %s (%s)", GoBinary, goTool, src, origin)
	// -trimpath: the executable records no folder of this machine, and the
	// Go build cache serves the llmc packages wherever their sources are.
	cmd := proc.Command(ctx, goTool, "build", "-trimpath", "-o", filepath.Join("..", GoBinary), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOEXPERIMENT=simd", "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil {
		return fmt.Errorf("building the generated Go code (in %s, against %s from %s): %w\n%s", dir, src, origin, err, strings.TrimSpace(string(out)))
	}
	version, _ := proc.Command(ctx, goTool, "env", "GOVERSION").Output()
	b.man.Backends.Binary = GoBinary
	b.man.Backends.Tools = map[string]string{"go": strings.TrimSpace(string(version))}
	b.files = append(b.files, GoSourceDir, GoBinary)
	return nil
}
