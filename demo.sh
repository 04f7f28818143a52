#!/usr/bin/env bash
# The side-by-side demo: the seed's host on raw CPython vs through gilgate, on every CPython found.
#   ./demo.sh [RUNS]   (default 20 runs per cell)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/ensure-tools.sh
cargo build --release -p gilgate -p gilgate-harness
exec target/release/gilgate-harness demo "${1:-20}"
