package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/synth"
	"github.com/llmc-dev/llmc/internal/testshared"
)

// TestSynthShapesGenerate writes each published model's shape scaled down
// (synth.Shape.Small), with its tokenizer where ../shared has one, and
// generates a couple of tokens from it with llmrun: through the chat
// template and the text path when there is a tokenizer, from ids when not.
func TestSynthShapesGenerate(t *testing.T) {
	t.Parallel()
	for _, s := range synth.Shapes() {
		if s.Model == "" {
			continue // llama2.c's shapes: TestSynthCommand
		}
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			o := synth.Options{Shape: s.Small(), Seed: 2}
			if s.Tokenizer != "" {
				o.Tokenizer = testshared.Path(t, "tokenizers", s.Tokenizer)
			}
			dir := filepath.Join(t.TempDir(), "m")
			res, err := synth.Write(dir, o)
			require.NoError(t, err)
			assert.Equal(t, s.DType, res.DType, "the published checkpoint's dtype")
			if o.Tokenizer == "" {
				r := llmrun(t, "generate", dir, "--ids", "1,5,9", "--max-new-tokens", "2", "--quiet")
				requireOK(t, r)
				assert.NotEmpty(t, strings.TrimSpace(r.stdout))
				return
			}
			g := parseTextGeneration(t, llmrun(t, "generate", dir, "--prompt", "What is 2+2?", "--chat",
				"--max-new-tokens", "2", "--format", "json", "--quiet"))
			assert.NotEmpty(t, g.IDs)
			assert.LessOrEqual(t, len(g.IDs), 2)
			for _, id := range g.IDs {
				assert.Less(t, id, res.Shape.Vocab)
			}
		})
	}
}

// TestSynthHelpShapes: the help lists every shape with its architecture,
// dtype and tokenizer.
func TestSynthHelpShapes(t *testing.T) {
	t.Parallel()
	r := llmc(t, "synth", "--help")
	require.Zero(t, r.code)
	for _, s := range []string{"gemma-2b ", "gemma2-2b", "llama-3.2-1b", "qwen2.5-0.5b", "smollm2-135m", "tinyllama-1.1b",
		"Gemma2", "Qwen2", "16384", "131072", "gemma-2b-it", "smollm2-135m-instruct", "--tokenizer"} {
		assert.Contains(t, r.stderr, s)
	}
	r = llmc(t, "synth", "--shape", "gemma-2b", "--dtype", "f8", "-o", filepath.Join(t.TempDir(), "m"))
	assert.Equal(t, 2, r.code)
}
