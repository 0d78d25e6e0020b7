//! Manifests in, the few fields the simulation needs out, with every Kubernetes default applied.
//!
//! Documents are read as typed Kubernetes objects (k8s-openapi); kinds other than Pod,
//! ReplicaSet, Deployment and ConfigMap (Services, NetworkPolicies, ...) are passed over.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Pod, PodSpec, Probe as K8sProbe, Service as K8sService,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use super::app::file::AppTimeline;
use super::yaml::{self, Position, Positions};
pub use crate::config::quantity;

/// The annotation that names findings a manifest shows on purpose, comma-separated.
pub const EXPECTED_FINDINGS: &str = "chaos-inference/expected-findings";
/// The pod template annotation that gives a container its timeline:
/// `chaos-inference/timeline.<container>: FILE` (relative to the manifest) or a built-in profile.
pub const TIMELINE_ANNOTATION: &str = "chaos-inference/timeline.";

/// Kubernetes API defaults (`pkg/apis/core/v1/defaults.go`, `pkg/apis/apps/v1/defaults.go`).
pub mod defaults {
    /// Probe `periodSeconds`.
    pub const PERIOD_SECONDS: i32 = 10;
    /// Probe `timeoutSeconds`.
    pub const TIMEOUT_SECONDS: i32 = 1;
    /// Probe `successThreshold`.
    pub const SUCCESS_THRESHOLD: i32 = 1;
    /// Probe `failureThreshold`.
    pub const FAILURE_THRESHOLD: i32 = 3;
    /// Pod `terminationGracePeriodSeconds`.
    pub const GRACE_SECONDS: i64 = 30;
    /// Deployment and ReplicaSet `replicas`.
    pub const REPLICAS: i32 = 1;
    /// Deployment `rollingUpdate.maxSurge` and `maxUnavailable`.
    pub const ROLLING_PERCENT: &str = "25%";
}

/// Input that cannot be read: where (file, line and column where the parser knows them, the
/// document, the field's path) and what is wrong, on one line.
#[derive(Debug, Clone, PartialEq)]
pub struct InputError {
    pub file: String,
    pub position: Option<Position>,
    /// 1 for the first document of the file.
    pub document: Option<usize>,
    /// The field's path, e.g. `spec.containers[0].livenessProbe.periodSeconds`.
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.file)?;
        if let Some(p) = self.position {
            write!(f, ":{p}")?;
        }
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for InputError {}

/// Where a workload comes from: its file, its document and where each of its fields is.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    pub file: String,
    /// 1 for the first document of the file.
    pub document: usize,
    pub positions: Arc<Positions>,
}

impl Origin {
    /// An error about `field` (a path from the document's root) of this document.
    fn error(&self, field: &str, message: impl Into<String>) -> InputError {
        InputError {
            file: self.file.clone(),
            position: self.positions.nearest(field),
            document: Some(self.document),
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    /// Where `field` is, or the nearest field above it the document has.
    pub fn position(&self, field: &str) -> Option<Position> {
        self.positions.nearest(field)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: document {}", self.file, self.document)
    }
}

/// What kind of workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    ReplicaSet,
    Deployment,
}

impl Kind {
    /// The Kubernetes kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::Deployment => "Deployment",
        }
    }
}

/// How a Deployment replaces its pods.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// `maxSurge` and `maxUnavailable` as written (a count or a percentage).
    RollingUpdate {
        max_surge: IntOrString,
        max_unavailable: IntOrString,
    },
    /// Every old pod goes before any new one starts.
    Recreate,
}

/// One workload of the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub kind: Kind,
    pub name: String,
    pub replicas: u32,
    pub strategy: Strategy,
    pub min_ready_seconds: u32,
    pub template: Template,
    /// Findings the manifest shows on purpose (its `chaos-inference/expected-findings`).
    pub expected_findings: Vec<String>,
    /// The labels its pods carry (a Pod's own, the template's otherwise).
    pub pod_labels: BTreeMap<String, String>,
    /// File, document and the positions of its fields.
    pub origin: Origin,
}

/// A Service: the pods it sends traffic to.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// `spec.selector`; a Service without one selects no pod (its endpoints are its own).
    pub selector: BTreeMap<String, String>,
    pub origin: Origin,
}

impl Service {
    /// Whether it sends traffic to the pods of `workload`.
    pub fn selects(&self, workload: &Workload) -> bool {
        !self.selector.is_empty()
            && self
                .selector
                .iter()
                .all(|(k, v)| workload.pod_labels.get(k) == Some(v))
    }
}

/// A pod template: what every pod of the workload runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The path of the pod spec in its document (`spec` of a Pod, `spec.template.spec`
    /// otherwise).
    pub field: String,
    pub restart_policy: RestartPolicy,
    pub grace: Duration,
    pub containers: Vec<Container>,
}

impl Template {
    /// The container the simulation models: the first with a timeline.
    pub fn modelled(&self) -> Option<&Container> {
        self.containers.iter().find(|c| c.modelled())
    }
}

/// `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// Where an environment variable's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvValue {
    Literal(String),
    /// `fieldRef: metadata.name`: the pod's name.
    PodName,
    /// Anything else (`secretKeyRef`, other fields): not known before the pod runs.
    Unknown,
}

/// A container, as the simulation sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// Its path in its document, e.g. `spec.template.spec.containers[0]`.
    pub field: String,
    pub name: String,
    pub image: String,
    /// `command` then `args`, as given.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, EnvValue>,
    pub startup: Option<Probe>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    /// Memory limit in bytes.
    pub memory_limit: Option<u64>,
    /// CPU limit in cores.
    pub cpu_limit: Option<f64>,
    /// A profile file `CHAOS_PROFILE` names inside a ConfigMap volume: the mount's content
    /// when the ConfigMap is in the input, `Err` with why not otherwise.
    pub mounted_profile: Option<Result<String, String>>,
    /// The ports it declares: name (empty when none) and number.
    pub ports: Vec<(String, u16)>,
    /// A `preStop` hook that sleeps (`sleep: {seconds}` or an exec of `sleep N`): how long.
    pub pre_stop_sleep: Option<u64>,
    /// The pod template's `chaos-inference/timeline.<name>` annotation, as written.
    pub timeline_annotation: Option<String>,
    /// What is known of the application in it.
    pub app: App,
}

/// What is known of the application in a container, and so whether it is modelled.
#[derive(Debug, Clone, PartialEq)]
pub enum App {
    /// This server (its image, running `serve`): its timeline comes from its environment.
    Server,
    /// A timeline from `chaos-inference/timeline.<container>` or `--app`.
    Timeline(Arc<AppTimeline>),
    /// Nothing: the container is not modelled.
    Unknown,
}

impl Container {
    /// Whether a timeline models it.
    pub fn modelled(&self) -> bool {
        !matches!(self.app, App::Unknown)
    }

    /// The image's repository without its registry or tag (`chaos-inference` of
    /// `localhost/chaos-inference:v2`, `gunicorn` of `docker.io/library/gunicorn@sha256:...`).
    pub fn image_repository(&self) -> &str {
        let last = self.image.rsplit('/').next().unwrap_or(&self.image);
        last.split(['@', ':']).next().unwrap_or(last)
    }

    /// The image's tag (`v2` of `chaos-inference:v2`), `latest` when none.
    pub fn image_tag(&self) -> &str {
        let last = self.image.rsplit('/').next().unwrap_or(&self.image);
        let last = last.split('@').next().unwrap_or(last);
        last.split_once(':').map_or("latest", |(_, tag)| tag)
    }

    /// The image is this project's (the repository's last part is `chaos-inference`) and the
    /// container runs its server (not, say, `probe`, as a `helm test` pod does).
    pub fn is_chaos_inference(&self) -> bool {
        let repository = self.image_repository();
        let subcommand = self
            .argv
            .iter()
            .find(|a| !a.starts_with('-') && !a.ends_with("chaos-inference"));
        repository == "chaos-inference" && subcommand.is_none_or(|s| s == "serve")
    }
}

/// A probe with its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub handler: Handler,
    pub initial_delay: u32,
    pub period: u32,
    pub timeout: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Probe {
    /// How long a probe that fails from its first try takes to act: initial delay plus
    /// `failureThreshold` periods.
    pub fn budget(&self) -> Duration {
        Duration::from_secs(u64::from(
            self.initial_delay + self.period * self.failure_threshold,
        ))
    }
}

/// What a probe calls, ports resolved to numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Handler {
    Http { path: String, port: u16 },
    Tcp { port: u16 },
    Exec { command: Vec<String> },
    Grpc { port: u16, service: String },
}

impl Handler {
    /// How `kubectl describe` names the probe's target.
    pub fn describe(&self) -> String {
        match self {
            Handler::Http { path, port } => format!("http-get :{port}{path}"),
            Handler::Tcp { port } => format!("tcp-socket :{port}"),
            Handler::Exec { command } => format!("exec {}", command.join(" ")),
            Handler::Grpc { port, service } => format!("grpc :{port} service={service:?}"),
        }
    }
}

/// Everything read from the input.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub workloads: Vec<Workload>,
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub services: Vec<Service>,
    /// Documents passed over, by kind, for the report.
    pub ignored: Vec<String>,
}

/// Reads every document of every source (file name, text), then resolves mounted profiles.
pub fn read(sources: &[(String, String)]) -> Result<Input, InputError> {
    let mut input = Input::default();
    let mut raw_workloads = Vec::new();
    let mut hooks = Vec::new();
    for (file, text) in sources {
        let documents = yaml::documents(text).map_err(|e| InputError {
            file: file.clone(),
            position: e.position,
            document: None,
            field: None,
            message: format!("not YAML: {}", e.message),
        })?;
        for (index, document) in documents.into_iter().enumerate() {
            if document.value.is_null() {
                continue;
            }
            let origin = Origin {
                file: file.clone(),
                document: index + 1,
                positions: Arc::new(document.positions),
            };
            let kind = document.value["kind"].as_str().unwrap_or("").to_string();
            match kind.as_str() {
                "Pod" | "ReplicaSet" | "Deployment" => {
                    if document.value["metadata"]["annotations"]["helm.sh/hook"].is_string() {
                        hooks.push((origin.file.clone(), origin.document));
                    }
                    raw_workloads.push((origin, kind, document.value))
                }
                "ConfigMap" => {
                    let map: ConfigMap = typed(&origin, document.value)?;
                    let name = map.metadata.name.unwrap_or_default();
                    input
                        .config_maps
                        .insert(name, map.data.unwrap_or_default().into_iter().collect());
                }
                "Service" => {
                    let service: K8sService = typed(&origin, document.value)?;
                    input.services.push(Service {
                        name: service.metadata.name.unwrap_or_default(),
                        selector: service
                            .spec
                            .and_then(|spec| spec.selector)
                            .unwrap_or_default()
                            .into_iter()
                            .collect(),
                        origin,
                    });
                }
                "" => return Err(origin.error("kind", "required")),
                other => input.ignored.push(other.to_string()),
            }
        }
    }
    for (origin, kind, document) in raw_workloads {
        let workload = match kind.as_str() {
            "Pod" => {
                let pod: Pod = typed(&origin, document)?;
                let annotations = pod.metadata.annotations.clone().unwrap_or_default();
                let labels = pod.metadata.labels.clone().unwrap_or_default();
                let spec = pod.spec.ok_or_else(|| origin.error("spec", "required"))?;
                Workload {
                    kind: Kind::Pod,
                    name: name_of(&origin, pod.metadata.name)?,
                    replicas: 1,
                    strategy: Strategy::Recreate,
                    min_ready_seconds: 0,
                    template: template(
                        &origin,
                        "spec",
                        spec,
                        &annotations.clone().into_iter().collect(),
                        &input.config_maps,
                    )?,
                    expected_findings: expected(&annotations),
                    pod_labels: labels.into_iter().collect(),
                    origin,
                }
            }
            "ReplicaSet" => {
                let rs: ReplicaSet = typed(&origin, document)?;
                let annotations = rs.metadata.annotations.clone().unwrap_or_default();
                let spec = rs.spec.ok_or_else(|| origin.error("spec", "required"))?;
                let labels = spec
                    .template
                    .as_ref()
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                let template_annotations: BTreeMap<String, String> = spec
                    .template
                    .as_ref()
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.annotations.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let pod = spec
                    .template
                    .and_then(|t| t.spec)
                    .ok_or_else(|| origin.error("spec.template.spec", "required"))?;
                Workload {
                    kind: Kind::ReplicaSet,
                    name: name_of(&origin, rs.metadata.name)?,
                    replicas: count(&origin, "spec.replicas", spec.replicas)?,
                    strategy: Strategy::Recreate,
                    min_ready_seconds: u32::try_from(spec.min_ready_seconds.unwrap_or(0))
                        .unwrap_or(0),
                    template: template(
                        &origin,
                        "spec.template.spec",
                        pod,
                        &template_annotations,
                        &input.config_maps,
                    )?,
                    expected_findings: expected(&annotations),
                    pod_labels: labels.into_iter().collect(),
                    origin,
                }
            }
            _ => {
                let deployment: Deployment = typed(&origin, document)?;
                let annotations = deployment.metadata.annotations.clone().unwrap_or_default();
                let spec = deployment
                    .spec
                    .ok_or_else(|| origin.error("spec", "required"))?;
                let labels = spec
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.labels.clone())
                    .unwrap_or_default();
                let template_annotations: BTreeMap<String, String> = spec
                    .template
                    .metadata
                    .as_ref()
                    .and_then(|m| m.annotations.clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let pod = spec
                    .template
                    .spec
                    .ok_or_else(|| origin.error("spec.template.spec", "required"))?;
                let strategy = spec.strategy.unwrap_or_default();
                let strategy = match strategy.type_.as_deref() {
                    Some("Recreate") => Strategy::Recreate,
                    None | Some("RollingUpdate") => {
                        let rolling = strategy.rolling_update.unwrap_or_default();
                        let percent = || IntOrString::String(defaults::ROLLING_PERCENT.into());
                        Strategy::RollingUpdate {
                            max_surge: rolling.max_surge.unwrap_or_else(percent),
                            max_unavailable: rolling.max_unavailable.unwrap_or_else(percent),
                        }
                    }
                    Some(other) => {
                        return Err(origin.error(
                            "spec.strategy.type",
                            format!("expected RollingUpdate or Recreate, got `{other}`"),
                        ));
                    }
                };
                Workload {
                    kind: Kind::Deployment,
                    name: name_of(&origin, deployment.metadata.name)?,
                    replicas: count(&origin, "spec.replicas", spec.replicas)?,
                    strategy,
                    min_ready_seconds: u32::try_from(spec.min_ready_seconds.unwrap_or(0))
                        .unwrap_or(0),
                    template: template(
                        &origin,
                        "spec.template.spec",
                        pod,
                        &template_annotations,
                        &input.config_maps,
                    )?,
                    expected_findings: expected(&annotations),
                    pod_labels: labels.into_iter().collect(),
                    origin,
                }
            }
        };
        // A Helm hook (a `helm test` pod) runs once, around a release, not as a workload.
        if hooks.contains(&(workload.origin.file.clone(), workload.origin.document)) {
            input.ignored.push(format!(
                "{} {} (a Helm hook)",
                workload.kind.as_str(),
                workload.name
            ));
        } else {
            input.workloads.push(workload);
        }
    }
    Ok(input)
}

/// The document as a typed Kubernetes object; an error names the field that does not fit.
fn typed<T: serde::de::DeserializeOwned>(
    origin: &Origin,
    document: Value,
) -> Result<T, InputError> {
    serde_path_to_error::deserialize(document).map_err(|e| {
        let field = e.path().to_string();
        origin.error(&field, e.inner().to_string())
    })
}

fn name_of(origin: &Origin, name: Option<String>) -> Result<String, InputError> {
    name.filter(|n| !n.is_empty())
        .ok_or_else(|| origin.error("metadata.name", "required"))
}

fn count(origin: &Origin, field: &str, value: Option<i32>) -> Result<u32, InputError> {
    u32::try_from(value.unwrap_or(defaults::REPLICAS))
        .map_err(|_| origin.error(field, "expected 0 or more"))
}

fn expected(annotations: &BTreeMap<String, String>) -> Vec<String> {
    annotations
        .get(EXPECTED_FINDINGS)
        .map(|list| {
            list.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn template(
    origin: &Origin,
    field: &str,
    spec: PodSpec,
    annotations: &BTreeMap<String, String>,
    config_maps: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Template, InputError> {
    let restart_policy = match spec.restart_policy.as_deref() {
        None | Some("Always") => RestartPolicy::Always,
        Some("OnFailure") => RestartPolicy::OnFailure,
        Some("Never") => RestartPolicy::Never,
        Some(other) => {
            return Err(origin.error(
                &format!("{field}.restartPolicy"),
                format!("expected Always, OnFailure or Never, got `{other}`"),
            ));
        }
    };
    let grace = spec
        .termination_grace_period_seconds
        .unwrap_or(defaults::GRACE_SECONDS)
        .max(0);
    let volumes = spec.volumes.unwrap_or_default();
    let mut containers = Vec::new();
    for (i, c) in spec.containers.into_iter().enumerate() {
        let container_field = format!("{field}.containers[{i}]");
        let error = |name: &str, message: String| {
            origin.error(&format!("{container_field}.{name}"), message)
        };
        let ports: Vec<(String, u16)> = c
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    u16::try_from(p.container_port).unwrap_or(0),
                )
            })
            .collect();
        let probe = |name: &str, probe: Option<K8sProbe>| -> Result<Option<Probe>, InputError> {
            probe
                .map(|p| {
                    read_probe(p, &ports).map_err(|(key, m)| match key {
                        Some(key) => error(&format!("{name}.{key}"), m),
                        None => error(name, m),
                    })
                })
                .transpose()
        };
        let env: BTreeMap<String, EnvValue> = c
            .env
            .iter()
            .flatten()
            .map(|e| {
                let value = match (&e.value, &e.value_from) {
                    (Some(v), _) => EnvValue::Literal(v.clone()),
                    (None, Some(from))
                        if from
                            .field_ref
                            .as_ref()
                            .is_some_and(|f| f.field_path == "metadata.name") =>
                    {
                        EnvValue::PodName
                    }
                    (None, Some(_)) => EnvValue::Unknown,
                    (None, None) => EnvValue::Literal(String::new()),
                };
                (e.name.clone(), value)
            })
            .collect();
        let limits = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        let memory_limit = limits
            .get("memory")
            .map(|q| quantity(&q.0).map_err(|m| error("resources.limits.memory", m)))
            .transpose()?
            .map(|bytes| bytes as u64);
        let cpu_limit = limits
            .get("cpu")
            .map(|q| quantity(&q.0).map_err(|m| error("resources.limits.cpu", m)))
            .transpose()?;
        // A CHAOS_PROFILE path inside a ConfigMap volume: what the container will find there.
        let mounted_profile = match env.get("CHAOS_PROFILE") {
            Some(EnvValue::Literal(path)) if path.starts_with('/') => Some(mounted_file(
                path,
                &c.volume_mounts.clone().unwrap_or_default(),
                &volumes,
                config_maps,
            )),
            _ => None,
        };
        let pre_stop_sleep = c
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .and_then(|h| {
                h.sleep
                    .as_ref()
                    .map(|s| u64::try_from(s.seconds).unwrap_or(0))
                    .or_else(|| {
                        h.exec
                            .as_ref()
                            .and_then(|e| sleep_seconds(e.command.as_deref()?))
                    })
            });
        let timeline_annotation = annotations
            .get(&format!("{TIMELINE_ANNOTATION}{}", c.name))
            .cloned();
        containers.push(Container {
            field: container_field.clone(),
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            argv: c
                .command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .cloned()
                .collect(),
            env,
            startup: probe("startupProbe", c.startup_probe)?,
            liveness: probe("livenessProbe", c.liveness_probe)?,
            readiness: probe("readinessProbe", c.readiness_probe)?,
            memory_limit,
            cpu_limit,
            mounted_profile,
            ports,
            pre_stop_sleep,
            timeline_annotation,
            app: App::Unknown,
        });
    }
    // This server's containers are modelled by their environment; the others once a timeline
    // is given (`resolve_timelines`).
    for c in &mut containers {
        if c.is_chaos_inference() {
            c.app = App::Server;
        }
    }
    Ok(Template {
        field: field.to_string(),
        restart_policy,
        grace: Duration::from_secs(grace as u64),
        containers,
    })
}

/// The seconds a `preStop` exec command sleeps: `sleep N`, `/bin/sleep N` or a shell's
/// `sh -c "sleep N"`.
fn sleep_seconds(command: &[String]) -> Option<u64> {
    let words: Vec<&str> = command.iter().flat_map(|a| a.split_whitespace()).collect();
    let at = words
        .iter()
        .position(|w| *w == "sleep" || w.ends_with("/sleep"))?;
    words.get(at + 1)?.trim_end_matches(['s', ';']).parse().ok()
}

/// The content of the file at `path` when it lies in a ConfigMap volume of the input.
fn mounted_file(
    path: &str,
    mounts: &[k8s_openapi::api::core::v1::VolumeMount],
    volumes: &[k8s_openapi::api::core::v1::Volume],
    config_maps: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<String, String> {
    let Some((mount, file)) = mounts.iter().find_map(|m| {
        let dir = m.mount_path.trim_end_matches('/');
        path.strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(|file| (m, file))
    }) else {
        return Err(format!(
            "{path} is in no volume of the pod: the image has no such file"
        ));
    };
    let Some(source) = volumes
        .iter()
        .find(|v| v.name == mount.name)
        .and_then(|v| v.config_map.as_ref())
    else {
        return Err(format!(
            "{path} is in volume `{}`, which is not a ConfigMap",
            mount.name
        ));
    };
    let name = source.name.clone();
    let key = source
        .items
        .iter()
        .flatten()
        .find(|item| item.path == file)
        .map_or(file.to_string(), |item| item.key.clone());
    match config_maps.get(&name) {
        Some(data) => data
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("ConfigMap `{name}` has no key `{key}` for {path}")),
        None if source.optional == Some(true) => Err(format!(
            "ConfigMap `{name}` (optional) is not in the input: applied alone, {path} does not exist"
        )),
        None => Err(format!(
            "ConfigMap `{name}` is not in the input: applied alone, the pod cannot mount it"
        )),
    }
}

/// A probe with its defaults; an error names the key below the probe that is wrong (`None`:
/// the probe itself).
fn read_probe(
    p: K8sProbe,
    ports: &[(String, u16)],
) -> Result<Probe, (Option<&'static str>, String)> {
    let port =
        |key: &'static str, port: &IntOrString| -> Result<u16, (Option<&'static str>, String)> {
            match port {
                IntOrString::Int(n) => {
                    u16::try_from(*n).map_err(|_| (Some(key), format!("port {n} out of range")))
                }
                IntOrString::String(name) => ports
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, p)| *p)
                    .ok_or_else(|| {
                        (
                            Some(key),
                            format!("port `{name}` is not a named port of the container"),
                        )
                    }),
            }
        };
    let handler = if let Some(http) = p.http_get {
        Handler::Http {
            path: http.path.unwrap_or_else(|| "/".into()),
            port: port("httpGet.port", &http.port)?,
        }
    } else if let Some(tcp) = p.tcp_socket {
        Handler::Tcp {
            port: port("tcpSocket.port", &tcp.port)?,
        }
    } else if let Some(exec) = p.exec {
        Handler::Exec {
            command: exec.command.unwrap_or_default(),
        }
    } else if let Some(grpc) = p.grpc {
        Handler::Grpc {
            port: u16::try_from(grpc.port)
                .map_err(|_| (Some("grpc.port"), "out of range".to_string()))?,
            service: grpc.service.unwrap_or_default(),
        }
    } else {
        return Err((
            None,
            "no handler: expected httpGet, tcpSocket, exec or grpc".into(),
        ));
    };
    let positive = |value: Option<i32>, default: i32, name: &'static str| {
        let v = value.unwrap_or(default);
        u32::try_from(v)
            .ok()
            .filter(|v| *v >= 1)
            .ok_or_else(|| (Some(name), format!("expected 1 or more, got {v}")))
    };
    Ok(Probe {
        handler,
        initial_delay: u32::try_from(p.initial_delay_seconds.unwrap_or(0)).map_err(|_| {
            (
                Some("initialDelaySeconds"),
                "expected 0 or more".to_string(),
            )
        })?,
        period: positive(p.period_seconds, defaults::PERIOD_SECONDS, "periodSeconds")?,
        timeout: positive(
            p.timeout_seconds,
            defaults::TIMEOUT_SECONDS,
            "timeoutSeconds",
        )?,
        success_threshold: positive(
            p.success_threshold,
            defaults::SUCCESS_THRESHOLD,
            "successThreshold",
        )?,
        failure_threshold: positive(
            p.failure_threshold,
            defaults::FAILURE_THRESHOLD,
            "failureThreshold",
        )?,
    })
}

/// A replica count from `maxSurge`/`maxUnavailable`: a count, or a percentage of `replicas`
/// rounded up (surge) or down (unavailable), as `intstr.GetScaledValueFromIntOrPercent`.
pub fn scaled(value: &IntOrString, replicas: u32, round_up: bool) -> Result<u32, String> {
    match value {
        IntOrString::Int(n) => {
            u32::try_from(*n).map_err(|_| format!("expected 0 or more, got {n}"))
        }
        IntOrString::String(text) => {
            let percent: f64 = text
                .strip_suffix('%')
                .and_then(|p| p.trim().parse().ok())
                .ok_or_else(|| format!("expected a count or a percentage, got `{text}`"))?;
            let exact = percent * f64::from(replicas) / 100.0;
            Ok(if round_up {
                exact.ceil()
            } else {
                exact.floor()
            } as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_one(text: &str) -> Result<Input, InputError> {
        read(&[("test.yaml".into(), text.into())])
    }

    #[test]
    fn quantities_read_as_kubernetes_writes_them() {
        assert_eq!(quantity("128Mi").unwrap(), 134_217_728.0);
        assert_eq!(quantity("500m").unwrap(), 0.5);
        assert_eq!(quantity("2").unwrap(), 2.0);
        assert_eq!(quantity("1G").unwrap(), 1e9);
        assert!(quantity("lots").is_err());
    }

    #[test]
    fn percentages_round_up_for_surge_and_down_for_unavailable() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled(&pct("25%"), 3, true).unwrap(), 1);
        assert_eq!(scaled(&pct("25%"), 3, false).unwrap(), 0);
        assert_eq!(scaled(&pct("100%"), 3, false).unwrap(), 3);
        assert_eq!(scaled(&IntOrString::Int(2), 3, false).unwrap(), 2);
    }

    #[test]
    fn defaults_are_applied_and_named_ports_resolved() {
        let input = read_one(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: chaos-inference:v2\n    ports: [{name: http, containerPort: 8000}]\n    livenessProbe:\n      httpGet: {path: /livez, port: http}\n",
        )
        .unwrap();
        let w = &input.workloads[0];
        assert_eq!(w.template.grace, Duration::from_secs(30));
        assert_eq!(w.template.restart_policy, RestartPolicy::Always);
        let c = &w.template.containers[0];
        assert!(c.is_chaos_inference());
        assert_eq!(c.image_tag(), "v2");
        let l = c.liveness.as_ref().unwrap();
        assert_eq!(
            (
                l.period,
                l.timeout,
                l.success_threshold,
                l.failure_threshold
            ),
            (10, 1, 1, 3)
        );
        assert_eq!(
            l.handler,
            Handler::Http {
                path: "/livez".into(),
                port: 8000
            }
        );
    }

    #[test]
    fn a_deployment_without_a_strategy_rolls_25_percent() {
        let input = read_one(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: chaos-inference}]}\n",
        )
        .unwrap();
        let w = &input.workloads[0];
        assert_eq!(w.replicas, 1);
        assert_eq!(
            w.strategy,
            Strategy::RollingUpdate {
                max_surge: IntOrString::String("25%".into()),
                max_unavailable: IntOrString::String("25%".into())
            }
        );
    }

    #[test]
    fn mounted_profiles_come_from_configmaps_in_the_input() {
        let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: chaos-inference:v1\n    env: [{name: CHAOS_PROFILE, value: /etc/p/v2.toml}]\n    volumeMounts: [{name: profiles, mountPath: /etc/p}]\n  volumes:\n  - name: profiles\n    configMap: {name: cm, optional: true}\n";
        let alone = read_one(pod).unwrap();
        let e = alone.workloads[0].template.containers[0]
            .mounted_profile
            .clone()
            .unwrap()
            .unwrap_err();
        assert!(e.contains("optional"), "{e}");
        let with = read_one(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\ndata:\n  v2.toml: |\n    description = \"x\"\n---\n{pod}"
        ))
        .unwrap();
        assert_eq!(
            with.workloads[0].template.containers[0].mounted_profile,
            Some(Ok("description = \"x\"\n".into()))
        );
    }

    #[test]
    fn bad_input_names_the_document_and_the_field() {
        let e = read_one("kind: Pod\nspec: [\n").unwrap_err();
        assert!(e.to_string().starts_with("test.yaml:"), "{e}");
        assert!(e.to_string().contains(": not YAML: "), "{e}");
        assert!(e.position.is_some(), "{e}");
        let e = read_one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x, readinessProbe: {periodSeconds: 2}}]}\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.yaml:4:41: document 1: spec.containers[0].readinessProbe: no handler: expected httpGet, tcpSocket, exec or grpc"
        );
        // A value of the wrong type: the file, the line, the document and the field's path.
        let e = read_one("apiVersion: v1\nkind: Service\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: chaos-inference\n    livenessProbe:\n      httpGet: {path: /livez, port: 8000}\n      periodSeconds: often\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.yaml:13:7: document 2: spec.containers[0].livenessProbe.periodSeconds: invalid type: string \"often\", expected i32"
        );
        let e = read_one("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: chaos-inference\n    livenessProbe:\n      tcpSocket: {port: 8000}\n      periodSeconds: 0\n")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "test.yaml:10:7: document 1: spec.containers[0].livenessProbe.periodSeconds: expected 1 or more, got 0"
        );
    }
}
