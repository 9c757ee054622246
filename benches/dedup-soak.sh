#!/usr/bin/env bash
# The dedup table through many agent restarts: the real agent restarted RESTARTS times
# (default 200) against a real server whose dedup window is 3 s, counting how many boots
# the server remembers at once. CI runs the same test with 12 restarts.
#
#   benches/dedup-soak.sh [RESTARTS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --bins
SOAK_RESTARTS=${1:-200} cargo test -q -p sysward-tests --test dedup_bounded -- --nocapture 2>&1 |
    grep -E 'dedup soak|test result|panicked'
