//! The probe settings of every shipped manifest, Kustomize overlay and the Helm chart's defaults
//! fit the chaos profile they run: liveness never kills a pod that is only loading, a startup
//! probe outlasts the worst-case load, readiness notices every unready window within its length,
//! and a profile that hangs or turns unhealthy has a liveness probe to restart it. Also: nothing
//! newer than the Kubernetes 1.20 API (gRPC probes, probe-level grace periods).

use std::path::{Path, PathBuf};
use std::time::Duration;

use chaos_inference::chaos::fault::Effect;
use chaos_inference::chaos::profile::Profile;
use serde::Deserialize;
use serde_yaml::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[derive(Debug, Clone, Copy)]
struct Probe {
    initial_delay: u64,
    period: u64,
    timeout: u64,
    failure_threshold: u64,
}

impl Probe {
    fn from(v: &Value) -> Option<Probe> {
        if v.is_null() {
            return None;
        }
        let n = |key: &str, default: u64| v.get(key).and_then(Value::as_u64).unwrap_or(default);
        Some(Probe {
            initial_delay: n("initialDelaySeconds", 0),
            period: n("periodSeconds", 10),
            timeout: n("timeoutSeconds", 1),
            failure_threshold: n("failureThreshold", 3),
        })
    }

    /// Longest time the probe tolerates failures before acting.
    fn budget(&self) -> Duration {
        Duration::from_secs(self.initial_delay + self.period * self.failure_threshold)
    }

    /// Longest time from a failure starting to the probe acting on it.
    fn detection(&self) -> Duration {
        Duration::from_secs(self.period * self.failure_threshold + self.timeout)
    }
}

/// The profile a container runs, from its CHAOS_PROFILE (built-in name or mounted file).
fn profile_of(container: &Value) -> Profile {
    let env = container["env"].as_sequence().cloned().unwrap_or_default();
    let value = env
        .iter()
        .find(|e| e["name"] == "CHAOS_PROFILE")
        .and_then(|e| e["value"].as_str())
        .unwrap_or("none")
        .to_string();
    // The ConfigMap is generated from chaos-profiles/ (checked by gen-profiles-configmap --check).
    let name = value
        .strip_prefix("/etc/chaos-inference/profiles/")
        .map_or(value.clone(), |f| f.trim_end_matches(".toml").to_string());
    Profile::load(&name).unwrap_or_else(|e| panic!("{e}"))
}

/// Problems with one container's probes for its profile.
fn misfits(container: &Value) -> Vec<String> {
    let profile = profile_of(container);
    let startup = Probe::from(&container["startupProbe"]);
    let readiness = Probe::from(&container["readinessProbe"]);
    let liveness = Probe::from(&container["livenessProbe"]);
    let high = |r: Option<chaos_inference::chaos::duration::DurationRange>| {
        r.map_or(Duration::ZERO, |r| r.high)
    };
    let bind = high(profile.startup.bind_delay);
    let load = high(profile.startup.load_delay);
    let live_while_loading = profile.startup.live_while_loading.unwrap_or(true);
    let mut problems = Vec::new();
    // Time during which liveness fails although nothing is wrong: port closed, or not live yet.
    let not_live_yet = bind
        + if live_while_loading {
            Duration::ZERO
        } else {
            load
        };
    match (startup, liveness) {
        (Some(s), _) if s.budget() <= bind + load + Duration::from_secs(s.period) => problems.push(format!(
            "startupProbe gives up after {:?}, but the load may take {:?}",
            s.budget(),
            bind + load
        )),
        (None, Some(l)) if l.budget() <= not_live_yet => problems.push(format!(
            "livenessProbe kills after {:?} while the process may not be live for {:?}: add a startupProbe",
            l.budget(),
            not_live_yet
        )),
        _ => {}
    }
    if readiness.is_none()
        && (load > Duration::ZERO || profile.faults.iter().any(|f| f.effect == Effect::Unready))
    {
        problems.push(
            "no readinessProbe, but the profile has times when the pod must not get traffic".into(),
        );
    }
    for fault in &profile.faults {
        match fault.effect {
            Effect::Unready => {
                if let (Some(window), Some(r)) = (fault.timing.duration, readiness)
                    && r.detection() >= window.low
                {
                    problems.push(format!(
                        "readinessProbe notices an unready window after {:?}, but it lasts only {:?}",
                        r.detection(),
                        window.low
                    ));
                }
            }
            Effect::Hang | Effect::Unhealthy if liveness.is_none() => {
                problems.push(format!(
                    "profile has a {} fault but there is no livenessProbe to restart it",
                    fault.kind()
                ));
            }
            _ => {}
        }
    }
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let p = &container[probe];
        if p.get("grpc").is_some() || p.get("terminationGracePeriodSeconds").is_some() {
            problems.push(format!("{probe} uses a field newer than Kubernetes 1.20"));
        }
    }
    problems
}

/// The pod spec inside any workload document.
fn pod_spec(doc: &Value) -> Option<&Value> {
    match doc["kind"].as_str()? {
        "Pod" => Some(&doc["spec"]),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            Some(&doc["spec"]["template"]["spec"])
        }
        _ => None,
    }
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect()
}

fn check_workloads(docs: &[Value], origin: &str) -> usize {
    let mut checked = 0;
    for doc in docs {
        let Some(spec) = pod_spec(doc) else { continue };
        for container in spec["containers"].as_sequence().unwrap() {
            let problems = misfits(container);
            assert!(
                problems.is_empty(),
                "{origin} ({}): {problems:#?}",
                doc["metadata"]["name"].as_str().unwrap_or("?")
            );
            checked += 1;
        }
    }
    checked
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_plain_manifest_fits_its_profile() {
    let mut checked = 0;
    for file in yaml_files("manifests") {
        checked += check_workloads(&documents(&file), &file.display().to_string());
    }
    assert!(checked >= 6, "only {checked} workloads found");
}

/// Applies an overlay's strategic-merge patch to the base container the way our patches use it:
/// env entries merge by name, other container keys replace.
fn patched_container(base: &Value, patch: &Value) -> Value {
    let mut container = base.clone();
    let Some(patch) = patch["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .and_then(|c| c.first())
    else {
        return container;
    };
    for (key, value) in patch.as_mapping().unwrap() {
        if key == "env" {
            let env = container["env"].as_sequence_mut().unwrap();
            for entry in value.as_sequence().unwrap() {
                match env.iter_mut().find(|e| e["name"] == entry["name"]) {
                    Some(existing) => *existing = entry.clone(),
                    None => env.push(entry.clone()),
                }
            }
        } else if key != "name" {
            container[key.as_str().unwrap()] = value.clone();
        }
    }
    container
}

#[test]
fn every_kustomize_overlay_fits_its_profile() {
    let base = documents(&Path::new(ROOT).join("manifests/kustomize/base/deployment.yaml"));
    let base_container = &pod_spec(&base[0]).unwrap()["containers"][0];
    assert!(misfits(base_container).is_empty());
    let overlays = Path::new(ROOT).join("manifests/kustomize/overlays");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&overlays).unwrap() {
        let dir = entry.unwrap().path();
        let patch = dir.join("patch.yaml");
        if !patch.exists() {
            continue;
        }
        let container = patched_container(base_container, &documents(&patch)[0]);
        let problems = misfits(&container);
        assert!(problems.is_empty(), "{}: {problems:#?}", dir.display());
        names.push(dir.file_name().unwrap().to_string_lossy().to_string());
    }
    names.sort();
    for required in ["memory-leak", "slow-shutdown", "slow-start", "v2"] {
        assert!(
            names.iter().any(|n| n == required),
            "no overlay {required}: {names:?}"
        );
    }
}

#[test]
fn helm_chart_defaults_fit_every_builtin_profile_that_needs_no_startup_probe() {
    let values =
        documents(&Path::new(ROOT).join("manifests/helm/chaos-inference/values.yaml"))[0].clone();
    let probe = |name: &str| {
        let p = &values["probes"][name];
        if p["enabled"] == Value::Bool(true) {
            p.clone()
        } else {
            Value::Null
        }
    };
    for builtin in chaos_inference::chaos::profile::BUILTINS {
        let mut container = serde_yaml::Mapping::new();
        container.insert(
            "env".into(),
            serde_yaml::from_str(&format!(
                "[{{name: CHAOS_PROFILE, value: {}}}]",
                builtin.name
            ))
            .unwrap(),
        );
        container.insert("readinessProbe".into(), probe("readiness"));
        container.insert("livenessProbe".into(), probe("liveness"));
        let mut startup = values["probes"]["startup"].clone();
        let problems = misfits(&Value::Mapping(container.clone()));
        if builtin.name == "slow-start" {
            // The chart's documented way: probes.startup.enabled=true.
            assert!(
                !problems.is_empty(),
                "slow-start must need the startup probe"
            );
            startup["enabled"] = Value::Bool(true);
            container.insert("startupProbe".into(), startup);
            let problems = misfits(&Value::Mapping(container));
            assert!(
                problems.is_empty(),
                "slow-start with probes.startup.enabled: {problems:#?}"
            );
        } else {
            assert!(problems.is_empty(), "{}: {problems:#?}", builtin.name);
        }
    }
}

#[test]
fn the_fit_check_catches_probes_that_do_not_fit() {
    let container = |yaml: &str| -> Value { serde_yaml::from_str(yaml).unwrap() };
    // slow-start with liveness and no startup probe: killed while loading.
    let c = container(
        "{env: [{name: CHAOS_PROFILE, value: slow-start}], readinessProbe: {periodSeconds: 2}, livenessProbe: {periodSeconds: 5, failureThreshold: 3}}",
    );
    assert!(
        misfits(&c).iter().any(|p| p.contains("startupProbe")),
        "{:?}",
        misfits(&c)
    );
    // A startup probe shorter than the 90 s load.
    let c = container(
        "{env: [{name: CHAOS_PROFILE, value: slow-start}], readinessProbe: {}, startupProbe: {periodSeconds: 5, failureThreshold: 10}}",
    );
    assert!(
        misfits(&c).iter().any(|p| p.contains("gives up")),
        "{:?}",
        misfits(&c)
    );
    // Readiness too slow for a 10 s window.
    let c = container(
        "{env: [{name: CHAOS_PROFILE, value: flapping-readiness}], readinessProbe: {periodSeconds: 10, failureThreshold: 3}, livenessProbe: {}}",
    );
    assert!(
        misfits(&c).iter().any(|p| p.contains("unready window")),
        "{:?}",
        misfits(&c)
    );
    // A hang without liveness.
    let c = container("{env: [{name: CHAOS_PROFILE, value: liveness-hang}], readinessProbe: {}}");
    assert!(
        misfits(&c).iter().any(|p| p.contains("no livenessProbe")),
        "{:?}",
        misfits(&c)
    );
    // A gRPC probe is newer than 1.20.
    let c = container(
        "{env: [{name: CHAOS_PROFILE, value: none}], livenessProbe: {grpc: {port: 8000}}}",
    );
    assert!(
        misfits(&c).iter().any(|p| p.contains("1.20")),
        "{:?}",
        misfits(&c)
    );
}
