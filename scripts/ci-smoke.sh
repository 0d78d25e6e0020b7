#!/usr/bin/env bash
# Runs the README's run command (`cargo run --release`) and checks the server answers a
# prediction, so the first command a newcomer types is tested too.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${SMOKE_PORT:-18765}"
log="$(mktemp)"
BIND="127.0.0.1:$port" GRPC_BIND="127.0.0.1:0" cargo run --release --quiet > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
# The first run compiles: allow for it.
python3 scripts/serverctl.py wait --port "$port" --pid "$pid" --log "$log" --timeout 1800
answer=$(curl -fs "http://127.0.0.1:$port/predict" -H 'content-type: application/json' \
    -d @models/heart-disease/example.json)
echo "predict: $answer"
case "$answer" in *'"label":1'*) ;; *) echo "unexpected prediction" >&2; exit 1 ;; esac
kill -TERM "$pid"
wait "$pid" || { echo "server did not exit 0 on SIGTERM" >&2; exit 1; }
