#!/usr/bin/env bash
# Builds both image targets of the Dockerfile with buildah (an OCI builder that needs no daemon),
# the same Dockerfile users build with `docker build`, and reports the size of each layer.
#
#   scripts/build-image.sh [--stand-ins] [--import CONTAINERD_SOCKET]
#
#   --stand-ins   first make local stand-ins of missing base images from Debian packages
#                 (scripts/make-base-stand-ins.sh; for machines that cannot reach a registry)
#   --import S    also put both images into the containerd at socket S (namespace k8s.io), as
#                 `ctr images import` of the image's docker-archive: what a kubelet runs
#
# IMAGE_REPO (default localhost/chaos-inference) names the images: $IMAGE_REPO:v1 and :v2.
# Layers are cached (`--layers`): v2 reuses every stage of v1, and a second run with unchanged
# sources takes seconds. Prints the two image references on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}" BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"
repo="${IMAGE_REPO:-localhost/chaos-inference}"
stand_ins=no socket=""
while [ $# -gt 0 ]; do
    case $1 in
        --stand-ins) stand_ins=yes ;;
        --import) socket="${2:?--import needs the containerd socket}"; shift ;;
        *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
command -v buildah >/dev/null || { echo "build-image: buildah is not installed (apt-get install buildah)" >&2; exit 3; }
say() { echo "[image $(date +%H:%M:%S)] $*"; }
[ $stand_ins = yes ] && scripts/make-base-stand-ins.sh

for target in v1 v2; do
    started=$(date +%s)
    # --format docker keeps the HEALTHCHECK (the OCI image format has no field for it).
    buildah bud --quiet --pull=never --network host --layers --format docker \
        --target "$target" -t "$repo:$target" . >/dev/null
    say "$repo:$target built in $(( $(date +%s) - started )) s"
done

for target in v1 v2; do
    say "$repo:$target: $(buildah images --format '{{.Size}}' "$repo:$target" | head -1)"
done
if [ -n "$socket" ]; then
    command -v ctr >/dev/null || { echo "build-image: ctr (containerd) is not installed" >&2; exit 3; }
    for target in v1 v2; do
        archive="$(mktemp -u /tmp/chaos-inference-image.XXXXXX.tar)"
        buildah push --quiet "$repo:$target" "docker-archive:$archive:$repo:$target" >/dev/null
        ctr -a "$socket" -n k8s.io images import "$archive" >/dev/null
        rm -f "$archive"
        say "$repo:$target imported into the containerd at $socket"
    done
fi
echo "$repo:v1 $repo:v2"
