#!/usr/bin/env bash
# Soak test (see scripts/soak.py): builds the release binary, installs oha if missing, runs.
#   scripts/soak.sh                    # 10 minutes at 1,000 requests/s, by hand
#   scripts/soak.sh --duration 20s     # the CI version
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-onnxruntime.sh >/dev/null
cargo build --release --locked --quiet --bin chaos-inference
command -v oha >/dev/null || cargo install oha --locked --version 1.16.0
exec python3 scripts/soak.py "$@"
