#!/usr/bin/env bash
# Guards the Go backend's vector kernels against AVX-SSE transition
# penalties coming back (see codegen/golang's package comment), by a
# benchmark ratio rather than a timed test: it compiles the stories15M
# shape (random weights) with the Go and the LLVM backend, runs
#
#   llmrun bench ART-go ART-llvm --threads 2 --runs 5 --gen 128 --format json
#
# (one interleaved run, built with GOEXPERIMENT=simd), prints medians with
# min–max and the CPU, and fails when the Go backend's median decode speed
# is below RATIO (default 0.5) times the LLVM backend's. On an Intel CPU a
# transition in the hot kernels cut the Go backend to about 0.15x LLVM
# (issue 13: 880 vs 6,062 tok/s on stories260K); without them it runs at
# 0.7-0.8x on an AMD EPYC (Zen 4), which pays no penalty, so this catches
# the regression only on Intel. Usage: scripts/bench-gosimd.sh [RATIO] [WORKDIR]
# LLMC_ISA=avx2|scalar set in the environment benchmarks a forced ISA.
set -euo pipefail
cd "$(dirname "$0")/.."
ratio="${1:-0.5}"
work="${2:-$(mktemp -d)}"
GOEXPERIMENT=simd go build -o "$work/llmc" ./cmd/llmc
GOEXPERIMENT=simd go build -o "$work/llmrun" ./cmd/llmrun
[ -d "$work/s15" ] || "$work/llmc" synth --shape stories15M -o "$work/s15"
for b in go llvm; do
	[ -d "$work/s15-$b" ] || "$work/llmc" compile "$work/s15" -o "$work/s15-$b" --backend "$b" --max-seq 512
done
lscpu | sed -n 's/^Model name: *//p'
"$work/llmrun" bench "$work/s15-go" "$work/s15-llvm" --threads 2 --runs 5 --gen 128 --no-bandwidth --format json >"$work/bench.json"
python3 - "$work/bench.json" "$ratio" <<'PY'
import json, statistics, sys
rs = json.load(open(sys.argv[1]))
med = []
for r in rs:
    d = r["decode_tokens_per_second"]
    med.append(statistics.median(d))
    print(f'{r["kind"]:<18} {r.get("isa", "-"):<7} decode {med[-1]:.1f} tok/s ({min(d):.1f}-{max(d):.1f})')
got, want = med[0] / med[1], float(sys.argv[2])
print(f"go / llvm = {got:.2f} (want >= {want})")
sys.exit(0 if got >= want else 1)
PY
