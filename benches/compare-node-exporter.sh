#!/usr/bin/env bash
# Runs sysward-agent (shipping to a local sysward-server over mTLS) and Debian's
# prometheus-node-exporter (scraped at the same interval) side by side for the same wall
# time, and prints for each the CPU seconds per collection cycle and the peak RSS, and the
# ratios. Both run every collector they enable by default.
#
#   benches/compare-node-exporter.sh [SECONDS] [INTERVAL_SECONDS] [equal|same|tiers]
#
# equal (the default): the agent runs its critical and standard tiers (every collector
# node_exporter also has, plus processes and tcpstat, which node_exporter leaves off by
# default) every INTERVAL, the same work as a node_exporter scrape every INTERVAL; SMART
# (the intensive tier; node_exporter has none) stays at its 300 s. same: as equal, without
# processes and tcpstat, so that both read the same files: node_exporter's default set. tiers: the agent runs its default tiers with the
# critical tier (cpu, load, memory) every INTERVAL and the others at their defaults
# (standard 60 s, intensive 300 s, static 1 h), which is what a package install does; a
# "cycle" is then one INTERVAL, and CPU per hour is the figure to compare.
#
# Needs: apt-get install prometheus-node-exporter curl. Builds the binaries as packaged.
set -euo pipefail
duration=${1:-300}
interval=${2:-5}
mode=${3:-equal}
cd "$(dirname "$0")/.."
. benches/agent-bench.sh
tiers=$(agent_tiers "$mode" "$interval")
command -v prometheus-node-exporter >/dev/null || { echo "install prometheus-node-exporter first" >&2; exit 2; }
# As packaged: the server with the release profile, the agent as the .deb ships it
# (scripts/build-agent).
cargo build --release -q -p sysward-server
agent=$(scripts/build-agent -q)
start_server
start_agent agent "$agent" "$tiers"; apid=$agent_pid
nport=$(free_port)
prometheus-node-exporter --web.listen-address="127.0.0.1:$nport" 2>"$bench_tmp/ne.log" & npid=$!; bench_pids+=($npid)
sleep 2

# Clock ticks are 10 ms, so run long enough that a tick is noise: the default 300 s at
# 5 s is 60 cycles. CPU is printed as user and system time, so that the kernel's share
# (making the /proc and /sys text) shows.

# Warm up one cycle of each, then measure from a common start.
curl -sf "http://127.0.0.1:$nport/metrics" >/dev/null
sleep "$interval"
a0=$(cpu_of "$apid"); n0=$(cpu_of "$npid")
cycles=0
end=$((SECONDS + duration))
while [ $SECONDS -lt $end ]; do
  curl -sf "http://127.0.0.1:$nport/metrics" >/dev/null
  cycles=$((cycles + 1))
  sleep "$interval"
done
a1=$(cpu_of "$apid"); n1=$(cpu_of "$npid")
ahwm=$(hwm_of "$apid"); nhwm=$(hwm_of "$npid")
python3 - "$a0" "$a1" "$n0" "$n1" "$cycles" "$ahwm" "$nhwm" "$duration" "$interval" "$mode" <<'PY'
import sys
def split(s):
    user, system = map(float, s.split(","))
    return user, system
(au0, as0), (au1, as1), (nu0, ns0), (nu1, ns1) = map(split, sys.argv[1:5])
a0, a1, n0, n1 = au0 + as0, au1 + as1, nu0 + ns0, nu1 + ns1
cycles, ahwm, nhwm = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
duration, interval, mode = sys.argv[8], sys.argv[9], sys.argv[10]
a = (a1 - a0) / cycles * 1000
n = (n1 - n0) / cycles * 1000
per_hour = 3600 / float(interval) / 1000
print(f"{cycles} cycles every {interval}s over {duration}s, agent tiers: {mode}")
au = (au1 - au0) / cycles * 1000
nu = (nu1 - nu0) / cycles * 1000
print(f"{'':24}{'CPU ms/cycle':>14}{'user':>8}{'system':>8}{'CPU s/hour':>12}{'peak RSS MiB':>14}")
print(f"{'sysward-agent':24}{a:14.2f}{au:8.2f}{a-au:8.2f}{a*per_hour:12.2f}{ahwm/1024:14.2f}")
print(f"{'node_exporter':24}{n:14.2f}{nu:8.2f}{n-nu:8.2f}{n*per_hour:12.2f}{nhwm/1024:14.2f}")
print(f"ratio agent/node_exporter: CPU {a/n:.3f}, RSS {ahwm/nhwm:.3f}")
PY
