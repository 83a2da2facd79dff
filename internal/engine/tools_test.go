package engine

import (
	"errors"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// requireLLVM skips the test when the LLVM backend's tools are missing,
// and fails it instead under CI, whose set-up installs them.
func requireLLVM(t testing.TB) {
	t.Helper()
	_, err := llvm.FindToolchain()
	var te *llvm.ToolError
	if errors.As(err, &te) && !testshared.InCI() {
		t.Skipf("skipping: %v", err)
	}
	require.NoError(t, err)
}

// requireObjdump returns GNU objdump's path, skipping the test when it is
// missing (failing it under CI, whose set-up installs binutils).
func requireObjdump(t *testing.T) string {
	t.Helper()
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		if testshared.InCI() {
			t.Fatal("GNU objdump (binutils) is missing: scripts/setup.sh installs it")
		}
		t.Skip("GNU objdump (binutils) not installed")
	}
	return objdump
}
