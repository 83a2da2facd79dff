#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (default 3s),
# one target per go test run as -fuzz requires. New failing inputs land in
# the package's testdata/fuzz/FuzzXxx folder: commit them, and they stay in
# the seed corpus that every plain go test runs.
set -euo pipefail
cd "$(dirname "$0")/.."
time="${1:-3s}"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		echo "fuzz $pkg $target ($time)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" >/dev/null
	done
done
