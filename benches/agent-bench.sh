# Shared by the agent benchmark scripts (sourced, not run): the agent's tiers per mode, a
# local sysward-server, enrolled agents, and cleaning up after them. The caller sets
# `set -euo pipefail`, cds to the repository and builds the server first.

# The `[intervals]` (and collector) settings for MODE at INTERVAL seconds:
#   equal: critical and standard tiers every INTERVAL (node_exporter's collectors plus
#          processes and tcpstat); same: as equal without processes and tcpstat, so that
#          the agent reads the files node_exporter's defaults read; tiers: only the
#          critical tier every INTERVAL, the others at their defaults.
agent_tiers() {
  local mode=$1 interval=$2
  case $mode in
    equal) printf 'critical = "%ss"\nstandard = "%ss"\n' "$interval" "$interval" ;;
    same) printf 'critical = "%ss"\nstandard = "%ss"\n[collectors.processes]\nenabled = false\n[collectors.tcpstat]\nenabled = false\n' "$interval" "$interval" ;;
    tiers) printf 'critical = "%ss"\n' "$interval" ;;
    *) echo "mode must be equal, same or tiers" >&2; return 2 ;;
  esac
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

bench_tmp=$(mktemp -d)
bench_pids=()
bench_cleanup() {
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$bench_tmp"
}
trap bench_cleanup EXIT

# Starts a server (release build in $bench_bin) on a free port, waits until it answers,
# and sets bench_port.
start_server() {
  bench_bin=${CARGO_TARGET_DIR:-target}/release
  bench_port=$(free_port)
  cat > "$bench_tmp/server.toml" <<TOML
[listen]
address = "127.0.0.1:$bench_port"
[storage]
data_dir = "$bench_tmp/server"
[admin]
token = "bench"
TOML
  "$bench_bin/sysward-server" --config "$bench_tmp/server.toml" serve 2>"$bench_tmp/server.log" &
  bench_pids+=($!)
  for _ in $(seq 100); do
    [ -f "$bench_tmp/server/pki/ca.crt" ] &&
      curl -sf --cacert "$bench_tmp/server/pki/ca.crt" "https://127.0.0.1:$bench_port/api/health" >/dev/null && break
    sleep 0.1
  done
}

# Enrolls agent binary AGENT as NAME with the tiers TIERS (agent_tiers' output), starts
# it, and sets agent_pid.
start_agent() {
  local name=$1 agent=$2 tiers=$3
  cat > "$bench_tmp/$name.toml" <<TOML
[server]
url = "https://127.0.0.1:$bench_port"
[agent]
state_dir = "$bench_tmp/$name"
hostname = "$name"
[intervals]
$tiers
TOML
  "$agent" --config "$bench_tmp/$name.toml" enroll \
    "$("$bench_bin/sysward-server" --config "$bench_tmp/server.toml" token create)" >/dev/null
  "$agent" --config "$bench_tmp/$name.toml" run 2>"$bench_tmp/$name.log" &
  agent_pid=$!
  bench_pids+=($agent_pid)
}

# utime and stime of a whole process, exited threads included (the agent's blocking pool
# lets idle threads go), in seconds, printed as "user,system".
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{ print $14 / hz "," $15 / hz }' "/proc/$1/stat"; }
# Peak resident memory in kB.
hwm_of() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }

# PID and its descendants, one PID a line (pgrep -P, recursively): an agent that runs
# collectors in child processes (sysward-db) is measured with them.
tree_pids() {
  local p
  echo "$1"
  for p in $(pgrep -P "$1" || true); do tree_pids "$p"; done
}
# As cpu_of, for PID and every descendant alive now: utime+cutime and stime+cstime of
# each (a child that exited and was waited for is in its parent's cutime/cstime), summed.
tree_cpu_of() {
  local p
  for p in $(tree_pids "$1"); do sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null || true; done |
    awk -v hz="$(getconf CLK_TCK)" '{ u += $12 + $14; s += $13 + $15 } END { print u / hz "," s / hz }'
}
# The peak resident memory (VmHWM) of PID and of each descendant alive now, summed, in
# kB: an upper bound of the tree's peak, and without the peaks of children that exited.
tree_hwm_of() {
  local p
  for p in $(tree_pids "$1"); do awk '/VmHWM/ { print $2 }' "/proc/$p/status" 2>/dev/null || true; done |
    awk '{ k += $1 } END { print k + 0 }'
}
