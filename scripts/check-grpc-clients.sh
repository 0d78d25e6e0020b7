#!/usr/bin/env bash
# The standard Python gRPC clients from PyPI, unmodified, against the release binary:
# tritonclient[grpc] (health, metadata, infer compared with onnxruntime, output selection, the
# four datatypes, errors), grpcio-health-checking (Check, and Watch through a v2 start) and
# grpcio-reflection (list the services, call one from its reflected descriptors).
# They live in .clients/, a virtualenv of their own. See scripts/grpc_clients.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.clients"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    "tritonclient[grpc]==2.73.0" grpcio==1.85.3 grpcio-health-checking==1.81.1 grpcio-reflection==1.81.1 protobuf==6.33.6 \
    onnxruntime==1.32.0 numpy==2.4.6
scripts/fetch-onnxruntime.sh >/dev/null
cargo build --release --locked --quiet
"$venv/bin/python" scripts/grpc_clients.py
