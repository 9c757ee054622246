#!/usr/bin/env bash
# Bytes per sample, side by side on the same samples: Sysward's store against Prometheus'
# TSDB (`promtool tsdb create-blocks-from openmetrics`) and VictoriaMetrics (single node,
# its import API), both from Debian's packages.
#
#   benches/compare-tsdb.sh [HOSTS] [TICKS]
#
# The data is the store benchmark's simulated hosts (benches/src/simhost.rs, ~220 series
# each, one sample per series every 30 s with the agent's per-run jitter); default 5 hosts
# for a day (2880 ticks, 3.2 M samples); 20160 ticks make a week. Sysward applies its
# default retention as a server would (raw points for a day, the rollup tiers longer), so
# over a week its file holds one day of raw points and a week of rollups; Prometheus and
# VictoriaMetrics keep every raw point and no rollups. Prometheus cuts its blocks at 2 h,
# as Sysward cuts its chunks; it compacts them into longer blocks later, which shares one
# index among more chunks but leaves the chunks as they are.
#
# Needs: apt-get install prometheus victoria-metrics. Set PROFILE=dev to skip the release
# build.
set -euo pipefail
hosts=${1:-5}
ticks=${2:-2880}
profile=${PROFILE:-release}
cd "$(dirname "$0")/.."
command -v promtool >/dev/null || { echo "install promtool first: apt-get install prometheus" >&2; exit 2; }
command -v victoria-metrics >/dev/null || { echo "install victoria-metrics first: apt-get install victoria-metrics" >&2; exit 2; }
if [ "$profile" = release ]; then
    cargo build --release -q -p sysward-benches --bin tsdb_data
    bin=target/release/tsdb_data
else
    cargo build -q -p sysward-benches --bin tsdb_data
    bin=target/debug/tsdb_data
fi
tmp=$(mktemp -d)
vm_pid=
cleanup() {
    [ -n "$vm_pid" ] && kill "$vm_pid" 2>/dev/null && wait "$vm_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

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

# VictoriaMetrics on a loopback port of its own; its import API takes Prometheus text with
# millisecond timestamps, so the OpenMetrics seconds are rewritten.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
vm="http://127.0.0.1:$port"
victoria-metrics -storageDataPath="$tmp/vm" -httpListenAddr="127.0.0.1:$port" \
    -retentionPeriod=100y -loggerLevel=ERROR >"$tmp/vm.log" 2>&1 &
vm_pid=$!
for _ in $(seq 100); do curl -sf "$vm/health" >/dev/null && break; sleep 0.1; done
# In pieces: curl holds a whole --data-binary body in memory, and a week is 2 GB.
grep -v '^#' "$tmp/data.om" | sed 's/ \([0-9]*\)\.\([0-9][0-9][0-9]\)$/ \1\2/' |
    split -l 1000000 --filter="curl -sf --data-binary @- $vm/api/v1/import/prometheus"
vm_metric() { curl -sf "$vm/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
# Rows are buffered in memory and flushed into parts; wait until every one is stored and
# the merged parts stop changing, then read the directory.
vm_rows=0
for _ in $(seq 300); do
    curl -sf "$vm/internal/force_flush" >/dev/null
    vm_rows=$(vm_metric 'vm_rows{type="storage/small"}')
    big=$(vm_metric 'vm_rows{type="storage/big"}')
    vm_rows=$((${vm_rows%.*} + ${big%.*}))
    [ "$vm_rows" -ge "$samples" ] && break
    sleep 0.2
done
if [ "$vm_rows" != "$samples" ]; then
    echo "sample counts differ: sysward $samples, victoriametrics $vm_rows" >&2
    exit 1
fi
curl -sf "$vm/internal/force_merge" >/dev/null
# Merging runs in the background: wait until no merge is active and the directory's size
# has not changed for three seconds (at most ten minutes).
merges() { curl -sf "$vm/metrics" | awk '$1 ~ /^vm_active_merges[{]/ { n += $2 } END { print n + 0 }'; }
prev=-1
still=0
for _ in $(seq 600); do
    size=$(du -sb "$tmp/vm" | cut -f1)
    if [ "$size" = "$prev" ] && [ "$(merges)" = 0 ]; then still=$((still + 1)); else still=0; fi
    [ "$still" -ge 3 ] && break
    prev=$size
    sleep 1
done
vm_total=$(du -sb "$tmp/vm" | cut -f1)

awk -v s="$samples" -v raw="$raw" -v file="$file" -v rollups="$rollups" \
    -v pc="$prom_chunks" -v pt="$prom_total" -v blocks="$blocks" -v vm="$vm_total" \
    -v hosts="$hosts" -v ticks="$ticks" 'BEGIN {
    printf "%d samples (%d hosts x %d ticks of 30 s)\n", s, hosts, ticks
    printf "%-48s %12s %12s\n", "", "bytes", "bytes/sample"
    printf "%-48s %12d %12.3f\n", "sysward raw tier payload (values + timestamps)", raw, raw / s
    printf "%-48s %12d %12.3f\n", "sysward rollup payload (4 tiers)", rollups, rollups / s
    printf "%-48s %12d %12.3f\n", "sysward store.db (everything, on disk)", file, file / s
    printf "%-48s %12d %12.3f\n", sprintf("prometheus chunks (%d blocks of 2 h)", blocks), pc, pc / s
    printf "%-48s %12d %12.3f\n", "prometheus blocks (chunks + index + meta)", pt, pt / s
    printf "%-48s %12d %12.3f\n", "victoriametrics data directory (no rollups)", vm, vm / s
    printf "on disk: prometheus/sysward %.2fx, victoriametrics/sysward %.2fx\n", pt / file, vm / file
}'
