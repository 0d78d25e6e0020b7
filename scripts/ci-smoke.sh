#!/usr/bin/env bash
# Runs the README's run command (`cargo run --release`) and checks the server answers a
# prediction, so the first command a newcomer types is tested too.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${SMOKE_PORT:-18765}"
log="$(mktemp)"
BIND="127.0.0.1:$port" cargo run --release --quiet > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 1800); do
    if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "server exited" >&2; exit 1; fi
    sleep 0.2
done
answer=$(curl -fs "http://127.0.0.1:$port/predict" -H 'content-type: application/json' \
    -d '{"age":63,"sex":1,"cp":4,"trestbps":145,"chol":233,"fbs":1,"restecg":2,"thalach":150,"exang":0,"oldpeak":2.3,"slope":3,"ca":0,"thal":6}')
echo "predict: $answer"
case "$answer" in *'"label":1'*) ;; *) echo "unexpected prediction" >&2; exit 1 ;; esac
kill -TERM "$pid"
wait "$pid" || { echo "server did not exit 0 on SIGTERM" >&2; exit 1; }
