package compiler_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
)

func TestCompileRejectsBadOptions(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K") // max_position_embeddings 512
	for _, tc := range []struct {
		name string
		opts compiler.Options
		want string
	}{
		{"max-seq too large", compiler.Options{MaxSeq: 513}, "--max-seq 513 is outside 1..512"},
		{"max-seq negative", compiler.Options{MaxSeq: -1}, "--max-seq -1 is outside 1..512"},
		{"prefill chunk negative", compiler.Options{PrefillChunk: -8}, "--prefill-chunk -8 must be positive"},
		{"unknown backend", compiler.Options{Backend: "cuda"}, `--backend "cuda" is not supported`},
		{"unknown kv", compiler.Options{KV: "paged"}, `--kv is "paged", want static or dynamic`},
		{"unknown pass", compiler.Options{Passes: passes.Options{Disabled: []string{"fuse-all"}}},
			`--disable-pass: no pass named "fuse-all"`},
		{"required pass", compiler.Options{Passes: passes.Options{Disabled: []string{"specialize-shapes"}}},
			"--disable-pass: specialize-shapes is required and cannot be disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "artifact")
			_, err := compiler.Compile(dir, out, tc.opts)
			require.ErrorContains(t, err, tc.want)
			_, statErr := os.Stat(out)
			require.True(t, os.IsNotExist(statErr), "a failed compile left %s behind", out)
		})
	}
}

func TestCompileStaticArtifact(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	out := filepath.Join(t.TempDir(), "artifact")
	res, err := compiler.Compile(dir, out, compiler.Options{Backend: "interp", MaxSeq: 64, PrefillChunk: 8, EmitDot: true})
	require.NoError(t, err)
	man := res.Manifest

	require.Equal(t, "static", man.KV)
	require.Equal(t, 64, man.MaxSeq)
	require.Equal(t, 8, man.PrefillChunk)
	require.Equal(t, []artifact.Entry{
		{Name: artifact.EntryDecode, Seq: 1, Logits: "last"},
		{Name: artifact.EntryPrefill, Seq: 8, Logits: "last"},
		{Name: artifact.EntryPrefillAll, Seq: 8, Logits: "all"},
	}, man.Entries)
	require.Len(t, res.Reports, 3)
	require.Len(t, man.BufferPlan, 3)
	for _, p := range man.BufferPlan {
		require.Positive(t, p.ArenaBytes, p.Entry)
		for _, b := range p.Buffers {
			require.Zero(t, b.Offset%passes.Alignment, "%s %s", p.Entry, b.Value)
			require.LessOrEqual(t, b.Offset+b.Bytes, p.ArenaBytes, "%s %s", p.Entry, b.Value)
		}
	}
	require.NotEmpty(t, man.Kernels)
	for _, k := range man.Kernels {
		require.NotEmpty(t, k.Kind)
		require.NotEmpty(t, k.Ops)
	}
	// Five layers of stacked q/k/v and gate/up weights, built at load time.
	require.Len(t, man.Derived, 10)
	require.Contains(t, man.Files, "config.json")
	require.Contains(t, man.Files, "program.dot")

	// The stored IR is the optimised program: every shape constant, every
	// computing op in a kernel.
	src, err := os.ReadFile(filepath.Join(out, man.IR))
	require.NoError(t, err)
	graphs, err := ir.ParseModule(string(src))
	require.NoError(t, err)
	require.Len(t, graphs, 3)
	for i, g := range graphs {
		require.Equal(t, man.Entries[i].Name, g.Name)
		require.Empty(t, g.Syms, g.Name)
		require.NoError(t, ir.Verify(g))
		require.Equal(t, ir.Print(res.Graphs[i]), ir.Print(g), "program.ir differs from the compiled graph %s", g.Name)
		c := passes.CountOps(g)
		require.Equal(t, c.Ops, c.Kernels, g.Name)
	}

	dot, err := os.ReadFile(filepath.Join(out, "program.dot"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(dot), "digraph llmc {"))
	require.Equal(t, len(man.Kernels), strings.Count(string(dot), "label=\"kernel "))
	for _, e := range man.Entries {
		require.Contains(t, string(dot), `label="`+e.Name+`"`)
	}
}

func TestCompileDynamicArtifact(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	out := filepath.Join(t.TempDir(), "artifact")
	res, err := compiler.Compile(dir, out, compiler.Options{Backend: "interp", KV: passes.Dynamic})
	require.NoError(t, err)
	man := res.Manifest
	require.Equal(t, "dynamic", man.KV)
	require.Equal(t, 512, man.MaxSeq, "max-seq defaults to max_position_embeddings")
	require.Zero(t, man.PrefillChunk)
	require.Equal(t, []artifact.Entry{
		{Name: artifact.EntryForward, Seq: 0, Logits: "last"},
		{Name: artifact.EntryForwardAll, Seq: 0, Logits: "all"},
	}, man.Entries)
	require.Empty(t, man.Kernels, "no kernels are formed on a dynamic cache")
	require.Empty(t, man.Derived)
	for _, rep := range res.Reports {
		for _, st := range rep.Passes {
			if st.Skipped != "" {
				require.Contains(t, st.Skipped, "KV cache is dynamic", "%s %s", rep.Entry, st.Pass)
			}
		}
		require.Equal(t, rep.Before, rep.After, rep.Entry)
	}
	for _, g := range res.Graphs {
		require.Equal(t, []string{"seq", "ctx"}, g.Syms, g.Name)
	}
}

// The prefill chunk is capped at max-seq: a chunk longer than the cache
// could never be filled.
func TestCompilePrefillChunkCapped(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	res, err := compiler.Compile(dir, filepath.Join(t.TempDir(), "artifact"), compiler.Options{Backend: "interp", MaxSeq: 4})
	require.NoError(t, err)
	require.Equal(t, 4, res.Manifest.PrefillChunk)
	require.Equal(t, 4, res.Manifest.Entries[1].Seq)
}

func TestCompileContextCancelled(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	stop := errors.New("stop requested")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(stop)
	parent := t.TempDir()
	out := filepath.Join(parent, "artifact")
	_, err := compiler.CompileContext(ctx, dir, out, compiler.Options{Backend: "interp", MaxSeq: 64})
	require.ErrorIs(t, err, stop)
	ents, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Empty(t, ents, "a cancelled compile left files behind")
}
