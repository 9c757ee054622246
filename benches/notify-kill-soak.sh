#!/usr/bin/env bash
# The notifier through `kill -9` of the server, many times: the long run of
# tests/tests/notify.rs's kill loop (CI runs 6 kills). Each round adds 5 alerts, waits for a
# send, and kills the server while the slow webhook receiver (150 ms an answer) has sends in
# flight; at the end every alert must have reached the receiver under exactly one
# notification id, repeats carrying the same id and body.
#
#   benches/notify-kill-soak.sh [KILLS]   (default 50)
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-50}"
cargo build --bins --quiet
start=$(date +%s)
SYSWARD_NOTIFY_KILLS="$kills" cargo test --quiet -p sysward-tests --test notify \
  kill_9_in_a_loop -- --nocapture
echo "notify kill soak: $kills kills passed in $(( $(date +%s) - start )) s"
