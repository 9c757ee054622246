#!/usr/bin/env bash
# Prints the CPU per cycle of a C program that only reads the files the agent reads per
# cycle in `same` mode (see read-floor.c): what the kernel's side of the work costs any
# collector, and so the floor under the agent's ratio to node_exporter.
#
#   benches/read-floor.sh [INTERVAL] [CYCLES]      # defaults 5 and 60
set -euo pipefail
cd "$(dirname "$0")/.."
interval=${1:-5}
cycles=${2:-60}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cc -O2 -o "$out/read-floor" benches/read-floor.c
files=(/proc/stat /proc/loadavg /proc/meminfo /proc/vmstat /proc/diskstats /proc/1/mountinfo
  /proc/net/dev /proc/net/snmp /proc/net/netstat /proc/net/snmp6 /proc/net/sockstat /proc/net/sockstat6
  /proc/pressure/cpu /proc/pressure/memory /proc/pressure/io /proc/pressure/irq
  /sys/devices/system/clocksource/clocksource0/current_clocksource)
for iface in /sys/class/net/*/; do
  for attr in ifindex carrier carrier_changes carrier_up_count carrier_down_count dormant flags mtu speed duplex operstate; do
    files+=("$iface$attr")
  done
done
"$out/read-floor" "$interval" "$cycles" "${files[@]}"
