#!/usr/bin/env bash
# The status page in a real browser (headless Chromium from Debian's packages, driven over the
# DevTools protocol by scripts/status_page_browser.py): v2 from loading to serving to the crash
# shown as a lost connection, a hang shown the same way, and every built-in profile rendered.
# Screenshots go to target/status-page/ (a CI artifact).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v chromium >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -x .browser/bin/python ]; then
    python3 -m venv .browser
    .browser/bin/pip install -q websocket-client==1.9.2
fi
scripts/fetch-onnxruntime.sh >/dev/null
cargo build --release --locked --quiet
chromium --version 2>/dev/null
.browser/bin/python scripts/status_page_browser.py --binary target/release/chaos-inference --out target/status-page "$@"
