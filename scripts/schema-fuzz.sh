#!/usr/bin/env bash
# Schema fuzzing: schemathesis reads GET /openapi.json from the real release binary (profile
# `none`) and sends generated valid and invalid requests to every route, with every check
# (`--checks all`): no 5xx; every status, content type, header and body as documented; every
# request the document allows is accepted and every one it forbids is refused; a method a path
# does not serve gets 405. The script also fails if the process stops answering afterwards.
# scripts/schemathesis_hooks.py makes generated V2 shapes agree with their data (the one rule
# JSON Schema cannot state). The admin actions answer 404 here (no ADMIN_TOKEN): they crash and
# hang the process on purpose and are covered by the API tests. The event stream
# (/chaos/events) never ends by design: it gets a run of its own, in which schemathesis reads
# each stream for 3 s and validates every event against the document's `itemSchema`.
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

# Default limits: the document states them (batch rows, tensor elements), so the positive cases
# stay inside them.
CHAOS_PROFILE=none BIND="127.0.0.1:$port" GRPC_BIND="127.0.0.1:0" LOG_FORMAT=json \
    target/release/chaos-inference > "$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$out"' EXIT
python3 scripts/serverctl.py wait --port "$port" --pid "$pid" --log "$log" --timeout 30

status=0
PYTHONPATH=scripts SCHEMATHESIS_HOOKS=schemathesis_hooks \
.scanners/bin/schemathesis run "http://127.0.0.1:$port/openapi.json" --checks all \
    --max-examples "$examples" --seed "$seed" --workers 2 --request-timeout 10 \
    --generation-database none --no-color \
    --exclude-path /chaos/events || status=$?
PYTHONPATH=scripts \
.scanners/bin/schemathesis run "http://127.0.0.1:$port/openapi.json" --checks all \
    --max-examples 5 --seed "$seed" --request-timeout 3 \
    --generation-database none --no-color \
    --include-path /chaos/events || status=$?

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
