#!/usr/bin/env bash
# Installs what llmc's tests and LLVM backend need on a Debian machine:
# the LLVM 14 tools (opt, llc), a C compiler to link shared objects and
# binutils (objdump) for the instruction-level tests.
# Go modules come from the module proxy on first build.
set -euo pipefail

# have_llvm_tool NAME checks for opt or llc where llmc compile --backend llvm
# looks for them (codegen/llvm/toolchain.go), in this order: only
# $LLMC_LLVM_BIN/NAME when that is set; else NAME-14 on PATH (Debian's llvm-14
# package installs /usr/bin/opt-14), /usr/lib/llvm-14/bin/NAME (the same
# package), then NAME on PATH (a plain /usr/bin/opt comes only with the
# llvm-defaults package), which must be LLVM 14 to 16: llmc emits typed
# pointers, which LLVM 17 no longer reads.
have_llvm_tool() {
  if [ -n "${LLMC_LLVM_BIN:-}" ]; then
    [ -x "$LLMC_LLVM_BIN/$1" ]
    return
  fi
  command -v "$1-14" >/dev/null 2>&1 && return 0
  [ -x "/usr/lib/llvm-14/bin/$1" ] && return 0
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -Eq 'LLVM version 1[4-6][.]'
}

need=()
if ! have_llvm_tool opt || ! have_llvm_tool llc; then need+=(llvm-14); fi
command -v "${CC:-cc}" >/dev/null 2>&1 || need+=(gcc)
# GNU objdump reads the Go backend's kernels in the AVX-SSE transition test.
command -v objdump >/dev/null 2>&1 || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
go mod download

# The openai npm client that internal/cli/llmruncmd's TestServeOpenAIClient
# drives llmrun serve with, at the version package-lock.json pins (node 20
# and npm; the test skips without them, and fails under CI=true).
client="$(dirname "$0")/../internal/serve/testdata/client"
if command -v npm >/dev/null 2>&1 && [ ! -d "$client/node_modules/openai" ]; then
  echo "setup: npm ci in $client" >&2
  (cd "$client" && npm ci --no-audit --no-fund --loglevel=error)
fi
