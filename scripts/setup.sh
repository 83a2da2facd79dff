#!/usr/bin/env bash
# Installs what llmc's tests and LLVM backend need on a Debian machine:
# the LLVM 14 tools (opt, llc) and a C compiler to link shared objects.
# Go modules come from the module proxy on first build.
set -euo pipefail

need=()
command -v opt >/dev/null 2>&1 || [ -x /usr/bin/opt-14 ] || need+=(llvm-14)
command -v llc >/dev/null 2>&1 || [ -x /usr/bin/llc-14 ] || need+=(llvm-14)
command -v cc >/dev/null 2>&1 || need+=(gcc)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
go mod download
