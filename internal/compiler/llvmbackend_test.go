package compiler_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/codegen/llvm"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/engine"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/runtime/native"
	"github.com/llmc-dev/llmc/runtime/sample"
)

// needLLVM skips the test when opt, llc or cc is missing, except under CI,
// which installs them.
func needLLVM(t *testing.T) {
	t.Helper()
	_, err := llvm.FindToolchain()
	var te *llvm.ToolError
	if errors.As(err, &te) && !testshared.InCI() {
		t.Skipf("skipping: %v", err)
	}
	require.NoError(t, err)
}

// compileLLVM compiles a shared model with the LLVM backend.
func compileLLVM(t *testing.T, model string, o compiler.Options) string {
	t.Helper()
	dir := testshared.Path(t, "models", model)
	out := filepath.Join(t.TempDir(), model+".llmc")
	o.Backend, o.KV = "llvm", passes.Static
	res, err := compiler.Compile(dir, out, o)
	require.NoError(t, err)
	man := res.Manifest
	require.Equal(t, "llvm", man.Backend)
	require.Equal(t, compiler.LLVMLibrary, man.Backends.Library)
	require.NotEmpty(t, man.Backends.TargetCPU)
	require.Contains(t, man.Backends.Tools, "opt")
	require.Contains(t, man.Backends.Tools, "llc")
	require.Contains(t, man.Backends.Tools, "cc")
	for _, f := range []string{compiler.LLVMModule, compiler.LLVMLibrary, artifact.LayoutName} {
		require.FileExists(t, filepath.Join(out, f))
		require.Contains(t, man.Files, f)
	}
	return out
}

// TestLLVMBackend compiles shared models with the LLVM backend and runs the
// artifacts in-process: against the interpreter on the model folder (a
// prompt whose last prefill chunk is partial, then decode steps), and
// against the reference (teacher-forced logits of every position, and
// incremental decoding after a prefill).
func TestLLVMBackend(t *testing.T) {
	needLLVM(t)
	for _, tc := range []struct {
		model string
		opts  compiler.Options
	}{
		// stories260K at its full context, so that the reference's 260
		// positions all fit; the default chunk (16) leaves partial chunks.
		{"stories260K", compiler.Options{}},
		{"llama-tiny", compiler.Options{MaxSeq: 96, PrefillChunk: 8}},
		{"qwen2-tiny", compiler.Options{MaxSeq: 96, PrefillChunk: 8}},
		// Sliding-window layers keep rings of window + chunk - 1 rows.
		{"gemma2-tiny", compiler.Options{MaxSeq: 96, PrefillChunk: 8}},
		{"gemma-tiny", compiler.Options{MaxSeq: 96, PrefillChunk: 8}},
		{"mistral-tiny", compiler.Options{MaxSeq: 96, PrefillChunk: 8}},
		{"llama-tiny-bf16", compiler.Options{MaxSeq: 96, PrefillChunk: 8}},
		{"llama-tied-bias-free-gqa1", compiler.Options{MaxSeq: 96, PrefillChunk: 8}},
	} {
		t.Run(tc.model, func(t *testing.T) {
			t.Parallel() // opt and llc run as separate processes
			art := compileLLVM(t, tc.model, tc.opts)
			e, err := engine.Open(art, engine.Options{Threads: 2})
			require.NoError(t, err)
			defer e.Close()
			require.Equal(t, "artifact", e.Kind)
			t.Run("interpreter", func(t *testing.T) {
				eager, err := engine.Open(testshared.Path(t, "models", tc.model), engine.Options{Threads: 1})
				require.NoError(t, err)
				defer eager.Close()
				matchesInterpreter(t, eager.Decoder, e.Decoder, e.Manifest.PrefillChunk)
			})
			t.Run("reference", func(t *testing.T) {
				ref := testshared.LoadReference(t, tc.model)
				testshared.CheckTeacherForced(t, e.Decoder, ref)
				testshared.CheckIncremental(t, e.Decoder, ref)
			})
		})
	}
}

// matchesInterpreter prefills a random prompt of chunk+chunk/2+1 tokens
// (one full chunk and a partial one) with all logits, then decodes eight
// tokens, comparing every logit with the interpreter's within testshared.LogitTol.
func matchesInterpreter(t *testing.T, want, got runtime.Decoder, chunk int) {
	require.NoError(t, want.Rewind(0))
	require.NoError(t, got.Rewind(0))
	r := rand.New(rand.NewPCG(1, 2))
	prompt := make([]int, chunk+chunk/2+1)
	for i := range prompt {
		prompt[i] = r.IntN(want.VocabSize())
	}
	w, err := want.Forward(prompt, true)
	require.NoError(t, err)
	g, err := got.Forward(prompt, true)
	require.NoError(t, err)
	testshared.AssertLogitsClose(t, w, g, "prefill of %d tokens (chunk %d)", len(prompt), chunk)
	v := want.VocabSize()
	next := sample.Argmax(w[len(w)-v:])
	for step := range 8 {
		w, err := want.Forward([]int{next}, false)
		require.NoError(t, err)
		g, err := got.Forward([]int{next}, false)
		require.NoError(t, err)
		testshared.AssertLogitsClose(t, w, g, "decode step %d", step)
		next = sample.Argmax(w)
	}
}

// TestLLVMMissingTool: without llc, compiling fails with an error that
// names it and says how to install it, and leaves no artifact behind.
func TestLLVMMissingTool(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	bin := t.TempDir()
	opt, err := exec.LookPath("opt-14")
	if err != nil {
		opt = "/bin/true" // any executable: the search stops at llc
	}
	require.NoError(t, os.Symlink(opt, filepath.Join(bin, "opt")))
	t.Setenv(llvm.EnvLLVMBin, bin)
	out := filepath.Join(t.TempDir(), "artifact")
	_, err = compiler.Compile(dir, out, compiler.Options{Backend: "llvm", MaxSeq: 32})
	var te *llvm.ToolError
	require.ErrorAs(t, err, &te)
	require.Equal(t, "llc", te.Tool)
	require.ErrorContains(t, err, "backend llvm needs llc, which was not found")
	require.ErrorContains(t, err, "apt-get install llvm-14")
	require.ErrorContains(t, err, "scripts/setup.sh")
	require.NoDirExists(t, out)
}

// TestLLVMRefusesMissingCPUFeature: an artifact whose manifest says its
// code uses a CPU feature this machine lacks is refused when opened, with
// a message naming the feature, instead of dying of SIGILL in a kernel.
func TestLLVMRefusesMissingCPUFeature(t *testing.T) {
	needLLVM(t)
	host, err := native.HostFeatures()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	missing := ""
	for _, f := range []string{"avx512f", "avx512_fp16", "amx_tile", "sve2", "sme"} {
		if !host[f] {
			missing = f
			break
		}
	}
	if missing == "" {
		t.Skip("skipping: this machine has every feature the test could require")
	}
	art := compileLLVM(t, "llama-tiny", compiler.Options{MaxSeq: 32, PrefillChunk: 4})
	e, err := engine.Open(art, engine.Options{Threads: 1})
	require.NoError(t, err, "the unedited artifact opens")
	require.NoError(t, e.Close())

	require.NoError(t, artifact.Edit(art, func(m *artifact.Manifest) {
		m.Backends.Features = append(m.Backends.Features, missing)
	}))

	_, err = engine.Open(art, engine.Options{Threads: 1})
	var ce *native.CPUError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, []string{missing}, ce.Missing)
	require.ErrorContains(t, err, "with "+missing+", which this machine lacks")
	require.ErrorContains(t, err, "illegal instruction")
}

// TestEmitLLVM: Options.EmitLLVM writes model.ll with another backend, and
// needs no LLVM tools for it.
func TestEmitLLVM(t *testing.T) {
	dir := testshared.Path(t, "models", "stories260K")
	out := filepath.Join(t.TempDir(), "artifact")
	t.Setenv(llvm.EnvLLVMBin, t.TempDir()) // no tools there
	res, err := compiler.Compile(dir, out, compiler.Options{Backend: "interp", MaxSeq: 32, PrefillChunk: 4, EmitLLVM: true})
	require.NoError(t, err)
	require.Equal(t, "interp", res.Manifest.Backend)
	require.Contains(t, res.Manifest.Files, compiler.LLVMModule)
	data, err := os.ReadFile(filepath.Join(out, compiler.LLVMModule))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(data), llvm.Header+"\n"))
	require.Contains(t, string(data), "define void @decode_k0_embedding_p0(%llmc.ctx* %ctx, i64 %lo, i64 %hi)")
	require.Contains(t, string(data), `@llmc_build_id = constant [17 x i8] c"`+res.Manifest.BuildID+`\00"`)
}
