package cli_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
