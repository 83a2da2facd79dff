package engine

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/artifact"
	"github.com/llmc-dev/llmc/frontends/hf"
	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/sysmem"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
	"github.com/llmc-dev/llmc/wformat"
)

func needLLVM(t *testing.T) {
	t.Helper()
	requireLLVM(t)
}

// compileKV compiles model for the LLVM backend with its KV cache stored in
// kv and opens it.
func compileKV(t *testing.T, model, kv string, maxSeq, chunk int) (*Engine, *compiler.Result) {
	t.Helper()
	art := filepath.Join(t.TempDir(), model+"-"+kv)
	res, err := compiler.Compile(testshared.Path(t, "models", model), art, compiler.Options{
		KV: passes.Static, MaxSeq: maxSeq, PrefillChunk: chunk, Backend: "llvm", KVDtype: kv})
	require.NoError(t, err)
	e, err := Open(art, Options{Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e, res
}

// TestKVDtypeAllocates checks that a 16-bit cache is what the artifact
// records and allocates, not a float32 cache described as one: the
// manifest's kv_dtype and version, the native program's states (their
// format and bytes: half of f32's), and that the compiler's --stats figure,
// llmc kv's "as compiled" (hf.Config.StaticKVBytes) and the allocation
// agree, on a model with sliding-window rings (mistral-tiny: window 16,
// chunks of 8, so rings of 23 rows).
func TestKVDtypeAllocates(t *testing.T) {
	needLLVM(t)
	const maxSeq, chunk = 64, 8
	bytes := map[string]int{}
	for _, kv := range []string{"f32", "f16", "bf16"} {
		t.Run(kv, func(t *testing.T) {
			e, res := compileKV(t, "mistral-tiny", kv, maxSeq, chunk)
			f, err := wformat.ParseKV(kv)
			require.NoError(t, err)
			require.Equal(t, f, e.Manifest.KVDtype)
			require.Equal(t, f, e.KVFormat)
			require.Equal(t, artifact.VersionFor(f), e.Manifest.Version)
			states := nativeStates(t, e)
			require.NotEmpty(t, states)
			total := 0
			for _, s := range states {
				require.Equal(t, f, s.Dtype, s.Name)
				total += s.Bytes()
			}
			bytes[kv] = total
			cfg, err := hf.ReadConfig(e.Path)
			require.NoError(t, err)
			require.Equal(t, int64(total), res.KVBytes, "--stats")
			require.Equal(t, int64(total), cfg.StaticKVBytes(maxSeq, chunk, f.BlockBytes()), "llmc kv, as compiled")
			require.Less(t, cfg.StaticKVBytes(maxSeq, chunk, 4), cfg.KVBytes(maxSeq, 4)+int64(cfg.NumLayers*2*cfg.NumKVHeads*cfg.HeadDim*4*chunk))
			require.Contains(t, res.KV, sysmem.Human(int64(total)))
		})
	}
	require.Equal(t, bytes["f32"], 2*bytes["f16"])
	require.Equal(t, bytes["f32"], 2*bytes["bf16"])
}

// nativeStates opens the artifact's shared object again to read the
// states it allocates.
func nativeStates(t *testing.T, e *Engine) []artifact.State {
	t.Helper()
	lay, err := artifact.ReadLayout(filepath.Join(e.Path, artifact.LayoutName))
	require.NoError(t, err)
	require.Equal(t, artifact.ABIFor(lay.States), lay.ABI)
	if artifact.Has16BitStates(lay.States) {
		require.Equal(t, artifact.ABIVersionKV16, lay.ABI)
	} else {
		require.Equal(t, 3, lay.ABI, "a float32 cache keeps ABI 3")
	}
	return lay.States
}

// kvBounds are how far a 16-bit cache may move stories260K's results
// from f32's, teacher-forced over its reference texts. Measured (1120
// predicted tokens, LLVM backend): f32 NLL 0.63348 nats, f16 0.63352,
// bf16 0.63354 (+0.006% and +0.009%); the largest logit difference from
// f32 0.0247 (f16) and 0.230 (bf16); argmax agreement 100% (1127/1127)
// and 99.8% (1125/1127: two near ties). The bounds leave room for
// rounding, not for a bug (a cache read at the wrong width or written
// truncated to garbage turns the text to noise).
var kvBounds = []struct {
	kv       string
	nll      float64 // relative
	maxLogit float64
}{
	{"f16", 0.001, 0.05},
	{"bf16", 0.002, 0.5},
}

// TestKVDtypeQuality measures 16-bit caches against f32 on the genuine
// stories260K checkpoint: mean NLL, largest logit difference, argmax
// agreement; it fails past kvBounds.
func TestKVDtypeQuality(t *testing.T) {
	needLLVM(t)
	seqs := textSeqs(t)
	f32, _ := compileKV(t, "stories260K", "f32", 512, 16)
	lf, nf, n := scoreAll(t, f32, seqs)
	mf := nf / float64(n)
	t.Logf("stories260K, %d texts, %d tokens: f32 cache NLL %.5f (ppl %.4f)", len(seqs), n, mf, math.Exp(mf))
	for _, b := range kvBounds {
		t.Run(b.kv, func(t *testing.T) {
			q, _ := compileKV(t, "stories260K", b.kv, 512, 16)
			lq, nq, _ := scoreAll(t, q, seqs)
			maxDiff, agree, total := compareLogits(lf, lq)
			mq := nq / float64(n)
			t.Logf("%s cache: NLL %.5f (%+.3f%%, ppl %.4f), max |logit - f32| %.4f, argmax agreement %.1f%% (%d/%d)",
				b.kv, mq, 100*(mq-mf)/mf, math.Exp(mq), maxDiff, 100*float64(agree)/float64(total), agree, total)
			require.NotZero(t, maxDiff, "a 16-bit cache that changes nothing is still f32")
			require.Less(t, (mq-mf)/mf, b.nll)
			require.Less(t, maxDiff, b.maxLogit)
			require.GreaterOrEqual(t, float64(agree)/float64(total), 0.99)
		})
	}
}

// TestKVDtypeRefusals: the interpreter refuses an artifact whose manifest
// records a 16-bit cache (it stores float32 only), and a compiled program
// whose states are stored otherwise than the manifest records is refused
// naming both.
func TestKVDtypeRefusals(t *testing.T) {
	_, err := loadInterpreted(&loadInput{dir: "a.llmc", man: &artifact.Manifest{KVDtype: wformat.F16}})
	require.ErrorContains(t, err, "artifact a.llmc records a KV cache stored as f16 (--kv-dtype), which the interpreter does not store")
	err = checkStates("a.llmc", &artifact.Manifest{KVDtype: wformat.BF16}, []artifact.State{{Name: "k.0", Rows: 2, RowSize: 2}})
	require.ErrorContains(t, err, "stores KV cache state k.0 as f32, its manifest records kv_dtype bf16")
	require.NoError(t, checkStates("a.llmc", &artifact.Manifest{KVDtype: wformat.BF16}, []artifact.State{{Name: "k.0", Dtype: wformat.BF16}}))
}
