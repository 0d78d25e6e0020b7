#!/usr/bin/env bash
# Puts the ONNX Runtime shared library into .ort/ (the project-local folder the server searches),
# taken from the pinned `onnxruntime` wheel on PyPI. Nothing is downloaded at build time; this is
# the one place the library comes from. Idempotent: an existing library of the pinned version is kept.
#
#   scripts/fetch-onnxruntime.sh [DEST_DIR]
#
# ORT_VERSION overrides the pin (keep it >= 1.24: the bindings use ONNX Runtime API level 24).
set -euo pipefail

ORT_VERSION="${ORT_VERSION:-1.32.0}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$here/.ort}"
lib="libonnxruntime.so.$ORT_VERSION"

if [ -f "$dest/$lib" ]; then
    echo "onnxruntime $ORT_VERSION already in $dest"
    exit 0
fi

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || { echo "error: $python not found; it is needed to download the onnxruntime wheel with pip" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" "onnxruntime==$ORT_VERSION"
wheel="$(ls "$work"/onnxruntime-*.whl)"

mkdir -p "$dest"
# zipfile instead of unzip: python3 is already required, unzip may not be installed.
"$python" - "$wheel" "$dest" "$lib" <<'PY'
import pathlib, shutil, sys, zipfile
wheel, dest, lib = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith("/capi/" + lib))
    with z.open(member) as src, open(dest / lib, "wb") as out:
        shutil.copyfileobj(src, out)
PY
ln -sf "$lib" "$dest/libonnxruntime.so"
echo "onnxruntime $ORT_VERSION -> $dest/$lib"
