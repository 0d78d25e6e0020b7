#!/usr/bin/env bash
# The shipped manifests pass their own lint: `chaos-inference simulate` predicts what Kubernetes
# does with every file in manifests/, every rendered Kustomize overlay and the rendered Helm chart
# (its defaults, and every built-in profile through `--set chaos.profile`), and fails on any
# finding of warning level or above that the manifest does not name in its
# `chaos-inference/expected-findings` annotation. A named finding that does not appear fails too,
# so a manifest that misbehaves on purpose shows exactly its finding.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
[ -x .tools/bin/kubectl ] || scripts/install-validators.sh
[ -x .scanners/bin/helm ] || scripts/install-scanners.sh
cargo build --release --locked --quiet --bin chaos-inference
bin="$root/target/release/chaos-inference"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
lint() { "$bin" simulate --fail-on warning --scenarios 12 "$@" > "$work/out.txt" 2>&1; }
# The findings of a rendering, exactly: `only RULE,RULE [SIMULATE FLAGS] < file` (- for none).
only() {
    local rules="$1"; shift
    "$bin" simulate --output json --fail-on never --scenarios 12 "$@" - > "$work/report.json" 2>&1 || return 1
    python3 - "$rules" "$work/report.json" <<'PY'
import json, sys
want = {r for r in sys.argv[1].split(",") if r and r != "-"}
report = json.load(open(sys.argv[2]))
got = {f["rule"] for f in report["findings"] if f["severity"] in ("warning", "error")}
if got != want:
    print(f"expected findings {sorted(want)}, got {sorted(got)}")
    for f in report["findings"]:
        print(f"  {f['severity']} {f['rule']}: {f['message']}")
    sys.exit(1)
PY
}

# The check must be able to fail: the teaching variant without its annotation.
grep -v 'chaos-inference/expected-findings' manifests/online-inference-pod-without-startup-probe.yaml > "$work/no-annotation.yaml"
if lint "$work/no-annotation.yaml"; then fail "simulate passed a pod that liveness kills during its load"; else pass "simulate refuses a pod that liveness kills during its load"; fi

for file in manifests/*.yaml docs/your-app/*.yaml; do
    if lint "$file"; then pass "$file"; else cat "$work/out.txt"; fail "$file"; fi
done
for dir in manifests/kustomize/base manifests/kustomize/overlays/*/; do
    dir="${dir%/}"
    if .tools/bin/kubectl kustomize "$dir" > "$work/rendered.yaml" && lint "$work/rendered.yaml"; then
        pass "$dir (rendered)"
    else
        cat "$work/out.txt"; fail "$dir (rendered)"
    fi
done
chart=manifests/helm/chaos-inference
if .scanners/bin/helm template demo "$chart" > "$work/chart.yaml" && lint "$work/chart.yaml"; then
    pass "$chart (defaults)"
else
    cat "$work/out.txt"; fail "$chart (defaults)"
fi
# Every built-in profile with the chart's probes, and the findings each must show.
while read -r profile expected extra; do
    # shellcheck disable=SC2086 # $extra holds helm flags
    if .scanners/bin/helm template demo "$chart" --set "chaos.profile=$profile" $extra > "$work/chart.yaml" \
        && only "$expected" < "$work/chart.yaml"; then
        pass "$chart with $profile $extra (findings: $expected)"
    else
        fail "$chart with $profile"
    fi
done <<'PROFILES'
none -
v2 -
crash-loop -
liveness-hang -
unhealthy -
flapping-readiness -
latency -
errors -
memory-leak leak-oom
cpu-burn cpu-limit-pinned
slow-shutdown -
overload -
slow-start - --set probes.startup.enabled=true
slow-start liveness-kills-during-load
v2 - --set probes.protocol=grpc
liveness-hang - --set probes.protocol=grpc
flapping-readiness - --set probes.protocol=grpc
slow-start - --set probes.protocol=grpc --set probes.startup.enabled=true
slow-start liveness-kills-during-load --set probes.protocol=grpc
PROFILES

# Under load: the restart-storm pair (manifest, overlay, chart values) shows exactly its
# findings with 100 requests/s and one pod deleted once all are Ready; at 60/s (under what two
# pods serve) the storm manifest, its annotation taken off, shows none of them.
storm_rules=liveness-kills-under-load,restart-storm,readiness-not-shedding,no-headroom-for-one-restart
while read -r what expected rate; do
    case $what in
        manifests/*.yaml) cat "$what" > "$work/load.yaml" ;;
        unannotated:*) grep -v 'chaos-inference/expected-findings' "${what#unannotated:}" > "$work/load.yaml" ;;
        overlays/*) .tools/bin/kubectl kustomize "manifests/kustomize/$what" > "$work/load.yaml" ;;
        values-*) .scanners/bin/helm template demo "$chart" -f "manifests/helm/$what" > "$work/load.yaml" ;;
    esac
    case $expected in storm) expected=$storm_rules ;; storm+same) expected=$storm_rules,liveness-same-as-readiness ;; esac
    if only "$expected" --load "$rate@45s" --step delete-pod@75s --horizon 5m < "$work/load.yaml"; then
        pass "$what at $rate/s, one pod deleted (findings: $expected)"
    else
        fail "$what at $rate/s"
    fi
done <<'LOADS'
manifests/online-inference-deployment-overload.yaml storm+same 100
manifests/online-inference-deployment-overload-fixed.yaml no-headroom-for-one-restart 100
unannotated:manifests/online-inference-deployment-overload.yaml liveness-same-as-readiness 60
overlays/overload storm 100
overlays/overload-fixed no-headroom-for-one-restart 100
values-overload.yaml storm 100
values-overload-fixed.yaml no-headroom-for-one-restart 100
LOADS

[ "$failures" -eq 0 ] || { echo "$failures simulate check(s) failed"; exit 1; }
echo "every shipped manifest passes simulate"
