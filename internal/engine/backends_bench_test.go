package engine

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/llmc-dev/llmc/internal/compiler"
	"github.com/llmc-dev/llmc/internal/testshared"
	"github.com/llmc-dev/llmc/passes"
)

// BenchmarkGoVsLLVM decodes stories260K with a Go-backend and an LLVM
// artifact of the same shape, one run of each an iteration, interleaved,
// and reports the ratio of the median decode speeds as go/llvm (issue 13
// asks for at least 0.8). It guards what timing on one CPU cannot show in
// a unit test: a regression of the Go kernels' code (AVX-SSE transitions,
// a helper no longer inlined, loops no longer unrolled) shows as this
// ratio falling. Run it with -benchtime=Nx for N rounds (5 or more):
//
//	go test ./internal/engine -run '^$' -bench GoVsLLVM -benchtime 7x
//
// LLMC_ISA=avx2 in the environment compares the AVX2 paths of both.
func BenchmarkGoVsLLVM(b *testing.B) {
	requireLLVM(b)
	dir := b.TempDir()
	arts := map[string]string{}
	for _, backend := range []string{"go", "llvm"} {
		arts[backend] = filepath.Join(dir, backend+".llmc")
		_, err := compiler.Compile(testshared.Path(b, "models", "stories260K"), arts[backend], compiler.Options{
			KV: passes.Static, MaxSeq: 512, Backend: backend,
		})
		require.NoError(b, err)
	}
	// The Go artifact's executable links llmrun's commands and runs the
	// LLVM artifact in the same process too, so both see the same noise.
	bin := filepath.Join(arts["go"], compiler.GoBinary)
	var goTok, llvmTok []float64
	b.ResetTimer()
	for range b.N {
		out, err := exec.Command(bin, "bench", arts["go"], arts["llvm"], "--prompt", "8", "--gen", "400",
			"--runs", "1", "--threads", "2", "--no-bandwidth", "--format", "json").Output()
		require.NoError(b, err)
		var res []struct {
			Decode []float64 `json:"decode_tokens_per_second"`
		}
		require.NoError(b, json.NewDecoder(bytes.NewReader(out)).Decode(&res))
		require.Len(b, res, 2)
		goTok, llvmTok = append(goTok, res[0].Decode...), append(llvmTok, res[1].Decode...)
	}
	b.StopTimer()
	g, l := medianOf(goTok), medianOf(llvmTok)
	b.ReportMetric(g, "go-tok/s")
	b.ReportMetric(l, "llvm-tok/s")
	b.ReportMetric(g/l, "go/llvm")
}

func medianOf(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
