#!/usr/bin/env bash
# simulate's findings in the formats other tools read, checked by those tools:
#   - SARIF 2.1.0: valid against the SARIF 2.1.0 JSON schema that Microsoft's SARIF validator
#     ships (with Python's jsonschema, a real JSON Schema validator), passes that validator
#     (`sarif-multitool validate`, from npm), and is read back by sarif-tools (PyPI): the rule,
#     level, file and line it was given;
#   - JUnit XML: valid against the Surefire JUnit schema that Jenkins' xUnit plugin checks
#     reports against (junit-10.xsd, taken from pytest's source distribution on PyPI, which ships
#     it for its own tests), with xmlschema (PyPI); read back by junitparser (PyPI), as plain
#     JUnit and as xunit2 (Jenkins): a suite per workload, a case per rule, the finding a
#     failure, an expected one skipped;
#   - the exit code is the same in every format;
#   - the pre-commit hook (.pre-commit-hooks.yaml), run by the real pre-commit (PyPI) in a
#     throwaway git repository: it fails on a staged manifest whose liveness probe kills during
#     the load, and passes on the shipped manifests with other YAML staged beside them;
#   - the kubectl plugin: `kubectl plugin list` (the real kubectl) finds the binary under its
#     plugin name, and `kubectl chaos-inference simulate` runs it.
# Installs its tools, pinned, into .formats/ (a Python virtualenv and an npm prefix).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools="$root/.formats"
[ -x "$tools/bin/python" ] || python3 -m venv "$tools"
"$tools/bin/pip" install --quiet --disable-pip-version-check jsonschema==4.26.0 sarif-tools==3.0.5 junitparser==5.0.3 pre-commit==4.7.0
if [ ! -x "$tools/node/node_modules/.bin/sarif-multitool" ]; then
    mkdir -p "$tools/node"
    npm install --prefix "$tools/node" --no-audit --no-fund --loglevel=error @microsoft/sarif-multitool@5.7.0 >/dev/null
fi
schema="$tools/node/node_modules/@microsoft/sarif-multitool-linux/sarif-2.1.0.json"
"$tools/bin/pip" install --quiet --disable-pip-version-check xmlschema==4.3.1
junit_schema="$tools/junit-10.xsd"
if [ ! -s "$junit_schema" ]; then
    "$tools/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        --dest "$tools/sdist" pytest==8.3.5
    tar -xzf "$tools/sdist/pytest-8.3.5.tar.gz" -O pytest-8.3.5/testing/example_scripts/junit-10.xsd > "$junit_schema"
fi
cargo build --release --locked --quiet --bin chaos-inference
bin="$root/target/release/chaos-inference"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# A manifest whose liveness probe kills during the load, not marked as expected; and the shipped
# one that marks it.
grep -v 'chaos-inference/expected-findings' manifests/online-inference-pod-without-startup-probe.yaml > "$work/kills.yaml"
line="$(grep -n 'livenessProbe:' "$work/kills.yaml" | head -1 | cut -d: -f1)"
cp manifests/online-inference-pod-without-startup-probe.yaml "$work/expected.yaml"
cd "$work"
set +e
"$bin" simulate --scenarios 6 --output sarif kills.yaml > kills.sarif; code_sarif=$?
"$bin" simulate --scenarios 6 --output table kills.yaml > /dev/null; code_table=$?
"$bin" simulate --scenarios 6 --output sarif expected.yaml > expected.sarif; code_expected=$?
set -e
[ "$code_sarif:$code_table:$code_expected" = "1:1:0" ] \
    && pass "exit codes as in the table: 1 for the finding, 0 when it is expected" \
    || fail "exit codes sarif $code_sarif, table $code_table, expected $code_expected (want 1, 1, 0)"

for f in kills.sarif expected.sarif; do
    if "$tools/bin/python" - "$schema" "$f" <<'PY'
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
log = json.load(open(sys.argv[2]))
errors = list(jsonschema.validators.validator_for(schema)(schema).iter_errors(log))
for e in errors[:5]:
    print(f"  {'/'.join(map(str, e.absolute_path))}: {e.message}")
sys.exit(1 if errors else 0)
PY
    then pass "$f: valid against the SARIF 2.1.0 schema"; else fail "$f: not valid against the SARIF 2.1.0 schema"; fi
    if "$tools/node/node_modules/.bin/sarif-multitool" validate "$f" > validate.out 2>&1 \
        && ! grep -q ': error ' validate.out; then
        pass "$f: sarif-multitool validate ($(grep -c ': warning ' validate.out) warning(s))"
    else
        fail "$f: sarif-multitool validate"; sed 's/^/    /' validate.out
    fi
done

if "$tools/bin/python" - kills.sarif expected.sarif "$line" <<'PY'
import sys
from sarif import loader
kills, expected, line = loader.load_sarif_file(sys.argv[1]), loader.load_sarif_file(sys.argv[2]), int(sys.argv[3])
got = [(r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in kills.get_results()]
want = [("liveness-kills-during-load", "error", "kills.yaml", line)]
print(f"  read back: {got}")
assert got == want, f"want {want}"
assert kills.get_distinct_tool_names() == ["chaos-inference"]
[result] = expected.get_results()
assert result["suppressions"][0]["kind"] == "inSource", result
PY
then pass "sarif-tools reads the rule, level, file and line back; the expected finding is suppressed"
else fail "sarif-tools read-back"; fi

set +e
"$bin" simulate --scenarios 6 --output junit kills.yaml > kills.xml; code_junit=$?
set -e
"$bin" simulate --scenarios 6 --output junit expected.yaml > expected.xml
[ "$code_junit" = 1 ] && pass "junit: exit code 1 as in the table" || fail "junit: exit code $code_junit (want 1)"
# The schema must be able to fail: an attribute it does not allow on <testsuites>.
sed 's/<testsuites /<testsuites skipped="0" /' kills.xml > invalid.xml
if "$tools/bin/python" - "$junit_schema" kills.xml expected.xml invalid.xml <<'PY'
import sys, xmlschema
schema = xmlschema.XMLSchema(sys.argv[1])
for report in sys.argv[2:4]:
    schema.validate(report)
assert not schema.is_valid(sys.argv[4]), "the schema accepted an attribute it does not allow"
print("  valid against junit-10.xsd; a report with an attribute it does not allow is refused")
PY
then pass "junit: valid against the Surefire JUnit schema (junit-10.xsd) Jenkins' xUnit plugin uses"
else fail "junit: not valid against junit-10.xsd"; fi
if "$tools/bin/python" - kills.xml expected.xml "$line" <<'PY'
import json, sys
from junitparser import JUnitXml, Failure, Skipped
from junitparser import xunit2
rules = len(json.load(open("kills.sarif"))["runs"][0]["tool"]["driver"]["rules"])
for reader in (JUnitXml, xunit2.JUnitXml):
    kills, expected = reader.fromfile(sys.argv[1]), reader.fromfile(sys.argv[2])
    [suite] = list(kills)
    assert suite.name == "online-inference-no-startup-probe", suite.name
    cases = list(suite)
    assert len(cases) == rules and suite.tests == rules, (len(cases), suite.tests)
    failed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    assert [c.name for c in failed] == ["liveness-kills-during-load"], [c.name for c in failed]
    assert failed[0].result[0].message.startswith("the liveness probe gives up"), failed[0].result[0].message
    assert suite.failures == 1 and suite.skipped == 0
    [esuite] = list(expected)
    skipped = [c.name for c in esuite if any(isinstance(r, Skipped) for r in c.result)]
    assert skipped == ["liveness-kills-during-load"] and esuite.failures == 0, skipped
print(f"  read back: {len(cases)} cases, failed {[c.name for c in failed]}, skipped when expected {skipped}")
PY
then pass "junitparser (JUnit and xunit2) reads the suite, the cases, the failure and the skip back"
else fail "junitparser read-back"; fi

# pre-commit, with this checkout as the hook repository (its HEAD) and the release binary on PATH.
export PATH="$root/target/release:$PATH"
hooks="$work/hooks"
git clone --quiet "$root" "$hooks"
cp "$root/.pre-commit-hooks.yaml" "$hooks/"
git -C "$hooks" add .pre-commit-hooks.yaml
git -C "$hooks" -c user.name=ci -c user.email=ci@localhost commit --quiet --allow-empty -m "hooks as checked"
rev="$(git -C "$hooks" rev-parse HEAD)"
repo="$work/repo"
git init --quiet "$repo"
cat > "$repo/.pre-commit-config.yaml" <<YAML
repos:
- repo: $hooks
  rev: $rev
  hooks:
  - id: chaos-inference-simulate-system
    args: [--scenarios, "4"]
YAML
commit_hook() { (cd "$repo" && PRE_COMMIT_HOME="$work/pre-commit-home" "$tools/bin/pre-commit" run > "$work/hook.out" 2>&1); }
cp "$work/kills.yaml" "$repo/kills.yaml"
git -C "$repo" add .pre-commit-config.yaml kills.yaml
if commit_hook; then fail "pre-commit: passed a manifest whose liveness probe kills during the load"; sed 's/^/    /' "$work/hook.out"
elif grep -q 'liveness-kills-during-load' "$work/hook.out"; then pass "pre-commit: fails on the staged manifest that kills during the load, naming the finding"
else fail "pre-commit: failed without naming the finding"; sed 's/^/    /' "$work/hook.out"; fi
git -C "$repo" rm --quiet --cached kills.yaml
rm "$repo/kills.yaml"
cp "$root"/manifests/*.yaml "$repo/"
mkdir -p "$repo/chart/templates" && cp "$root"/manifests/helm/chaos-inference/templates/*.yaml "$repo/chart/templates/"
printf 'name: ci
on: [push]
jobs: {}
' > "$repo/workflow.yml"
git -C "$repo" add .
if commit_hook; then pass "pre-commit: passes the shipped manifests, with a workflow file and Helm templates staged beside them"
else fail "pre-commit: failed on the shipped manifests"; sed 's/^/    /' "$work/hook.out"; fi

# kubectl plugin: the binary under the plugin name on PATH (a symlink here; a copy works too).
kubectl="$root/.tools/bin/kubectl"
[ -x "$kubectl" ] || (cd "$root" && scripts/install-validators.sh >/dev/null)
mkdir -p "$work/plugins"
ln -s "$bin" "$work/plugins/kubectl-chaos_inference"
if PATH="$work/plugins:$PATH" "$kubectl" plugin list 2>/dev/null | grep -q "$work/plugins/kubectl-chaos_inference"; then
    pass "kubectl plugin list finds kubectl-chaos_inference"
else fail "kubectl plugin list does not find kubectl-chaos_inference"; fi
set +e
PATH="$work/plugins:$PATH" "$kubectl" chaos-inference simulate --scenarios 4 --output json kills.yaml > plugin.json 2>plugin.err; code_plugin=$?
set -e
if [ "$code_plugin" = 1 ] && grep -q '"liveness-kills-during-load"' plugin.json; then
    pass "kubectl chaos-inference simulate runs the binary (exit 1, the finding in its JSON)"
else fail "kubectl chaos-inference simulate: exit $code_plugin"; sed 's/^/    /' plugin.err; fi

# tune's patch through the real kubectl: `kubectl patch --local` merges it into the manifest,
# and the result has exactly the probes `tune --output json` chose, one handler each.
deploy="$root/manifests/online-inference-deployment-overload.yaml"
service="$root/manifests/online-inference-service.yaml"
"$bin" tune --scenarios 6 --load 100 --output patch "$deploy" "$service" > tune-patch.yaml
"$bin" tune --scenarios 6 --load 100 --output json "$deploy" "$service" > tune.json
set +e
"$kubectl" patch --local -f "$deploy" --type strategic --patch-file tune-patch.yaml -o json > patched.json 2>patch.err
code_patch=$?
python3 - tune.json patched.json > patch-check.out 2>&1 <<'EOF'
import json, sys
tuned = [t for t in json.load(open(sys.argv[1])) if t["workload"] == "online-inference-overload"][0]["tuned"]["probes"]
text, objects, at = open(sys.argv[2]).read(), [], 0
while text[at:].strip():  # one object per document of the manifest
    obj, at = json.JSONDecoder().raw_decode(text, len(text) - len(text[at:].lstrip()))
    objects.append(obj)
deployment = [o for o in objects if o["kind"] == "Deployment"][0]
container = deployment["spec"]["template"]["spec"]["containers"][0]
for p in tuned:
    got = container.get(p["probe"]) or sys.exit(f"{p['probe']} missing")
    for k in ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "successThreshold", "failureThreshold"):
        if got.get(k) != p[k]:
            sys.exit(f"{p['probe']}.{k}: {got.get(k)}, tuned {p[k]}")
    kind = {"http-get": "httpGet", "tcp-socket": "tcpSocket", "grpc": "grpc", "exec": "exec"}[p["handler"].split(" ")[0]]
    handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if h in got]
    if handlers != [kind]:
        sys.exit(f"{p['probe']}: handlers {handlers}, tuned {kind}")
# A probe the tuned setting does not have (the patch sets it to null) is gone.
extra = [k for k in ("startupProbe", "livenessProbe", "readinessProbe")
         if k in container and k not in {p["probe"] for p in tuned}]
if extra:
    sys.exit(f"{extra} kept, not in the tuned setting")
print(f"{len(tuned)} probes as tuned, {3 - len(tuned)} removed")
EOF
code_check=$?
set -e
if [ "$code_patch" = 0 ] && [ "$code_check" = 0 ]; then
    pass "kubectl patch --local with tune's patch gives the tuned probes ($(cat patch-check.out))"
else fail "tune's patch through kubectl: patch exit $code_patch, check: $(cat patch-check.out patch.err)"; fi

cd "$root"
if [ "$failures" -gt 0 ]; then echo "check-lint-formats: $failures failure(s)"; exit 1; fi
echo "check-lint-formats: all checks passed"
