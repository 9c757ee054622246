#!/usr/bin/env bash
# The console's load times: the Fleet page with 1,000 hosts and a Host page over 7 days of
# 10-second data, each loaded afresh RUNS times (default 5) in a headless Chromium, timed
# by the page's own clock from the navigation's start to the page drawn with every request
# answered; and the console's assets' size, raw and gzip-compressed.
#
#     benches/console-load.sh            (RUNS=10 benches/console-load.sh for more runs)
#
# Release builds; the data comes from gen_hosts through `sysward-server import`
# (tests/src/bin/console_load.rs says how). Needs: chromium (apt-get install chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "install chromium first" >&2; exit 2; }
cargo build --release -q -p sysward-server -p sysward-benches -p sysward-tests --bins
SYSWARD_BIN_DIR="$PWD/target/release" target/release/console_load
