#!/usr/bin/env bash
# Runs sysward-agent's collectors of services (nginx, apache, postgres, mysql) side by side
# with the Prometheus exporters that do the same work (Debian's prometheus-nginx-exporter,
# -apache-exporter, -postgres-exporter, -mysqld-exporter, scraped with curl at the same
# interval), and prints the CPU per run, the samples per run against the exporter's series,
# and the peak RSS of each, with the ratios.
#
#   benches/compare-service-exporters.sh [SECONDS] [INTERVAL_SECONDS]   # 120 5
#
# Every server is started by the script, private to it (free loopback ports, sockets and
# data in a temporary directory), twice: one instance read by the agent, one by the
# exporter, so that each side's cost on the server (the whole nginx, apache2, postgres or
# mariadbd process tree: its idle housekeeping included) is measured apart. The servers
# are idle: no load but the readers.
#
# Phases, each SECONDS of wall time:
#   1-4. For each service, an agent with only that collector (every collector on by
#        default turned off) with its tiers at INTERVAL, beside the exporter scraped every
#        INTERVAL. Across these four phases a baseline agent runs too, enrolled and
#        pushing but with no collector: its CPU per cycle (the scheduler, batching and
#        the TLS push of an empty cycle) is subtracted from each agent's, so that the
#        collector's own share shows.
#   5.   An agent with the four collectors and its default collectors, beside an agent
#        with its default collectors only (critical and standard tiers at INTERVAL).
#
# "The agent" is the agent process and all its descendants (the database collectors may
# run in a child, sysward-db): CPU is utime+stime+cutime+cstime summed over the process
# tree sampled at the start and at the end of the window, and peak RSS is the sum of each
# live process's VmHWM (an upper bound of the tree's peak). Agent runs are the window's
# wall time over INTERVAL; exporter scrapes are counted.
#
# Needs root (the servers switch to their users), and: apt-get install nginx-light apache2
# postgresql-15 mariadb-server prometheus-nginx-exporter prometheus-apache-exporter
# prometheus-postgres-exporter prometheus-mysqld-exporter curl. Builds the binaries as
# packaged, the database collectors' helper sysward-db too.
set -euo pipefail
duration=${1:-120}
interval=${2:-5}
cd "$(dirname "$0")/.."
. benches/agent-bench.sh

[ "$(id -u)" = 0 ] || { echo "run as root: the servers switch to their own users" >&2; exit 2; }
PG=/usr/lib/postgresql/15/bin
for program in /usr/sbin/nginx /usr/sbin/apache2 "$PG/initdb" /usr/sbin/mariadbd \
  /usr/bin/mariadb-install-db prometheus-nginx-exporter prometheus-apache-exporter \
  prometheus-postgres-exporter prometheus-mysqld-exporter curl setpriv setsid pgrep; do
  command -v "$program" >/dev/null || { echo "$program is missing (see the header)" >&2; exit 2; }
done

# As packaged: the server with the release profile, the agent as the .deb ships it.
cargo build --release -q -p sysward-server
agent=$(scripts/build-agent -q)
# The database collectors' helper, built as packaged and named in their tables.
db_helper=$(scripts/build-agent --package sysward-db -q)
helper_line="helper = \"$db_helper\"
"
db_state="in sysward-db ($db_helper), a child of the agent"

# The collectors on by default, from the registry: each is turned off by name.
defaults=$(awk '/name: "/ { gsub(/[",]/, "", $2); name = $2 }
  /default_enabled: true/ { print name }' collectors/src/registry.rs)
defaults_off=$(for c in $defaults; do printf '[collectors.%s]\nenabled = false\n' "$c"; done)
intervals=$(agent_tiers equal "$interval")

# Servers: a directory each under svc (traversable by the servers' users), each in a
# process group of its own (setsid), stopped with its group at exit.
svc=$(mktemp -d)
chmod 755 "$svc"
svc_pids=()
alive() { local s; s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1); [ -n "$s" ] && [ "$s" != Z ]; }
stop_group() {
  local pid=$1 signal=$2
  kill "-$signal" -- "-$pid" 2>/dev/null || true
  for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
cleanup() {
  # Agents and exporters first (bench_pids), then the servers they read.
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${svc_pids[@]}"; do
    # postgres: SIGINT is its fast shutdown; the others stop on SIGTERM.
    if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = postgres ]; then stop_group "$p" INT; else stop_group "$p" TERM; fi
  done
  bench_cleanup
  rm -rf "$svc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits until 127.0.0.1:PORT accepts connections while PID lives.
wait_port() {
  local port=$1 pid=$2 what=$3
  for _ in $(seq 300); do
    alive "$pid" || { echo "$what exited at start" >&2; return 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$what never listened on $port" >&2
  return 1
}

# Each start_* sets port and pid (and dir, sock).
start_nginx() {
  dir=$svc/$1; mkdir -p "$dir"; port=$(free_port)
  cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy; fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    location = /stub_status { stub_status; }
    location / { return 200 "ok\n"; }
  }
}
CONF
  setsid /usr/sbin/nginx -c "$dir/nginx.conf" -g 'daemon off;' </dev/null >/dev/null 2>&1 &
  pid=$!; svc_pids+=("$pid")
  wait_port "$port" "$pid" "nginx $1"
}
start_apache() {
  dir=$svc/$1; mkdir -p "$dir/htdocs"; port=$(free_port)
  local m=/usr/lib/apache2/modules
  cat > "$dir/httpd.conf" <<CONF
ServerRoot $dir
LoadModule mpm_event_module $m/mod_mpm_event.so
LoadModule authz_core_module $m/mod_authz_core.so
LoadModule status_module $m/mod_status.so
Listen 127.0.0.1:$port
ServerName 127.0.0.1
User www-data
Group www-data
PidFile $dir/httpd.pid
ErrorLog $dir/error.log
DefaultRuntimeDir $dir
DocumentRoot $dir/htdocs
<Location "/server-status">
  SetHandler server-status
  Require all granted
</Location>
CONF
  setsid /usr/sbin/apache2 -f "$dir/httpd.conf" -DFOREGROUND </dev/null >/dev/null 2>&1 &
  pid=$!; svc_pids+=("$pid")
  wait_port "$port" "$pid" "apache2 $1"
}
as_postgres() { setpriv --reuid=postgres --regid=postgres --clear-groups -- "$@"; }
start_postgres() {
  dir=$svc/$1; mkdir -p "$dir"; chown postgres: "$dir"; port=$(free_port)
  as_postgres "$PG/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=trust \
    --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
  setsid setpriv --reuid=postgres --regid=postgres --clear-groups -- "$PG/postgres" \
    -D "$dir/data" -k "$dir" -p "$port" -c listen_addresses=127.0.0.1 \
    </dev/null >"$dir/server.log" 2>&1 &
  pid=$!; svc_pids+=("$pid")
  for _ in $(seq 300); do
    "$PG/pg_isready" -q -h "$dir" -p "$port" && return 0
    alive "$pid" || break
    sleep 0.1
  done
  cat "$dir/server.log" >&2
  return 1
}
start_mysql() {
  dir=$svc/$1; mkdir -p "$dir"; chown mysql: "$dir"; port=$(free_port); sock=$dir/mysqld.sock
  mariadb-install-db --no-defaults --datadir="$dir/data" --user=mysql \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 ||
    { cat "$dir/install.log" >&2; return 1; }
  setsid /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$sock" \
    --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --port="$port" \
    --bind-address=127.0.0.1 --user=mysql --innodb-buffer-pool-size=16M </dev/null >/dev/null 2>&1 &
  pid=$!; svc_pids+=("$pid")
  wait_port "$port" "$pid" "mariadbd $1" || { cat "$dir/error.log" >&2; return 1; }
}

# The agent's table for one service read at its instance (variables of start_*).
section() {
  case $1 in
    nginx) printf '[collectors.nginx]\nenabled = true\nurl = "http://127.0.0.1:%s/stub_status"\n' "$2" ;;
    apache) printf '[collectors.apache]\nenabled = true\nurl = "http://127.0.0.1:%s/server-status?auto"\n' "$2" ;;
    postgres) printf '[collectors.postgres]\nenabled = true\n%s[[collectors.postgres.servers]]\nname = "bench"\nsocket_dir = "%s"\nport = %s\n' "$helper_line" "$3" "$2" ;;
    mysql) printf '[collectors.mysql]\nenabled = true\n%s[[collectors.mysql.servers]]\nname = "bench"\nsocket = "%s"\n' "$helper_line" "$3" ;;
  esac
}

start_server

declare -A agent_port agent_arg exporter_url
sock=
for s in nginx apache postgres mysql; do
  for side in agent exporter; do
    "start_$s" "$s-$side"
    if [ "$side" = agent ]; then
      agent_port[$s]=$port; agent_arg[$s]=${sock:-$dir}
      eval "agent_srv_$s=$pid"
    else
      eval "exporter_srv_$s=$pid"
      eport=$(free_port)
      case $s in
        nginx) prometheus-nginx-exporter -nginx.scrape-uri="http://127.0.0.1:$port/stub_status" \
          -web.listen-address="127.0.0.1:$eport" >"$bench_tmp/$s-exporter.log" 2>&1 & ;;
        apache) prometheus-apache-exporter --scrape_uri="http://127.0.0.1:$port/server-status?auto" \
          --telemetry.address="127.0.0.1:$eport" >"$bench_tmp/$s-exporter.log" 2>&1 & ;;
        postgres) DATA_SOURCE_NAME="host=$dir port=$port user=postgres dbname=postgres sslmode=disable" \
          prometheus-postgres-exporter --web.listen-address="127.0.0.1:$eport" >"$bench_tmp/$s-exporter.log" 2>&1 & ;;
        mysql) DATA_SOURCE_NAME="root@unix($sock)/" \
          prometheus-mysqld-exporter --web.listen-address="127.0.0.1:$eport" >"$bench_tmp/$s-exporter.log" 2>&1 & ;;
      esac
      eval "exporter_pid_$s=$!"; bench_pids+=($!)
      exporter_url[$s]="http://127.0.0.1:$eport/metrics"
    fi
    sock=
  done
done

results=$bench_tmp/results
: > "$results"
# Appends "cpu LABEL USER,SYSTEM" for each LABEL=PID given, prefixed by WHEN (start|end).
snapshot() {
  local when=$1 pair; shift
  for pair in "$@"; do echo "$when ${pair%%=*} $(tree_cpu_of "${pair#*=}")" >> "$results"; done
}
hwm() { echo "hwm $1 $(tree_hwm_of "$2")" >> "$results"; }
now() { date +%s.%N; }

# The baseline: enrolled, pushing, no collector.
start_agent baseline "$agent" "$intervals
$defaults_off"
baseline_pid=$agent_pid

for s in nginx apache postgres mysql; do
  start_agent "only-$s" "$agent" "$intervals
$defaults_off
$(section "$s" "${agent_port[$s]}" "${agent_arg[$s]}")"
  apid=$agent_pid
  epid_var=exporter_pid_$s; epid=${!epid_var}
  asrv_var=agent_srv_$s; esrv_var=exporter_srv_$s
  url=${exporter_url[$s]}
  # What one run sends, and what one scrape exposes (all of it; and without the
  # exporter's own go_, process_ and promhttp_ series).
  samples=$("$agent" --config "$bench_tmp/only-$s.toml" collect --once 2>/dev/null | grep -vc '^#' || true)
  curl -sf "$url" > "$bench_tmp/$s.prom"
  series=$(grep -vc '^#' "$bench_tmp/$s.prom" || true)
  own=$(grep -Evc '^(#|go_|process_|promhttp_)' "$bench_tmp/$s.prom" || true)
  # Warm up one interval (the agent's first run connects), then measure from a common start.
  sleep "$interval"
  [ "$s" = nginx ] && { snapshot start baseline="$baseline_pid"; baseline_t0=$(now); }
  snapshot start "agent-$s=$apid" "exporter-$s=$epid" "agent-server-$s=${!asrv_var}" "exporter-server-$s=${!esrv_var}"
  t0=$(now); scrapes=0; end=$((SECONDS + duration))
  while [ $SECONDS -lt $end ]; do
    curl -sf "$url" >/dev/null
    scrapes=$((scrapes + 1))
    sleep "$interval"
  done
  snapshot end "agent-$s=$apid" "exporter-$s=$epid" "agent-server-$s=${!asrv_var}" "exporter-server-$s=${!esrv_var}"
  t1=$(now)
  hwm "agent-$s" "$apid"; hwm "exporter-$s" "$epid"
  echo "phase $s $scrapes $t0 $t1 $samples $series $own" >> "$results"
  grep -E "WARN|ERROR" "$bench_tmp/only-$s.log" | tail -3 | sed "s/^/only-$s: /" >&2 || true
  kill "$apid" "$epid" 2>/dev/null || true
done
snapshot end baseline="$baseline_pid"
echo "phase baseline 0 $baseline_t0 $(now) 0 0 0" >> "$results"
hwm baseline "$baseline_pid"
kill "$baseline_pid" 2>/dev/null || true

# Phase 5: every service collector and the defaults, beside the defaults only.
all_services=$(for s in nginx apache postgres mysql; do section "$s" "${agent_port[$s]}" "${agent_arg[$s]}"; done)
start_agent all "$agent" "$intervals
$all_services"
all_pid=$agent_pid
start_agent defaults "$agent" "$intervals"
defaults_pid=$agent_pid
sleep "$interval"
snapshot start all="$all_pid" defaults="$defaults_pid"
t0=$(now)
sleep "$duration"
snapshot end all="$all_pid" defaults="$defaults_pid"
echo "phase final 0 $t0 $(now) 0 0 0" >> "$results"
hwm all "$all_pid"; hwm defaults "$defaults_pid"
for n in all defaults; do
  grep -E "WARN|ERROR" "$bench_tmp/$n.log" | tail -3 | sed "s/^/$n: /" >&2 || true
done

python3 - "$results" "$duration" "$interval" "$db_state" "$(getconf CLK_TCK)" <<'PY'
import sys
path, duration, interval, db_state = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
cpu = {"start": {}, "end": {}}
hwm, phase = {}, {}
for line in open(path):
    f = line.split()
    if f[0] in cpu:
        cpu[f[0]][f[1]] = tuple(map(float, f[2].split(",")))
    elif f[0] == "hwm":
        hwm[f[1]] = int(f[2])
    elif f[0] == "phase":
        phase[f[1]] = dict(scrapes=int(f[2]), wall=float(f[4]) - float(f[3]),
                           samples=int(f[5]), series=int(f[6]), own=int(f[7]))
def used(label):
    (u0, s0), (u1, s1) = cpu["start"][label], cpu["end"][label]
    return (u1 - u0) + (s1 - s0)
def per_run(label, ph):
    return used(label) / (phase[ph]["wall"] / interval) * 1000
def per_scrape(label, ph):
    return used(label) / phase[ph]["scrapes"] * 1000
mib = lambda kb: kb / 1024
base = per_run("baseline", "baseline")
print(f"{duration}s per phase, every {interval:g}s; database collectors: {db_state}")
print(f"baseline agent (no collector): {base:.2f} ms CPU per cycle, peak RSS {mib(hwm['baseline']):.2f} MiB")
# /proc reports CPU in clock ticks: each reading of a process is cut to a whole tick.
tick = 1000 / int(sys.argv[5])
runs = phase["nginx"]["wall"] / interval
print(f"CPU is read in {tick:g} ms ticks: about ±{tick / runs:.2f} ms per agent run and "
      f"±{tick / phase['nginx']['scrapes']:.2f} ms per scrape in each phase; run longer for finer figures")
print()
print(f"{'collector':10}{'agent ms/run':>13}{'-baseline':>10}{'exporter ms/scrape':>19}{'ratio':>7}"
      f"{'server ms/run: agent':>22}{'exporter':>9}{'samples/run':>12}{'exporter series (own)':>23}")
for s in ("nginx", "apache", "postgres", "mysql"):
    p = phase[s]
    a = per_run(f"agent-{s}", s)
    e = per_scrape(f"exporter-{s}", s)
    sa = per_run(f"agent-server-{s}", s)
    se = per_scrape(f"exporter-server-{s}", s)
    # Below one tick per run the difference is noise: no ratio.
    ratio = f"{(a - base) / e:7.2f}" if e > 0 and a - base > tick / (p["wall"] / interval) else f"{'<tick':>7}"
    print(f"{s:10}{a:13.2f}{a - base:10.2f}{e:19.2f}{ratio}{sa:22.2f}{se:9.2f}"
          f"{p['samples']:12d}{p['series']:>15d} ({p['own']})")
print()
print(f"{'peak RSS MiB':24}{'agent':>8}{'exporter':>10}{'ratio':>7}")
for s in ("nginx", "apache", "postgres", "mysql"):
    a, e = hwm[f"agent-{s}"], hwm[f"exporter-{s}"]
    print(f"{'only ' + s:24}{mib(a):8.2f}{mib(e):10.2f}{a / e:7.2f}")
print(f"{'four exporters, summed':24}{'':8}{mib(sum(hwm[f'exporter-{s}'] for s in ('nginx', 'apache', 'postgres', 'mysql'))):10.2f}")
print()
all_cpu, def_cpu = per_run("all", "final"), per_run("defaults", "final")
print(f"default collectors + nginx, apache, postgres, mysql: peak RSS {mib(hwm['all']):.2f} MiB, {all_cpu:.2f} ms CPU per cycle")
print(f"default collectors only:                            peak RSS {mib(hwm['defaults']):.2f} MiB, {def_cpu:.2f} ms CPU per cycle")
print(f"the four collectors add {mib(hwm['all'] - hwm['defaults']):.2f} MiB and {all_cpu - def_cpu:.2f} ms per cycle")
PY
