#!/usr/bin/env bash
# One command for the comparison benchmark (`make bench`): builds the release binary, the
# inference-ceiling example and the gRPC load generator, installs oha (crates.io) if missing, sets up each peer (the Python
# servers, Triton from PyTriton's wheel, mosec) in its own virtualenv from PyPI, runs everything and writes
# bench/RESULTS.md, results.json, results.png.
#   bench/run.sh [--smoke] [--seconds N]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
cd "$root"
smoke=no
for a in "$@"; do [ "$a" = --smoke ] && smoke=yes; done

scripts/fetch-onnxruntime.sh >/dev/null
cargo build --release --locked --quiet --bin chaos-inference --example ort_one_row --example grpc_load
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 2; }
if ! command -v oha >/dev/null; then
    cargo install oha --locked --version 1.16.0
fi
# The fitted pipeline for MLServer is written by the model's training script.
if [ "$smoke" = no ]; then
    for peer in fastapi mlserver kserve triton mosec; do
        venv="$here/.venv-$peer"
        python=python3
        if [ "$peer" = triton ]; then
            # Triton's Python backend loads libpython: an interpreter built with it shared.
            python=/usr/bin/python3.11
            [ -x "$python" ] || { echo "bench: Triton needs Debian's python3.11 (apt-get install python3.11-venv)" >&2; exit 2; }
        fi
        [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
        if ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/peers/requirements-$peer.txt"; then
            [ "$peer" = kserve ] && { echo "bench: KServe did not install; running without it" >&2; rm -rf "$venv"; continue; }
            exit 1
        fi
    done
    [ -x "$here/.venv-report/bin/python" ] || python3 -m venv "$here/.venv-report"
    "$here/.venv-report/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements-report.txt"
fi
python3 "$here/run.py" "$@"
if [ "$smoke" = no ]; then
    "$here/.venv-report/bin/python" "$here/report.py"
fi
