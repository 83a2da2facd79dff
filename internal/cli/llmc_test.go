package cli_test

import (
	"errors"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
)

var sharedModels = []string{
	"stories260K", "llama-tiny", "llama-tiny-bf16", "llama-tied-bias-free-gqa1",
	"gemma-tiny", "gemma2-tiny", "mistral-tiny", "qwen2-tiny",
}

// TestIR checks that llmc ir prints a graph that ir.Parse reads back, that
// verifies, and that prints back to the same text.
func TestIR(t *testing.T) {
	t.Parallel()
	for _, name := range sharedModels {
		for _, flags := range [][]string{nil, {"--all-logits"}} {
			t.Run(strings.Join(append([]string{name}, flags...), " "), func(t *testing.T) {
				r := llmc(t, append([]string{"ir", model(t, name)}, flags...)...)
				requireOK(t, r)
				assert.Empty(t, r.stderr)
				g, err := ir.Parse(r.stdout)
				require.NoErrorf(t, err, "llmc ir output does not parse:\n%s", r.stdout)
				require.NoError(t, ir.Verify(g))
				assert.Equal(t, r.stdout, ir.Print(g), "Print(Parse(output)) differs from the output")
				assert.Contains(t, r.stdout, "@model.embed_tokens.weight")
				assert.Contains(t, r.stdout, "$k.0")
			})
		}
	}
}

var kvTotal = regexp.MustCompile(`(?m)^total: .*\((\d+) bytes\)$`)

func TestKV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		model string
		flags []string
		total int
	}{
		// 2 (K and V) × 5 layers × 4 KV heads × 8 head dim × 512 positions × 4 bytes.
		{"stories260K", []string{"--max-seq", "512"}, 2 * 5 * 4 * 8 * 512 * 4},
		{"stories260K", nil, 2 * 5 * 4 * 8 * 512 * 4}, // max_position_embeddings
		{"stories260K", []string{"--max-seq", "512", "--dtype", "bf16"}, 2 * 5 * 4 * 8 * 512 * 2},
		{"stories260K", []string{"--max-seq", "1", "--dtype", "f16"}, 2 * 5 * 4 * 8 * 1 * 2},
		// MQA: one KV head.
		{"llama-tied-bias-free-gqa1", []string{"--max-seq", "256"}, 2 * 3 * 1 * 8 * 256 * 4},
		// Gemma2: layers 0 and 2 keep only min(N, 16) positions, layer 1 all N.
		{"gemma2-tiny", []string{"--max-seq", "256"}, 2*2*32*4*256 + 2*2*2*32*4*16},
		{"gemma2-tiny", []string{"--max-seq", "8"}, 2 * 3 * 2 * 32 * 4 * 8},
		// Mistral: every layer has the window.
		{"mistral-tiny", []string{"--max-seq", "256"}, 2 * 2 * 2 * 16 * 16 * 4},
		// Qwen2: sliding_window is ignored without use_sliding_window.
		{"qwen2-tiny", []string{"--max-seq", "256"}, 2 * 2 * 2 * 16 * 256 * 4},
	}
	for _, tt := range tests {
		t.Run(strings.Join(append([]string{tt.model}, tt.flags...), " "), func(t *testing.T) {
			r := llmc(t, append([]string{"kv", model(t, tt.model)}, tt.flags...)...)
			requireOK(t, r)
			m := kvTotal.FindStringSubmatch(r.stdout)
			require.NotNilf(t, m, "no total line in:\n%s", r.stdout)
			assert.Equal(t, strconv.Itoa(tt.total), m[1], r.stdout)
		})
	}

	t.Run("gemma2 window is reported", func(t *testing.T) {
		r := llmc(t, "kv", model(t, "gemma2-tiny"), "--max-seq", "256")
		requireOK(t, r)
		assert.Contains(t, r.stdout, "sliding window of 16")
		unwindowed := strconv.Itoa(2 * 3 * 2 * 32 * 256 * 4)
		assert.NotContains(t, kvTotal.FindString(r.stdout), unwindowed, "the total ignores the window")
	})
}

// TestKVAsCompiled checks that llmc kv's "as compiled" line, with
// --dtype and --prefill-chunk, is the size llmc compile --stats reports
// for the same --kv-dtype and chunk, on a model whose sliding-window
// layers keep rings of window + chunk - 1 rows (mistral-tiny: 16 + 8 - 1)
// rather than the window; internal/engine's TestKVDtypeAllocates checks
// that the artifact allocates exactly that.
func TestKVAsCompiled(t *testing.T) {
	t.Parallel()
	m := model(t, "mistral-tiny")
	var te *llvm.ToolError
	if _, err := llvm.FindToolchain(); errors.As(err, &te) && !testshared.InCI() {
		t.Skipf("skipping: %v", err)
	}
	for _, kv := range []string{"f32", "bf16"} {
		t.Run(kv, func(t *testing.T) {
			r := llmc(t, "kv", m, "--max-seq", "64", "--dtype", kv, "--prefill-chunk", "8")
			requireOK(t, r)
			as := regexp.MustCompile(`(?m)^as compiled \(--prefill-chunk 8: windowed layers keep min\(64, 16 \+ 8 - 1\) rows\): (.+) \((\d+) bytes\)$`).FindStringSubmatch(r.stdout)
			require.NotNil(t, as, r.stdout)
			elem := map[string]int{"f32": 4, "bf16": 2}[kv]
			assert.Equal(t, strconv.Itoa(2*2*2*16*23*elem), as[2])
			c := llmc(t, "compile", m, "--backend", "llvm", "--kv-dtype", kv, "--max-seq", "64", "--prefill-chunk", "8", "-o", filepath.Join(t.TempDir(), "a"), "--stats", "--quiet")
			requireOK(t, c)
			want := "static KV cache: 64 positions, " + as[1]
			if kv != "f32" {
				want += " stored as " + kv
			}
			assert.Contains(t, c.stdout, want)
		})
	}
	// Block-format weights default to an f16 cache, and --stats says so.
	r := llmc(t, "kv", m, "--max-seq", "64", "--dtype", "f16", "--prefill-chunk", "8")
	requireOK(t, r)
	as := regexp.MustCompile(`(?m)^as compiled \(.*\): (.+) \((\d+) bytes\)$`).FindStringSubmatch(r.stdout)
	require.NotNil(t, as, r.stdout)
	c := llmc(t, "compile", m, "--backend", "llvm", "--weights", "q8_0", "--max-seq", "64", "--prefill-chunk", "8", "-o", filepath.Join(t.TempDir(), "a"), "--stats", "--quiet")
	requireOK(t, c)
	assert.Contains(t, c.stdout, "static KV cache: 64 positions, "+as[1]+" stored as f16 (the default beside block-format weights")
	assert.Contains(t, c.stdout, "  KV cache: "+as[2]+" bytes stored as f16 (sliding-window layers hold only their window)\n")
}

func TestKVHelp(t *testing.T) {
	t.Parallel()
	r := llmc(t, "kv", "--help")
	require.Zero(t, r.code)
	help := strings.Join(strings.Fields(r.stdout+r.stderr), " ")
	assert.Contains(t, help, "usage: llmc kv")
	assert.Contains(t, help, "2 (K and V) × layers × KV heads × head dim × positions × bytes")
	assert.Contains(t, help, "textbook formula")
	assert.Contains(t, help, "counts only one of K and V")
	assert.Contains(t, help, "ignores grouped-query attention")
	assert.Contains(t, help, "llmc kv ../shared/models/stories260K --max-seq 512", "an example command line")
}

// TestHelp checks that every command and subcommand has help with examples,
// and that help is not an error.
func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		main func(*testing.T, ...string) result
		args []string
		want []string
	}{
		{llmrun, []string{"--help"}, []string{"generate", "score"}},
		{llmrun, []string{"help"}, []string{"generate", "score"}},
		{llmrun, []string{"generate", "--help"}, []string{"usage: llmrun generate", "examples:", "--ids", "-seed", "-top-k", "-format"}},
		{llmrun, []string{"score", "-h"}, []string{"usage: llmrun score", "examples:", "-logits"}},
		{llmc, []string{"-h"}, []string{"ir", "kv"}},
		{llmc, []string{"ir", "--help"}, []string{"usage: llmc ir", "examples:"}},
		{llmrun, []string{"help", "generate"}, []string{"usage: llmrun generate", "examples:", "-seed"}},
		{llmc, []string{"help", "compile"}, []string{"usage: llmc compile", "examples:", "-max-seq"}},
		{llmrun, []string{"help", "version"}, []string{"usage: llmrun version", "examples:"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := tt.main(t, tt.args...)
			require.Zero(t, r.code)
			for _, w := range tt.want {
				assert.Contains(t, r.stderr+r.stdout, w)
			}
		})
	}
}
