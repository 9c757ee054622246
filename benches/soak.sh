#!/usr/bin/env bash
# The chaos soak of tests/tests/soak.rs, long and wide: SECONDS of faults (default 600) over
# AGENTS agents (default 50), each in a network namespace of its own behind a fault-injecting
# proxy, with release binaries; at the end every batch each agent produced is accounted for.
# CI runs the same test for 40 s with 10 agents and the debug binaries. Needs root
# (network namespaces, a tmpfs).
#
#   benches/soak.sh [SECONDS] [AGENTS]
#
# SYSWARD_SOAK_SEED replays a run's faults (its seed is printed first);
# SYSWARD_SOAK_INTERVAL_MS sets the agents' critical interval (default 300). With
# SYSWARD_BIN_DIR set, the binaries there are used and nothing is built.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
agents="${2:-50}"
if [ -z "${SYSWARD_BIN_DIR:-}" ]; then
  cargo build --release --bins -p sysward-agent -p sysward-server
  export SYSWARD_BIN_DIR="$PWD/target/release"
fi
start=$(date +%s)
SYSWARD_SOAK_SECS="$secs" SYSWARD_SOAK_AGENTS="$agents" \
  cargo test --quiet -p sysward-tests --test soak -- --nocapture
echo "soak: $secs s of faults, $agents agents, $SYSWARD_BIN_DIR: passed in $(( $(date +%s) - start )) s"
