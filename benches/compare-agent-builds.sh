#!/usr/bin/env bash
# Runs two builds of sysward-agent side by side, shipping to one local sysward-server over
# mTLS with the same configuration, and prints each one's CPU per cycle (user and system)
# and peak RSS. For measuring a change to the agent on a machine whose speed moves from
# hour to hour: both builds see the same hour.
#
#   benches/compare-agent-builds.sh BASE_AGENT NEW_AGENT [SECONDS] [INTERVAL] [equal|same]
#
# Modes as in compare-node-exporter.sh. Build each agent with scripts/build-agent and copy
# the binary aside before changing the code.
set -euo pipefail
base=$1
new=$2
duration=${3:-120}
interval=${4:-1}
mode=${5:-same}
case $mode in
  equal | same) ;;
  *) echo "mode must be equal or same" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
. benches/agent-bench.sh
tiers=$(agent_tiers "$mode" "$interval")
cargo build --release -q -p sysward-server
start_server
start_agent base "$base" "$tiers"; bpid=$agent_pid
start_agent new "$new" "$tiers"; npid=$agent_pid
sleep $((interval * 3))
b0=$(cpu_of "$bpid"); n0=$(cpu_of "$npid")
sleep "$duration"
b1=$(cpu_of "$bpid"); n1=$(cpu_of "$npid")
python3 - "$b0" "$b1" "$n0" "$n1" "$(hwm_of "$bpid")" "$(hwm_of "$npid")" "$duration" "$interval" <<'PY'
import sys
def split(s):
    return tuple(map(float, s.split(",")))
(bu0, bs0), (bu1, bs1), (nu0, ns0), (nu1, ns1) = map(split, sys.argv[1:5])
bh, nh, duration, interval = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
cycles = duration / interval
rows = [("base", bu1 - bu0, bs1 - bs0, bh), ("new", nu1 - nu0, ns1 - ns0, nh)]
print(f"{cycles:.0f} cycles every {interval:g}s")
print(f"{'':8}{'CPU ms/cycle':>14}{'user':>8}{'system':>8}{'peak RSS MiB':>14}")
for name, u, s, h in rows:
    print(f"{name:8}{(u + s) / cycles * 1000:14.3f}{u / cycles * 1000:8.3f}{s / cycles * 1000:8.3f}{h / 1024:14.2f}")
print(f"new/base CPU: {(rows[1][1] + rows[1][2]) / (rows[0][1] + rows[0][2]):.3f}")
PY
