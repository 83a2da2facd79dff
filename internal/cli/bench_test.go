package cli_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// TestBenchNamesTheMachine checks that llmrun bench says what it ran on:
// the CPU model under the table and in each JSON result, so that a figure
// can be quoted with its machine.
func TestBenchNamesTheMachine(t *testing.T) {
	t.Parallel()
	m := model(t, "llama-tiny")
	args := []string{"bench", m, "--prompt", "4", "--gen", "4", "--runs", "1", "--no-bandwidth"}
	r := llmrun(t, args...)
	requireOK(t, r)
	assert.Regexp(t, `(?m)^cpu: .+, \d+ logical CPUs$`, r.stdout)

	r = llmrun(t, append(args, "--format", "json")...)
	requireOK(t, r)
	var rs []struct {
		Model string `json:"model"`
		CPU   string `json:"cpu"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rs), r.stdout)
	require.Len(t, rs, 1)
	assert.Regexp(t, `, \d+ logical CPUs$`, rs[0].CPU)
}

// TestBenchCountsKVAtItsDtype checks that llmrun bench counts the KV cache
// a decode step reads at the bytes it is stored in: an artifact compiled
// with --kv-dtype bf16 reads half the eager (float32) cache's bytes at the
// same mean position, and the table has the KV/token column.
func TestBenchCountsKVAtItsDtype(t *testing.T) {
	t.Parallel()
	var te *llvm.ToolError
	if _, err := llvm.FindToolchain(); errors.As(err, &te) && !testshared.InCI() {
		t.Skipf("skipping: %v", err)
	}
	m := model(t, "llama-tiny")
	art := filepath.Join(t.TempDir(), "bf16.llmc")
	requireOK(t, llmc(t, "compile", m, "--backend", "llvm", "--kv-dtype", "bf16", "--max-seq", "64", "-o", art, "--quiet"))
	args := []string{"bench", m, art, "--prompt", "8", "--gen", "8", "--runs", "1", "--no-bandwidth"}
	r := llmrun(t, append(args, "--format", "json")...)
	requireOK(t, r)
	var rs []struct {
		KVBytes  int64  `json:"kv_bytes_per_token"`
		KVFormat string `json:"kv_format"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rs), r.stdout)
	require.Len(t, rs, 2)
	assert.Equal(t, "f32", rs[0].KVFormat)
	assert.Equal(t, "bf16", rs[1].KVFormat)
	// llama-tiny: 2 (K, V) × layers × KV heads × head dim × (8 + 8/2) positions × bytes.
	require.NotZero(t, rs[1].KVBytes)
	assert.Equal(t, rs[0].KVBytes, 2*rs[1].KVBytes)
	r = llmrun(t, args...)
	requireOK(t, r)
	assert.Contains(t, r.stdout, "KV/token")
	assert.Contains(t, r.stdout, " bf16")
}
