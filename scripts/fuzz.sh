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
			# Go 1.26's fuzzing coordinator can fail a target with a bare
			# "context deadline exceeded" when -fuzztime ends while a worker is
			# busy on a loaded machine (golang/go#75804, fixed in Go 1.27):
			# no input is written, nothing was found. Such a failure is run
			# once more; any other failure, or a second one, fails.
			if grep -q 'context deadline exceeded' <<<"$out" && ! grep -q 'Failing input written' <<<"$out"; then
				echo "fuzz $pkg $target: the fuzzing engine's deadline race (golang/go#75804), no input written; running it again"
				if out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" 2>&1); then
					continue
				fi
			fi
			printf '%s\n' "$out"
			exit 1
		fi
	done
done
