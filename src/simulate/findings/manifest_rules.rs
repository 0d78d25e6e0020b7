//! Findings that need no timeline, for every container: what the manifest alone says will go
//! wrong (liveness that is readiness, traffic with no readiness probe, a probe on a port the
//! container does not declare, a grace period the preStop sleep uses up), and, for a workload
//! with no modelled container, how to get its timeline.

use super::{Context, Finding, Location, Rule};
use crate::simulate::manifest::{Handler, Probe, Workload};

/// The timeline-free rules for the container of `cx`; `selected` says a Service of the input
/// sends traffic to the workload's pods. A rule the timeline's own rules already gave for this
/// container is not repeated.
pub(super) fn rules(cx: &mut Context<'_>, selected: bool) {
    let container = cx.container;
    let given = |cx: &Context<'_>, rule: Rule| cx.out.iter().any(|f| f.rule == rule);
    if let (Some(liveness), Some(readiness)) = (&container.liveness, &container.readiness)
        && liveness.handler == readiness.handler
        && !given(cx, Rule::LivenessSameAsReadiness)
    {
        cx.add(
            Rule::LivenessSameAsReadiness,
            cx.field("livenessProbe"),
            format!(
                "liveness and readiness call the same check ({}): whatever makes the pod unready (a slow answer under load, a dependency down) also counts towards killing it",
                liveness.handler.describe()
            ),
            "give liveness a check of its own that only fails when the process must be restarted (or a tcpSocket), and let readiness fail sooner than liveness"
                .into(),
        );
    }
    if selected
        && container.readiness.is_none()
        && !container.ports.is_empty()
        && !given(cx, Rule::ReadyBeforeLoaded)
    {
        cx.add(
            Rule::NoReadinessBehindService,
            cx.field(""),
            format!(
                "a Service sends traffic to these pods, and `{}` has no readiness probe: the pod is Ready, and gets requests, the moment the container starts, before it can answer them, and stays in the Service whatever happens to it",
                container.name
            ),
            "add a readinessProbe on a path that passes only once it can serve".into(),
        );
    }
    if !container.ports.is_empty() {
        for (field, probe) in [
            ("startupProbe", &container.startup),
            ("livenessProbe", &container.liveness),
            ("readinessProbe", &container.readiness),
        ] {
            if let Some(port) = undeclared(probe.as_ref(), &container.ports)
                && !cx
                    .out
                    .iter()
                    .any(|f| f.rule == Rule::ProbePortClosed && f.location.field.ends_with(field))
            {
                let declared: Vec<String> =
                    container.ports.iter().map(|(_, p)| p.to_string()).collect();
                cx.add(
                    Rule::ProbePortUndeclared,
                    cx.field(field),
                    format!(
                        "the {field} dials port {port}, which `{}` does not declare (it declares {}): a typo fails the probe for good",
                        container.name,
                        declared.join(", ")
                    ),
                    format!(
                        "point it at a declared port (by name, as `port: http`, it follows the declaration), or declare {port}"
                    ),
                );
            }
        }
    }
    if let Some(sleep) = container.pre_stop_sleep
        && cx.workload.template.grace.as_secs() <= sleep
    {
        let grace = cx.workload.template.grace.as_secs();
        cx.add(
            Rule::GraceShorterThanPreStop,
            format!("{}.terminationGracePeriodSeconds", cx.workload.template.field),
            format!(
                "the preStop hook of `{}` sleeps {sleep}s and terminationGracePeriodSeconds is {grace}: the grace period runs out during or right after the sleep, and SIGKILL leaves the process no time to stop",
                container.name
            ),
            format!(
                "set terminationGracePeriodSeconds above the sleep plus the time the process takes to stop (at least {})",
                sleep + 10
            ),
        );
    }
}

/// The port a probe dials by number that the container does not declare.
fn undeclared(probe: Option<&Probe>, ports: &[(String, u16)]) -> Option<u16> {
    let port = match &probe?.handler {
        Handler::Http { port, .. } | Handler::Tcp { port } | Handler::Grpc { port, .. } => *port,
        Handler::Exec { .. } => return None,
    };
    (!ports.iter().any(|(_, p)| *p == port)).then_some(port)
}

/// The finding for a workload none of whose containers has a timeline.
pub(super) fn no_timeline(workload: &Workload) -> Finding {
    let names: Vec<&str> = workload
        .template
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let first = workload.template.containers.first();
    let (name, repository) =
        first.map_or(("app", "app"), |c| (c.name.as_str(), c.image_repository()));
    Finding {
        severity: Rule::NoTimeline.severity(),
        rule: Rule::NoTimeline,
        message: format!(
            "no container of it ({}) has a timeline, so only what the manifest alone shows is checked: when it is Ready, which probe kills it and when are not predicted",
            names.join(", ")
        ),
        fix: format!(
            "measure one (`chaos-inference record --port PORT --path PATH --out {name}.toml -- COMMAND`) or write one, then annotate the pod template with `chaos-inference/timeline.{name}: {name}.toml` or pass `--app {repository}={name}.toml`"
        ),
        workload: workload.name.clone(),
        container: String::new(),
        expected: workload
            .expected_findings
            .iter()
            .any(|e| e == Rule::NoTimeline.id()),
        location: Location::of(workload, format!("{}.containers", workload.template.field)),
    }
}
