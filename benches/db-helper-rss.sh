#!/usr/bin/env bash
# What the database collectors' helper costs a host, as packaged: two agents side by side
# beside a local server, one without a database collector and one with `postgres` naming a
# server that refuses connections (so that its sysward-db child runs every 5 s), and their
# VmRSS/VmHWM at 8 s and 130 s, the helper's too.
#
#   benches/db-helper-rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/agent-bench.sh
cargo build --release -q -p sysward-server
agent=$(scripts/build-agent -q)
helper=$(scripts/build-agent --package sysward-db -q)
ls -l "$agent" "$helper" | awk '{ print $5, $9 }'
start_server
start_agent plain "$agent" 'critical = "5s"'; plain=$agent_pid
start_agent withdb "$agent" "critical = \"5s\"
[collectors.postgres]
enabled = true
helper = \"$helper\"
[[collectors.postgres.servers]]
name = \"gone\"
url = \"postgresql://postgres@127.0.0.1:1/postgres\""; withdb=$agent_pid
memory() { grep -E 'VmRSS|VmHWM' "/proc/$1/status" | tr -s ' \t' ' ' | tr '\n' ' '; }
sleep 8
for at in 8 130; do
  [ "$at" = 130 ] && sleep 122
  child=$(pgrep -P "$withdb" sysward-db)
  echo "at ${at} s: agent without a database collector: $(memory "$plain")"
  echo "at ${at} s: agent with postgres: $(memory "$withdb")  its sysward-db: $(memory "$child")"
done
