package engine

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
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
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/runtime"
	"github.com/llmc-dev/llmc/wformat"
)

// formatBound bounds a stored weight format's quality against f32: how
// much worse (relative) its mean NLL may be, and the least share of
// positions whose argmax agrees with f32's.
type formatBound struct {
	format string
	nll    float64
	agree  float64
}

// blockBounds are how much worse (relative) each block format's mean NLL
// over the stories260K reference texts may be than f32's, and the least
// share of positions whose argmax agrees with f32's. Measured (1120
// tokens): q8_0 +0.15% (0.63348 -> 0.63441 nats), 99.3% agreement; q4_0
// +20.45% (0.76303 nats), 81.6% agreement: far past the +8% issue 14
// guessed, and not a bug (wformat's tests bound every weight's error by
// half a step; with the embedding table kept in f32 it is still +18%):
// stories260K's 64-wide layers have no redundancy for 16 levels a block
// to hide in. The bounds leave room for rounding, not for a bug, which
// costs far more (a wrong scale, nibble or block offset turns the text to
// noise). q4_k, with a scale and a min for every 32 weights, does better
// on the same 4.5 bits (more on these narrow rows: see wformat.TailBytes):
// +11.34% (0.70535 nats), 88.1% agreement.
var blockBounds = []formatBound{
	{"q8_0", 0.005, 0.95},
	{"q4_0", 0.23, 0.78},
	{"q4_k", 0.13, 0.85},
	{"f16", 0.0005, 0.99},
}

// textSeqs are the reference texts of stories260K as token ids: prompt
// and greedy continuation of each line of stories260K_text.jsonl.
func textSeqs(t *testing.T) [][]int {
	t.Helper()
	f, err := os.Open(testshared.Path(t, "reference", "stories260K_text.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var out [][]int
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c struct {
			PromptIDs []int `json:"prompt_ids"`
			GreedyIDs []int `json:"greedy_ids"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &c))
		out = append(out, append(append([]int{}, c.PromptIDs...), c.GreedyIDs...))
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out)
	return out
}

func compileOpen(t *testing.T, model, backend, weights string) *Engine {
	t.Helper()
	return compileOpenWith(t, model, backend, compiler.WeightOptions{Format: weights})
}

func compileOpenWith(t *testing.T, model, backend string, wo compiler.WeightOptions) *Engine {
	t.Helper()
	return compileOpenSeq(t, model, backend, wo, 512)
}

// compileOpenSeq is compileOpenWith for a static cache of maxSeq positions.
// The cache is float32 whatever the weights (block formats default to an
// f16 one): these tests measure the weight formats alone, and compare
// backends with the interpreter, which stores float32.
func compileOpenSeq(t *testing.T, model, backend string, wo compiler.WeightOptions, maxSeq int) *Engine {
	t.Helper()
	art := filepath.Join(t.TempDir(), backend+"-"+wo.Format)
	_, err := compiler.Compile(testshared.Path(t, "models", model), art, compiler.Options{
		KV: passes.Static, MaxSeq: maxSeq, PrefillChunk: 16, Backend: backend, Weights: wo, KVDtype: "f32"})
	require.NoError(t, err)
	e, err := Open(art, Options{Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

// blocked reports whether format is a block format, which --float-dot
// applies to.
func blocked(t *testing.T, format string) bool {
	f, err := wformat.Parse(format)
	require.NoError(t, err)
	return f.Blocked()
}

// skipShortQuality skips a test that measures a format's numbers over
// whole texts under -short: the suite runs it in full, and the race
// detector's pass (scripts/test.sh: -race -short), which is for the
// concurrent code, took over two minutes on these four alone.
func skipShortQuality(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("a quality measurement over whole texts: runs without -short")
	}
}

// scoreAll scores every sequence: the logits after each position, and the
// NLL summed over all predicted tokens with their count.
func scoreAll(t *testing.T, e *Engine, seqs [][]int) (logits [][][]float32, nll float64, n int) {
	t.Helper()
	for _, s := range seqs {
		sc, err := runtime.ScoreSequence(e.Decoder, s)
		require.NoError(t, err)
		logits = append(logits, sc.Logits)
		nll += sc.NLL * float64(len(s)-1)
		n += len(s) - 1
	}
	return logits, nll, n
}

// compareLogits compares two scorings of the same sequences (logits after
// each position): the largest logit difference, and at how many of the
// total positions their argmax agrees.
func compareLogits(lf, lq [][][]float32) (maxDiff float64, agree, total int) {
	for i := range lf {
		for p := range lf[i] {
			for v := range lf[i][p] {
				maxDiff = max(maxDiff, math.Abs(float64(lf[i][p][v]-lq[i][p][v])))
			}
			if argmax(lf[i][p]) == argmax(lq[i][p]) {
				agree++
			}
			total++
		}
	}
	return maxDiff, agree, total
}

func argmax(xs []float32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// TestBlockQuality measures each block format against f32 on the genuine
// stories260K checkpoint over its reference texts (teacher forcing): mean
// NLL and perplexity, the largest logit difference and how often the
// argmax agrees; it fails when a format's NLL is more than its bound
// worse, or the argmax agrees less often than its bound. The interpreter
// runs all of them: its block formats are the dequantised weights in
// float32, the reference of the compiled kernels.
func TestBlockQuality(t *testing.T) {
	skipShortQuality(t)
	seqs := textSeqs(t)
	f32 := compileOpen(t, "stories260K", "interp", "f32")
	lf, nf, n := scoreAll(t, f32, seqs)
	mf := nf / float64(n)
	t.Logf("stories260K, %d texts, %d tokens: f32 NLL %.5f (ppl %.4f)", len(seqs), n, mf, math.Exp(mf))
	for _, b := range blockBounds {
		t.Run(b.format, func(t *testing.T) {
			q := compileOpen(t, "stories260K", "interp", b.format)
			require.NotEmpty(t, q.Manifest.StoredWeights)
			require.Contains(t, q.Manifest.Files, artifact.StoredWeightsName)
			for _, st := range q.Manifest.StoredWeights {
				require.Equal(t, b.format, st.Format.String(), st.Name)
			}
			lq, nq, _ := scoreAll(t, q, seqs)
			maxDiff, agree, total := compareLogits(lf, lq)
			mq := nq / float64(n)
			t.Logf("%s NLL %.5f (ppl %.4f, %+.2f%%); max |Δlogit| %.4f; greedy agreement %d/%d (%.1f%%)",
				b.format, mq, math.Exp(mq), 100*(mq/mf-1), maxDiff, agree, total, 100*float64(agree)/float64(total))
			require.LessOrEqual(t, mq, mf*(1+b.nll), "%s's NLL is more than %.1f%% worse than f32's", b.format, 100*b.nll)
			require.Greater(t, float64(agree)/float64(total), b.agree, "greedy agreement")
		})
	}
}

// TestBlockCompiledMatchesInterpreter: the LLVM backend's block-format
// kernels (dequantising matrix-vector for decode, matrix-matrix for
// prefill; Q8_0's with --float-dot, as TestIntDot tests its integer
// ones) give the interpreter's logits of the same format, prefill and
// decode, to float rounding.
func TestBlockCompiledMatchesInterpreter(t *testing.T) {
	skipShortQuality(t)
	requireLLVM(t)
	seqs := textSeqs(t)
	f32 := compileOpen(t, "stories260K", "llvm", "f32")
	for _, b := range blockBounds {
		t.Run(b.format, func(t *testing.T) {
			interp := compileOpen(t, "stories260K", "interp", b.format)
			comp := compileOpenWith(t, "stories260K", "llvm", compiler.WeightOptions{Format: b.format, FloatDot: blocked(t, b.format)})
			require.Empty(t, comp.Manifest.Backends.IntDot, "--float-dot")
			for _, w := range comp.Manifest.ProgramWeights {
				if w.Rows > 1 && w.Cols > 1 {
					require.Equal(t, b.format, w.Fmt().String(), w.Name)
				}
			}
			const tol = 2e-3
			// Prefill (all logits: the matrix-matrix kernels).
			li, _, _ := scoreAll(t, interp, seqs[:2])
			lc, _, _ := scoreAll(t, comp, seqs[:2])
			for i := range li {
				for p := range li[i] {
					for v := range li[i][p] {
						require.InDelta(t, li[i][p][v], lc[i][p][v], tol, "text %d position %d logit %d", i, p, v)
					}
				}
			}
			// Decode, one token a step (the matrix-vector kernels).
			s := seqs[0][:40]
			for _, e := range []*Engine{interp, comp} {
				require.NoError(t, e.Decoder.Rewind(0))
			}
			for k := range s {
				a, err := interp.Decoder.Forward(s[k:k+1], false)
				require.NoError(t, err)
				c, err := comp.Decoder.Forward(s[k:k+1], false)
				require.NoError(t, err)
				require.Equal(t, len(a), len(c))
				for v := range a {
					require.InDelta(t, a[v], c[v], tol, "step %d logit %d", k, v)
				}
			}
			require.Equal(t, b.format+"+f32", comp.WeightFormat)
			f, err := wformat.Parse(b.format)
			require.NoError(t, err)
			// Bytes a token: f32's over the format's, at most what a
			// 64-wide row (stories260K's narrowest: Q4_K stores its one
			// short block) saves over f32's; the norms stay f32.
			ratio := float64(64*4) / float64(f.RowBytes(64))
			require.Less(t, float64(comp.WeightBytes)*ratio*0.9, float64(f32.WeightBytes), "%s reads about 1/%.1f of f32's bytes a token", b.format, ratio)
		})
	}
}

// TestBlockGoMatchesInterpreter: the Go backend's block-format kernels,
// vector (AVX2) and portable, give the interpreter's logits of the same
// format for whole sequences (the matrix-matrix kernels, through the
// artifact's own executable's score), and its greedy continuation token
// by token (the matrix-vector decode kernels).
func TestBlockGoMatchesInterpreter(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an executable")
	}
	seqs := textSeqs(t)
	for _, b := range blockBounds {
		t.Run(b.format, func(t *testing.T) {
			interp := compileOpen(t, "stories260K", "interp", b.format)
			art := filepath.Join(t.TempDir(), "go-"+b.format)
			// The float path (Q8_0's integer dots: TestIntDotGo), and the
			// interpreter's float32 cache.
			_, err := compiler.Compile(testshared.Path(t, "models", "stories260K"), art, compiler.Options{
				KV: passes.Static, MaxSeq: 512, PrefillChunk: 16, Backend: "go", KVDtype: "f32",
				Weights: compiler.WeightOptions{Format: b.format, FloatDot: blocked(t, b.format)}})
			require.NoError(t, err)
			man, err := artifact.Read(art)
			require.NoError(t, err)
			for _, w := range man.ProgramWeights {
				if w.Rows > 1 && w.Cols > 1 {
					require.Equal(t, b.format, w.Fmt().String(), w.Name)
				}
			}
			bin := filepath.Join(art, compiler.GoBinary)
			const tol = 2e-3
			li, _, _ := scoreAll(t, interp, seqs[:2])
			// The interpreter's greedy continuation of a prompt, a step at a time.
			prompt, gen := seqs[0][:8], 40
			require.NoError(t, interp.Decoder.Rewind(0))
			logits, err := interp.Decoder.Forward(prompt, false)
			require.NoError(t, err)
			var want []int
			for range gen {
				want = append(want, argmax(logits))
				logits, err = interp.Decoder.Forward(want[len(want)-1:], false)
				require.NoError(t, err)
			}
			for _, isa := range []string{runtime.ISAAVX2, runtime.ISAScalar} {
				t.Run(isa, func(t *testing.T) {
					t.Setenv(runtime.ISAEnv, isa)
					if got := binaryISA(t, bin, art); got != isa {
						t.Skipf("LLMC_ISA=%s runs the %s kernels on this CPU", isa, got)
					}
					for i, s := range seqs[:2] {
						lc := scoreWithBinary(t, bin, art, s)
						for p := range li[i] {
							for v := range li[i][p] {
								require.InDelta(t, li[i][p][v], lc[p][v], tol, "text %d position %d logit %d", i, p, v)
							}
						}
					}
					require.Equal(t, want, generateWithBinary(t, bin, art, prompt, gen), "greedy continuation")
				})
			}
		})
	}
}

// generateWithBinary runs "BIN generate ART --ids ... --temperature 0"
// for n tokens and returns the generated ids.
func generateWithBinary(t *testing.T, bin, art string, ids []int, n int) []int {
	t.Helper()
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.Itoa(id)
	}
	cmd := exec.Command(bin, "generate", art, "--ids", strings.Join(parts, ","), "--max-new-tokens", strconv.Itoa(n),
		"--temperature", "0", "--ignore-eos", "--format", "json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, stderr.String())
	var r struct {
		IDs []int `json:"ids"`
	}
	require.NoError(t, json.Unmarshal(out, &r), string(out))
	return r.IDs
}

// tinyBounds are how far each stored format may take the tiny HF models
// (random weights, written by transformers) from f32, over their
// reference prompts and greedy continuations teacher-forced: the mean
// NLL relative to f32's, and the least greedy agreement. Random weights
// have no redundancy a quantiser could exploit, so the 4-bit formats
// move these models much more than a trained one (Q4_0 keeps 19–38% of
// their greedy choices, Q4_K 28–42%); the agreement bounds catch a broken
// format, whose logits are noise (about 1 in the vocabulary's 256), not a
// rounding change. Measured (AMD EPYC, `go test ./internal/engine -run
// TestBlockQualityTiny -v`) in the README's table.
var tinyBounds = []formatBound{
	{"f16", 0.001, 0.99},
	{"q8_0", 0.03, 0.85},
	{"q4_0", 0.55, 0.15},
	{"q4_k", 0.45, 0.22},
}

// TestBlockQualityTiny measures every stored format on each tiny HF
// model against its f32 weights, all interpreted: mean NLL of the
// reference sequences (prompt and transformers' greedy continuation), the
// largest logit difference, and greedy agreement, bounded by tinyBounds.
func TestBlockQualityTiny(t *testing.T) {
	skipShortQuality(t)
	for _, m := range []string{"llama-tiny", "llama-tied-bias-free-gqa1", "mistral-tiny", "qwen2-tiny", "gemma-tiny", "gemma2-tiny"} {
		t.Run(m, func(t *testing.T) {
			ref := testshared.LoadReference(t, m)
			var seqs [][]int
			for _, c := range ref.Cases {
				seqs = append(seqs, append(append([]int{}, c.Prompt...), c.Greedy...))
			}
			f32 := compileOpenSeq(t, m, "interp", compiler.WeightOptions{Format: "f32"}, 128)
			lf, nf, n := scoreAll(t, f32, seqs)
			mf := nf / float64(n)
			for _, b := range tinyBounds {
				t.Run(b.format, func(t *testing.T) {
					q := compileOpenSeq(t, m, "interp", compiler.WeightOptions{Format: b.format}, 128)
					lq, nq, _ := scoreAll(t, q, seqs)
					maxDiff, agree, total := compareLogits(lf, lq)
					mq := nq / float64(n)
					t.Logf("%s %s: NLL %.5f -> %.5f (%+.2f%%); max |Δlogit| %.4f; greedy agreement %d/%d (%.1f%%)",
						m, b.format, mf, mq, 100*(mq/mf-1), maxDiff, agree, total, 100*float64(agree)/float64(total))
					require.LessOrEqual(t, mq, mf*(1+b.nll), "%s's NLL is more than %.0f%% worse than f32's", b.format, 100*b.nll)
					require.GreaterOrEqual(t, float64(agree)/float64(total), b.agree, "greedy agreement")
				})
				if b.format != "q8_0" && b.format != "q4_0" {
					continue
				}
				// The LLVM backend's integer dots (and, on AVX-512, the
				// interleaved rows and pairs of blocks), within the same
				// bounds: Gemma's Q4_0 once did not compile (a loop
				// variable took a reserved name).
				t.Run(b.format+"/llvm", func(t *testing.T) {
					requireLLVM(t)
					q := compileOpenSeq(t, m, "llvm", compiler.WeightOptions{Format: b.format}, 128)
					lq, nq, _ := scoreAll(t, q, seqs)
					_, agree, total := compareLogits(lf, lq)
					mq := nq / float64(n)
					t.Logf("%s %s llvm (%s): NLL %.5f -> %.5f (%+.2f%%); greedy agreement %.1f%%", m, b.format, q.Manifest.Backends.ISA, mf, mq, 100*(mq/mf-1), 100*float64(agree)/float64(total))
					require.LessOrEqual(t, mq, mf*(1+b.nll), "%s's NLL is more than %.0f%% worse than f32's", b.format, 100*b.nll)
					// The activations are quantised to int8 too, which
					// costs Q8_0 a few more greedy choices on random
					// weights (gemma2-tiny: 81.7% with AVX2's dots, 82.4%
					// with AVX-512's, against 85% or more interpreted).
					minAgree := b.agree
					if b.format == "q8_0" {
						minAgree = 0.75
					}
					require.GreaterOrEqual(t, float64(agree)/float64(total), minAgree, "greedy agreement")
				})
			}
		})
	}
}
