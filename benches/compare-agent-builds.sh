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
  equal) tiers="critical = \"${interval}s\"
standard = \"${interval}s\"" ;;
  same) tiers="critical = \"${interval}s\"
standard = \"${interval}s\"
[collectors.processes]
enabled = false
[collectors.tcpstat]
enabled = false" ;;
  *) echo "mode must be equal or same" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
cargo build --release -q -p sysward-server
bin=${CARGO_TARGET_DIR:-target}/release
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/server.toml" <<TOML
[listen]
address = "127.0.0.1:$port"
[storage]
data_dir = "$tmp/server"
[admin]
token = "bench"
TOML
"$bin/sysward-server" --config "$tmp/server.toml" serve 2>"$tmp/server.log" & pids+=($!)
for _ in $(seq 100); do [ -f "$tmp/server/pki/ca.crt" ] && curl -sf --cacert "$tmp/server/pki/ca.crt" "https://127.0.0.1:$port/api/health" >/dev/null && break; sleep 0.1; done
start() {
  local name=$1 agent=$2
  cat > "$tmp/$name.toml" <<TOML
[server]
url = "https://127.0.0.1:$port"
[agent]
state_dir = "$tmp/$name"
hostname = "$name"
[intervals]
$tiers
TOML
  "$agent" --config "$tmp/$name.toml" enroll "$("$bin/sysward-server" --config "$tmp/server.toml" token create)" >/dev/null
  "$agent" --config "$tmp/$name.toml" run 2>"$tmp/$name.log" &
}
start base "$base"; bpid=$!; pids+=($bpid)
start new "$new"; npid=$!; pids+=($npid)
sleep $((interval * 3))
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print $14 / hz "," $15 / hz }' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
b0=$(cpu "$bpid"); n0=$(cpu "$npid")
sleep "$duration"
b1=$(cpu "$bpid"); n1=$(cpu "$npid")
python3 - "$b0" "$b1" "$n0" "$n1" "$(hwm "$bpid")" "$(hwm "$npid")" "$duration" "$interval" <<'PY'
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
