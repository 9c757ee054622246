#!/usr/bin/env bash
# Bytes per sample, side by side on the same samples: Sysward's store against Prometheus'
# TSDB (Debian's `prometheus` package: `promtool tsdb create-blocks-from openmetrics`).
#
#   benches/compare-tsdb.sh [HOSTS] [TICKS]
#
# The data is the store benchmark's simulated hosts (benches/src/simhost.rs, ~220 series
# each, one sample per series every 30 s with the agent's per-run jitter); default 5 hosts
# for a day (2880 ticks, 3.2 M samples). Prometheus cuts its blocks at 2 h, as Sysward cuts
# its chunks; it compacts them into longer blocks later, which shares one index among more
# chunks but leaves the chunks as they are.
#
# Needs: apt-get install prometheus. Set PROFILE=dev to skip the release build.
set -euo pipefail
hosts=${1:-5}
ticks=${2:-2880}
profile=${PROFILE:-release}
cd "$(dirname "$0")/.."
command -v promtool >/dev/null || { echo "install promtool first: apt-get install prometheus" >&2; exit 2; }
if [ "$profile" = release ]; then
    cargo build --release -q -p sysward-benches --bin tsdb_data
    bin=target/release/tsdb_data
else
    cargo build -q -p sysward-benches --bin tsdb_data
    bin=target/debug/tsdb_data
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" --hosts "$hosts" --ticks "$ticks" --openmetrics "$tmp/data.om" --store-dir "$tmp/sysward" >"$tmp/sysward.txt"
get() { sed -n "s/^$1=//p" "$tmp/sysward.txt"; }
samples=$(get samples)
raw=$(get raw_bytes)
file=$(get file_bytes)
rollups=$(get rollup_bytes)

promtool tsdb create-blocks-from openmetrics --quiet "$tmp/data.om" "$tmp/prom" >/dev/null
blocks=$(find "$tmp/prom" -mindepth 1 -maxdepth 1 -type d | wc -l)
prom_samples=$(cat "$tmp"/prom/*/meta.json | python3 -c 'import sys, json, re
text = sys.stdin.read()
print(sum(json.loads(m)["stats"]["numSamples"] for m in re.findall(r"\{.*?\n\}", text, re.S)))')
prom_chunks=$(cat "$tmp"/prom/*/chunks/* | wc -c)
prom_total=$(find "$tmp/prom" -type f -path '*/01*' -exec cat {} + | wc -c)

if [ "$prom_samples" != "$samples" ]; then
    echo "sample counts differ: sysward $samples, prometheus $prom_samples" >&2
    exit 1
fi
awk -v s="$samples" -v raw="$raw" -v file="$file" -v rollups="$rollups" \
    -v pc="$prom_chunks" -v pt="$prom_total" -v blocks="$blocks" -v hosts="$hosts" -v ticks="$ticks" 'BEGIN {
    printf "%d samples (%d hosts x %d ticks of 30 s)\n", s, hosts, ticks
    printf "%-44s %12s %12s\n", "", "bytes", "bytes/sample"
    printf "%-44s %12d %12.3f\n", "sysward raw tier (value + timestamp chunks)", raw, raw / s
    printf "%-44s %12d %12.3f\n", "sysward store.db (+ 4 rollup tiers, index)", file, file / s
    printf "%-44s %12d %12.3f\n", "  of which rollups", rollups, rollups / s
    printf "%-44s %12d %12.3f\n", sprintf("prometheus chunks (%d blocks of 2 h)", blocks), pc, pc / s
    printf "%-44s %12d %12.3f\n", "prometheus blocks (chunks + index + meta)", pt, pt / s
    printf "ratio prometheus/sysward: chunks %.1fx, on disk %.1fx\n", pc / raw, pt / file
}'
