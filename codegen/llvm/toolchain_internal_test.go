package llvm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeTool writes an executable script that prints version as its
// --version output.
func fakeTool(t *testing.T, dir, name, version string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	// printf is a shell builtin: the test's PATH has no cat.
	script := "#!/bin/sh\nprintf '%s\\n'"
	for _, line := range strings.Split(version, "\n") {
		script += " '" + line + "'"
	}
	script += "\n"
	require.NoError(t, os.WriteFile(p, []byte(script), 0o755))
	return p
}

const llvm14 = "Debian LLVM version 14.0.6\n  Optimized build.\n  Default target: x86_64-pc-linux-gnu\n  Host CPU: testcpu"

// isolate gives the test a PATH of only the returned folder and a fake
// /usr/lib/llvm-14/bin.
func isolate(t *testing.T) (path, libDir string) {
	path, libDir = t.TempDir(), t.TempDir()
	t.Setenv("PATH", path)
	t.Setenv(EnvLLVMBin, "")
	t.Setenv("CC", "")
	old := llvmDirs
	llvmDirs = []string{libDir}
	t.Cleanup(func() { llvmDirs = old })
	return path, libDir
}

// The search order is opt-14 on PATH (Debian's llvm-14 package), then
// /usr/lib/llvm-14/bin (the same package), then opt on PATH
// (llvm-defaults, or another install).
func TestFindToolchainOrder(t *testing.T) {
	path, libDir := isolate(t)
	fakeTool(t, path, "cc", "cc (Debian 12.2.0) 12.2.0")
	plainOpt := fakeTool(t, path, "opt", llvm14)
	plainLLC := fakeTool(t, path, "llc", llvm14)

	tc, err := FindToolchain()
	require.NoError(t, err)
	require.Equal(t, plainOpt, tc.Opt)
	require.Equal(t, plainLLC, tc.LLC)
	require.Equal(t, "testcpu", tc.HostCPU)
	require.Equal(t, "x86_64-pc-linux-gnu", tc.Triple)
	require.Equal(t, "Debian LLVM version 14.0.6", tc.Versions["opt"])
	require.Equal(t, "cc (Debian 12.2.0) 12.2.0", tc.Versions["cc"])

	libOpt := fakeTool(t, libDir, "opt", llvm14)
	tc, err = FindToolchain()
	require.NoError(t, err)
	require.Equal(t, libOpt, tc.Opt, "/usr/lib/llvm-14/bin comes before a plain opt on PATH")

	versioned := fakeTool(t, path, "opt-14", llvm14)
	tc, err = FindToolchain()
	require.NoError(t, err)
	require.Equal(t, versioned, tc.Opt, "opt-14 on PATH comes first")
	require.Equal(t, plainLLC, tc.LLC)

	only := t.TempDir()
	binOpt, binLLC := fakeTool(t, only, "opt", llvm14), fakeTool(t, only, "llc", llvm14)
	t.Setenv(EnvLLVMBin, only)
	tc, err = FindToolchain()
	require.NoError(t, err)
	require.Equal(t, binOpt, tc.Opt, "$LLMC_LLVM_BIN overrides the search")
	require.Equal(t, binLLC, tc.LLC)
}

func TestFindToolchainMissingLLC(t *testing.T) {
	path, libDir := isolate(t)
	fakeTool(t, path, "cc", "cc 1")
	fakeTool(t, path, "opt-14", llvm14)
	_, err := FindToolchain()
	var te *ToolError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "llc", te.Tool)
	require.Equal(t, []string{"llc-14 on PATH", filepath.Join(libDir, "llc"), "llc on PATH"}, te.Tried)
	require.EqualError(t, err, "backend llvm needs llc, which was not found (looked for llc-14 on PATH, "+
		filepath.Join(libDir, "llc")+", llc on PATH); "+InstallHint)
}

func TestFindToolchainMissingCC(t *testing.T) {
	path, _ := isolate(t)
	fakeTool(t, path, "opt", llvm14)
	fakeTool(t, path, "llc", llvm14)
	_, err := FindToolchain()
	var te *ToolError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "cc", te.Tool)
	require.ErrorContains(t, err, "apt-get install gcc")
	require.Equal(t, []string{"cc on PATH"}, te.Tried)

	// $CC is looked for as given: a path as it is, a name on PATH.
	t.Setenv("CC", "/nonexistent/cc -O2")
	_, err = FindToolchain()
	require.ErrorAs(t, err, &te)
	require.Equal(t, []string{"/nonexistent/cc ($CC)"}, te.Tried)
	t.Setenv("CC", "clang-99")
	_, err = FindToolchain()
	require.ErrorAs(t, err, &te)
	require.Equal(t, []string{"clang-99 on PATH ($CC)"}, te.Tried)
}

func TestFindToolchainRejectsOpaquePointerLLVM(t *testing.T) {
	path, _ := isolate(t)
	fakeTool(t, path, "cc", "cc 1")
	fakeTool(t, path, "opt", strings.Replace(llvm14, "14.0.6", "17.0.1", 1))
	fakeTool(t, path, "llc", llvm14)
	_, err := FindToolchain()
	require.ErrorContains(t, err, "is LLVM 17, which no longer reads the typed pointers llmc emits")
	require.ErrorContains(t, err, "apt-get install llvm-14")
}

// TestCodegenFlags: LLMC_ISA's caps become -mattr for opt and llc, and no
// cap adds nothing.
func TestCodegenFlags(t *testing.T) {
	for _, c := range []struct{ limit, want string }{
		{"avx512", "-O3 -mcpu=native"},
		{"", "-O3 -mcpu=native"},
		{"avx2", "-O3 -mcpu=native -mattr=-avx512f,-avxvnni"},
		{"scalar", "-O3 -mcpu=native -mattr=-avx512f,-avxvnni,-avx2,-fma"},
	} {
		tc := &Toolchain{MAttr: MAttrFor(c.limit)}
		require.Equal(t, c.want, strings.Join(tc.codegenFlags(), " "), "limit %q", c.limit)
	}
}
