#!/usr/bin/env bash
# Validates every deliverable for Kubernetes and the image with real tools (installed by
# scripts/install-validators.sh into .tools/):
#   - the profiles ConfigMap is in sync with chaos-profiles/
#   - every manifest and every rendered Kustomize overlay against the Kubernetes OpenAPI schemas,
#     strict (unknown fields fail), for the oldest (1.25) and newest (1.37) schema the validator
#     ships; a file with `grpc:` probes against 1.27 (where they are GA) and 1.37. The e2e suite
#     applies the others to a real 1.20 cluster (which has no gRPC probes)
#   - the Helm chart with helm lint (the Helm library), failing on warnings, and rendered with
#     HTTP and with gRPC probes against the schemas
#   - the Dockerfile with hadolint, failing on any finding
# Each check first proves it can fail, on a deliberately broken input.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x .tools/bin/kubernetes-validate ] || scripts/install-validators.sh
bin="$root/.tools/bin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

validate() { # FILE...: strict schema validation against old and new Kubernetes
    local v oldest=1.25.0
    # gRPC probes are GA from 1.27: that is the oldest version such a file claims to support.
    if grep -qE '^\s+grpc:' "$@"; then oldest=1.27.0; fi
    for v in "$oldest" 1.37.0; do
        "$bin/kubernetes-validate" --strict --quiet --no-warn -k "$v" "$@" || return 1
    done
}

helm_lint() { # CHART: helm lint through the Helm library; fails on warnings and errors
    "$bin/python" - "$1" <<'PY'
import asyncio, sys
import helm_sdkpy
result = asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(sys.argv[1]))
# Severity: 1 info, 2 warning, 3 error (Helm's support.Severity).
bad = [m for m in result.get("Messages") or [] if m.get("Severity", 0) >= 2] + list(result.get("Errors") or [])
for m in bad:
    print(m)
sys.exit(1 if bad else 0)
PY
}

# The checks must be able to fail.
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n  containers: [{name: x, image: y, livenessProbe: {httpGet: {path: /, port: 1}, periodSecond: 5}}]\n' > "$work/broken.yaml"
if validate "$work/broken.yaml" >/dev/null 2>&1; then fail "validator accepted a misspelt field"; else pass "validator refuses a misspelt field"; fi
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n  containers: [{name: x, image: y, livenessProbe: {grpc: {port: 8001, servce: ""}}}]\n' > "$work/broken-grpc.yaml"
if validate "$work/broken-grpc.yaml" >/dev/null 2>&1; then fail "validator accepted a misspelt gRPC probe field"; else pass "validator refuses a misspelt gRPC probe field"; fi
printf 'FROM debian\nRUN apt-get install curl\n' > "$work/Dockerfile.broken"
if "$bin/hadolint" "$work/Dockerfile.broken" >/dev/null 2>&1; then fail "hadolint accepted an unpinned image"; else pass "hadolint refuses an unpinned image"; fi

cp -r manifests/helm/chaos-inference "$work/broken-chart"
echo '{{ .Values.missing.key }}' >> "$work/broken-chart/templates/service.yaml"
if helm_lint "$work/broken-chart" >/dev/null 2>&1; then fail "helm lint accepted a broken template"; else pass "helm lint refuses a broken template"; fi

if python3 scripts/gen-profiles-configmap.py --check; then pass "profiles ConfigMap in sync"; else fail "profiles ConfigMap out of date"; fi

for file in manifests/*.yaml; do
    if validate "$file"; then pass "$file"; else fail "$file"; fi
done

for dir in manifests/kustomize/base manifests/kustomize/overlays/*/; do
    dir="${dir%/}"
    out="$work/$(echo "$dir" | tr / _).yaml"
    if "$bin/kubectl" kustomize "$dir" > "$out" && validate "$out"; then pass "$dir (rendered)"; else fail "$dir (rendered)"; fi
done

if helm_lint manifests/helm/chaos-inference
then pass "helm lint manifests/helm/chaos-inference"; else fail "helm lint manifests/helm/chaos-inference"; fi

# The chart rendered (every probe variant) against the schemas too.
[ -x .scanners/bin/helm ] || scripts/install-scanners.sh >/dev/null
for protocol in http grpc; do
    out="$work/chart-$protocol.yaml"
    if .scanners/bin/helm template demo manifests/helm/chaos-inference --set "probes.protocol=$protocol" \
        --set probes.startup.enabled=true > "$out" && validate "$out"
    then pass "manifests/helm/chaos-inference (rendered, $protocol probes)"; else fail "manifests/helm/chaos-inference (rendered, $protocol probes)"; fi
done

if "$bin/hadolint" Dockerfile; then pass "hadolint Dockerfile"; else fail "hadolint Dockerfile"; fi

[ "$failures" -eq 0 ] || { echo "$failures manifest check(s) failed"; exit 1; }
echo "all manifest checks passed"
