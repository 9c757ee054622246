#!/usr/bin/env bash
# Runs two builds of sysward-agent side by side, shipping to one local sysward-server over
# mTLS with the same configuration, and prints each one's CPU per cycle (user and system)
# and peak RSS, in two rounds with the start order swapped. For measuring a change to the agent on a machine whose speed moves from
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
# Two agents on one host share its phase, so they tick at the same instant and the one
# started second measured 1.4-1.5 times the CPU of the other whichever build it was. So
# the time is split into two rounds with the start order swapped, and the ratio printed
# is the geometric mean of the two rounds' ratios.
round() { # FIRST_NAME FIRST_BIN SECOND_NAME SECOND_BIN SECONDS -> "name,user,system,hwm" x2
  local p1 p2 a0 a1 b0 b1
  start_agent "$1" "$2" "$tiers"; p1=$agent_pid
  start_agent "$3" "$4" "$tiers"; p2=$agent_pid
  sleep $((interval * 3))
  a0=$(cpu_of "$p1"); b0=$(cpu_of "$p2")
  sleep "$5"
  a1=$(cpu_of "$p1"); b1=$(cpu_of "$p2")
  echo "$1,$a0,$a1,$(hwm_of "$p1") $3,$b0,$b1,$(hwm_of "$p2")"
  kill "$p1" "$p2"; wait "$p1" "$p2" 2>/dev/null || true
}
half=$((duration / 2))
r1=$(round base1 "$base" new1 "$new" "$half")
r2=$(round new2 "$new" base2 "$base" "$half")
python3 - "$half" "$interval" $r1 $r2 <<'PY'
import sys, math
half, interval = float(sys.argv[1]), float(sys.argv[2])
cycles = half / interval
m = {}
for arg in sys.argv[3:]:
    name, u0, s0, u1, s1, hwm = arg.split(",")
    m[name] = ((float(u1) - float(u0)) / cycles * 1000, (float(s1) - float(s0)) / cycles * 1000, int(hwm))
print(f"two rounds of {cycles:.0f} cycles every {interval:g}s, start order swapped")
print(f"{'':8}{'CPU ms/cycle':>14}{'user':>8}{'system':>8}{'peak RSS MiB':>14}")
for name in ["base1", "new1", "new2", "base2"]:
    u, s, h = m[name]
    print(f"{name:8}{u + s:14.3f}{u:8.3f}{s:8.3f}{h / 1024:14.2f}")
cpu = lambda n: m[n][0] + m[n][1]
r1, r2 = cpu("new1") / cpu("base1"), cpu("new2") / cpu("base2")
print(f"new/base CPU: {r1:.3f} started second, {r2:.3f} started first, geometric mean {math.sqrt(r1 * r2):.3f}")
PY
