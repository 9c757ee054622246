#!/usr/bin/env bash
# Tests the .deb packages under a real systemd: boots a minimal Debian root (debootstrap
# --variant=minbase, as many container and cloud images are) with systemd-nspawn, on a
# private network, and inside it installs the server and the agent, enrolls the agent,
# enables, reloads, restarts and stops the services, checks their watchdog and
# `systemd-analyze security`, upgrades and purges, asserting each step. Run by
# tests/tests/packaging.rs after packaging/test.sh, and by hand:
#
#   sudo packaging/systemd-test.sh
#
# Needs root, debootstrap and systemd-container (apt-get install debootstrap
# systemd-container). The root is made once into $SYSWARD_NSPAWN_BASE (default
# /var/tmp/sysward-nspawn/bookworm, about 1.5 min and 250 MB) and copied for each run.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${CARGO_TARGET_DIR:-$PWD/target}/packages
base=${SYSWARD_NSPAWN_BASE:-/var/tmp/sysward-nspawn/bookworm}
mirror=${SYSWARD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
failures=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok   %s\n' "$*"; }
fail() {
	printf 'FAIL %s\n' "$*"
	failures=$((failures + 1))
}

if [ "$(id -u)" != 0 ]; then
	echo "packaging/systemd-test.sh boots a container: run it as root" >&2
	exit 1
fi
for tool in debootstrap systemd-nspawn nsenter; do
	command -v "$tool" >/dev/null || {
		echo "$tool is missing: apt-get install debootstrap systemd-container util-linux" >&2
		exit 1
	}
done
agent_deb=$(ls "$out"/sysward-agent_*.deb 2>/dev/null | head -1)
server_deb=$(ls "$out"/sysward-server_*.deb 2>/dev/null | head -1)
if [ -z "$agent_deb" ] || [ -z "$server_deb" ]; then
	echo "no packages in $out: run packaging/build.sh first" >&2
	exit 1
fi

step "a minimal Debian root"
if [ ! -e "$base/.complete" ]; then
	rm -rf "$base"
	mkdir -p "$(dirname "$base")"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$base" "$mirror" >"$base.log" 2>&1 ||
		{
			tail -20 "$base.log"
			exit 1
		}
	touch "$base/.complete"
fi
ok "root at $base"
work=$(mktemp -d /var/tmp/sysward-systemd-test.XXXXXX)
nspawn_pid=
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		# SIGTERM makes nspawn power the container off; then it exits.
		kill "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$nspawn_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
cp -a "$base" "$work/root"
cp "$agent_deb" "$server_deb" "$work/root/root/"

step "boot"
setsid systemd-nspawn -D "$work/root" --register=no --keep-unit --private-network \
	--boot --console=passive </dev/null >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1 as the host sees it: nspawn's child that runs systemd. nspawn
# first forks a helper that sets the container up and exits, so "the first child" may be
# that one.
init=
for _ in $(seq 600); do
	init=$(pgrep -P "$nspawn_pid" -x systemd | head -1 || true)
	[ -n "$init" ] && break
	sleep 0.1
done
[ -n "$init" ] || {
	cat "$work/nspawn.log"
	exit 1
}
inside() { nsenter -t "$init" -a "$@"; }
# wait_for SECONDS DESCRIPTION COMMAND...: polls until the command succeeds; a timeout is
# a failed step, and the test goes on.
wait_for() {
	local limit=$1 what=$2
	shift 2
	local deadline=$((SECONDS + limit))
	while ! "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			fail "$what (not within ${limit}s)"
			return 0
		fi
		sleep 0.5
	done
	ok "$what"
}
booted() { case $(inside systemctl is-system-running 2>/dev/null) in running | degraded) return 0 ;; *) return 1 ;; esac; }
wait_for 120 "systemd runs in the container" booted
if ! booted; then
	echo "state: $(inside systemctl is-system-running 2>&1)"
	inside systemctl list-jobs --no-pager 2>&1 | head -20
	inside systemctl --failed --no-pager 2>&1 | head -20
	ps -o pid,stat,comm --ppid "$nspawn_pid" 2>&1
	tail -20 "$work/nspawn.log"
	exit 1
fi
active() { [ "$(inside systemctl is-active "$1" 2>/dev/null)" = active ]; }
as_sysward() { inside su -s /bin/sh sysward -c "$*"; }
prop() { inside systemctl show -p "$2" --value "$1"; }

step "install the server"
inside dpkg -i "/root/$(basename "$server_deb")" >"$work/dpkg-server.log" 2>&1 || fail "dpkg -i server: $(tail -5 "$work/dpkg-server.log")"
wait_for 30 "sysward-server is active (Type=notify: it said READY)" active sysward-server
[ "$(prop sysward-server WatchdogUSec)" = 2min ] && ok "server watchdog is 2min" || fail "server watchdog: $(prop sysward-server WatchdogUSec)"

step "enroll the agent and start it"
token=$(as_sysward 'sysward-server --config /etc/sysward/server.toml token create --ttl 1h --url https://127.0.0.1:8443' | grep -o 'swjoin1\.[A-Za-z0-9._-]*' | head -1)
[ -n "$token" ] && ok "join token made" || fail "join token made"
inside dpkg -i "/root/$(basename "$agent_deb")" >"$work/dpkg-agent.log" 2>&1 || fail "dpkg -i agent: $(tail -5 "$work/dpkg-agent.log")"
inside sysward-agent enroll "$token" >/dev/null 2>&1 && ok "agent enrolled" || fail "agent enrolled"
inside systemctl enable --now sysward-agent >/dev/null 2>&1 && ok "systemctl enable --now sysward-agent" || fail "systemctl enable --now sysward-agent"
wait_for 30 "sysward-agent is active" active sysward-agent
seen() { as_sysward 'sysward-server --config /etc/sysward/server.toml agents list' | grep approved | grep -vq never; }
wait_for 90 "the server has heard from the agent (agents list shows it seen)" seen

step "reload, restart, watchdog"
inside systemctl reload sysward-agent >/dev/null 2>&1 && ok "systemctl reload sysward-agent" || fail "systemctl reload sysward-agent: $(inside journalctl -u sysward-agent --no-pager | tail -5)"
reloaded() { inside journalctl -u sysward-agent --no-pager | grep -q 'Config reloaded'; }
wait_for 10 "the agent reloaded its config" reloaded
inside cp -p /etc/sysward/agent.toml /root/agent.toml.good
inside sh -c 'echo "no_such_key = 1" >> /etc/sysward/agent.toml'
if inside systemctl reload sysward-agent >/dev/null 2>&1; then fail "an invalid config is refused by reload"; else ok "an invalid config is refused by reload"; fi
active sysward-agent && ok "the agent keeps running on its old config" || fail "the agent keeps running on its old config"
inside cp -p /root/agent.toml.good /etc/sysward/agent.toml
old_pid=$(prop sysward-agent MainPID)
inside systemctl restart sysward-agent >/dev/null 2>&1 && ok "systemctl restart sysward-agent" || fail "systemctl restart sysward-agent"
wait_for 30 "the agent is active again" active sysward-agent
[ "$(prop sysward-agent MainPID)" != "$old_pid" ] && ok "it is a new process" || fail "it is a new process"
# A short watchdog: a service that did not ping at half of it would be killed and
# restarted within it, so no restart over three intervals means the pings come.
for unit in sysward-agent sysward-server; do
	inside mkdir -p "/run/systemd/system/$unit.service.d"
	inside sh -c "printf '[Service]\nWatchdogSec=3s\n' > /run/systemd/system/$unit.service.d/watchdog.conf"
done
inside systemctl daemon-reload
inside systemctl restart sysward-server sysward-agent
both_active() { active sysward-server && active sysward-agent; }
wait_for 30 "both active with a 3 s watchdog" both_active
sleep 10 # three watchdog intervals must pass: this is the time under test, not a wait for a state
for unit in sysward-agent sysward-server; do
	restarts=$(prop "$unit" NRestarts)
	result=$(prop "$unit" Result)
	if [ "$restarts" = 0 ] && [ "$result" = success ] && active "$unit"; then
		ok "$unit pings its watchdog (no restart in 10 s at WatchdogSec=3s)"
	else
		fail "$unit watchdog: NRestarts=$restarts Result=$result"
	fi
	inside rm -rf "/run/systemd/system/$unit.service.d"
done
inside systemctl daemon-reload

step "systemd-analyze security of the running units"
for pair in sysward-server:2.0 sysward-agent:3.0; do
	unit=${pair%%:*} limit=${pair##*:}
	level=$(inside systemd-analyze security "$unit" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	if [ -n "$level" ] && awk -v l="$level" -v m="$limit" 'BEGIN { exit !(l <= m) }'; then
		ok "$unit exposure $level (at most $limit)"
	else
		fail "$unit exposure ${level:-unknown} (at most $limit)"
	fi
done

step "upgrade over itself, stop"
inside dpkg -i "/root/$(basename "$server_deb")" "/root/$(basename "$agent_deb")" >"$work/dpkg-up.log" 2>&1 && ok "dpkg -i both again" || fail "dpkg -i both again: $(tail -5 "$work/dpkg-up.log")"
wait_for 30 "the server is active after the upgrade" active sysward-server
wait_for 30 "the agent is active after the upgrade" active sysward-agent
inside systemctl stop sysward-agent sysward-server
for unit in sysward-agent sysward-server; do
	state=$(inside systemctl is-active "$unit" 2>/dev/null || true)
	[ "$state" = inactive ] && ok "$unit stopped cleanly" || fail "$unit stopped cleanly (is $state)"
done

step "purge"
inside dpkg --purge sysward-agent sysward-server >"$work/dpkg-purge.log" 2>&1 && ok "dpkg --purge both" || fail "dpkg --purge both: $(tail -5 "$work/dpkg-purge.log")"
for path in /var/lib/sysward-agent /var/lib/sysward-server /etc/sysward /lib/systemd/system/sysward-agent.service; do
	inside test -e "$path" && fail "$path removed by purge" || ok "$path removed by purge"
done

if [ "$failures" -gt 0 ]; then
	printf '\n%d step(s) failed\n' "$failures"
	exit 1
fi
printf '\nevery step passed\n'
