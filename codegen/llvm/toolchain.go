package llvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/llmc-dev/llmc/internal/proc"
)

// The LLVM major version this package's output is written for. llir/llvm
// v0.3.6 prints typed pointers (float*), which LLVM 14 to 16 read and
// LLVM 17 no longer does.
const (
	LLVMVersion    = 14
	maxLLVMVersion = 16
)

// EnvLLVMBin names a folder holding opt and llc; when set, only that
// folder is searched.
const EnvLLVMBin = "LLMC_LLVM_BIN"

// InstallHint says how to get the tools on Debian or Ubuntu.
const InstallHint = "install LLVM 14 with `apt-get install llvm-14` (or run scripts/setup.sh), or set " + EnvLLVMBin + " to a folder holding opt and llc"

// llvmDirs are the folders searched after <tool>-14 on PATH: Debian's
// llvm-14 package installs /usr/bin/opt-14 and /usr/lib/llvm-14/bin/opt,
// while a plain /usr/bin/opt comes only with the llvm-defaults package.
// Tests replace it.
var llvmDirs = []string{fmt.Sprintf("/usr/lib/llvm-%d/bin", LLVMVersion)}

// ToolError says that a tool the LLVM backend runs is missing or unusable.
type ToolError struct {
	Tool  string   // opt, llc or cc
	Tried []string // where it was looked for
	Err   error    // why it is unusable, if it was found
}

func (e *ToolError) Error() string {
	hint := InstallHint
	if e.Tool == "cc" {
		hint = "install a C compiler with `apt-get install gcc` (or run scripts/setup.sh), or set CC"
	}
	if e.Err != nil {
		return fmt.Sprintf("backend llvm: %s: %v; %s", e.Tool, e.Err, hint)
	}
	return fmt.Sprintf("backend llvm needs %s, which was not found (looked for %s); %s", e.Tool, strings.Join(e.Tried, ", "), hint)
}

// Toolchain is the set of programs that turn a module into a shared object:
// opt and llc from LLVM, and a C compiler to link.
type Toolchain struct {
	Opt, LLC, CC string // paths
	// Versions maps each tool's name to the first line of its --version.
	Versions map[string]string
	// HostCPU is the CPU llc compiles for with -mcpu=native, Triple its
	// default target.
	HostCPU, Triple string
	// MAttr, when set, is passed to opt and llc as -mattr: features
	// taken away from the host CPU's (see MAttrFor).
	MAttr string
}

// MAttrFor is the -mattr that caps code for this CPU at instruction set
// limit (runtime.ISALimit's names): "avx2" removes AVX-512 (and with it
// every AVX-512 extension) and AVX-VNNI, "scalar" AVX2 and FMA too, which
// leaves AVX's float vectors and F16C (the lowest the LLVM backend goes:
// its float16 conversions need F16C); anything else caps nothing.
func MAttrFor(limit string) string {
	switch limit {
	case "avx2":
		return "-avx512f,-avxvnni"
	case "scalar":
		return "-avx512f,-avxvnni,-avx2,-fma"
	}
	return ""
}

// codegenFlags are the flags opt and llc take to compile for the host.
func (t *Toolchain) codegenFlags() []string {
	flags := []string{"-O3", "-mcpu=native"}
	if t.MAttr != "" {
		flags = append(flags, "-mattr="+t.MAttr)
	}
	return flags
}

// FindToolchain locates opt and llc (in $LLMC_LLVM_BIN if set; else
// opt-14 on PATH, /usr/lib/llvm-14/bin/opt, then opt on PATH) and the C
// compiler ($CC, else cc on PATH), and checks their versions.
func FindToolchain() (*Toolchain, error) {
	t := &Toolchain{Versions: map[string]string{}}
	var err error
	if t.Opt, err = findLLVM("opt"); err != nil {
		return nil, err
	}
	if t.LLC, err = findLLVM("llc"); err != nil {
		return nil, err
	}
	if t.CC, err = findCC(); err != nil {
		return nil, err
	}
	for _, tool := range []struct{ name, path string }{{"opt", t.Opt}, {"llc", t.LLC}} {
		out, err := exec.Command(tool.path, "--version").CombinedOutput()
		if err != nil {
			return nil, &ToolError{Tool: tool.name, Err: fmt.Errorf("%s --version: %v: %s", tool.path, err, strings.TrimSpace(string(out)))}
		}
		v, major := llvmVersion(string(out))
		if major == 0 {
			return nil, &ToolError{Tool: tool.name, Err: fmt.Errorf("%s --version does not name an LLVM version:\n%s", tool.path, out)}
		}
		if major > maxLLVMVersion {
			return nil, &ToolError{Tool: tool.name, Err: fmt.Errorf("%s is LLVM %d, which no longer reads the typed pointers llmc emits (LLVM %d to %d do)", tool.path, major, LLVMVersion, maxLLVMVersion)}
		}
		t.Versions[tool.name] = v
		if tool.name == "llc" {
			// "(unknown)" for a CPU newer than this LLVM (Zen 5 to LLVM
			// 14), whose features -mcpu=native still reads from CPUID.
			t.HostCPU = strings.Trim(field(string(out), "Host CPU:"), "()")
			t.Triple = field(string(out), "Default target:")
		}
	}
	out, err := exec.Command(t.CC, "--version").CombinedOutput()
	if err != nil {
		return nil, &ToolError{Tool: "cc", Err: fmt.Errorf("%s --version: %v", t.CC, err)}
	}
	t.Versions["cc"] = firstLine(string(out))
	return t, nil
}

func findLLVM(name string) (string, error) {
	if dir := os.Getenv(EnvLLVMBin); dir != "" {
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
		return "", &ToolError{Tool: name, Tried: []string{p + " ($" + EnvLLVMBin + ")"}}
	}
	versioned := fmt.Sprintf("%s-%d", name, LLVMVersion)
	tried := []string{versioned + " on PATH"}
	if p, err := exec.LookPath(versioned); err == nil {
		return p, nil
	}
	for _, d := range llvmDirs {
		p := filepath.Join(d, name)
		tried = append(tried, p)
		if isExecutable(p) {
			return p, nil
		}
	}
	tried = append(tried, name+" on PATH")
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", &ToolError{Tool: name, Tried: tried}
}

func findCC() (string, error) {
	cc := "cc"
	if env := strings.Fields(os.Getenv("CC")); len(env) > 0 {
		cc = env[0]
	}
	p, err := exec.LookPath(cc)
	if err != nil {
		where := cc + " on PATH"
		if strings.Contains(cc, "/") {
			where = cc // a path is looked up as it is
		}
		if cc != "cc" {
			where += " ($CC)"
		}
		return "", &ToolError{Tool: "cc", Tried: []string{where}}
	}
	return p, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// llvmVersion finds "LLVM version X.Y.Z" in --version output.
func llvmVersion(out string) (string, int) {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		_, after, ok := strings.Cut(line, "LLVM version ")
		if !ok {
			continue
		}
		major, _, _ := strings.Cut(after, ".")
		n, err := strconv.Atoi(major)
		if err != nil {
			continue
		}
		return line, n
	}
	return "", 0
}

func field(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(line, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

// Build compiles the modules in files lls (the parts of one program, see
// Options.Split) into the shared object so, for the host CPU: opt -O3 and
// llc -O3 -mcpu=native turn each into an object file, several at once, and
// the C compiler links them with libm and libpthread (the step functions'
// threads). Intermediate files go next to so and are removed.
func (t *Toolchain) Build(so string, lls []string, progress func(string, ...any)) error {
	return t.BuildContext(context.Background(), so, lls, progress)
}

// BuildContext is Build stopped when ctx is done: the tools running then
// are killed (see internal/proc) and ctx's error is returned.
func (t *Toolchain) BuildContext(ctx context.Context, so string, lls []string, progress func(string, ...any)) error {
	if progress == nil {
		progress = func(string, ...any) {}
	}
	base := strings.TrimSuffix(so, filepath.Ext(so))
	objs := make([]string, len(lls))
	for i := range lls {
		objs[i] = fmt.Sprintf("%s.%d.o", base, i)
		defer os.Remove(objs[i])
	}
	flags := t.codegenFlags()
	progress("compiling %d module(s) with %s and %s %s (%s)", len(lls), filepath.Base(t.Opt), filepath.Base(t.LLC), strings.Join(flags, " "), t.HostCPU)
	errs := make([]error, len(lls))
	sem := make(chan struct{}, max(1, goruntime.NumCPU()))
	var wg sync.WaitGroup
	for i, ll := range lls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			bc := fmt.Sprintf("%s.%d.opt.bc", base, i)
			defer os.Remove(bc)
			if errs[i] = run(ctx, t.Opt, slices.Concat(flags, []string{ll, "-o", bc})...); errs[i] != nil {
				return
			}
			errs[i] = run(ctx, t.LLC, slices.Concat(flags, []string{"-relocation-model=pic", "-filetype=obj", bc, "-o", objs[i]})...)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return context.Cause(ctx)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	progress("linking %s with %s", filepath.Base(so), filepath.Base(t.CC))
	return run(ctx, t.CC, append([]string{"-shared", "-o", so}, append(objs, "-lm", "-lpthread")...)...)
}

func run(ctx context.Context, name string, args ...string) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	cmd := proc.Command(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		msg := strings.TrimSpace(out.String())
		if len(msg) > 4000 {
			msg = msg[:4000] + "\n…"
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("backend llvm: %s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, msg)
		}
		return fmt.Errorf("backend llvm: running %s: %w", name, err)
	}
	return nil
}
