#!/usr/bin/env bash
# Power cuts under load, many times: the long run of tests/tests/power_cut.rs (CI cuts 3
# times per test). The server's data directory, then the agent's state directory, is a
# 300 MiB XFS file system on a loop device, cut off with `xfs_io -x -c shutdown` at random
# moments (no log flush: what was not fsynced is gone), mounted again and the program
# restarted on it. Every acked batch must be in the store once; the agent must start on
# what the cut left and deliver every frame it had synced. Needs root and xfsprogs.
#
#   benches/power-cut.sh [CUTS]   (per test, default 100; SYSWARD_POWER_CUT_SEED replays)
set -euo pipefail
cd "$(dirname "$0")/.."
cuts="${1:-100}"
# A correctness run, not a speed one: the same debug binaries as the test suite.
cargo build --bins --quiet
start=$(date +%s)
SYSWARD_POWER_CUTS="$cuts" \
  cargo test --quiet -p sysward-tests --test power_cut -- --nocapture --test-threads 1
echo "power cuts: ${cuts} per test passed in $(( $(date +%s) - start )) s"
