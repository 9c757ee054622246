#!/usr/bin/env bash
# Runs one agent build alone (shipping to a local server over mTLS) and prints, per
# thread, its CPU and voluntary context switches per cycle, read from
# /proc/<agent>/task/*/{schedstat,status} 30 s after start and SECONDS later. For seeing
# where a cycle's CPU and wakeups go, not for ratios: the VM's speed moves too much for
# one build's figure to compare with another run's (compare-agent-builds.sh does that).
#
#   benches/agent-threads.sh AGENT [SECONDS] [INTERVAL] [equal|same]   # 60 5 same
set -euo pipefail
agent=$1
duration=${2:-60}
interval=${3:-5}
mode=${4:-same}
cd "$(dirname "$0")/.."
. benches/agent-bench.sh
tiers=$(agent_tiers "$mode" "$interval")
cargo build --release -q -p sysward-server
start_server
start_agent agent "$agent" "$tiers"
# tid comm run-ns voluntary-switches, one line per thread
snap() {
  for t in /proc/"$agent_pid"/task/*; do
    echo "$(basename "$t") $(cat "$t/comm") $(cut -d' ' -f1 "$t/schedstat") $(awk '/^voluntary_ctxt_switches/ { print $2 }' "$t/status")"
  done
}
sleep 30
snap > "$bench_tmp/before"
sleep "$duration"
snap > "$bench_tmp/after"
python3 - "$bench_tmp/before" "$bench_tmp/after" "$duration" "$interval" <<'PY'
import sys
def read(path):
    return {f"{p[0]} {p[1]}": (int(p[2]), int(p[3])) for p in (l.split() for l in open(path))}
before, after = read(sys.argv[1]), read(sys.argv[2])
cycles = float(sys.argv[3]) / float(sys.argv[4])
total = 0
print(f"{cycles:.0f} cycles")
for thread, (ns, switches) in after.items():
    ns0, switches0 = before.get(thread, (0, 0))
    total += ns - ns0
    print(f"{thread:28}{(ns - ns0) / cycles / 1e6:8.2f} ms/cycle{(switches - switches0) / cycles:8.1f} voluntary switches/cycle")
print(f"{'all threads':28}{total / cycles / 1e6:8.2f} ms/cycle")
PY
