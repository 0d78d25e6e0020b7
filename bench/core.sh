#!/usr/bin/env bash
# Core server benchmark: throughput and p50/p99 latency of /predict and one-row V2 infer at
# 1 and 64 connections, with /livez (HTTP only, no JSON, no model) as the in-run baseline.
# The server is pinned to CPU 0 and wrk to CPU 1 so they do not fight for a core.
#
#   bench/core.sh [SECONDS]        # default 10 s per run; writes bench/core-results.md
#
# Needs: wrk (apt-get install wrk), taskset (util-linux), a release build.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
seconds="${1:-10}"
port="${BENCH_PORT:-18931}"
out="${BENCH_OUT:-$here/core-results.md}"

command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 2; }
"$root/scripts/fetch-onnxruntime.sh" >/dev/null
(cd "$root" && cargo build --release --quiet)
bin="$root/target/release/chaos-inference"

work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/predict.json" <<'JSON'
{"age": 63, "sex": 1, "cp": 4, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2, "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6}
JSON
cat > "$work/infer.json" <<'JSON'
{"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": [63, 1, 4, 145, 233, 1, 2, 150, 0, 2.3, 3, 0, 6]}]}
JSON

BIND="127.0.0.1:$port" LOG_FORMAT=json RUST_LOG=warn CHAOS_PROFILE=none taskset -c 0 "$bin" > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.05
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null

# One wrk run; prints: requests/s p50 p99 non-2xx
run() {
    local connections="$1" path="$2" body="${3:-}"
    local args=(-t1 -c"$connections" -d"${seconds}s" --latency)
    if [ -n "$body" ]; then
        BODY_FILE="$body" taskset -c 1 wrk "${args[@]}" -s "$here/post.lua" "http://127.0.0.1:$port$path" > "$work/wrk.txt"
    else
        taskset -c 1 wrk "${args[@]}" "http://127.0.0.1:$port$path" > "$work/wrk.txt"
    fi
    local rps p50 p99 non2xx
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/wrk.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
    non2xx=$(awk '/^non2xx/ {print $2}' "$work/wrk.txt")
    echo "$rps $p50 $p99 ${non2xx:-0}"
}

{
    echo "# Core benchmark"
    echo
    echo "- command: \`bench/core.sh $seconds\` ($seconds s per row, wrk 1 thread)"
    echo "- machine: $(nproc) CPUs, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | xargs); server on CPU 0, wrk on CPU 1"
    echo "- binary: $("$bin" --version), profile none, 1 HTTP worker, 1 inference worker (one CPU)"
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "| route | connections | requests/s | p50 | p99 | non-2xx | vs /livez |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} > "$out"

for connections in 1 64; do
    read -r base_rps base_p50 base_p99 base_err < <(run "$connections" /livez)
    echo "| GET /livez (HTTP baseline) | $connections | $base_rps | $base_p50 | $base_p99 | $base_err | 1.00 |" >> "$out"
    for case in "POST /predict:/predict:$work/predict.json" "POST V2 infer (1 row):/v2/models/heart-disease/infer:$work/infer.json"; do
        IFS=: read -r label path body <<< "$case"
        read -r rps p50 p99 err < <(run "$connections" "$path" "$body")
        ratio=$(awk -v a="$rps" -v b="$base_rps" 'BEGIN {printf "%.2f", a / b}')
        echo "| $label | $connections | $rps | $p50 | $p99 | $err | $ratio |" >> "$out"
    done
done
echo >> "$out"
echo "Peak RSS of the server: $(awk '/VmHWM/ {print $2, $3}' /proc/$server/status)" >> "$out"
cat "$out"
