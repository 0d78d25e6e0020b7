//! Findings: each rule a function of the predicted timeline and the manifest, not of which
//! fields are present. Each says what will happen and how to fix it.

use std::time::Duration;

use serde::Serialize;

use super::app::{Overrides, Settings, WORKING_SET};
use super::cluster::{Action, Cluster, Scenario, Step, Trace, When};
use super::kubelet::{Ms, ProbeKind, Reason, Seen};
use super::manifest::App;
use super::manifest::{Container, Handler, Input, Kind, Workload};
use super::timeline::{Check, Endpoint, INFERENCE_SERVICE, Routes, Shape, Timeline};
use super::under_load::LoadReport;
use super::{Options, PodReport, rollout_run};

mod load;
mod manifest_rules;
use crate::chaos::duration::show;
use crate::chaos::plan::mix;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Declares [`Rule`] from one list: each rule's id, severity and what it checks, which the
/// annotations, the docs and the findings all read.
macro_rules! rules {
    ($($rule:ident $id:literal $severity:ident $description:literal;)*) => {
        /// A finding rule.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $($rule,)*
        }

        impl Rule {
            /// Every rule, in the order the docs list them.
            pub const ALL: &[Rule] = &[$(Rule::$rule,)*];

            /// Its name in reports and in the `expected-findings` annotation.
            pub fn id(self) -> &'static str {
                match self {
                    $(Rule::$rule => $id,)*
                }
            }

            /// Its name in words run together (`LivenessKillsDuringLoad`), as SARIF names rules.
            pub fn name(self) -> &'static str {
                match self {
                    $(Rule::$rule => stringify!($rule),)*
                }
            }

            pub fn severity(self) -> Severity {
                match self {
                    $(Rule::$rule => Severity::$severity,)*
                }
            }

            /// What it checks.
            pub fn description(self) -> &'static str {
                match self {
                    $(Rule::$rule => $description,)*
                }
            }
        }
    };
}

rules! {
    ProfileUnavailable "profile-unavailable" Error
        "the container's profile cannot be loaded: the server exits with code 2 at every start";
    ProbePortClosed "probe-port-closed" Error
        "a probe dials a port (or protocol) the server does not listen on: it never passes";
    LivenessKillsDuringLoad "liveness-kills-during-load" Error
        "the liveness probe kills the container before it has loaded (its model, its start-up)";
    StartupBudgetTooShort "startup-budget-too-short" Error
        "the startup probe gives up before the container has loaded";
    ReadinessNeverPasses "readiness-never-passes" Error
        "the pod never becomes Ready within the horizon";
    RolloutZeroReady "rollout-zero-ready" Error
        "the Deployment's next rollout leaves no Ready pod for a while";
    MemoryBelowWorkingSet "memory-below-working-set" Error
        "the memory limit is below what the server needs to run";
    LeakOom "leak-oom" Warning
        "a leak reaches the memory limit: OOMKilled";
    ProbeTimeoutBelowLatency "probe-timeout-below-latency" Warning
        "a probe calls a route whose injected latency exceeds its timeout";
    LivenessSameAsReadiness "liveness-same-as-readiness" Warning
        "liveness calls a readiness check (or the same check as readiness): a readiness failure restarts";
    GraceShorterThanDrain "grace-shorter-than-drain" Warning
        "terminationGracePeriodSeconds is shorter than SHUTDOWN_DELAY + DRAIN_TIMEOUT";
    CpuLimitPinned "cpu-limit-pinned" Warning
        "a burn fault keeps the CPU limit busy: throttled";
    ReadyBeforeLoaded "ready-before-loaded" Warning
        "no readiness probe: Ready, and sent traffic, while the model loads";
    UnreadyWindowMissed "unready-window-missed" Warning
        "the readiness probe is too slow to notice an unready window";
    NoLivenessForHang "no-liveness-for-hang" Warning
        "the profile hangs or fails liveness, and no liveness probe restarts it";
    ExecNotModelled "exec-not-modelled" Info
        "an exec probe runs a command whose result cannot be predicted";
    LivenessKillsUnderLoad "liveness-kills-under-load" Error
        "under the offered load a busy pod's liveness probe waits behind predictions and kills it";
    RestartStorm "restart-storm" Error
        "under the offered load the liveness kills cascade from pod to pod";
    NoHeadroomForOneRestart "no-headroom-for-one-restart" Warning
        "the offered load fits every pod but not one fewer: one restart or rollout tips the rest";
    ShedProbesKill "shed-probes-kill" Error
        "a full queue sheds the liveness probe, which kills a pod that was only busy";
    ReadinessNotShedding "readiness-not-shedding" Warning
        "readiness is as tolerant as liveness: an overloaded pod keeps its traffic until it is killed";
    NoReadinessBehindService "no-readiness-behind-service" Warning
        "a Service sends traffic to the pods, and a container that listens has no readiness probe";
    ProbePortUndeclared "probe-port-undeclared" Warning
        "a probe dials a port the container does not declare";
    GraceShorterThanPreStop "grace-shorter-than-prestop" Warning
        "terminationGracePeriodSeconds is not longer than the container's preStop sleep";
    NoTimeline "no-timeline" Info
        "no container of the workload has a timeline, so what the kubelet does with it is not predicted";
    ExpectedFindingMissing "expected-finding-missing" Error
        "the manifest's expected-findings annotation names a finding that does not appear";
}

impl Rule {
    /// Whether the rule needs an offered load (`--load`) to appear at all.
    pub fn needs_load(self) -> bool {
        matches!(
            self,
            Rule::LivenessKillsUnderLoad
                | Rule::RestartStorm
                | Rule::NoHeadroomForOneRestart
                | Rule::ShedProbesKill
                | Rule::ReadinessNotShedding
        )
    }

    /// The rule with this id.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub rule: Rule,
    pub message: String,
    /// A concrete change that fixes it.
    pub fix: String,
    pub workload: String,
    pub container: String,
    /// Named by the manifest's `chaos-inference/expected-findings`: shown on purpose.
    pub expected: bool,
    /// The field it is about, and where the manifest has it.
    pub location: Location,
}

/// Where a finding points: the file (`-` for standard input), the document (1 for the first),
/// the field's path, and its line and column when the manifest has that field (else those of
/// the nearest field above it, which would hold it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Location {
    pub file: String,
    pub document: usize,
    pub field: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl Location {
    /// `field` of the workload's document.
    pub fn of(workload: &Workload, field: String) -> Location {
        let position = workload.origin.position(&field);
        Location {
            file: workload.origin.file.clone(),
            document: workload.origin.document,
            field,
            line: position.map(|p| p.line),
            column: position.map(|p| p.column),
        }
    }
}

impl std::fmt::Display for Location {
    /// `file:line:col` (`file` alone when no line is known).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.file)?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        Ok(())
    }
}

struct Context<'a> {
    workload: &'a Workload,
    index: usize,
    container: &'a Container,
    /// Every run of this workload's pods, over every scenario.
    lives: Vec<&'a Timeline>,
    traces: &'a [Trace],
    out: Vec<Finding>,
}

impl Context<'_> {
    /// A field of the container (`livenessProbe`, `resources.limits.memory`), or the container
    /// itself for `""`.
    fn field(&self, sub: &str) -> String {
        if sub.is_empty() {
            self.container.field.clone()
        } else {
            format!("{}.{sub}", self.container.field)
        }
    }

    fn add(&mut self, rule: Rule, field: String, message: String, fix: String) {
        let location = Location::of(self.workload, field);
        self.out.push(Finding {
            location,
            severity: rule.severity(),
            rule,
            message,
            fix,
            workload: self.workload.name.clone(),
            container: self.container.name.clone(),
            expected: self
                .workload
                .expected_findings
                .iter()
                .any(|e| e == rule.id()),
        });
    }

    /// The longest load over every run: port closed plus model load.
    fn longest_load(&self) -> Duration {
        self.lives
            .iter()
            .map(|l| l.loaded)
            .filter(|l| *l != Duration::MAX)
            .max()
            .unwrap_or_default()
    }

    /// Kills by `probe` that came before the container of that run had loaded.
    fn kills_during_load(&self, probe: ProbeKind) -> usize {
        let mut kills = 0;
        for trace in self.traces {
            for p in trace.pods.iter().filter(|p| p.workload == self.index) {
                let mut started: Option<Ms> = None;
                for (at, s) in &p.pod.record {
                    match s {
                        Seen::Event {
                            reason: Reason::Started,
                            ..
                        } => started = Some(*at),
                        Seen::Event {
                            reason: Reason::Killing,
                            probe: Some(k),
                            ..
                        } if *k == probe
                            && started
                                .is_some_and(|s| Duration::from_millis(at - s) < p.life.loaded) =>
                        {
                            kills += 1;
                        }
                        _ => {}
                    }
                }
            }
        }
        kills
    }
}

/// What loads: this server's model, or a declared application.
fn loading_what(shape: &Shape) -> &'static str {
    match shape.routes {
        Routes::Server { .. } => "the model",
        Routes::Declared(_) => "the application",
    }
}

fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Every finding for the input.
pub fn all(
    input: &Input,
    traces: &[Trace],
    pods: &[PodReport],
    under_load: Option<&LoadReport>,
    options: &Options,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (index, workload) in input.workloads.iter().enumerate() {
        let selected = input.services.iter().any(|s| s.selects(workload));
        for container in &workload.template.containers {
            let lives: Vec<&Timeline> = traces
                .iter()
                .flat_map(|t| t.pods.iter())
                .filter(|p| p.workload == index && p.revision == 0)
                .map(|p| p.life.as_ref())
                .collect();
            let mut cx = Context {
                workload,
                index,
                container,
                lives,
                traces,
                out: Vec::new(),
            };
            // The first modelled container is the one simulated (`Template::modelled`).
            let simulated = workload
                .template
                .modelled()
                .is_some_and(|m| m.name == container.name);
            let mut working_set = Some(WORKING_SET);
            let shape = match &container.app {
                _ if !simulated => None,
                App::Timeline(timeline) if !timeline.is_server_profile() => {
                    working_set = timeline.working_set().map(|r| (r.low, r.high));
                    let mut shape = timeline.shape();
                    // What the grace period must cover: the latest exit after SIGTERM.
                    shape.shutdown_delay = timeline
                        .profile
                        .shutdown
                        .exit_after
                        .map_or(Duration::ZERO, |r| r.high);
                    Some(shape)
                }
                App::Timeline(_) => Some(Settings::defaults().shape()),
                App::Server | App::Unknown => {
                    let settings = Settings::of(
                        container,
                        (workload.kind == Kind::Pod).then_some(workload.name.as_str()),
                        &options.overrides,
                    );
                    match &settings.profile {
                        Err(message) => {
                            cx.add(
                                Rule::ProfileUnavailable,
                                cx.field("env"),
                                format!("the server exits with code 2 at every start, then CrashLoopBackOff: {message}"),
                                "use a profile built into the image (CHAOS_PROFILE=v2, or no CHAOS_PROFILE and the image tag decides), or apply the ConfigMap together with the pod".into(),
                            );
                            None
                        }
                        Ok(_) => Some(settings.shape()),
                    }
                }
            };
            if let Some(shape) = &shape {
                probes(&mut cx, shape);
                memory_and_cpu(&mut cx, options.horizon, working_set);
                readiness(&mut cx, pods, shape);
                shutdown(&mut cx, shape);
                if let Some(report) = under_load
                    && report.workloads.contains(&workload.name)
                {
                    load::rules(&mut cx, report, shape);
                }
            }
            manifest_rules::rules(&mut cx, selected);
            findings.append(&mut cx.out);
        }
        if workload.template.modelled().is_none() {
            findings.push(manifest_rules::no_timeline(workload));
        }
        if workload.kind == Kind::Deployment
            && workload.template.modelled().is_some()
            && let Some(finding) = next_rollout(
                workload,
                &Overrides {
                    without_faults: true,
                    ..options.overrides.clone()
                },
                options.horizon,
            )
        {
            findings.push(finding);
        }
        for expected in &workload.expected_findings {
            let rule = Rule::from_id(expected);
            // A finding that only a load shows cannot be missing without one.
            if options.load.is_none() && rule.is_some_and(Rule::needs_load) {
                continue;
            }
            let known = rule.is_some();
            if !findings
                .iter()
                .any(|f| f.workload == workload.name && f.rule.id() == expected.as_str())
            {
                findings.push(Finding {
                    severity: Rule::ExpectedFindingMissing.severity(),
                    rule: Rule::ExpectedFindingMissing,
                    message: if known {
                        format!(
                            "the manifest expects the finding `{expected}`, which does not appear"
                        )
                    } else {
                        format!("the manifest expects `{expected}`, which is not a rule")
                    },
                    fix:
                        "correct the chaos-inference/expected-findings annotation, or the manifest"
                            .into(),
                    workload: workload.name.clone(),
                    container: String::new(),
                    expected: false,
                    location: Location::of(
                        workload,
                        "metadata.annotations.chaos-inference/expected-findings".into(),
                    ),
                });
            }
        }
    }
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.workload.cmp(&b.workload))
    });
    findings
}

fn probes(cx: &mut Context<'_>, shape: &Shape) {
    let container = cx.container;
    let load = cx.longest_load();
    for (kind, probe) in [
        ("startup", &container.startup),
        ("liveness", &container.liveness),
        ("readiness", &container.readiness),
    ] {
        let Some(probe) = probe else { continue };
        if let Some(port) = shape.closed_port(&probe.handler) {
            let listening = match (shape.grpc_port, &shape.routes) {
                (None, Routes::Server { .. }) => {
                    format!("HTTP on {} (GRPC_BIND is empty: no gRPC)", shape.http_port)
                }
                _ => shape.listening(),
            };
            cx.add(
                Rule::ProbePortClosed,
                cx.field(&format!("{kind}Probe")),
                format!(
                    "the {kind} probe ({}) dials port {port}, where the server does not listen for it: it never passes",
                    probe.handler.describe()
                ),
                format!("point it at the server's port: {listening}"),
            );
        }
    }
    if let Some(liveness) = &container.liveness
        && shape.closed_port(&liveness.handler).is_none()
        && cx.kills_during_load(ProbeKind::Liveness) > 0
    {
        let fix = if container.startup.is_none() {
            let period = 5;
            let target = shape
                .endpoint_for(Check::Startup)
                .or_else(|| shape.endpoint_for(Check::Readiness))
                .map_or("tcpSocket".to_string(), |e| format!("httpGet {e}"));
            format!(
                "add a startupProbe ({target}, periodSeconds: {period}, failureThreshold: {}) so liveness waits for the load, or raise livenessProbe.failureThreshold to {}",
                (seconds(load) + 10).div_ceil(period),
                (seconds(load) + 10).div_ceil(u64::from(liveness.period)) + 1
            )
        } else {
            format!(
                "raise livenessProbe.failureThreshold to {}",
                (seconds(load) + 10).div_ceil(u64::from(liveness.period)) + 1
            )
        };
        cx.add(
            Rule::LivenessKillsDuringLoad,
            cx.field("livenessProbe"),
            format!(
                "the liveness probe gives up after {}s but {} takes up to {}s to load (liveness fails meanwhile): killed and restarted again and again",
                liveness.budget().as_secs(),
                loading_what(shape),
                seconds(load)
            ),
            fix,
        );
    }
    if let Some(startup) = &container.startup
        && cx.kills_during_load(ProbeKind::Startup) > 0
    {
        cx.add(
            Rule::StartupBudgetTooShort,
            cx.field("startupProbe.failureThreshold"),
            format!(
                "the startup probe gives up after {}s but {} takes up to {}s to load: killed before it starts",
                startup.budget().as_secs(),
                loading_what(shape),
                seconds(load)
            ),
            format!(
                "raise startupProbe.failureThreshold to {}",
                (seconds(load) + 10).div_ceil(u64::from(startup.period))
            ),
        );
    }
    if let Some(liveness) = &container.liveness
        && (container
            .readiness
            .as_ref()
            .is_some_and(|r| r.handler == liveness.handler)
            || shape.check_of(&liveness.handler) == Some(Check::Readiness))
    {
        let calls_readiness = shape.check_of(&liveness.handler) == Some(Check::Readiness);
        let fix = match (&liveness.handler, shape.grpc_port, &shape.routes) {
            (Handler::Grpc { .. }, Some(port), Routes::Server { .. }) => format!(
                "give the liveness probe service \"\" (follows /livez) and the readiness probe service \"{INFERENCE_SERVICE}\" (port {port})"
            ),
            _ => match (
                shape.endpoint_for(Check::Liveness),
                shape.endpoint_for(Check::Readiness),
            ) {
                (Some(live), Some(ready)) if live != ready => format!(
                    "probe {live} for liveness and {ready} for readiness (port {})",
                    shape.http_port
                ),
                _ => format!(
                    "give liveness a check of its own (a tcpSocket on port {}), or readiness one that fails sooner (periodSeconds x failureThreshold well below liveness's)",
                    shape.http_port
                ),
            },
        };
        cx.add(
            Rule::LivenessSameAsReadiness,
            cx.field("livenessProbe"),
            if calls_readiness {
                format!(
                    "liveness calls {}, a readiness check: whenever the server is unready (loading, an unready window, draining) liveness fails too and restarts it",
                    liveness.handler.describe()
                )
            } else {
                format!(
                    "liveness and readiness call the same check ({}): whatever makes the pod unready (a slow answer under load, a failure) also counts towards killing it",
                    liveness.handler.describe()
                )
            },
            fix,
        );
    }
    let p99 = cx.lives.iter().filter_map(|l| l.latency_p99).max();
    for (field, probe) in [
        ("startupProbe", &container.startup),
        ("livenessProbe", &container.liveness),
        ("readinessProbe", &container.readiness),
    ] {
        let Some(probe) = probe else { continue };
        if let Handler::Http { path, .. } = &probe.handler
            && matches!(shape.routes, Routes::Server { .. })
            && (path == "/predict" || path.ends_with("/infer"))
            && let Some(p99) = p99
            && p99 >= Duration::from_secs(u64::from(probe.timeout))
        {
            cx.add(
                Rule::ProbeTimeoutBelowLatency,
                cx.field(&format!("{field}.timeoutSeconds")),
                format!(
                    "a probe calls {path} with a timeout of {}s, but 1% of predictions take {} or more",
                    probe.timeout,
                    show(p99)
                ),
                "probe /livez or /readyz, which injected latency never delays".into(),
            );
        }
        if let Handler::Exec { command } = &probe.handler {
            let (known, fix) = match &shape.routes {
                Routes::Server { .. } => (
                    command.iter().any(|c| c == "probe"),
                    "use `chaos-inference probe livez|readyz|startupz`, whose result is predicted"
                        .to_string(),
                ),
                Routes::Declared(routes) => (
                    routes.follows(&Endpoint::Exec(command.join(" "))).is_some(),
                    format!(
                        "declare it in the timeline's [endpoints] (e.g. liveness = [\"exec:{}\"])",
                        command.join(" ")
                    ),
                ),
            };
            if !known {
                cx.add(
                    Rule::ExecNotModelled,
                    cx.field(&format!("{field}.exec")),
                    format!("the exec probe `{}` is assumed to pass", command.join(" ")),
                    fix,
                );
            }
        }
    }
    if container.liveness.is_none()
        && let Some(life) = cx
            .lives
            .iter()
            .find(|l| l.hang.is_some() || !l.unhealthy.is_empty())
    {
        let what = if life.hang.is_some() {
            "hangs"
        } else {
            "fails liveness"
        };
        cx.add(
            Rule::NoLivenessForHang,
            cx.field(""),
            format!("the timeline {what}, and with no liveness probe nothing restarts it"),
            match shape.endpoint_for(Check::Liveness) {
                Some(e) => format!("add a livenessProbe on {e} (port {})", shape.http_port),
                None => format!(
                    "add a livenessProbe (tcpSocket on port {})",
                    shape.http_port
                ),
            },
        );
    }
}

fn memory_and_cpu(cx: &mut Context<'_>, horizon: Duration, working_set: Option<(u64, u64)>) {
    let container = cx.container;
    if let (Some(limit), Some((low, high))) = (container.memory_limit, working_set)
        && limit < high
    {
        cx.add(
            Rule::MemoryBelowWorkingSet,
            cx.field("resources.limits.memory"),
            format!(
                "the memory limit of {} MiB is below the {}-{} MiB the application holds when idle: OOMKilled at start",
                limit >> 20,
                low >> 20,
                high >> 20
            ),
            format!("set resources.limits.memory to at least {}Mi", (high >> 20) + 32),
        );
    }
    let ooms: Vec<Duration> = cx
        .lives
        .iter()
        .filter_map(|l| l.leak_oom)
        .filter(|t| *t <= horizon)
        .collect();
    if let (Some(first), Some(last)) = (ooms.iter().min(), ooms.iter().max()) {
        cx.add(
            Rule::LeakOom,
            cx.field("resources.limits.memory"),
            format!(
                "memory grows until the limit of {} MiB: OOMKilled (exit code 137) {}..{} after each start",
                container.memory_limit.unwrap_or(0) >> 20,
                show(*first),
                show(*last)
            ),
            "raise resources.limits.memory, or cap the leak (`max-mib`)".into(),
        );
    }
    if let (Some(limit), Some(cores)) = (
        container.cpu_limit,
        cx.lives
            .iter()
            .filter_map(|l| l.burn_cores)
            .reduce(f64::max),
    ) && cores >= limit
    {
        cx.add(
            Rule::CpuLimitPinned,
            cx.field("resources.limits.cpu"),
            format!(
                "a burn fault keeps {cores} cores busy; the CPU limit of {limit} is pinned at it: throttled, slower predictions"
            ),
            format!("raise resources.limits.cpu above {}", cores + 0.5),
        );
    }
}

fn readiness(cx: &mut Context<'_>, pods: &[PodReport], shape: &Shape) {
    let container = cx.container;
    let name = cx.workload.name.clone();
    if container.readiness.is_some()
        && pods
            .iter()
            .filter(|p| p.workload == name)
            .any(|p| p.ready_share == 0.0 && p.restarts.max == 0)
    {
        let ready = shape
            .endpoint_for(Check::Readiness)
            .unwrap_or_else(|| "its readiness endpoint".into());
        let fix = match container.readiness.as_ref().map(|r| &r.handler) {
            Some(Handler::Http { path, .. }) if *path != ready => {
                format!("probe {ready} for readiness")
            }
            _ => format!(
                "check the readiness probe's path and port against the application's ({ready} on {})",
                shape.http_port
            ),
        };
        cx.add(
            Rule::ReadinessNeverPasses,
            cx.field("readinessProbe"),
            "the pod never becomes Ready: the readiness probe fails for good".into(),
            fix,
        );
    }
    let load = cx.longest_load();
    if container.readiness.is_none() && load > Duration::from_secs(1) {
        cx.add(
            Rule::ReadyBeforeLoaded,
            cx.field(""),
            format!(
                "with no readiness probe the pod is Ready as soon as it runs, up to {}s before it has loaded: requests fail meanwhile",
                seconds(load)
            ),
            match shape.endpoint_for(Check::Readiness) {
                Some(e) => format!("add a readinessProbe on {e}"),
                None => "add a readinessProbe that passes once it has loaded".into(),
            },
        );
    }
    if let Some(readiness) = &container.readiness {
        let detection =
            Duration::from_secs(u64::from(readiness.period * readiness.failure_threshold));
        let shortest = cx
            .lives
            .iter()
            .flat_map(|l| l.unready.iter())
            .filter_map(|w| w.end.map(|e| e - w.start))
            .min();
        if let Some(window) = shortest
            && detection >= window
        {
            cx.add(
                Rule::UnreadyWindowMissed,
                cx.field("readinessProbe.periodSeconds"),
                format!(
                    "the readiness probe needs {}s to notice a failure, but unready windows last {}: the pod stays Ready through them",
                    detection.as_secs(),
                    show(window)
                ),
                format!(
                    "lower readinessProbe.periodSeconds x failureThreshold below {}",
                    show(window)
                ),
            );
        }
    }
}

fn shutdown(cx: &mut Context<'_>, shape: &Shape) {
    let needed = shape.shutdown_delay + shape.drain_timeout;
    let grace = cx.workload.template.grace;
    let what = match shape.routes {
        Routes::Server { .. } => "SHUTDOWN_DELAY + DRAIN_TIMEOUT",
        Routes::Declared(_) => "the time its timeline takes to exit after SIGTERM",
    };
    if grace < needed {
        cx.add(
            Rule::GraceShorterThanDrain,
            format!("{}.terminationGracePeriodSeconds", cx.workload.template.field),
            format!(
                "terminationGracePeriodSeconds {} is shorter than {what} ({}): SIGKILL can cut requests still draining",
                grace.as_secs(),
                show(needed)
            ),
            format!("set terminationGracePeriodSeconds to at least {}", seconds(needed) + 5),
        );
    }
}

/// The Deployment's next rollout, simulated: a new revision that starts like this one, once
/// every pod is available; `overrides` strip the faults, so what counts is the strategy and
/// the start-up, not crashes that would happen without a rollout.
fn next_rollout(workload: &Workload, overrides: &Overrides, horizon: Duration) -> Option<Finding> {
    let step = Step {
        workload: workload.name.clone(),
        action: Action::Apply(Box::new(workload.clone())),
        when: When::Ready,
    };
    let scenarios = [Scenario::Earliest, Scenario::Latest]
        .into_iter()
        .chain((0..6).map(|i| Scenario::Drawn(mix(0x707, i))));
    let mut stretches = Vec::new();
    for scenario in scenarios {
        let trace = Cluster::new(
            std::slice::from_ref(workload),
            std::slice::from_ref(&step),
            scenario,
            overrides,
            horizon,
        )
        .run();
        let run = rollout_run(&trace.workloads[0]);
        if run.zero_ready.is_some() && !trace.workloads[0].steps.is_empty() {
            stretches.push(run.zero_ready_for.unwrap_or(0));
        }
    }
    let (min, max) = (stretches.iter().min()?, stretches.iter().max()?);
    let strategy = match &workload.strategy {
        super::manifest::Strategy::RollingUpdate {
            max_surge,
            max_unavailable,
        } => format!(
            "maxSurge {}, maxUnavailable {}",
            intstr(max_surge),
            intstr(max_unavailable)
        ),
        super::manifest::Strategy::Recreate => "Recreate".into(),
    };
    Some(Finding {
        severity: Rule::RolloutZeroReady.severity(),
        rule: Rule::RolloutZeroReady,
        message: format!(
            "its next rollout ({strategy}) leaves 0 Ready pods for {}..{}: every request in that time fails",
            show(Duration::from_millis(*min)),
            show(Duration::from_millis(*max))
        ),
        fix: "keep maxUnavailable below replicas (maxSurge: 1, maxUnavailable: 0 replaces one pod at a time with no gap)".into(),
        workload: workload.name.clone(),
        container: String::new(),
        location: Location::of(workload, "spec.strategy".into()),
        expected: workload
            .expected_findings
            .iter()
            .any(|e| e == Rule::RolloutZeroReady.id()),
    })
}

fn intstr(v: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> String {
    match v {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n) => n.to_string(),
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/simulate.md lists every rule with its severity.
    #[test]
    fn the_docs_list_every_rule() {
        let docs = include_str!("../../../docs/simulate.md");
        for rule in Rule::ALL {
            let row = format!("| `{rule}` | {} |", rule.severity().as_str());
            assert!(docs.contains(&row), "docs/simulate.md lacks {row}");
        }
    }
}
