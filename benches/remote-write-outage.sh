#!/usr/bin/env bash
# Remote write out through a long outage of the target: the long run of
# tests/tests/remote_write_out.rs (CI stops VictoriaMetrics for about 3 s). A real agent
# feeds a real server forwarding to Debian's victoria-metrics and prometheus;
# VictoriaMetrics is stopped for OUTAGE seconds, the server is killed with kill -9 during
# the outage and started again, VictoriaMetrics comes back on the same data, and every
# sample of the outage must arrive, identical to what the server's read API returns.
#
#   benches/remote-write-outage.sh [OUTAGE]   (seconds, default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
outage="${1:-60}"
cargo build --bins --quiet
start=$(date +%s)
SYSWARD_RW_OUTAGE_SECS="$outage" cargo test --quiet -p sysward-tests --test remote_write_out \
  -- --nocapture
echo "remote write outage: ${outage} s outage passed in $(( $(date +%s) - start )) s"
