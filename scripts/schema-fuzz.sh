#!/usr/bin/env bash
# Schema fuzzing: schemathesis reads GET /openapi.json from the real release binary (profile
# `none`) and sends generated valid and invalid requests to every route. It fails on any 5xx,
# any status code, content type or body the document does not describe, and the script fails if
# the process stops answering afterwards.
#   scripts/schema-fuzz.sh                 # 100 examples per route (CI)
#   EXAMPLES=2000 scripts/schema-fuzz.sh   # a longer run by hand
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x .scanners/bin/schemathesis ] || scripts/install-scanners.sh
scripts/fetch-onnxruntime.sh >/dev/null
cargo build --release --locked --quiet
port="${FUZZ_PORT:-18771}"
examples="${EXAMPLES:-100}"
seed="${SEED:-20261125}"
out="$(mktemp -d)"
log="$out/server.log"

# Generous limits would only slow the run down; small ones make the limit paths part of it.
CHAOS_PROFILE=none BIND="127.0.0.1:$port" LOG_FORMAT=json MAX_BODY_BYTES=65536 \
    target/release/chaos-inference > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "schema-fuzz: server exited at start" >&2; exit 1; }
    sleep 0.1
done

status=0
.scanners/bin/schemathesis run "http://127.0.0.1:$port/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$examples" --seed "$seed" --workers 2 --request-timeout 10 \
    --generation-database none --no-color || status=$?

if ! kill -0 "$pid" 2>/dev/null; then
    tail -20 "$log"; echo "schema-fuzz: the server died during the run" >&2; exit 1
fi
if ! curl -fs --max-time 5 "http://127.0.0.1:$port/livez" >/dev/null; then
    echo "schema-fuzz: the server stopped answering /livez after the run" >&2; exit 1
fi
# actix-http logs a request it cannot parse (a client's fault, answered 400) at error level;
# anything else at error level is a finding.
errors="$(grep '"level":"ERROR"' "$log" | grep -v '"message":"stream error: request parse error' || true)"
if [ -n "$errors" ]; then
    head -5 <<<"$errors"
    echo "schema-fuzz: the server logged errors during the run" >&2; exit 1
fi
exit "$status"
