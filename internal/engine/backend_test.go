package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/ir"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
)

// TestGoBackendMatchesReference compiles every shared model with the Go
// backend, runs the artifact's own executable on prompt+greedy with
// "score --logits", and compares every position's logits with the
// reference (teacher forcing), and the argmax with greedy away from near
// ties.
func TestGoBackendMatchesReference(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an executable per model")
	}
	models := []string{"stories260K", "llama-tiny", "llama-tiny-bf16", "llama-tied-bias-free-gqa1",
		"gemma-tiny", "gemma2-tiny", "qwen2-tiny", "mistral-tiny"}
	for _, m := range models {
		t.Run(m, func(t *testing.T) {
			ref := testshared.LoadReference(t, m)
			art := filepath.Join(t.TempDir(), m+".llmc")
			_, err := compiler.Compile(testshared.Path(t, "models", m), art, compiler.Options{
				KV: passes.Static, MaxSeq: 96, PrefillChunk: 8, Backend: "go",
			})
			require.NoError(t, err)
			bin := filepath.Join(art, compiler.GoBinary)
			// Every instruction set the generated code has kernels for
			// (LLMC_ISA caps the choice; the Go backend's vector kernels are
			// AVX2, or AVX-512 where its linears take sixteen lanes, its
			// portable ones lane-emulated vectors) must agree.
			for _, isa := range []string{runtime.ISAAVX512, runtime.ISAAVX2, runtime.ISAScalar} {
				t.Run(isa, func(t *testing.T) {
					t.Setenv(runtime.ISAEnv, isa)
					if got := binaryISA(t, bin, art); got != isa {
						t.Skipf("LLMC_ISA=%s runs the %s kernels on this CPU", isa, got)
					}
					for ci, c := range ref.Cases {
						seq := append(append([]int(nil), c.Prompt...), c.Greedy...)
						if len(seq) > 96 {
							seq = seq[:96]
						}
						testshared.CheckRows(t, c, scoreWithBinary(t, bin, art, seq), fmt.Sprintf("case %d", ci))
					}
				})
			}
		})
	}
}

// binaryISA asks an artifact's executable which kernels it runs with under
// the current environment: the isa of a short llmrun bench, without what
// follows it ("avx512 (16-lane dots)" is avx512).
func binaryISA(t *testing.T, bin, art string) string {
	t.Helper()
	cmd := exec.Command(bin, "bench", art, "--format", "json", "--runs", "1", "--prompt", "1", "--gen", "2", "--no-bandwidth")
	cmd.Env = append(os.Environ(), HandoffEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var rs []struct {
		ISA string `json:"isa"`
	}
	require.NoError(t, json.Unmarshal(out, &rs), string(out))
	require.Len(t, rs, 1)
	isa, _, _ := strings.Cut(rs[0].ISA, " ")
	return isa
}

// scoreWithBinary runs "BIN score ART --ids ... --logits FILE" and reads
// the logits rows.
func scoreWithBinary(t *testing.T, bin, art string, ids []int) [][]float32 {
	t.Helper()
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	out := filepath.Join(t.TempDir(), "logits.jsonl")
	cmd := exec.Command(bin, "score", art, "--ids", strings.Join(parts, ","), "--logits", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Run(), stderr.String())
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	var rows [][]float32
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var row []float32
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		rows = append(rows, row)
	}
	require.NoError(t, sc.Err())
	require.Len(t, rows, len(ids))
	return rows
}

// TestWeightBytes checks the bytes a decode step reads, which the
// roofline in llmrun bench divides by: every weight in full, the
// embedding table one row at a time unless it is also the output
// projection (tied), the same for eager graphs and compiled ones.
func TestWeightBytes(t *testing.T) {
	for _, c := range []struct {
		model string
		tied  bool
	}{{"stories260K", true}, {"llama-tiny", false}} {
		dir := testshared.Path(t, "models", c.model)
		e, err := Open(dir, Options{})
		require.NoError(t, err)
		cfg := e.Config
		e.Close()
		h, f, l, v := cfg.HiddenSize, cfg.IntermediateSize, cfg.NumLayers, cfg.VocabSize
		q, kv := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
		perLayer := h*q + 2*h*kv + q*h + 3*h*f + 2*h
		want := int64(4 * (l*perLayer + h + v*h))
		if !c.tied {
			want += 4 * int64(h) // the embedding's one row; lm_head is v×h above
		}
		require.Equal(t, want, e.WeightBytes, c.model+" eager")
		art := filepath.Join(t.TempDir(), "a")
		_, err = compiler.Compile(dir, art, compiler.Options{Backend: "interp", KV: passes.Static, MaxSeq: 32})
		require.NoError(t, err)
		a, err := Open(art, Options{})
		require.NoError(t, err)
		require.Equal(t, want, a.WeightBytes, c.model+" compiled")
		a.Close()
	}
}

// TestWeightBytesStoredBF16 checks that the bytes a decode step reads
// follow what the compiler recorded of the program's weights: a compiled
// program keeps bfloat16 weights as stored (2 bytes an element), the
// interpreter widens them for its fused kernels, whatever the backend is
// called; the eager path keeps its matrices in bfloat16.
func TestWeightBytesStoredBF16(t *testing.T) {
	requireLLVM(t)
	dir := testshared.Path(t, "models", "llama-tiny-bf16")
	open := func(backend string) *Engine {
		art := filepath.Join(t.TempDir(), backend)
		_, err := compiler.Compile(dir, art, compiler.Options{KV: passes.Static, MaxSeq: 32, Backend: backend})
		require.NoError(t, err)
		e, err := Open(art, Options{})
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		return e
	}
	interp, compiled := open("interp"), open("llvm")
	require.Empty(t, interp.Manifest.ProgramWeights)
	require.NotEmpty(t, compiled.Manifest.ProgramWeights)
	for _, w := range compiled.Manifest.ProgramWeights {
		require.True(t, w.BF16, w.Name)
	}
	require.Equal(t, interp.WeightBytes, 2*compiled.WeightBytes)

	// Eagerly, the matrices (linear and embedding weights) stay in
	// bfloat16 too, and the logits are those of the widened weights.
	eager, err := Open(dir, Options{})
	require.NoError(t, err)
	defer eager.Close()
	require.True(t, strings.HasPrefix(eager.WeightFormat, "bf16"), eager.WeightFormat)
	require.Less(t, eager.WeightBytes, interp.WeightBytes*6/10)
	ids := []int{1, 5, 9, 2, 7}
	want, err := interp.Decoder.Forward(ids, true)
	require.NoError(t, err)
	got, err := eager.Decoder.Forward(ids, true)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := range want {
		require.InDelta(t, want[i], got[i], 1e-4, "logit %d", i)
	}

	// The fact is the manifest's: a program recorded as keeping nothing
	// in bfloat16 reads 4 bytes an element.
	compiled.Manifest.ProgramWeights = nil
	g := parseDecode(t, compiled)
	wb, wf := weightBytes(g, programFormats(compiled.Manifest))
	require.Equal(t, interp.WeightBytes, wb)
	require.Equal(t, "f32", wf)
}

// parseDecode reads the decode graph of an opened artifact.
func parseDecode(t *testing.T, e *Engine) *ir.Graph {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(e.Path, e.Manifest.IR))
	require.NoError(t, err)
	graphs, err := ir.ParseModule(string(src))
	require.NoError(t, err)
	for _, g := range graphs {
		if g.Name == artifact.EntryDecode {
			return g
		}
	}
	t.Fatal("no decode entry point")
	return nil
}
