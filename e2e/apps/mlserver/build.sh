#!/usr/bin/env bash
# The e2e's third-party app: MLServer serving the heart-disease pipeline, as an image (this
# folder's Dockerfile, built by buildah like the project's own) and as a virtualenv on this
# machine, which `chaos-inference record` starts to measure its timeline.
#
#   e2e/apps/mlserver/build.sh [--import CONTAINERD_SOCKET]
#
# Prints the image reference on its last line. Both are cached: buildah's --layers, and the
# virtualenv (e2e/.venv-mlserver) is made once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
image="${MLSERVER_IMAGE:-localhost/mlserver-heart-disease:e2e}"
socket=""
while [ $# -gt 0 ]; do
    case $1 in
        --import) socket="${2:?--import needs the containerd socket}"; shift ;;
        *) echo "mlserver build: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "[mlserver $(date +%H:%M:%S)] $*"; }
requirements="$root/bench/peers/requirements-mlserver.txt"

venv="$root/e2e/.venv-mlserver"
if [ ! -x "$venv/bin/mlserver" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    say "virtualenv $venv"
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
cp "$here/Dockerfile" "$here/model-settings.json" "$here/settings.json" "$context/"
cp "$requirements" "$context/requirements.txt"
cp "$root/models/heart-disease/pipeline.joblib" "$context/"
started=$(date +%s)
buildah bud --quiet --pull=never --network host --layers --format docker -t "$image" "$context" >/dev/null
say "$image built in $(( $(date +%s) - started )) s: $(buildah images --format '{{.Size}}' "$image" | head -1)"
if [ -n "$socket" ]; then
    archive="$(mktemp -u /tmp/mlserver-image.XXXXXX.tar)"
    buildah push --quiet "$image" "docker-archive:$archive:$image" >/dev/null
    ctr -a "$socket" -n k8s.io images import "$archive" >/dev/null
    rm -f "$archive"
    say "$image imported into the containerd at $socket"
fi
echo "$image"
