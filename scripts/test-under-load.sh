#!/usr/bin/env bash
# Stress check of the test suite: the whole `cargo test` (the README's test command) N times in
# a row while one busy loop per core keeps every CPU busy at normal priority, as a shared
# machine or a local cluster would. Prints the pass count of each run and of all of them.
#   scripts/test-under-load.sh               # 5 runs
#   scripts/test-under-load.sh --runs 2      # after a change to a timing-sensitive test
# Bounded: each run gets RUN_LIMIT seconds (default 900), the busy loops end with the last run
# (or after runs x RUN_LIMIT at the latest). Not a CI step: it takes several minutes per run.
# Exit 0 when every run passed, 1 otherwise; the log of a failed run is kept and named.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=${2:?--runs needs a count}; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "test-under-load: unknown argument $1 (expected --runs N)" >&2; exit 2 ;;
    esac
done
case "$runs" in ''|*[!0-9]*|0) echo "test-under-load: --runs must be a whole number >= 1, not '$runs'" >&2; exit 2 ;; esac
run_limit=${RUN_LIMIT:-900}

# Build first, without load: the check is of the tests, not of the compiler.
scripts/fetch-onnxruntime.sh >/dev/null
cargo test --no-run --quiet 2>/dev/null || cargo test --no-run

cores=$(nproc)
hogs=()
stop_hogs() { for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_hogs EXIT
for _ in $(seq "$cores"); do
    timeout "$(( runs * run_limit ))" bash -c 'while :; do :; done' &
    hogs+=($!)
done
echo "busy loops: $cores (one per core), pids ${hogs[*]}"

logs=$(mktemp -d /tmp/test-under-load.XXXXXX)
passed=0
for run in $(seq "$runs"); do
    log="$logs/run-$run.log"
    started=$(date +%s)
    if timeout "$run_limit" cargo test >"$log" 2>&1; then
        result=passed
        passed=$((passed + 1))
    else
        result="FAILED (log: $log)"
    fi
    tests=$(grep -E '^test result:' "$log" | awk '{p += $4; f += $6} END {printf "%d passed, %d failed", p, f}')
    echo "run $run of $runs: $result: $tests, $(( $(date +%s) - started )) s"
    if [ "$result" != passed ]; then
        grep -E '^test .* FAILED$|panicked at' "$log" | sed 's/^/    /' | head -20 || true
    fi
done
echo "$passed of $runs full cargo test runs passed with $cores busy loops"
[ "$passed" -eq "$runs" ]
