#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# libfuzzer_run.sh FUZZER CORPUS SECONDS: one bounded coverage-guided run of a
# libFuzzer target (tests/fuzz/meson.build builds them with clang), starting
# from the seed corpus CORPUS, which it only reads: new inputs go to a
# temporary directory removed afterwards. Fails on anything libFuzzer fails on
# (a crash, an abort of the target's checks, an ASan or UBSan report, a leak,
# an input slower than 10 s, an RSS over 2 GB), printing its report and the
# input that did it in hex. Prints one line:
#   fuzz_NAME: N executions in S s (R/s), K new inputs, peak RSS M MB: ok
set -euo pipefail

(($# == 3)) || {
	echo "usage: libfuzzer_run.sh FUZZER CORPUS SECONDS" >&2
	exit 2
}
fuzzer=$1 corpus=$2 secs=$3
name=$(basename "$fuzzer")
[[ -x $fuzzer ]] || {
	echo "$name: not an executable: $fuzzer" >&2
	exit 2
}
[[ -d $corpus ]] || {
	echo "$name: no corpus directory: $corpus" >&2
	exit 2
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/new" "$work/crash"

rc=0
# -fork/-jobs stay off: meson runs the targets side by side instead
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1 \
	"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$work/crash/" \
	"$work/new" "$corpus" >"$work/log" 2>&1 || rc=$?

stat() { sed -n "s/^stat::$1: *//p" "$work/log"; }
if ((rc != 0)); then
	echo "$name: libFuzzer exited with status $rc; its log ends:"
	tail -n 80 "$work/log"
	for f in "$work"/crash/*; do
		[[ -e $f ]] || continue
		echo "--- ${f##*/} ($(wc -c <"$f") bytes):"
		od -A x -t x1z -v "$f" | head -n 64
	done
	exit 1
fi
runs=$(stat number_of_executed_units)
[[ -n $runs ]] || {
	echo "$name: no final statistics in libFuzzer's output:"
	tail -n 40 "$work/log"
	exit 1
}
echo "$name: $runs executions in $secs s ($(stat average_exec_per_sec)/s)," \
	"$(stat new_units_added) new inputs, peak RSS $(stat peak_rss_mb) MB: ok"
