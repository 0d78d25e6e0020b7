//! The seam of `simulate`: what one run of a container does over time, as one value
//! ([`Timeline`]): when its port opens, when it has loaded, its liveness and readiness windows,
//! hangs and exits, what it does on SIGTERM, its capacity under load, and which paths and gRPC
//! health services answer by which check (its [`Routes`]). The kubelet and the controllers read
//! only this. It is built from a plan (`chaos::plan`) and a [`Shape`]: the server's own (from a
//! container's environment, `app`) or an application's declared in a timeline file
//! (`app::file`).

use std::time::Duration;

use super::manifest::Handler;
use super::traffic::Capacity;
use crate::chaos::duration::{DurationRange, show};
pub use crate::chaos::endpoints::Endpoint;
use crate::chaos::fault::{Anchor, CrashMode, Effect, LatencyDistribution};
use crate::chaos::overload::Work;
use crate::chaos::plan::Plan;
use crate::grpc::health as grpc_health;
/// The checks every probe answer follows: liveness, readiness, startup.
pub use crate::health::Check;
use crate::health::Switches;
use crate::http::routes::{self, Answers};

/// How fast the `oom` crash mode allocates: 64 MiB chunks written as fast as memory allows.
const OOM_RATE_MIB_PER_SECOND: f64 = 2048.0;

/// Which paths, gRPC health services and exec commands the application answers, and how.
#[derive(Debug, Clone, PartialEq)]
pub enum Routes {
    /// This server: its own route table and gRPC health services, for this model.
    Server {
        /// The model name the V2 routes answer to (`MODEL_NAME`).
        model_name: String,
        /// The served model's version: `1` for the built-in model, unknown (`None`) for a
        /// model of the user's (`MODEL_PATH`), whose version only its file says.
        model_version: Option<String>,
    },
    /// An application's endpoints, as a timeline file declares them.
    Declared(DeclaredRoutes),
}

/// An application's declared endpoints: each follows a check, or answers 200 from the moment
/// the port opens; anything else is a 404 (HTTP), NotFound (gRPC) or a failed command (exec).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeclaredRoutes {
    /// Each HTTP path, gRPC service or exec command and the check it follows (`None`: always
    /// passes once the port is open).
    pub answers: Vec<(Endpoint, Option<Check>)>,
    /// How long each takes to answer (a range draws), where declared.
    pub latency: Vec<(Endpoint, DurationRange)>,
}

/// What a probe handler calls, as an endpoint (a TCP probe calls none).
pub fn endpoint_of(handler: &Handler) -> Option<Endpoint> {
    match handler {
        Handler::Http { path, .. } => Some(Endpoint::Path(
            path.split('?').next().unwrap_or(path).to_string(),
        )),
        Handler::Grpc { service, .. } => Some(Endpoint::Grpc(service.clone())),
        Handler::Exec { command } => Some(Endpoint::Exec(command.join(" "))),
        Handler::Tcp { .. } => None,
    }
}

impl DeclaredRoutes {
    /// The check `endpoint` follows: `Some(None)` for one that always passes, `None` for one
    /// not declared.
    pub fn follows(&self, endpoint: &Endpoint) -> Option<Option<Check>> {
        self.answers
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, check)| *check)
    }

    /// The latency declared for `endpoint`, if any.
    pub fn latency_of(&self, endpoint: &Endpoint) -> Option<DurationRange> {
        self.latency
            .iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, l)| *l)
    }
}

impl Routes {
    /// The check a probe calling `handler` follows: for this server by its own route table,
    /// gRPC health services and `probe` subcommand; for a declared application by its
    /// endpoints. `None` for one that follows none (always passes, not found, a TCP connect).
    pub fn check_of(&self, handler: &Handler) -> Option<Check> {
        match self {
            Routes::Declared(routes) => routes.follows(&endpoint_of(handler)?).flatten(),
            Routes::Server { .. } => match handler {
                Handler::Http { path, .. } => {
                    match routes::route_of(path.split('?').next().unwrap_or(path))?
                        .0
                        .answers
                    {
                        Answers::Check(check) => Some(check),
                        _ => None,
                    }
                }
                Handler::Grpc { service, .. } => grpc_health::SERVICES
                    .iter()
                    .find(|(name, _)| name == service)
                    .map(|(_, check)| *check),
                Handler::Exec { command } => match probe_command(command)? {
                    "/livez" => Some(Check::Liveness),
                    "/readyz" => Some(Check::Readiness),
                    "/startupz" => Some(Check::Startup),
                    _ => None,
                },
                Handler::Tcp { .. } => None,
            },
        }
    }

    /// The endpoints it answers by `check` (this server: its one path for it), in the order
    /// declared.
    pub fn endpoints_for(&self, check: Check) -> Vec<Endpoint> {
        match self {
            Routes::Server { .. } => vec![Endpoint::Path(
                match check {
                    Check::Liveness => "/livez",
                    Check::Readiness => "/readyz",
                    Check::Startup => "/startupz",
                }
                .to_string(),
            )],
            Routes::Declared(routes) => routes
                .answers
                .iter()
                .filter(|(_, c)| *c == Some(check))
                .map(|(e, _)| e.clone())
                .collect(),
        }
    }
}

impl Shape {
    /// The check a probe calling `handler` follows (see [`Routes::check_of`]).
    pub fn check_of(&self, handler: &Handler) -> Option<Check> {
        self.routes.check_of(handler)
    }

    /// The port a probe dials, when the application does not listen there (or not with that
    /// protocol).
    pub fn closed_port(&self, handler: &Handler) -> Option<u16> {
        match handler {
            Handler::Http { port, .. } => (*port != self.http_port).then_some(*port),
            Handler::Grpc { port, .. } => (Some(*port) != self.grpc_port).then_some(*port),
            Handler::Tcp { port } => {
                (*port != self.http_port && Some(*port) != self.grpc_port).then_some(*port)
            }
            Handler::Exec { .. } => None,
        }
    }

    /// Where it listens, in words.
    pub fn listening(&self) -> String {
        match self.grpc_port {
            Some(grpc) => format!("HTTP on {}, gRPC on {grpc}", self.http_port),
            None => format!("HTTP on {}", self.http_port),
        }
    }

    /// An endpoint it answers by `check`, as a timeline names it (`/readyz`, `grpc:`), to put
    /// in a fix.
    pub fn endpoint_for(&self, check: Check) -> Option<String> {
        self.routes
            .endpoints_for(check)
            .first()
            .map(|e| e.to_string())
    }
}

/// What a timeline takes besides its plan: where the application listens, what it answers, and
/// how it shuts down.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub http_port: u16,
    pub grpc_port: Option<u16>,
    pub routes: Routes,
    /// After SIGTERM: how long it keeps serving (with readiness failing) before it stops
    /// accepting.
    pub shutdown_delay: Duration,
    /// Then, how long requests in flight may take.
    pub drain_timeout: Duration,
    /// Whether readiness fails the moment SIGTERM comes (the server's way), or only when the
    /// process stops accepting.
    pub unready_on_sigterm: bool,
    /// Added to the plan's load delay until it is loaded: the server's own model load.
    pub load_overhead: Duration,
}

/// The reason a container's terminated state gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ending {
    Completed,
    Error,
    OOMKilled,
}

impl Ending {
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Completed => "Completed",
            Ending::Error => "Error",
            Ending::OOMKilled => "OOMKilled",
        }
    }
}

/// How a run of the container ends by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub code: i32,
    pub ending: Ending,
    /// The termination message, when the server writes one.
    pub message: String,
}

impl Exit {
    pub fn code(code: i32, message: String) -> Exit {
        Exit {
            code,
            ending: if code == 0 {
                Ending::Completed
            } else {
                Ending::Error
            },
            message,
        }
    }

    pub fn oom() -> Exit {
        Exit {
            code: 137,
            ending: Ending::OOMKilled,
            message: String::new(),
        }
    }
}

/// An interval of time since the container started; `end` `None` lasts to the end of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub start: Duration,
    pub end: Option<Duration>,
}

impl Interval {
    pub fn holds(&self, t: Duration) -> bool {
        t >= self.start && self.end.is_none_or(|end| t < end)
    }
}

/// One run of the container, every time relative to its start. Every restart replays the same
/// plan: the seed comes from the pod's name, which a restart keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// The port opens (bind delay).
    pub open: Duration,
    /// The model is loaded: startup and readiness pass.
    pub loaded: Duration,
    pub live_while_loading: bool,
    pub unhealthy: Vec<Interval>,
    pub unready: Vec<Interval>,
    pub hang: Option<Duration>,
    /// An exit of its own (crash, OOM kill, bad configuration), first of all.
    pub exit: Option<(Duration, Exit)>,
    pub ignore_sigterm: bool,
    pub shutdown_delay: Duration,
    /// After SIGTERM (and the shutdown delay), how long requests in flight may take.
    pub drain_timeout: Duration,
    /// What it can serve at once, while each overload fault holds (the latest started wins, as
    /// on the server); no entry holding means no limit.
    pub overload: Vec<(Interval, Capacity)>,
    /// The 99th percentile of injected latency on predictions, the longest of the run.
    pub latency_p99: Option<Duration>,
    /// CPU cores a burn fault keeps busy.
    pub burn_cores: Option<f64>,
    /// When a leak reaches the memory limit, if it does.
    pub leak_oom: Option<Duration>,
    pub http_port: u16,
    pub grpc_port: Option<u16>,
    /// What it answers on which path or service, and how.
    pub routes: Routes,
    /// Whether readiness fails the moment SIGTERM comes.
    pub unready_on_sigterm: bool,
}

/// What a probe gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success,
    /// Fails at once, with the kubelet's message.
    Failure(String),
    /// No answer within the probe's timeout.
    Timeout,
}

/// What a pod's queue holds when a probe is sent: the wait it faces and whether the queue is
/// full; idle, both are nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueView {
    /// The wait a queued probe faces now.
    pub wait: Duration,
    /// The fluid backlog now (what a drain has to serve), without the spread.
    pub backlog: Duration,
    /// A sheddable request would be refused now.
    pub full: bool,
    /// A uniform draw in `[0, 1)` for this probe: where in its declared latency range it
    /// answers.
    pub draw: f64,
}

impl Timeline {
    /// A run that ends at once with exit code 2: what the server does with a bad configuration.
    pub fn config_error(message: &str, shape: &Shape) -> Timeline {
        Timeline {
            open: Duration::MAX,
            loaded: Duration::MAX,
            live_while_loading: true,
            unhealthy: Vec::new(),
            unready: Vec::new(),
            hang: None,
            exit: Some((
                Duration::from_millis(20),
                Exit::code(2, format!("chaos-inference: {message}")),
            )),
            ignore_sigterm: false,
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
            overload: Vec::new(),
            latency_p99: None,
            burn_cores: None,
            leak_oom: None,
            http_port: shape.http_port,
            grpc_port: shape.grpc_port,
            routes: shape.routes.clone(),
            unready_on_sigterm: shape.unready_on_sigterm,
        }
    }

    /// A run of `plan` in an application of this `shape`, in a container with this memory
    /// limit and working set, looked at up to `horizon`.
    pub fn of(
        plan: &Plan,
        shape: &Shape,
        memory_limit: Option<u64>,
        working_set: u64,
        horizon: Duration,
    ) -> Timeline {
        let open = plan.bind_delay;
        let loaded = plan.bind_delay + plan.load_delay + shape.load_overhead;
        let mut life = Timeline {
            open,
            loaded,
            live_while_loading: plan.live_while_loading,
            unhealthy: Vec::new(),
            unready: Vec::new(),
            hang: None,
            exit: None,
            ignore_sigterm: plan.ignore_sigterm,
            // A timeline's own exit after SIGTERM replaces the server's shutdown delay.
            shutdown_delay: plan.exit_after.unwrap_or(shape.shutdown_delay),
            drain_timeout: shape.drain_timeout,
            overload: Vec::new(),
            latency_p99: None,
            burn_cores: None,
            leak_oom: None,
            http_port: shape.http_port,
            grpc_port: shape.grpc_port,
            routes: shape.routes.clone(),
            unready_on_sigterm: plan.unready_on_sigterm && shape.unready_on_sigterm,
        };
        let mut exits: Vec<(Duration, Exit)> = Vec::new();
        let mut leaked = 0.0f64;
        for schedule in &plan.schedules {
            let base = match schedule.anchor {
                Anchor::Start => Duration::ZERO,
                Anchor::Ready => loaded,
            };
            let mut k = 0;
            while let Some(o) = schedule.occurrence(k) {
                k += 1;
                let start = base + o.start;
                if start > horizon {
                    break;
                }
                if !o.happens {
                    continue;
                }
                let interval = Interval {
                    start,
                    end: o.end.map(|e| base + e),
                };
                match &schedule.effect {
                    Effect::Crash { mode, exit_code } => {
                        let what = format!(
                            "{}: {} after {}",
                            plan.profile,
                            schedule.effect.describe(),
                            show(start)
                        );
                        match mode {
                            CrashMode::Exit => {
                                exits.push((start, Exit::code(i32::from(*exit_code), what)))
                            }
                            CrashMode::Panic => exits.push((start, Exit::code(101, what))),
                            CrashMode::Abort => exits.push((start, Exit::code(134, what))),
                            CrashMode::Sigkill => exits.push((start, Exit::code(137, what))),
                            CrashMode::Oom => {
                                let limit = memory_limit.unwrap_or(u64::MAX / 2);
                                let mib =
                                    limit.saturating_sub(working_set) as f64 / f64::from(1 << 20);
                                exits.push((
                                    start + Duration::from_secs_f64(mib / OOM_RATE_MIB_PER_SECOND),
                                    Exit::oom(),
                                ));
                            }
                            CrashMode::Hang => {
                                life.hang = Some(life.hang.map_or(start, |h| h.min(start)));
                            }
                        }
                    }
                    Effect::Hang => life.hang = Some(life.hang.map_or(start, |h| h.min(start))),
                    Effect::Unhealthy => life.unhealthy.push(interval),
                    Effect::Unready => life.unready.push(interval),
                    Effect::Latency(distribution) => {
                        let p99 = match distribution {
                            LatencyDistribution::Uniform { delay } => delay.high,
                            LatencyDistribution::Lognormal { p99, .. } => p99.high,
                        };
                        life.latency_p99 = Some(life.latency_p99.map_or(p99, |l| l.max(p99)));
                    }
                    // What the queue does with it depends on the offered load (`traffic`).
                    Effect::Overload(o) => life.overload.push((interval, Capacity::of(o))),
                    Effect::Burn { cores } => {
                        life.burn_cores = Some(life.burn_cores.map_or(*cores, |c| c.max(*cores)));
                    }
                    Effect::Leak {
                        mib_per_second,
                        max_mib,
                    } => {
                        // Memory held on purpose stays held: windows add up.
                        let Some(limit) = memory_limit else { continue };
                        let room = limit.saturating_sub(working_set) as f64 / f64::from(1 << 20);
                        let cap = max_mib.unwrap_or(f64::INFINITY);
                        let lasts = interval
                            .end
                            .map_or(f64::INFINITY, |e| (e - start).as_secs_f64());
                        let grows = (cap - leaked).max(0.0).min(lasts * mib_per_second);
                        if life.leak_oom.is_none() && leaked + grows >= room {
                            let t =
                                start + Duration::from_secs_f64((room - leaked) / mib_per_second);
                            life.leak_oom = Some(t);
                            exits.push((t, Exit::oom()));
                        }
                        leaked += grows;
                    }
                    Effect::Errors { .. } => {}
                }
            }
        }
        if memory_limit.is_some_and(|limit| limit <= working_set) {
            exits.push((loaded.min(Duration::from_millis(500)), Exit::oom()));
        }
        life.exit = exits.into_iter().min_by_key(|(t, _)| *t);
        life
    }

    /// When a run that gets SIGTERM at `at` ends, with a grace period of `grace`, and how;
    /// `backlog` is the wait its queue holds then, which the drain serves (up to
    /// `DRAIN_TIMEOUT`) before the process exits.
    pub fn sigterm(&self, at: Duration, grace: Duration, backlog: Duration) -> (Duration, Exit) {
        let killed = (at + grace, Exit::code(137, String::new()));
        let own = self.exit.clone().filter(|(t, _)| *t >= at);
        let after_term =
            if self.ignore_sigterm || self.hang.is_some_and(|h| h <= at + self.shutdown_delay) {
                killed
            } else {
                let drained = at
                    + self.shutdown_delay
                    + backlog.min(self.drain_timeout)
                    + Duration::from_millis(50);
                if drained <= at + grace {
                    (drained, Exit::code(0, String::new()))
                } else {
                    killed
                }
            };
        match own {
            Some(own) if own.0 < after_term.0 => own,
            _ => after_term,
        }
    }

    /// The capacity at `t` into the run: the overload fault started last of those holding.
    pub fn capacity_at(&self, t: Duration) -> Option<&Capacity> {
        self.overload
            .iter()
            .filter(|(window, _)| window.holds(t))
            .max_by_key(|(window, _)| window.start)
            .map(|(_, capacity)| capacity)
    }

    /// Whether a probe calling `handler` waits in an overload queue as a probe: for this
    /// server by its own tables (the HTTP routes' `waits`, the gRPC methods' work); for a
    /// declared application, every endpoint it declares (a one-worker app answers nothing
    /// out of turn).
    pub fn waits(&self, handler: &Handler) -> bool {
        match &self.routes {
            Routes::Declared(endpoints) => {
                self.reaches(handler)
                    && endpoint_of(handler).is_some_and(|e| endpoints.follows(&e).is_some())
            }
            Routes::Server { .. } => {
                let route_waits = |path: &str| {
                    routes::route_of(path.split('?').next().unwrap_or(path))
                        .is_some_and(|(route, _)| route.waits == Some(Work::Probe))
                };
                let health_waits =
                    || crate::grpc::work_of(grpc_health::CHECK_METHOD) == Some(Work::Probe);
                match handler {
                    Handler::Http { path, port } => *port == self.http_port && route_waits(path),
                    Handler::Grpc { port, .. } => Some(*port) == self.grpc_port && health_waits(),
                    Handler::Exec { command } => {
                        let grpc = command.iter().any(|a| a == "grpc");
                        match probe_command(command) {
                            Some(_) if grpc => health_waits(),
                            Some(route) => route_waits(route),
                            None => false,
                        }
                    }
                    Handler::Tcp { .. } => false,
                }
            }
        }
    }

    /// Whether a probe calling `handler` reaches the application at all (its port, its
    /// protocol).
    fn reaches(&self, handler: &Handler) -> bool {
        match handler {
            Handler::Http { port, .. } => *port == self.http_port,
            Handler::Grpc { port, .. } => Some(*port) == self.grpc_port,
            Handler::Tcp { port } => *port == self.http_port || Some(*port) == self.grpc_port,
            Handler::Exec { .. } => true,
        }
    }

    /// What a probe calling `handler` gets at `t` into the run, and how long after it was
    /// sent: its declared latency (drawn within its range by `queue.draw`), and, when it waits
    /// in an overload queue ([`Timeline::waits`]), the wait `queue` says plus its own hold, or
    /// at once the shed status when the queue is full and sheds probes. The kubelet compares
    /// that with the probe's timeout.
    pub fn answer(
        &self,
        handler: &Handler,
        t: Duration,
        sigterm: Option<Duration>,
        queue: &QueueView,
    ) -> (Outcome, Duration) {
        let outcome = self.probe(handler, t, sigterm);
        let answers = t >= self.open && !self.hung(t) && self.reaches(handler);
        let latency = match (&self.routes, endpoint_of(handler)) {
            (Routes::Declared(endpoints), Some(endpoint)) if answers => endpoints
                .latency_of(&endpoint)
                .map_or(Duration::ZERO, |range| {
                    let (low, high) = (range.low.as_secs_f64(), range.high.as_secs_f64());
                    Duration::from_secs_f64(low + (high - low) * queue.draw.clamp(0.0, 1.0))
                }),
            _ => Duration::ZERO,
        };
        let Some(capacity) = self
            .capacity_at(t)
            .filter(|c| c.probes_queued && answers && self.waits(handler))
        else {
            return (outcome, latency);
        };
        if queue.full && capacity.shed_probes {
            let status = capacity.shed_status;
            let refused = match handler {
                Handler::Grpc { .. } => {
                    "rpc error: code = Unavailable desc = overloaded".to_string()
                }
                Handler::Exec { command } => {
                    format!("command {:?} exited with 1", command.join(" "))
                }
                _ => format!("HTTP probe failed with statuscode: {status}"),
            };
            return (Outcome::Failure(refused), Duration::ZERO);
        }
        (
            outcome,
            latency + queue.wait + Duration::from_secs_f64(capacity.probe_s),
        )
    }

    /// What a probe calling `handler` gets at `t` into the run; `sigterm` is when SIGTERM came.
    pub fn probe(&self, handler: &Handler, t: Duration, sigterm: Option<Duration>) -> Outcome {
        let refused =
            |port: u16| Outcome::Failure(format!("dial tcp :{port}: connect: connection refused"));
        let hung = self.hang.is_some_and(|h| t >= h);
        let loading = t < self.loaded;
        let draining = sigterm.is_some_and(|s| t >= s) && self.unready_on_sigterm;
        let switches = self.switches(t, loading, draining);
        match handler {
            Handler::Tcp { port } => {
                if t < self.open || !self.reaches(handler) {
                    refused(*port)
                } else {
                    // A hung server still accepts connections: only HTTP probes see the hang.
                    Outcome::Success
                }
            }
            Handler::Http { path, port } => {
                if t < self.open || !self.reaches(handler) {
                    return refused(*port);
                }
                if hung {
                    return Outcome::Timeout;
                }
                let status = self.route_status(path.split('?').next().unwrap_or(path), &switches);
                if (200..400).contains(&status) {
                    Outcome::Success
                } else {
                    Outcome::Failure(format!("HTTP probe failed with statuscode: {status}"))
                }
            }
            Handler::Grpc { port, service } => {
                if t < self.open || !self.reaches(handler) {
                    return refused(*port);
                }
                if hung {
                    return Outcome::Timeout;
                }
                let Some(serving) = self.grpc_serving(service, &switches) else {
                    return Outcome::Failure(format!(
                        "rpc error: code = NotFound desc = unknown service {service}"
                    ));
                };
                if serving {
                    Outcome::Success
                } else {
                    Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
                }
            }
            Handler::Exec { command } => {
                let failed = |why: &str| {
                    Outcome::Failure(format!(
                        "command {:?} exited with 1{why}",
                        command.join(" ")
                    ))
                };
                match &self.routes {
                    Routes::Declared(endpoints) => {
                        match endpoints.follows(&Endpoint::Exec(command.join(" "))) {
                            // A command it does not declare: its result is not the timeline's
                            // to predict (a finding says so).
                            None => Outcome::Success,
                            Some(_) if hung => Outcome::Timeout,
                            Some(None) => Outcome::Success,
                            Some(Some(check)) if check.passes(&switches) => Outcome::Success,
                            Some(Some(_)) => failed(""),
                        }
                    }
                    Routes::Server { .. } => match probe_command(command) {
                        Some(route) => {
                            let grpc_off =
                                command.iter().any(|a| a == "grpc") && self.grpc_port.is_none();
                            if t < self.open || grpc_off {
                                return failed(" (connection refused)");
                            }
                            if hung {
                                return Outcome::Timeout;
                            }
                            if self.route_status(route, &switches) == 200 {
                                Outcome::Success
                            } else {
                                failed("")
                            }
                        }
                        // A command of another program: its result is not the server's to
                        // predict.
                        None => Outcome::Success,
                    },
                }
            }
        }
    }

    /// The status the application answers `GET path` with at this moment: this server's by its
    /// own route table and health rules, a declared application's by its endpoints.
    fn route_status(&self, path: &str, switches: &Switches) -> u16 {
        let (model_name, model_version) = match &self.routes {
            Routes::Declared(endpoints) => {
                return match endpoints.follows(&Endpoint::Path(path.to_string())) {
                    None => 404,
                    Some(None) => 200,
                    Some(Some(check)) => check.status(switches),
                };
            }
            Routes::Server {
                model_name,
                model_version,
            } => (model_name, model_version),
        };
        let Some((route, named)) = routes::route_of(path) else {
            return 404;
        };
        match route.answers {
            Answers::Check(check) => check.status(switches),
            Answers::Always => 200,
            // Prediction routes take POST: a probe's GET gets 405.
            Answers::PostOnly => 405,
            Answers::ModelLoaded => {
                // As the server checks: the name first, then that the model is loaded, then
                // the version (unknown for a model of the user's, which any version matches).
                if named.name.is_some_and(|n| n != model_name) {
                    404
                } else if !switches.loaded {
                    503
                } else if named
                    .version
                    .zip(model_version.as_deref())
                    .is_some_and(|(asked, served)| asked != served)
                {
                    404
                } else {
                    200
                }
            }
        }
    }

    /// The health switches at `t`, as the server would hold them.
    fn switches(&self, t: Duration, loading: bool, draining: bool) -> Switches {
        let in_window = |intervals: &[Interval]| intervals.iter().any(|w| w.holds(t));
        Switches {
            loaded: !loading,
            live_while_loading: self.live_while_loading,
            unhealthy: in_window(&self.unhealthy),
            unready: in_window(&self.unready),
            draining,
        }
    }

    /// Whether the gRPC health service answers SERVING now; `None` for a service the
    /// application does not have.
    fn grpc_serving(&self, service: &str, switches: &Switches) -> Option<bool> {
        let check = match &self.routes {
            Routes::Declared(endpoints) => {
                endpoints.follows(&Endpoint::Grpc(service.to_string()))?
            }
            Routes::Server { .. } => Some(
                grpc_health::SERVICES
                    .iter()
                    .find(|(name, _)| *name == service)?
                    .1,
            ),
        };
        Some(check.is_none_or(|c| c.passes(switches)))
    }

    /// When liveness first fails in a run: from the start when the port is closed or the
    /// profile is not live while loading, else when a hang or an unhealthy window begins.
    pub fn liveness_fails_from(&self) -> Option<Duration> {
        if !self.open.is_zero() || !self.live_while_loading {
            return Some(Duration::ZERO);
        }
        self.unhealthy
            .iter()
            .map(|w| w.start)
            .chain(self.hang)
            .min()
    }

    /// Whether the run is hung at `t`.
    pub fn hung(&self, t: Duration) -> bool {
        self.hang.is_some_and(|h| t >= h)
    }
}

/// The gRPC health service name that follows readiness; `""` follows liveness.
pub const INFERENCE_SERVICE: &str = crate::grpc::INFERENCE_SERVICE;

/// Whether a probe with this handler asks "ready?" rather than "alive?".
pub fn checks_readiness(handler: &Handler) -> bool {
    match handler {
        Handler::Http { path, .. } => path.split('?').next() == Some("/readyz"),
        Handler::Grpc { service, .. } => service == INFERENCE_SERVICE,
        Handler::Exec { command } => probe_command(command) == Some("/readyz"),
        Handler::Tcp { .. } => false,
    }
}

/// The route a `chaos-inference probe <route>` command checks.
pub fn probe_command(command: &[String]) -> Option<&'static str> {
    let at = command
        .iter()
        .position(|a| a == "chaos-inference" || a.ends_with("/chaos-inference"))?;
    if command.get(at + 1).map(String::as_str) != Some("probe") {
        return None;
    }
    match command.get(at + 2).map(String::as_str) {
        Some("livez") => Some("/livez"),
        Some("readyz") => Some("/readyz"),
        Some("startupz") => Some("/startupz"),
        // The gRPC health service: "" follows liveness, the inference service readiness.
        Some("grpc") => {
            let rest = &command[at + 3..];
            let service = rest
                .iter()
                .position(|a| a == "--service")
                .and_then(|i| rest.get(i + 1).map(String::as_str))
                .or_else(|| rest.iter().find_map(|a| a.strip_prefix("--service=")))
                .unwrap_or("");
            match service {
                "" => Some("/livez"),
                INFERENCE_SERVICE => Some("/readyz"),
                _ => None,
            }
        }
        _ => None,
    }
}
