#!/usr/bin/env bash
# The end-to-end suite's one entry point (`make e2e`).
#
# Against any cluster: set KUBECONFIG and E2E_LOAD_IMAGES, a command that puts the images
# $E2E_IMAGE_REPO:v1 and :v2 into the cluster, e.g. with kind:
#   E2E_IMAGE_REPO=chaos-inference E2E_LOAD_IMAGES='docker build --target v1 -t chaos-inference:v1 . &&
#     docker build --target v2 -t chaos-inference:v2 . && kind load docker-image chaos-inference:v1 chaos-inference:v2' e2e/run.sh
# With neither set, it uses k8s-local (K8S_LOCAL, ../shared/k8s-local or /work/shared/k8s-local): brings the cluster up
# (cached after the first build), builds the Dockerfile's v1 and v2 images with buildah and
# imports them into the cluster's containerd (scripts/build-image.sh). Without buildah, or with
# E2E_IMAGES=binary, it loads the release binary with the ONNX Runtime library instead; the log
# says which ran. The mlserver-app scenario runs where E2E_MLSERVER_IMAGE names an image of
# e2e/apps/mlserver the cluster has (k8s-local with buildah builds it) and e2e/.venv-mlserver
# exists (e2e/apps/mlserver/build.sh makes both). Helm commands use HELM (default: the helm of scripts/install-scanners.sh).
# Transcripts of what kubectl showed go to e2e/out/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export E2E_IMAGE_REPO="${E2E_IMAGE_REPO:-localhost/chaos-inference}"
[ -x .tools/bin/kubectl ] || scripts/install-validators.sh
# The binary predicts every scenario (`simulate`) before it is applied.
cargo build --release --locked --quiet

if [ -z "${E2E_LOAD_IMAGES:-}" ]; then
    k8s_local="${K8S_LOCAL:-}"
    if [ -z "$k8s_local" ]; then
        for candidate in "$root/../shared/k8s-local" /work/shared/k8s-local; do
            [ -x "$candidate/up.sh" ] && { k8s_local="$candidate"; break; }
        done
    fi
    if [ ! -x "${k8s_local:-/nonexistent}/up.sh" ]; then
        echo "e2e: NOT RUN: no cluster given (KUBECONFIG + E2E_LOAD_IMAGES) and no k8s-local scripts found (set K8S_LOCAL)" >&2
        exit 3
    fi
    if ! "$k8s_local/up.sh"; then
        echo "e2e: NOT RUN: the k8s-local cluster did not start (see ${K8S_DIR:-/tmp/k8s-local}/logs)" >&2
        exit 3
    fi
    # E2E_STOP_CLUSTER=1 (CI) stops the cluster afterwards so it does not share the CPUs with
    # whatever runs next; by hand it stays up for the next run.
    stop_cluster() {
        # Delete the workloads of every scenario namespace (the last one is still terminating)
        # first, so no container outlives the kubelet.
        kubectl delete deployment,replicaset,pod --all-namespaces -l app.kubernetes.io/part-of=chaos-inference \
            --grace-period=1 --wait=true --timeout=90s >/dev/null 2>&1 || true
        "$k8s_local/down.sh" >/dev/null 2>&1 || true
    }
    if [ "${E2E_STOP_CLUSTER:-0}" = 1 ]; then trap stop_cluster EXIT; fi
    export KUBECONFIG="${K8S_DIR:-/tmp/k8s-local}/admin.kubeconfig"
    export PATH="${K8S_DIR:-/tmp/k8s-local}/bin:$PATH"
    if command -v buildah >/dev/null && [ "${E2E_IMAGES:-dockerfile}" = dockerfile ]; then
        # The images users run: the Dockerfile's two targets, built by an OCI builder and imported
        # into the cluster's containerd. k8s-local machines reach no registry, so missing base
        # images get Debian-made stand-ins (scripts/make-base-stand-ins.sh).
        export E2E_IMAGE_SOURCE="the Dockerfile (targets v1 and v2), built by buildah"
        E2E_LOAD_IMAGES="IMAGE_REPO=$E2E_IMAGE_REPO scripts/build-image.sh --stand-ins --import ${K8S_CONTAINERD_SOCKET:-/run/k8s-local/containerd.sock}"
        # And the third-party app of the mlserver-app scenario (its image and a virtualenv to
        # record it from), built on the same python base.
        E2E_LOAD_IMAGES="$E2E_LOAD_IMAGES && e2e/apps/mlserver/build.sh --import ${K8S_CONTAINERD_SOCKET:-/run/k8s-local/containerd.sock}"
        export E2E_MLSERVER_IMAGE=localhost/mlserver-heart-disease:e2e
    else
        # Fallback without an OCI builder (or E2E_IMAGES=binary): the release binary and the ONNX
        # Runtime library in a minimal image, with the environment the Dockerfile sets.
        export E2E_IMAGE_SOURCE="the binary loader (no OCI builder: install buildah to run the Dockerfile's images)"
        scripts/fetch-onnxruntime.sh >/dev/null
        lib="$(readlink -f .ort/libonnxruntime.so)"
        E2E_LOAD_IMAGES="$k8s_local/load-binary-image.sh $E2E_IMAGE_REPO:v1 target/release/chaos-inference $lib:/usr/local/lib/libonnxruntime.so -- ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so CHAOS_PROFILE=none LOG_FORMAT=json"
        E2E_LOAD_IMAGES="$E2E_LOAD_IMAGES && $k8s_local/load-binary-image.sh $E2E_IMAGE_REPO:v2 target/release/chaos-inference $lib:/usr/local/lib/libonnxruntime.so -- ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so CHAOS_PROFILE=v2 LOG_FORMAT=json"
    fi
fi
: "${KUBECONFIG:?set KUBECONFIG to the cluster to test}"
export E2E_IMAGE_SOURCE="${E2E_IMAGE_SOURCE:-E2E_LOAD_IMAGES: $E2E_LOAD_IMAGES}"
echo "e2e: images from $E2E_IMAGE_SOURCE"
bash -c "$E2E_LOAD_IMAGES"
[ -x .scanners/bin/helm ] || scripts/install-scanners.sh >/dev/null
export HELM="${HELM:-$root/.scanners/bin/helm}"
python3 e2e/run.py --transcripts e2e/out "$@"
