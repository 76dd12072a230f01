#!/bin/sh
# bench/metrics.sh: the store, unpack and package-install figures, printed
# and written as JSON.
#
# Each metric is reported by a Go benchmark (b.ReportMetric) measured next
# to its baseline in the same run; this script runs them once, prints their
# lines and collects every reported "value unit" pair into one JSON object
# (unit -> value) at $BENCH_JSON (default bench/metrics.json). To add a
# metric, add a function that runs its benchmark and a line calling it
# below: nothing else needs to know about it.
#
# KILN_BENCH_MB and KILN_BENCH_FILES scale the generated tree (default
# about 1 GiB in 40,000 files); it is made in a temporary directory on the
# filesystem of $TMPDIR, where the store under test lives too.
set -eu
GO=${GO:-go}
out=${BENCH_JSON:-bench/metrics.json}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

run() { # package benchmark-regexp
	"$GO" test -run '^$' -bench "$2" -benchtime 1x -count 1 -timeout 60m "$1" | tee -a "$raw"
}

# kiln/cp-a, kiln/cp-al, commit-1file-ms, commit-1file-cold-ms,
# full-treesum-ms, checkpoints-disk-ratio: the store's hardlink copy-on-write and
# incremental treesum (store/bench_metrics_test.go).
metric_store() { run ./store/ '^BenchmarkMetrics$'; }

# kiln/gnu-tar: org.osbuild.untar against GNU tar on the same archives
# (stages-wasm/library/bench_test.go).
metric_untar() { run ./stages-wasm/library/ '^BenchmarkUntar$'; }

# kiln/dpkg-x, kiln/debootstrap: kiln.deb installing examples/debian-rootfs's
# locked set against dpkg -x and debootstrap --foreign (cmd/kiln/bench_deb_test.go).
metric_deb() { run ./cmd/kiln/ '^BenchmarkDebInstall$'; }

# rebuild-s, rebuild-assembler-s: examples/debian-rootfs rebuilt after its
# last stage's option changed, every stage checkpointed (goal: under 5 s
# plus the assembler); skips without the .debs in the local caches
# (cmd/kiln/bench_rebuild_test.go).
metric_rebuild() { run ./cmd/kiln/ '^BenchmarkRebuild$'; }

metric_store
metric_untar
metric_deb
metric_rebuild

# Benchmark lines are "Name N v1 unit1 v2 unit2 ..." (ns/op, B/op and
# allocs/op are left out). A unit that several benchmarks report (kiln/gnu-tar
# for the plain and the compressed archive) is its largest value, the worst,
# since every figure here is a cost, and each is given too as
# "unit Benchmark/sub".
awk '
/^Benchmark/ {
	name = $1
	sub(/^Benchmark/, "", name)
	sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i += 2) {
		unit = $(i + 1)
		if (unit ~ /^(ns|B|allocs)\/op$/) continue
		if (!(unit in count)) order[n++] = unit
		if (!(unit in count) || $i + 0 > val[unit] + 0) val[unit] = $i
		count[unit]++
		each[unit, count[unit]] = $i
		from[unit, count[unit]] = name
	}
}
END {
	printf "{"
	sep = ""
	for (k = 0; k < n; k++) {
		u = order[k]
		printf "%s\n  \"%s\": %s", sep, u, val[u]
		sep = ","
	}
	for (k = 0; k < n; k++) {
		u = order[k]
		if (count[u] < 2) continue
		for (j = 1; j <= count[u]; j++) printf ",\n  \"%s %s\": %s", u, from[u, j], each[u, j]
	}
	printf "\n}\n"
}' "$raw" >"$out"
echo "metrics written to $out:"
cat "$out"
