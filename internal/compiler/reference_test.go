package compiler_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
)

// TestCompiledStories260KMatchesReference compiles stories260K and checks
// the artifact, opened as llmrun opens it, against llama2.c's logits.
func TestCompiledStories260KMatchesReference(t *testing.T) {
	const model = "stories260K"
	ref := testshared.LoadReference(t, model)
	dir := testshared.Path(t, "models", model)
	for _, tc := range []struct {
		name string
		opts compiler.Options
	}{
		// The default chunk (16) leaves partial last chunks for the
		// prompts of 1, 3, 10 and 60 tokens and for prompt+greedy.
		{"static", compiler.Options{Backend: "interp", KV: passes.Static}},
		{"static-chunk-7", compiler.Options{Backend: "interp", KV: passes.Static, PrefillChunk: 7}},
		{"dynamic", compiler.Options{Backend: "interp", KV: passes.Dynamic}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "artifact")
			_, err := compiler.Compile(dir, out, tc.opts)
			require.NoError(t, err)
			e, err := engine.Open(out, engine.Options{})
			require.NoError(t, err)
			defer e.Close()
			require.Equal(t, "artifact", e.Kind)
			require.Equal(t, string(tc.opts.KV), e.Manifest.KV)
			testshared.CheckTeacherForced(t, e.Decoder, ref)
			testshared.CheckIncremental(t, e.Decoder, ref)
		})
	}
}
