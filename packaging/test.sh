#!/usr/bin/env bash
# Tests the packages that packaging/build.sh made, on this machine, as root: inspects the
# .deb and .rpm files, then installs, checks, enrolls (in effect), upgrades over itself,
# removes and purges the .deb packages, asserting each step. Run by
# tests/tests/packaging.rs (`cargo test`), and by hand:
#
#   sudo packaging/test.sh
#
# It changes the machine: it installs both packages and purges them at the end, and it
# purges any sysward package found installed when it starts. Steps that need a running
# systemd are not tested (containers and CI have none); the maintainer scripts' job there
# is to succeed without one, which is tested.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${CARGO_TARGET_DIR:-$PWD/target}/packages
failures=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; }
fail() {
	printf 'FAIL %s\n' "$*"
	failures=$((failures + 1))
}
check() { # check DESCRIPTION COMMAND...: passes when the command does
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$what"; else fail "$what"; fi
}
# stat_is PATH OWNER:GROUP MODE
stat_is() {
	local got
	got=$(stat -c '%U:%G %a' "$1" 2>/dev/null || echo missing)
	if [ "$got" = "$2 $3" ]; then ok "$1 is $2 $3"; else fail "$1 is $2 $3 (found: $got)"; fi
}
absent() { if [ ! -e "$1" ]; then ok "$1 absent"; else fail "$1 absent (still there)"; fi; }
present() { if [ -e "$1" ]; then ok "$1 present"; else fail "$1 present (missing)"; fi; }
contains() { # contains DESCRIPTION HAYSTACK NEEDLE
	if grep -qF -- "$3" <<<"$2"; then ok "$1"; else fail "$1: no \"$3\" in:
$2"; fi
}
first() { # first PATTERN-MATCH...: the first existing path, or nothing
	local f
	for f in "$@"; do
		if [ -e "$f" ]; then
			echo "$f"
			return
		fi
	done
}
pkg_status() { dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null | tr -d ' ' || true; }

if [ "$(id -u)" != 0 ]; then
	echo "packaging/test.sh installs packages: run it as root" >&2
	exit 1
fi
agent_deb=$(first "$out"/sysward-agent_*.deb)
server_deb=$(first "$out"/sysward-server_*.deb)
smart_deb=$(first "$out"/sysward-smart_*.deb)
db_deb=$(first "$out"/sysward-db_*.deb)
if [ -z "$agent_deb" ] || [ -z "$server_deb" ] || [ -z "$smart_deb" ] || [ -z "$db_deb" ]; then
	echo "no packages in $out: run packaging/build.sh first" >&2
	exit 1
fi

step "inspect $agent_deb"
info=$(dpkg-deb -I "$agent_deb")
echo "$info" | sed -n '/Package:/,$p'
contains "agent control: name" "$info" "Package: sysward-agent"
contains "agent control: depends on glibc" "$info" "Depends: libc6 (>= "
contains "agent control: on the glibc release linked in" "$info" ", libc6 (<< "
contains "agent control: names the glibc linked in" "$info" "Built-Using: glibc (= "
contains "agent control: has the scripts" "$info" "postinst"
contains "agent control: conffile" "$(dpkg-deb --ctrl-tarfile "$agent_deb" | tar -xO ./conffiles)" \
	"/etc/sysward/agent.toml"
list=$(dpkg-deb -c "$agent_deb")
echo "$list"
for entry in "-rwxr-xr-x root/root .* ./usr/bin/sysward-agent" \
	"-rw-r--r-- root/root .* ./usr/lib/systemd/system/sysward-agent.service" \
	"-rw-r--r-- root/root .* ./etc/sysward/agent.toml" \
	"drwxr-xr-x root/root .* ./etc/sysward/checks.d/"; do
	if grep -qE -- "^$entry\$" <<<"$list"; then ok "agent holds $entry"; else fail "agent holds $entry"; fi
done
if grep -vE ' root/root ' <<<"$list" | grep -q .; then fail "every file root/root"; else ok "every file root/root"; fi
size=$(stat -c %s "$agent_deb")
echo "agent .deb: $size bytes"
if [ "$size" -lt $((5 * 1024 * 1024)) ]; then ok "agent .deb under 5 MiB"; else fail "agent .deb under 5 MiB ($size bytes)"; fi

step "inspect $server_deb"
contains "server control: name" "$(dpkg-deb -I "$server_deb")" "Package: sysward-server"
list=$(dpkg-deb -c "$server_deb")
for entry in "-rwxr-xr-x root/root .* ./usr/bin/sysward-server" \
	"-rw-r--r-- root/root .* ./usr/lib/systemd/system/sysward-server.service" \
	"-rw-r--r-- root/root .* ./etc/sysward/server.toml" \
	"-rw-r--r-- root/root .* ./etc/sysward/rules/host.yml" \
	"-rw-r--r-- root/root .* ./etc/sysward/rules/server.yml" \
	"-rw-r--r-- root/root .* ./usr/share/sysward/grafana/dashboards/host-detail.json" \
	"-rw-r--r-- root/root .* ./usr/share/sysward/grafana/provisioning/datasources/sysward.yaml"; do
	if grep -qE -- "^$entry\$" <<<"$list"; then ok "server holds $entry"; else fail "server holds $entry"; fi
done

step "inspect $smart_deb"
info=$(dpkg-deb -I "$smart_deb")
contains "smart control: needs the agent of the same version" "$info" "sysward-agent (= "
contains "smart control: needs smartctl and setcap" "$info" "smartmontools, libcap2-bin"
list=$(dpkg-deb -c "$smart_deb")
for entry in "-rwxr-xr-x root/root .* ./usr/lib/sysward/sysward-smart" \
	"-rw-r--r-- root/root .* ./usr/lib/systemd/system/sysward-agent.service.d/smart.conf"; do
	if grep -qE -- "^$entry\$" <<<"$list"; then ok "smart holds $entry"; else fail "smart holds $entry"; fi
done

step "inspect $db_deb"
info=$(dpkg-deb -I "$db_deb")
contains "db control: needs the agent of the same version" "$info" "sysward-agent (= "
contains "db control: linked as the agent is, naming the glibc linked in" "$info" "Built-Using: glibc (= "
list=$(dpkg-deb -c "$db_deb")
entry="-rwxr-xr-x root/root .* ./usr/lib/sysward/sysward-db"
if grep -qE -- "^$entry\$" <<<"$list"; then ok "db holds $entry"; else fail "db holds $entry"; fi

if command -v rpm >/dev/null; then
	for pkg in sysward-agent sysward-server sysward-smart sysward-db; do
		rpm_file=$(first "$out/$pkg"-*.rpm)
		step "inspect ${rpm_file:-$pkg rpm}"
		if [ -z "$rpm_file" ]; then
			fail "$pkg .rpm built"
			continue
		fi
		rpm -qip "$rpm_file" 2>/dev/null | sed -n '1,/^Description/p'
		files=$(rpm -qlvp "$rpm_file" 2>/dev/null)
		echo "$files"
		if [ "$pkg" = sysward-smart ]; then
			contains "$pkg rpm: helper root:sysward 0750" "$files" "-rwxr-x---    1 root     sysward"
			contains "$pkg rpm: helper capabilities" "$(rpm -qp --filecaps "$rpm_file" 2>/dev/null)" \
				"cap_dac_override,cap_sys_rawio,cap_sys_admin=p"
			continue
		fi
		contains "$pkg rpm: binary 0755 root" "$files" "-rwxr-xr-x    1 root     root"
		[ "$pkg" = sysward-db ] && continue
		contains "$pkg rpm: config is sysward's group" "$files" "-rw-r-----    1 root     sysward"
		contains "$pkg rpm: config marked" "$(rpm -qcp "$rpm_file" 2>/dev/null)" "/etc/sysward/"
		scripts=$(rpm -qp --scripts "$rpm_file" 2>/dev/null)
		contains "$pkg rpm: makes the user" "$scripts" "useradd --system"
		contains "$pkg rpm: starts only when complete" "$scripts" "check-config"
	done
else
	echo "rpm is not installed: .rpm files not inspected"
fi

step "clean slate"
for pkg in sysward-db sysward-smart sysward-agent sysward-server; do
	if [ -n "$(pkg_status "$pkg")" ] && [ "$(pkg_status "$pkg")" != un ]; then
		echo "purging the $pkg left installed by an earlier run"
		dpkg -P "$pkg" >/dev/null
	fi
done
if [ -e /etc/sysward ] || [ -e /var/lib/sysward-agent ] || [ -e /var/lib/sysward-server ]; then
	echo "/etc/sysward or /var/lib/sysward-* exist without the packages: not touching them" >&2
	exit 1
fi

step "install both"
install_log=$(dpkg -i "$agent_deb" "$server_deb" 2>&1) || {
	echo "$install_log"
	fail "dpkg -i"
	exit 1
}
echo "$install_log"
ok "dpkg -i without systemd running"
contains "agent says how to enroll" "$install_log" "sudo sysward-agent enroll"
contains "server says it is not started" "$install_log" "systemd is not running"
for pkg in sysward-agent sysward-server; do
	if [ "$(pkg_status $pkg)" = ii ]; then ok "$pkg installed"; else fail "$pkg installed ($(pkg_status $pkg))"; fi
done

step "files, owners, modes, user"
stat_is /usr/bin/sysward-agent root:root 755
stat_is /usr/bin/sysward-server root:root 755
stat_is /usr/lib/systemd/system/sysward-agent.service root:root 644
stat_is /usr/lib/systemd/system/sysward-server.service root:root 644
stat_is /etc/sysward root:root 755
stat_is /etc/sysward/agent.toml root:sysward 640
stat_is /etc/sysward/server.toml root:sysward 640
stat_is /etc/sysward/checks.d root:sysward 750
stat_is /etc/sysward/rules/host.yml root:root 644
stat_is /etc/sysward/rules/server.yml root:root 644
check "the shipped rules pass check rules, as ExecReload runs it" sysward-server check rules /etc/sysward/rules
contains "server control: the shipped rules are a conffile" "$(cat /var/lib/dpkg/info/sysward-server.conffiles 2>/dev/null)" "/etc/sysward/rules/host.yml"
contains "server control: the server's own rules are a conffile" "$(cat /var/lib/dpkg/info/sysward-server.conffiles 2>/dev/null)" "/etc/sysward/rules/server.yml"
stat_is /var/lib/sysward-agent sysward:sysward 750
stat_is /var/lib/sysward-server sysward:sysward 700
user=$(getent passwd sysward || true)
echo "$user"
uid=$(cut -d: -f3 <<<"$user")
if [ -n "$uid" ] && [ "$uid" -lt 1000 ]; then ok "sysward is a system user"; else fail "sysward is a system user ($user)"; fi
contains "sysward cannot log in" "$user" ":/usr/sbin/nologin"
contains "sysward has no home" "$user" ":/nonexistent:"
check "group sysward" getent group sysward
absent /nonexistent
absent /etc/systemd/system/multi-user.target.wants/sysward-agent.service
present /etc/systemd/system/multi-user.target.wants/sysward-server.service

step "--version and check-config"
version=$(sysward-agent --version)
echo "$version"
if grep -qE '^sysward-agent [0-9]+\.[0-9]+\.[0-9]+ \([0-9a-f]{12}|unknown\)$' <<<"$version"; then
	ok "agent --version: version and commit"
else
	fail "agent --version: version and commit ($version)"
fi
if commit=$(git rev-parse --short=12 HEAD 2>/dev/null); then
	contains "agent --version names this commit" "$version" "($commit)"
fi
version=$(sysward-server --version)
echo "$version"
contains "server --version: version and commit" "$version" "sysward-server $(awk '{print $2}' <<<"$version") ("
out_text=$(sysward-agent check-config 2>&1) && ok "agent check-config on the installed default" ||
	fail "agent check-config on the installed default: $out_text"
echo "$out_text"
out_text=$(runuser -u sysward -- sysward-agent check-config 2>&1) && ok "agent check-config as sysward" ||
	fail "agent check-config as sysward: $out_text"
out_text=$(runuser -u sysward -- sysward-server check-config 2>&1) && ok "server check-config as sysward" ||
	fail "server check-config as sysward: $out_text"
# A user outside the group cannot read either config (they may hold secrets).
if runuser -u nobody -- cat /etc/sysward/agent.toml >/dev/null 2>&1; then
	fail "agent.toml unreadable by others"
else
	ok "agent.toml unreadable by others"
fi

if command -v systemd-analyze >/dev/null; then
	step "systemd-analyze"
	for unit in sysward-agent sysward-server; do
		verify=$(systemd-analyze verify --man=no "/usr/lib/systemd/system/$unit.service" 2>&1) &&
			[ -z "$verify" ] && ok "verify $unit" || fail "verify $unit: $verify"
		score=$(systemd-analyze security --offline=yes --no-pager \
			"/usr/lib/systemd/system/$unit.service" 2>/dev/null |
			sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
		echo "$unit: exposure $score"
		# 10 is wide open, 0 fully confined; "OK" starts below 4.5. Catches a hardening
		# line lost in an edit.
		if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s < 2.5) }'; then
			ok "$unit exposure below 2.5"
		else
			fail "$unit exposure below 2.5 ($score)"
		fi
	done
else
	echo "systemd-analyze is not installed: units not verified"
fi

step "as an operator would: server up, one token, enroll (as root), agent runs as sysward"
# Only what the packages installed, plus a loopback address and short intervals; both run
# as sysward the way the units run them (setpriv execs, so $! is the daemon itself).
port=
for candidate in $(shuf -i 20000-40000 -n 20); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
		port=$candidate
		break
	fi
done
printf '[listen]\naddress = "127.0.0.1:%s"\npublic_url = "https://127.0.0.1:%s"\n' \
	"$port" "$port" >>/etc/sysward/server.toml
printf '[intervals]\ncritical = "1s"\nstandard = "2s"\n' >>/etc/sysward/agent.toml
as_sysward() { setpriv --reuid=sysward --regid=sysward --init-groups -- "$@"; }
logs=$(mktemp -d)
# setpriv directly, not through the function: `func &` forks a subshell, so $! would be
# that shell and the daemon would outlive stop_daemons (holding the test's flock).
setpriv --reuid=sysward --regid=sysward --init-groups -- sysward-server serve >"$logs/server.log" 2>&1 &
server_pid=$!
agent_pid=
stop_daemons() {
	for pid in $agent_pid $server_pid; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	done
}
trap stop_daemons EXIT
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
	sleep 0.1
done
if token=$(as_sysward sysward-server token create --ttl 1h 2>&1); then ok "token create as sysward"; else fail "token create: $token"; fi
enroll=$(sysward-agent enroll "$token" 2>&1) && ok "enroll as root" || fail "enroll as root: $enroll"
echo "$enroll"
stat_is /var/lib/sysward-agent/agent.key sysward:sysward 600
stat_is /var/lib/sysward-agent/identity.json sysward:sysward 600
setpriv --reuid=sysward --regid=sysward --init-groups -- sysward-agent run >"$logs/agent.log" 2>&1 &
agent_pid=$!
seen=
for _ in $(seq 150); do
	seen=$(as_sysward sysward-server agents list 2>/dev/null | grep -v '^ID' | grep -v never || true)
	[ -n "$seen" ] && break
	sleep 0.2
done
if [ -n "$seen" ]; then ok "the server has the agent's batches: $seen"; else fail "the server has the agent's batches"; fi
contains "the agent uses the token's URL" "$(cat "$logs/agent.log")" "Using the enrolled server URL"
stop_daemons
trap - EXIT
echo "warnings (for the record; a container lacks some of what collectors read):"
grep -h "WARN" "$logs/agent.log" "$logs/server.log" | cut -c1-200 | sort | uniq | head -n 20 || true
if grep -q "ERROR" "$logs/agent.log" "$logs/server.log"; then
	fail "no errors logged: $(grep ERROR "$logs/agent.log" "$logs/server.log")"
else
	ok "no errors logged"
fi
rm -rf "$logs"

step "upgrade over itself, edited config kept; enrolled now, so the agent is enabled"
echo '# edited by packaging/test.sh' >>/etc/sysward/agent.toml
echo '# edited by packaging/test.sh' >>/etc/sysward/server.toml
printf '#!/bin/sh\necho OK\n' >/etc/sysward/checks.d/ok.sh
chmod 0755 /etc/sysward/checks.d/ok.sh
upgrade_log=$(dpkg -i --force-confold "$agent_deb" "$server_deb" 2>&1) && ok "dpkg -i over itself" || {
	echo "$upgrade_log"
	fail "dpkg -i over itself"
}
echo "$upgrade_log"
contains "agent.toml edit kept" "$(cat /etc/sysward/agent.toml)" "# edited by packaging/test.sh"
contains "server.toml edit kept" "$(cat /etc/sysward/server.toml)" "# edited by packaging/test.sh"
stat_is /etc/sysward/agent.toml root:sysward 640
stat_is /var/lib/sysward-agent sysward:sysward 750
present /etc/sysward/checks.d/ok.sh
present /var/lib/sysward-agent/identity.json
present /etc/systemd/system/multi-user.target.wants/sysward-agent.service
contains "agent enabled, not started without systemd" "$upgrade_log" \
	"sysward-agent: systemd is not running; the service is enabled"

step "an invalid config: the upgrade succeeds and says why the agent was not restarted"
cp /etc/sysward/agent.toml /tmp/sysward-agent.toml.bak
echo 'bogus_key = 1' >>/etc/sysward/agent.toml
upgrade_log=$(dpkg -i --force-confold "$agent_deb" 2>&1) && ok "dpkg -i with an invalid config" || {
	echo "$upgrade_log"
	fail "dpkg -i with an invalid config"
}
echo "$upgrade_log"
contains "names the invalid file" "$upgrade_log" "/etc/sysward/agent.toml is invalid"
mv /tmp/sysward-agent.toml.bak /etc/sysward/agent.toml

step "the SMART helper beside the agent"
smart_log=$(dpkg -i "$smart_deb" 2>&1) && ok "dpkg -i sysward-smart" || fail "dpkg -i sysward-smart: $smart_log"
stat_is /usr/lib/sysward/sysward-smart root:sysward 750
contains "helper capabilities, permitted only" "$(getcap /usr/lib/sysward/sysward-smart)" \
	"cap_dac_override,cap_sys_rawio,cap_sys_admin=p"
present /usr/lib/systemd/system/sysward-agent.service.d/smart.conf
if command -v smartctl >/dev/null; then
	helper=$(setpriv --reuid=sysward --regid=sysward --init-groups -- \
		/usr/lib/sysward/sysward-smart version 2>&1) && contains "helper runs smartctl as sysward" "$helper" "smartctl" ||
		fail "helper runs smartctl as sysward: $helper"
fi
if setpriv --reuid=sysward --regid=sysward --init-groups -- \
	/usr/lib/sysward/sysward-smart read json /etc/shadow >/dev/null 2>&1; then
	fail "helper refuses a path that is not a disk"
else
	ok "helper refuses a path that is not a disk"
fi
if runuser -u nobody -- /usr/lib/sysward/sysward-smart version >/dev/null 2>&1; then
	fail "helper not runnable outside the sysward group"
else
	ok "helper not runnable outside the sysward group"
fi
if command -v systemd-analyze >/dev/null; then
	verify=$(systemd-analyze verify --man=no /usr/lib/systemd/system/sysward-agent.service 2>&1) &&
		[ -z "$verify" ] && ok "verify sysward-agent with smart.conf" || fail "verify sysward-agent with smart.conf: $verify"
	score=$(systemd-analyze security --offline=yes --no-pager /usr/lib/systemd/system/sysward-agent.service 2>/dev/null |
		sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
	echo "sysward-agent with smart.conf: exposure $score"
fi
dpkg -r sysward-smart && ok "dpkg -r sysward-smart" || fail "dpkg -r sysward-smart"
absent /usr/lib/sysward/sysward-smart
absent /usr/lib/systemd/system/sysward-agent.service.d/smart.conf
dpkg -P sysward-smart >/dev/null && ok "dpkg -P sysward-smart" || fail "dpkg -P sysward-smart"

step "the database helper beside the agent"
# A config with the postgres collector on: the agent checks its settings in the helper.
db_config=$(mktemp)
cat /etc/sysward/agent.toml - >"$db_config" <<'TOML'
[collectors.postgres]
enabled = true
[[collectors.postgres.servers]]
name = "local"
url = "postgresql://postgres@127.0.0.1:1/postgres"
TOML
chmod 0644 "$db_config"
if check=$(/usr/bin/sysward-agent --config "$db_config" check-config 2>&1); then
	fail "without sysward-db, a database collector is refused"
else
	contains "without sysward-db, the refusal names the package" "$check" "install the sysward-db package"
fi
db_log=$(dpkg -i "$db_deb" 2>&1) && ok "dpkg -i sysward-db" || fail "dpkg -i sysward-db: $db_log"
stat_is /usr/lib/sysward/sysward-db root:root 755
check=$(setpriv --reuid=sysward --regid=sysward --init-groups -- \
	/usr/bin/sysward-agent --config "$db_config" check-config 2>&1) &&
	ok "with sysward-db, the agent (as sysward) accepts the postgres collector" ||
	fail "with sysward-db, the agent accepts the postgres collector: $check"
dpkg -r sysward-db && ok "dpkg -r sysward-db" || fail "dpkg -r sysward-db"
absent /usr/lib/sysward/sysward-db
dpkg -P sysward-db >/dev/null && ok "dpkg -P sysward-db" || fail "dpkg -P sysward-db"
rm -f "$db_config"

step "remove the agent: config and data kept"
dpkg -r sysward-agent && ok "dpkg -r sysward-agent" || fail "dpkg -r sysward-agent"
if [ "$(pkg_status sysward-agent)" = rc ]; then ok "agent in config-files state"; else fail "agent in config-files state ($(pkg_status sysward-agent))"; fi
absent /usr/bin/sysward-agent
absent /usr/lib/systemd/system/sysward-agent.service
present /etc/sysward/agent.toml
present /etc/sysward/checks.d/ok.sh
present /var/lib/sysward-agent/identity.json
present /var/lib/sysward-agent/spool
present /usr/bin/sysward-server
check "user kept" getent passwd sysward

step "purge the agent: config and data gone, the server's untouched"
dpkg -P sysward-agent && ok "dpkg -P sysward-agent" || fail "dpkg -P sysward-agent"
absent /etc/sysward/agent.toml
absent /etc/sysward/checks.d
absent /var/lib/sysward-agent
absent /etc/systemd/system/multi-user.target.wants/sysward-agent.service
present /etc/sysward/server.toml
present /var/lib/sysward-server

step "remove and purge the server"
dpkg -r sysward-server && ok "dpkg -r sysward-server" || fail "dpkg -r sysward-server"
absent /usr/bin/sysward-server
present /etc/sysward/server.toml
present /var/lib/sysward-server
dpkg -P sysward-server && ok "dpkg -P sysward-server" || fail "dpkg -P sysward-server"
absent /etc/sysward
absent /var/lib/sysward-server
absent /etc/systemd/system/multi-user.target.wants/sysward-server.service
if [ -z "$(pkg_status sysward-server)" ] || [ "$(pkg_status sysward-server)" = un ]; then
	ok "server gone from dpkg's database"
else
	fail "server gone from dpkg's database ($(pkg_status sysward-server))"
fi

printf '\n%s\n' "packaging: $failures failed"
[ "$failures" = 0 ]
