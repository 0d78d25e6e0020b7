#!/usr/bin/env bash
# Checks the images built from the Dockerfile (scripts/build-image.sh) the way a user runs them,
# with podman (a real OCI runtime, sharing buildah's image store):
#   - the runtime user is 65532:65532 and the Docker-format HEALTHCHECK runs `probe livez`;
#   - the image is under 80 MB, and the binary in it carries no debug info (only a debuglink);
#   - with a read-only root and no network: `--version`;
#   - with a read-only root: serve, become ready, answer /predict and V2 infer, as uid 65532, with
#     no warning in its log; `probe livez` inside it and `podman healthcheck run` pass; SIGTERM
#     drains and exits 0;
#   - the v2 image follows the v2 profile: not ready while it loads, then ready.
#
#   scripts/check-image.sh                  # IMAGE_REPO (default localhost/chaos-inference)
set -euo pipefail
cd "$(dirname "$0")/.."
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
repo="${IMAGE_REPO:-localhost/chaos-inference}"
limit_bytes=80000000
podman=(podman --cgroup-manager=cgroupfs --events-backend=file)
# runc where it is installed: crun refuses to start any container on a host with hybrid cgroups
# whose cgroup2 hierarchy holds a controller ("cgroups in hybrid mode not supported"), which
# some machines have; runc runs there and everywhere else.
if command -v runc >/dev/null; then podman+=(--runtime runc); fi
# Run options for every container: file and process limits within the machine's own (podman's
# defaults ask for more than a sandbox without CAP_SYS_RESOURCE may set), and the HEALTHCHECK
# kept but not put on a systemd timer (there may be no systemd); `podman healthcheck run` runs it.
files="$(ulimit -Hn)"
run_opts=(--ulimit "nofile=$files:$files" --ulimit nproc=8192:8192 --health-interval disable --pull never)
failures=0
pass() { echo "  ok    $*"; }
fail() { echo "  FAIL  $*"; failures=$((failures + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
command -v podman >/dev/null || { echo "check-image: podman is not installed (apt-get install podman)" >&2; exit 3; }
work="$(mktemp -d)"
names=()
cleanup() {
    for n in "${names[@]}"; do "${podman[@]}" rm -f -t 0 "$n" >/dev/null 2>&1 || true; done
    if [ "$failures" -gt 0 ] && [ -s "$work/podman.err" ]; then sed "s/^/    podman: /" "$work/podman.err"; fi
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# URL STATUS SECONDS: poll until the route answers STATUS.
wait_status() {
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" = "$2" ] && return 0
        sleep 0.2
    done
    return 1
}

echo "--- $repo:v1: configuration"
user="$("${podman[@]}" image inspect --format '{{.Config.User}}' "$repo:v1")"
check "runs as $user (want 65532:65532)" test "$user" = 65532:65532
health="$(buildah inspect --type image --format '{{.Docker.Config.Healthcheck}}' "$repo:v1" 2>/dev/null || true)"
check "Docker HEALTHCHECK: $health" grep -q 'chaos-inference probe livez' <<<"$health"
bytes="$("${podman[@]}" image inspect --format '{{.Size}}' "$repo:v1")"
check "image size $((bytes / 1000000)) MB (limit $((limit_bytes / 1000000)) MB)" test "$bytes" -lt "$limit_bytes"
echo "    layers, newest first (podman history):"
"${podman[@]}" history --format '      {{.Size}}\t{{.CreatedBy}}' "$repo:v1" | cut -c1-150 | grep -v '^      0B' || true

echo "--- $repo:v1: read-only root, no network"
version="$("${podman[@]}" run "${run_opts[@]}" --rm --read-only --network none "$repo:v1" --version 2>"$work/version.err" || cat "$work/version.err")"
check "--version: $version" grep -qx 'chaos-inference [0-9.]*' <<<"$version"

echo "--- $repo:v1: serve with a read-only root"
port="$(free_port)" grpc="$(free_port)"
names+=(check-image-v1)
"${podman[@]}" rm -f -t 0 check-image-v1 >/dev/null 2>&1 || true
"${podman[@]}" run "${run_opts[@]}" -d --name check-image-v1 --read-only --network host \
    -e BIND="127.0.0.1:$port" -e GRPC_BIND="127.0.0.1:$grpc" "$repo:v1" >/dev/null 2>>"$work/podman.err"
check "ready within 60 s" wait_status "http://127.0.0.1:$port/readyz" 200 60
answer="$(curl -s -X POST -H 'Content-Type: application/json' --data @models/heart-disease/example.json "http://127.0.0.1:$port/predict")"
check "/predict: $answer" grep -q '"label":1' <<<"$answer"
# The same record as a V2 tensor, in the model's feature order: the same label as /predict.
v2_body="$(python3 -c 'import json, sys; sys.path.insert(0, "scripts"); import serverctl
print(json.dumps({"inputs": [{"name": "input", "shape": [1, 13], "datatype": "FP32", "data": serverctl.example_row()}]}))')"
code="$(curl -s -o "$work/infer.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "$v2_body" "http://127.0.0.1:$port/v2/models/heart-disease/infer")"
label="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["outputs"][0]["data"][0])' "$work/infer.json" 2>/dev/null || true)"
check "V2 infer: $code, label $label (as /predict)" test "$code:$label" = 200:1
pid="$("${podman[@]}" inspect --format '{{.State.Pid}}' check-image-v1)"
uid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
check "process uid $uid (want 65532)" test "$uid" = 65532
readonly_root="$("${podman[@]}" inspect --format '{{.HostConfig.ReadonlyRootfs}}' check-image-v1)"
check "root file system read-only: $readonly_root" test "$readonly_root" = true
probe="$("${podman[@]}" exec check-image-v1 /usr/local/bin/chaos-inference probe livez 2>&1)"
check "probe livez inside the container: $probe" grep -q "^HTTP/1.1 200" <<<"$probe"
check "podman healthcheck run (the image's HEALTHCHECK)" "${podman[@]}" healthcheck run check-image-v1
"${podman[@]}" logs check-image-v1 >"$work/v1.log" 2>&1
warnings="$(grep -c -E '"level":"(WARN|ERROR)"|telemetry' "$work/v1.log" || true)"
check "no warning or error in the log ($warnings lines)" test "$warnings" = 0
"${podman[@]}" cp check-image-v1:/usr/local/bin/chaos-inference "$work/chaos-inference"
sections="$(readelf -S -W "$work/chaos-inference")"
check "binary without debug info, with a debuglink ($(du -h "$work/chaos-inference" | cut -f1))" \
    bash -c '! grep -q "\.debug_info" <<<"$1" && grep -q "\.gnu_debuglink" <<<"$1"' _ "$sections"
"${podman[@]}" stop -t 20 check-image-v1 >/dev/null 2>>"$work/podman.err"
exit_code="$("${podman[@]}" inspect --format '{{.State.ExitCode}}' check-image-v1)"
check "SIGTERM: drained, exit code $exit_code" test "$exit_code" = 0
if [ "$failures" -gt 0 ] || [ "${CHECK_IMAGE_VERBOSE:-0}" = 1 ]; then sed 's/^/    log: /' "$work/v1.log" | head -20; fi

echo "--- $repo:v2: the v2 profile from the image tag (time scale 0.1: loads 2-3 s)"
port="$(free_port)" grpc="$(free_port)"
names+=(check-image-v2)
"${podman[@]}" rm -f -t 0 check-image-v2 >/dev/null 2>&1 || true
"${podman[@]}" run "${run_opts[@]}" -d --name check-image-v2 --read-only --network host -e CHAOS_TIME_SCALE=0.1 \
    -e BIND="127.0.0.1:$port" -e GRPC_BIND="127.0.0.1:$grpc" "$repo:v2" >/dev/null 2>>"$work/podman.err"
check "/readyz 503 while the model loads" wait_status "http://127.0.0.1:$port/readyz" 503 20
check "then ready" wait_status "http://127.0.0.1:$port/readyz" 200 30
profile="$(curl -s -H 'Accept: application/json' "http://127.0.0.1:$port/chaos" | python3 -c 'import json,sys; print(json.load(sys.stdin)["profile"])' 2>/dev/null || true)"
check "/chaos names profile $profile" test "$profile" = v2

if [ "$failures" -gt 0 ]; then
    echo "check-image: $failures check(s) failed"
    exit 1
fi
echo "check-image: all checks passed"
