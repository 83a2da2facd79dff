#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs them:
# vet, the whole suite, the race detector over the concurrent packages, and
# a few seconds of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
go vet ./...
go test -count=1 "$@" ./...
# The code behind goexperiment.simd (the interpreter's vector kernels, the
# helpers of the Go backend's generated kernels), vetted and tested as
# llmc builds it.
GOEXPERIMENT=simd go vet ./...
GOEXPERIMENT=simd go test -count=1 ./runtime/...
# The worker pool, the runtime that drives it, the engine that opens
# models for it and the server's scheduler, under the race detector
# (-short skips the slow compiles).
go test -race -short -count=1 ./runtime/... ./internal/engine ./internal/serve
scripts/fuzz.sh 3s
