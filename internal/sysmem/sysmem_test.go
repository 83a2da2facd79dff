package sysmem

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTotal(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	meminfo := write("meminfo", "MemTotal:       24000000 kB\nMemFree:        1000 kB\n")
	tests := []struct {
		name      string
		meminfo   string
		cgroup    string
		want      int64
		wantKnown bool
	}{
		{"meminfo only", meminfo, filepath.Join(dir, "none"), 24000000 << 10, true},
		{"no cgroup limit", meminfo, write("max", "max\n"), 24000000 << 10, true},
		{"cgroup lower", meminfo, write("lower", "1073741824\n"), 1 << 30, true},
		{"cgroup higher", meminfo, write("higher", "99999999999999\n"), 24000000 << 10, true},
		{"cgroup only", filepath.Join(dir, "none"), write("only", "2147483648\n"), 2 << 30, true},
		{"nothing readable", filepath.Join(dir, "none"), filepath.Join(dir, "none"), 0, false},
		{"garbled meminfo", write("bad", "MemTotal: lots\n"), filepath.Join(dir, "none"), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := total(tt.meminfo, tt.cgroup)
			assert.Equal(t, tt.wantKnown, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestCheck(t *testing.T) {
	if _, ok := Total(); !ok {
		t.Skip("this system does not say how much memory it has")
	}
	assert.NoError(t, Check(1<<20, "a small plan", "never mind"))
	err := Check(1<<62, "the static KV cache for 2^40 positions", "pass a smaller --max-seq")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the static KV cache for 2^40 positions needs 4.00 EiB (4611686018427387904 bytes)")
	assert.Contains(t, err.Error(), "pass a smaller --max-seq")
}
