#!/usr/bin/env bash
# Runs every fuzz target of the module for a short time each (default 3s),
# one target per go test run as -fuzz requires. New failing inputs land in
# the package's testdata/fuzz/FuzzXxx folder: commit them, and they stay in
# the seed corpus that every plain go test runs.
set -euo pipefail
cd "$(dirname "$0")/.."
time="${1:-3s}"
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
	# Read the targets from the sources: go test -list would build each
	# package's tests once more without the fuzzing instrumentation.
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$dir"/*_test.go 2>/dev/null); do
		echo "fuzz $pkg $target ($time)"
		# Quiet when it passes; its whole output when it does not.
		if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" 2>&1); then
			printf '%s\n' "$out"
			exit 1
		fi
	done
done
