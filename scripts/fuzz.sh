#!/usr/bin/env bash
# Runs every fuzz target of the repository (every `func FuzzX` in a
# *_test.go file) in turn for FUZZTIME (default 60s) each and prints one
# line per target: package, target, executions, new interesting inputs,
# result. Exits non-zero when any target fails (a crasher is written to the
# package's testdata/fuzz/FuzzX/ by go test; commit it as a seed once the
# bug is fixed).
#
#   FUZZTIME=60s FUZZMINIMIZETIME=10s FUZZPARALLEL=1 scripts/fuzz.sh [REGEXP]
#
# REGEXP, optional, selects targets by "pkg.FuzzX" (e.g. 'decisionlog|neural').
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-10s}
FUZZPARALLEL=${FUZZPARALLEL:-$(nproc 2>/dev/null || echo 2)}
filter=${1:-.}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
printf '%-22s %-22s %12s %8s %9s  %s\n' package target execs new elapsed result
grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sort |
while IFS=: read -r file _ decl; do
	pkg=./$(dirname "${file#./}")
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$decl")
	echo "$pkg.$name" | grep -Eq -- "$filter" || continue
	log=$out/$(echo "$pkg.$name" | tr '/.' '__').log
	start=$(date +%s)
	if $GO test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZETIME" \
		-parallel "$FUZZPARALLEL" "$pkg" >"$log" 2>&1; then
		result=PASS
	else
		result=FAIL
	fi
	elapsed=$(( $(date +%s) - start ))
	# The last progress line: "fuzz: elapsed: 1m0s, execs: 12345 (206/sec), new interesting: 3 (total: 10)"
	last=$(grep -E 'fuzz: elapsed: .*execs:' "$log" | tail -1)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	newi=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	printf '%-22s %-22s %12s %8s %8ss  %s\n' "$pkg" "$name" "${execs:-?}" "${newi:-?}" "$elapsed" "$result"
	if [ "$result" = FAIL ]; then
		sed -n '1,60p' "$log" | sed 's/^/    /'
		echo FAIL >>"$out/failed"
	fi
done
[ -e "$out/failed" ] && status=1
exit $status
