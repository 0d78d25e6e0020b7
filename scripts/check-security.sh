#!/usr/bin/env bash
# Security scan of everything that gets deployed, with checkov (.checkov.yaml holds the reviewed
# skips): the plain manifests, every Kustomize overlay and the Helm chart as rendered, and the
# Dockerfile. Zero failed checks or the script fails. Also checks that the scanner can fail: a
# privileged pod must be refused.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x .scanners/bin/checkov ] || scripts/install-scanners.sh
[ -x .tools/bin/kubectl ] || scripts/install-validators.sh
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir "$work/rendered"
for dir in manifests/kustomize/base manifests/kustomize/overlays/*/; do
    name="kustomize-$(basename "$dir")"
    .tools/bin/kubectl kustomize "$dir" > "$work/rendered/$name.yaml"
done
.scanners/bin/helm template chaos-inference manifests/helm/chaos-inference \
    > "$work/rendered/helm-default.yaml"
.scanners/bin/helm template chaos-inference manifests/helm/chaos-inference \
    --set chaos.profile=v2,chaos.adminToken=x,probes.startup.enabled=true \
    > "$work/rendered/helm-v2-admin.yaml"

checkov() { .scanners/bin/checkov --config-file .checkov.yaml "$@"; }

# The scanner must be able to fail, or a pass means nothing.
cat > "$work/privileged.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  containers:
    - name: bad
      image: chaos-inference:v1
      securityContext: {privileged: true}
YAML
if checkov --framework kubernetes -f "$work/privileged.yaml" >/dev/null 2>&1; then
    echo "check-security: checkov passed a privileged pod; the scan proves nothing" >&2
    exit 1
fi

echo "--- checkov: plain manifests"
checkov --framework kubernetes -d manifests --skip-path manifests/kustomize --skip-path manifests/helm
echo "--- checkov: Kustomize overlays and the Helm chart, rendered"
for file in "$work"/rendered/*.yaml; do
    echo "$(basename "$file")"
    checkov --framework kubernetes -f "$file"
done
echo "--- checkov: Dockerfile"
checkov --framework dockerfile -f Dockerfile
echo "security scan: no failed checks"
