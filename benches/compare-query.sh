#!/usr/bin/env bash
# Query latency side by side: Sysward, Prometheus and VictoriaMetrics on the same data.
#
#     benches/compare-query.sh [HOSTS] [DAYS]     (defaults: 5 hosts, 7 days)
#
# The data is the store benchmark's simulated host (~220 series per host every 30 s, see
# benches/src/simhost.rs), written once as OpenMetrics for Prometheus
# (`promtool tsdb create-blocks-from openmetrics`) and VictoriaMetrics
# (`/api/v1/import/prometheus`), and ingested into a Sysward store through the store's
# ingest path with raw points kept for the whole range. Each system then answers ten
# dashboard queries over the last hour (15 s step) and the last DAYS days (10 min step)
# through its HTTP API; each query runs once to warm up, then RUNS times (default 5), and
# the median time of the HTTP request (connection setup excluded) is printed with the
# ratios.
#
# Needs: promtool and prometheus (apt-get install prometheus), victoria-metrics, curl.
set -euo pipefail
hosts=${1:-5}
days=${2:-7}
runs=${RUNS:-5}
ticks=$((days * 2880))
cd "$(dirname "$0")/.."
for tool in promtool prometheus victoria-metrics curl; do
    command -v "$tool" >/dev/null || { echo "install $tool first" >&2; exit 2; }
done
cargo build --release -q -p sysward-benches --bin tsdb_data
cargo build --release -q -p sysward-server
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 600); do curl -skf "$@" >/dev/null && return 0; sleep 0.2; done; echo "not ready: $*" >&2; return 1; }

echo "generating $hosts hosts x $days days ..."
target/release/tsdb_data --hosts "$hosts" --ticks "$ticks" --openmetrics "$tmp/data.om" \
    --store-dir "$tmp/sysward" --raw-retention-days $((days + 2)) >"$tmp/sysward.txt"
samples=$(sed -n 's/^samples=//p' "$tmp/sysward.txt")
end=$(grep -v '^#' "$tmp/data.om" | tail -1 | awk '{ print int($NF) }')

echo "loading Prometheus ..."
promtool tsdb create-blocks-from openmetrics --quiet "$tmp/data.om" "$tmp/prom" >/dev/null
prom_port=$(free_port)
printf 'global:\n  scrape_interval: 1h\n' >"$tmp/prometheus.yml"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
    --storage.tsdb.retention.time=100y --web.listen-address="127.0.0.1:$prom_port" \
    --log.level=error >"$tmp/prom.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$prom_port/-/ready"

echo "loading VictoriaMetrics ..."
vm_port=$(free_port)
victoria-metrics -storageDataPath="$tmp/vm" -httpListenAddr="127.0.0.1:$vm_port" \
    -retentionPeriod=100y -loggerLevel=ERROR -search.latencyOffset=0s \
    -search.disableCache >"$tmp/vm.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$vm_port/health"
grep -v '^#' "$tmp/data.om" | sed 's/ \([0-9]*\)\.\([0-9][0-9][0-9]\)$/ \1\2/' |
    split -l 1000000 --filter="curl -sf --data-binary @- http://127.0.0.1:$vm_port/api/v1/import/prometheus"
curl -sf "http://127.0.0.1:$vm_port/internal/force_flush" >/dev/null
rm "$tmp/data.om"

echo "starting Sysward ..."
sw_port=$(free_port)
token=bench-admin-token-0123456789
cat >"$tmp/server.toml" <<EOF
[listen]
address = "127.0.0.1:$sw_port"
[storage]
data_dir = "$tmp/sysward"
[retention]
raw = "$((days + 2))d"
[admin]
token = "$token"
EOF
target/release/sysward-server --config "$tmp/server.toml" serve >"$tmp/sysward.log" 2>&1 &
pids+=($!)
wait_for "https://127.0.0.1:$sw_port/api/health"
ca="$tmp/sysward/pki/ca.crt"

queries=(
    'sum by (mode) (rate(node_cpu_seconds_total{instance="host-0"}[5m]))'
    'sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))'
    '100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)'
    'topk(5, node_load1)'
    'avg_over_time(node_load5[10m])'
    'rate(node_context_switches_total[5m])'
    'max by (instance) (node_procs_running)'
    'predict_linear(node_memory_MemAvailable_bytes[1h], 4 * 3600) < 0'
    'sum(rate(node_intr_total[5m]))'
    'increase(node_forks_total[1h])'
)

# Median time in ms of RUNS requests, after one warm-up: from the connection being ready
# (after the TLS handshake for Sysward, which always speaks HTTPS) to the last byte, so
# that a new connection per request costs no system anything.
measure() {
    local url=$1 query=$2 start=$3 step=$4
    shift 4
    local args=(-s -o /dev/null -w '%{time_connect} %{time_appconnect} %{time_total}\n' --data-urlencode "query=$query"
        --data-urlencode "start=$start" --data-urlencode "end=$end" --data-urlencode "step=$step" "$@" "$url/api/v1/query_range")
    curl "${args[@]}" >/dev/null
    for _ in $(seq "$runs"); do curl "${args[@]}"; done |
        awk '{ ready = ($2 > $1) ? $2 : $1; print $3 - ready }' | sort -n |
        awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }'
}

printf '%d samples (%d hosts x %d days at 30 s); median of %d runs, ms\n' "$samples" "$hosts" "$days" "$runs"
printf '%-6s %-72s %9s %9s %9s %7s %7s\n' range query sysward prom vm sw/prom sw/vm
for range in 1h "${days}d"; do
    if [ "$range" = 1h ]; then start=$((end - 3600)); step=15; else start=$((end - days * 86400 + 3600)); step=600; fi
    for q in "${queries[@]}"; do
        sw=$(measure "https://127.0.0.1:$sw_port" "$q" "$start" "$step" --cacert "$ca" -H "Authorization: Bearer $token")
        pr=$(measure "http://127.0.0.1:$prom_port" "$q" "$start" "$step")
        vm=$(measure "http://127.0.0.1:$vm_port" "$q" "$start" "$step")
        awk -v r="$range" -v q="$q" -v s="$sw" -v p="$pr" -v v="$vm" \
            'BEGIN { printf "%-6s %-72s %9.1f %9.1f %9.1f %7.2f %7.2f\n", r, q, s, p, v, s / p, s / v }'
    done
done
