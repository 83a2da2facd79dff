package native

import (
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func fakeCPU(t *testing.T, text string) {
	p := filepath.Join(t.TempDir(), "cpuinfo")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	old := cpuinfo
	cpuinfo = p
	t.Cleanup(func() { cpuinfo = old })
}

func TestCheckCPU(t *testing.T) {
	fakeCPU(t, "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n\nprocessor\t: 1\n")
	require.NoError(t, CheckCPU("haswell", []string{"avx2", "fma"}))
	require.NoError(t, CheckCPU("x", nil))
	err := CheckCPU("skylake-avx512", []string{"avx2", "avx512f", "avx512bw", "avx512f"})
	var ce *CPUError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{"avx512f", "avx512bw"}, ce.Missing)
	require.EqualError(t, err, "the artifact's native code was compiled for CPU skylake-avx512 with avx512f, avx512bw, which this machine lacks: "+
		"it would stop with an illegal instruction; compile the model again on this machine (llmc compile --backend llvm)")
	if goruntime.GOARCH == "amd64" {
		require.Equal(t, []string{"avx", "fma", "bmi2", "avx2"}, TargetFeatures())
	}
}

func TestCheckCPUArm(t *testing.T) {
	fakeCPU(t, "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 asimddp sve\n")
	require.NoError(t, CheckCPU("neoverse-v1", []string{"asimd", "sve"}))
	require.Error(t, CheckCPU("neoverse-v2", []string{"sve2"}))
}

func TestCheckCPUUnreadable(t *testing.T) {
	old := cpuinfo
	cpuinfo = filepath.Join(t.TempDir(), "none")
	t.Cleanup(func() { cpuinfo = old })
	require.NoError(t, CheckCPU("x", nil), "nothing to check")
	require.ErrorContains(t, CheckCPU("x", []string{"avx2"}), "needs CPU features avx2: reading this machine's CPU features")
	require.Empty(t, TargetFeatures())
}

func TestCapFeatures(t *testing.T) {
	zen4 := []string{"avx", "f16c", "fma", "avx2", "avx512f", "avx512vl", "avx512_vnni", "avx512_bf16"}
	spr := append(slices.Clone(zen4), "avx_vnni", "amx_tile", "amx_int8")
	for _, c := range []struct {
		in    []string
		limit string
		want  []string
	}{
		{zen4, "avx512", zen4},
		{zen4, "", zen4},
		{zen4, "avx2", []string{"avx", "f16c", "fma", "avx2"}},
		{spr, "avx2", []string{"avx", "f16c", "fma", "avx2"}},
		{spr, "scalar", []string{"avx", "f16c"}},
	} {
		if got := CapFeatures(c.in, c.limit); !slices.Equal(got, c.want) {
			t.Errorf("CapFeatures(%v, %q) = %v, want %v", c.in, c.limit, got, c.want)
		}
	}
}
