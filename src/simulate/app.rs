//! The application inside a container: its settings from the manifest, and what it answers at
//! every moment of one run, from the same plan the server follows (`chaos::plan`).

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::manifest::{Container, EnvValue, Handler};
use super::traffic::Capacity;
use crate::chaos::duration::show;
use crate::chaos::fault::{Anchor, CrashMode, Effect, LatencyDistribution};
use crate::chaos::overload::Work;
use crate::chaos::overrides::ChaosArgs;
use crate::chaos::plan::Plan;
use crate::chaos::profile::Profile;
use crate::chaos::seed;
use crate::config::{DEFAULT_MODEL_NAME, parse_duration};
use crate::grpc::health as grpc_health;
use crate::health::Switches;
use crate::http::routes::{self, Answers};
/// The server's route table, which the application model reads (and tests hold the server to).
pub use crate::http::routes::{ROUTES, Route};

/// Resident memory of an idle server, the base a leak grows from: 38 MiB measured on this
/// project's reference machine (2 HTTP and 2 inference workers, the built-in model), with room
/// either side for other CPU counts and for what the kernel charges the cgroup.
pub const WORKING_SET: (u64, u64) = (30 << 20, 45 << 20);
/// From the process start to `/readyz` passing with no chaos: the model loads and warms up
/// (26 ms measured by `bench/run.sh`).
pub const MODEL_LOAD: Duration = Duration::from_millis(50);
/// How fast the `oom` crash mode allocates: 64 MiB chunks written as fast as memory allows.
const OOM_RATE_MIB_PER_SECOND: f64 = 2048.0;
/// The port the server listens on unless `BIND` says otherwise.
const HTTP_PORT: u16 = 8000;
/// The gRPC port unless `GRPC_BIND` says otherwise.
const GRPC_PORT: u16 = 8001;
/// The built-in model's version: its file carries none.
const BUILT_IN_MODEL_VERSION: &str = crate::model::UNVERSIONED;

/// The profile an image runs when the container sets no `CHAOS_PROFILE`: what the Dockerfile's
/// targets set (`v2` for the `v2` tag, `none` otherwise).
pub fn image_profile(tag: &str) -> &'static str {
    if tag == "v2" { "v2" } else { "none" }
}

/// What `simulate` was told to use instead of the manifests' own settings.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub profile: Option<String>,
    pub seed: Option<u64>,
    pub time_scale: Option<f64>,
    /// Keep the profile's start-up and shutdown but none of its faults: what a strategy alone
    /// does, for the next-rollout finding.
    pub without_faults: bool,
}

/// A container's chaos settings, read from its environment as the server reads its own.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The profile, or why the server exits with code 2 at start.
    pub profile: Result<Profile, String>,
    /// `None` when it depends on a pod name not known in advance (pods of a ReplicaSet).
    pub seed: Option<u64>,
    pub time_scale: f64,
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
    pub http_port: u16,
    pub grpc_port: Option<u16>,
    pub model_name: String,
    pub model_version: Option<String>,
    /// The CHAOS_* overrides, to apply to the profile.
    chaos: Option<ChaosArgs>,
}

impl Settings {
    /// Reads a container's environment; `pod_name` is the pod's name when it is known.
    pub fn of(container: &Container, pod_name: Option<&str>, overrides: &Overrides) -> Settings {
        let env = |name: &str| match container.env.get(name) {
            Some(EnvValue::Literal(v)) => Some(v.clone()),
            Some(EnvValue::PodName) => pod_name.map(str::to_string),
            _ => None,
        };
        let mut settings = Settings {
            profile: Err(String::new()),
            seed: None,
            time_scale: 1.0,
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
            http_port: HTTP_PORT,
            grpc_port: Some(GRPC_PORT),
            model_name: env("MODEL_NAME").unwrap_or_else(|| DEFAULT_MODEL_NAME.into()),
            model_version: match container.env.get("MODEL_PATH") {
                None => Some(BUILT_IN_MODEL_VERSION.into()),
                Some(_) => None,
            },
            chaos: None,
        };
        let result = (|| -> Result<Profile, String> {
            let chaos = chaos_args(&container.env, pod_name)?;
            if let Some(d) = env("SHUTDOWN_DELAY") {
                settings.shutdown_delay =
                    parse_duration(&d).map_err(|e| format!("SHUTDOWN_DELAY: {e}"))?;
            }
            if let Some(d) = env("DRAIN_TIMEOUT") {
                settings.drain_timeout =
                    parse_duration(&d).map_err(|e| format!("DRAIN_TIMEOUT: {e}"))?;
            }
            if let Some(bind) = env("BIND") {
                settings.http_port = bind
                    .parse::<std::net::SocketAddr>()
                    .map_err(|_| format!("BIND: expected HOST:PORT, got `{bind}`"))?
                    .port();
            }
            if let Some(bind) = env("GRPC_BIND") {
                settings.grpc_port = if bind.is_empty() {
                    None
                } else {
                    Some(
                        bind.parse::<std::net::SocketAddr>()
                            .map_err(|_| format!("GRPC_BIND: expected HOST:PORT, got `{bind}`"))?
                            .port(),
                    )
                };
            }
            let name = overrides
                .profile
                .clone()
                .or_else(|| env("CHAOS_PROFILE"))
                .unwrap_or_else(|| image_profile(container.image_tag()).to_string());
            let mut profile = match (&container.mounted_profile, overrides.profile.is_some()) {
                (Some(mounted), false) => {
                    let text = mounted.clone()?;
                    let stem = std::path::Path::new(&name)
                        .file_stem()
                        .and_then(|s| s.to_str())
                        .unwrap_or(&name)
                        .to_string();
                    Profile::parse(&stem, &text)
                        .map_err(|e| format!("CHAOS_PROFILE={name}: {e}"))?
                }
                _ => Profile::load(&name)?,
            };
            chaos.apply(&mut profile)?;
            // The CHAOS_OVERLOAD_* variables, as the server reads them from its environment.
            crate::chaos::overrides::apply_overload(&mut profile, &|name| env(name))?;
            if overrides.without_faults {
                profile.faults.clear();
            }
            settings.seed = overrides
                .seed
                .or(chaos.seed)
                .or_else(|| pod_name.map(seed::from_hostname));
            settings.time_scale = overrides.time_scale.unwrap_or(chaos.time_scale);
            settings.chaos = Some(chaos);
            Ok(profile)
        })();
        settings.profile = result;
        settings
    }

    /// The plan for a seed, as the server would draw it.
    pub fn plan(&self, seed: u64) -> Option<Plan> {
        self.profile
            .as_ref()
            .ok()
            .map(|profile| Plan::new(profile, seed, self.time_scale))
    }
}

/// The CHAOS_* variables of a container, parsed by the server's own definitions.
fn chaos_args(
    env: &BTreeMap<String, EnvValue>,
    pod_name: Option<&str>,
) -> Result<ChaosArgs, String> {
    #[derive(Parser)]
    #[command(no_binary_name = true)]
    struct Only {
        #[command(flatten)]
        chaos: ChaosArgs,
    }
    let mut flags = Vec::new();
    for arg in Only::command().get_arguments() {
        let (Some(variable), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        let value = match env.get(variable.to_str().unwrap_or_default()) {
            Some(EnvValue::Literal(v)) => v.clone(),
            Some(EnvValue::PodName) => pod_name.unwrap_or_default().to_string(),
            _ => continue,
        };
        // The profile is resolved by the caller (it may be a mounted file).
        if long == "chaos-profile" {
            continue;
        }
        flags.push(format!("--{long}={value}"));
    }
    Only::try_parse_from(flags).map(|o| o.chaos).map_err(|e| {
        e.render()
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid CHAOS_* variable")
            .trim_start_matches("error: ")
            .to_string()
    })
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

    fn oom() -> Exit {
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
    fn holds(&self, t: Duration) -> bool {
        t >= self.start && self.end.is_none_or(|end| t < end)
    }
}

/// One run of the container, every time relative to its start. Every restart replays the same
/// plan: the seed comes from the pod's name, which a restart keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Life {
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
    /// The model name the V2 routes answer to (`MODEL_NAME`).
    pub model_name: String,
    /// The served model's version: `1` for the built-in model, unknown (`None`) for a model of
    /// the user's (`MODEL_PATH`), whose version only its file says.
    pub model_version: Option<String>,
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
}

impl Life {
    /// A run that ends at once with exit code 2: what the server does with a bad configuration.
    pub fn config_error(message: &str) -> Life {
        Life {
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
            http_port: HTTP_PORT,
            grpc_port: Some(GRPC_PORT),
            model_name: DEFAULT_MODEL_NAME.into(),
            model_version: Some(BUILT_IN_MODEL_VERSION.into()),
        }
    }

    /// A run of `plan` in a container with this memory limit and working set, looked at up to
    /// `horizon`.
    pub fn of(
        plan: &Plan,
        settings: &Settings,
        memory_limit: Option<u64>,
        working_set: u64,
        horizon: Duration,
    ) -> Life {
        let open = plan.bind_delay;
        let loaded = plan.bind_delay + plan.load_delay + MODEL_LOAD;
        let mut life = Life {
            open,
            loaded,
            live_while_loading: plan.live_while_loading,
            unhealthy: Vec::new(),
            unready: Vec::new(),
            hang: None,
            exit: None,
            ignore_sigterm: plan.ignore_sigterm,
            shutdown_delay: settings.shutdown_delay,
            drain_timeout: settings.drain_timeout,
            overload: Vec::new(),
            latency_p99: None,
            burn_cores: None,
            leak_oom: None,
            http_port: settings.http_port,
            grpc_port: settings.grpc_port,
            model_name: settings.model_name.clone(),
            model_version: settings.model_version.clone(),
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

    /// Whether a probe calling `handler` waits in an overload queue as a probe, by the server's
    /// own tables: the HTTP routes' (`Route::waits`) and the gRPC methods'.
    pub fn waits(&self, handler: &Handler) -> bool {
        let route_waits = |path: &str| {
            routes::route_of(path.split('?').next().unwrap_or(path))
                .is_some_and(|(route, _)| route.waits == Some(Work::Probe))
        };
        let health_waits = || crate::grpc::work_of(grpc_health::CHECK_METHOD) == Some(Work::Probe);
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

    /// What a probe calling `handler` gets at `t` into the run, and how long after it was
    /// sent: a probe that waits in an overload queue ([`Life::waits`]) answers after the wait
    /// `queue` says plus its own hold, or at once with the shed status when the queue is full
    /// and sheds probes. The kubelet compares that with the probe's timeout.
    pub fn answer(
        &self,
        handler: &Handler,
        t: Duration,
        sigterm: Option<Duration>,
        queue: &QueueView,
    ) -> (Outcome, Duration) {
        let outcome = self.probe(handler, t, sigterm);
        let reaches_queue = t >= self.open && !self.hung(t) && self.waits(handler);
        let Some(capacity) = self
            .capacity_at(t)
            .filter(|c| c.probes_queued && reaches_queue)
        else {
            return (outcome, Duration::ZERO);
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
            queue.wait + Duration::from_secs_f64(capacity.probe_s),
        )
    }

    /// What a probe calling `handler` gets at `t` into the run; `sigterm` is when SIGTERM came.
    pub fn probe(&self, handler: &Handler, t: Duration, sigterm: Option<Duration>) -> Outcome {
        let refused =
            |port: u16| Outcome::Failure(format!("dial tcp :{port}: connect: connection refused"));
        let hung = self.hang.is_some_and(|h| t >= h);
        let loading = t < self.loaded;
        let draining = sigterm.is_some_and(|s| t >= s);
        match handler {
            Handler::Tcp { port } => {
                if t < self.open || (*port != self.http_port && Some(*port) != self.grpc_port) {
                    refused(*port)
                } else {
                    // A hung server still accepts connections: only HTTP probes see the hang.
                    Outcome::Success
                }
            }
            Handler::Http { path, port } => {
                if t < self.open || *port != self.http_port {
                    return refused(*port);
                }
                if hung {
                    return Outcome::Timeout;
                }
                let status =
                    self.route_status(path.split('?').next().unwrap_or(path), t, loading, draining);
                if (200..400).contains(&status) {
                    Outcome::Success
                } else {
                    Outcome::Failure(format!("HTTP probe failed with statuscode: {status}"))
                }
            }
            Handler::Grpc { port, service } => {
                if t < self.open || Some(*port) != self.grpc_port {
                    return refused(*port);
                }
                if hung {
                    return Outcome::Timeout;
                }
                let Some(serving) = self.grpc_serving(service, t, loading, draining) else {
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
            Handler::Exec { command } => match probe_command(command) {
                Some(route) => {
                    let grpc_off = command.iter().any(|a| a == "grpc") && self.grpc_port.is_none();
                    if t < self.open || grpc_off {
                        return Outcome::Failure(format!(
                            "command {:?} exited with 1 (connection refused)",
                            command.join(" ")
                        ));
                    }
                    if hung {
                        return Outcome::Timeout;
                    }
                    if self.route_status(route, t, loading, draining) == 200 {
                        Outcome::Success
                    } else {
                        Outcome::Failure(format!("command {:?} exited with 1", command.join(" ")))
                    }
                }
                // A command of another program: its result is not the server's to predict.
                None => Outcome::Success,
            },
        }
    }

    /// The status the server answers `GET path` with: the server's own route table and
    /// health rules, read at this moment of the run.
    fn route_status(&self, path: &str, t: Duration, loading: bool, draining: bool) -> u16 {
        let Some((route, named)) = routes::route_of(path) else {
            return 404;
        };
        match route.answers {
            Answers::Check(check) => check.status(&self.switches(t, loading, draining)),
            Answers::Always => 200,
            // Prediction routes take POST: a probe's GET gets 405.
            Answers::PostOnly => 405,
            Answers::ModelLoaded => {
                // As the server checks: the name first, then that the model is loaded, then
                // the version (unknown for a model of the user's, which any version matches).
                if named.name.is_some_and(|n| n != self.model_name) {
                    404
                } else if loading {
                    503
                } else if named
                    .version
                    .zip(self.model_version.as_deref())
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

    /// Whether the gRPC health service answers SERVING at `t`; `None` for a service the
    /// server does not have.
    fn grpc_serving(
        &self,
        service: &str,
        t: Duration,
        loading: bool,
        draining: bool,
    ) -> Option<bool> {
        let (_, check) = grpc_health::SERVICES
            .iter()
            .find(|(name, _)| *name == service)?;
        Some(check.passes(&self.switches(t, loading, draining)))
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

/// The route a `chaos-inference probe <route>` command checks.
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

fn probe_command(command: &[String]) -> Option<&'static str> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::manifest::Container;

    fn container(env: &[(&str, &str)], image: &str) -> Container {
        Container {
            field: "spec.containers[0]".into(),
            name: "c".into(),
            image: image.into(),
            argv: Vec::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), EnvValue::Literal(v.to_string())))
                .collect(),
            startup: None,
            liveness: None,
            readiness: None,
            memory_limit: None,
            cpu_limit: None,
            mounted_profile: None,
        }
    }

    fn http(path: &str) -> Handler {
        Handler::Http {
            path: path.into(),
            port: 8000,
        }
    }

    #[test]
    fn settings_follow_the_environment_then_the_image_tag() {
        let none = Overrides::default();
        let s = Settings::of(&container(&[], "chaos-inference:v2"), Some("pod-a"), &none);
        assert_eq!(s.profile.as_ref().unwrap().name, "v2");
        assert_eq!(s.seed, Some(seed::from_hostname("pod-a")));
        let s = Settings::of(
            &container(&[("CHAOS_PROFILE", "none")], "chaos-inference:v2"),
            None,
            &none,
        );
        assert_eq!(s.profile.as_ref().unwrap().name, "none");
        assert_eq!(s.seed, None, "a ReplicaSet's pod names are not known");
        let s = Settings::of(
            &container(&[("CHAOS_TIME_SCALE", "0.2"), ("CHAOS_SEED", "7")], "x:v1"),
            None,
            &none,
        );
        assert_eq!((s.time_scale, s.seed), (0.2, Some(7)));
        let s = Settings::of(
            &container(&[("CHAOS_BURN_CORES", "1000")], "x"),
            None,
            &none,
        );
        assert!(s.profile.unwrap_err().starts_with("CHAOS_BURN_CORES"));
    }

    #[test]
    fn overload_variables_of_the_container_shape_its_capacity() {
        let settings = Settings::of(
            &container(
                &[
                    ("CHAOS_PROFILE", "overload"),
                    ("CHAOS_OVERLOAD_WORKERS", "4"),
                    ("CHAOS_OVERLOAD_QUEUE_LIMIT", "20"),
                ],
                "chaos-inference:v1",
            ),
            Some("p"),
            &Overrides::default(),
        );
        let plan = settings.plan(1).unwrap();
        let life = Life::of(
            &plan,
            &settings,
            None,
            WORKING_SET.0,
            Duration::from_secs(60),
        );
        let capacity = life.capacity_at(life.loaded).unwrap();
        assert_eq!((capacity.workers, capacity.queue_limit), (4, Some(20)));
        assert!((capacity.per_second() - 160.0).abs() < 1e-9);
        // Every probe route waits in the queue; a TCP connect and /metrics do not.
        assert!(life.waits(&http("/livez")) && life.waits(&http("/readyz")));
        assert!(life.waits(&http("/v2/models/heart-disease/ready")));
        assert!(!life.waits(&http("/metrics")));
        assert!(!life.waits(&Handler::Tcp { port: 8000 }));
        let bad = Settings::of(
            &container(&[("CHAOS_OVERLOAD_WORKERS", "0")], "chaos-inference:v1"),
            Some("p"),
            &Overrides::default(),
        );
        assert!(
            bad.profile
                .unwrap_err()
                .starts_with("CHAOS_OVERLOAD_WORKERS"),
            "named as the server names it"
        );
    }

    #[test]
    fn a_queued_probe_answers_after_its_wait_and_a_full_queue_sheds_it_only_when_told() {
        let settings = Settings::of(
            &container(&[("CHAOS_PROFILE", "overload")], "chaos-inference:v1"),
            Some("p"),
            &Overrides::default(),
        );
        let plan = settings.plan(1).unwrap();
        let mut life = Life::of(
            &plan,
            &settings,
            None,
            WORKING_SET.0,
            Duration::from_secs(60),
        );
        let t = life.loaded + Duration::from_secs(1);
        let busy = QueueView {
            wait: Duration::from_millis(1500),
            backlog: Duration::from_millis(1500),
            full: true,
        };
        let (outcome, after) = life.answer(&http("/livez"), t, None, &busy);
        assert_eq!(outcome, Outcome::Success);
        assert_eq!(
            after,
            Duration::from_millis(1501),
            "the wait and the 1 ms probe"
        );
        let (_, after) = life.answer(&Handler::Tcp { port: 8000 }, t, None, &busy);
        assert_eq!(after, Duration::ZERO, "a TCP connect never queues");
        life.overload[0].1.shed_probes = true;
        let (outcome, after) = life.answer(&http("/livez"), t, None, &busy);
        assert_eq!(
            (outcome, after),
            (
                Outcome::Failure("HTTP probe failed with statuscode: 503".into()),
                Duration::ZERO
            )
        );
    }

    #[test]
    fn v2_answers_as_the_server_does_through_its_run() {
        let settings = Settings::of(
            &container(&[], "chaos-inference:v2"),
            Some("p"),
            &Overrides::default(),
        );
        let plan = settings.plan(settings.seed.unwrap()).unwrap();
        let life = Life::of(
            &plan,
            &settings,
            None,
            WORKING_SET.0,
            Duration::from_secs(600),
        );
        let ready = plan.load_delay + MODEL_LOAD;
        assert_eq!(life.loaded, ready);
        let before = ready - Duration::from_millis(1);
        assert!(
            matches!(life.probe(&http("/readyz"), before, None), Outcome::Failure(m) if m.ends_with("503"))
        );
        assert_eq!(life.probe(&http("/livez"), before, None), Outcome::Success);
        assert_eq!(life.probe(&http("/readyz"), ready, None), Outcome::Success);
        let (at, exit) = life.exit.clone().unwrap();
        assert_eq!(at, ready + plan.schedules[0].first);
        assert_eq!((exit.code, exit.ending), (1, Ending::Error));
        assert!(
            exit.message.starts_with("v2: crash (exit code 1) after "),
            "{}",
            exit.message
        );
    }

    #[test]
    fn routes_answer_by_the_servers_own_table() {
        let settings = Settings::of(
            &container(&[("MODEL_NAME", "heart")], "chaos-inference:v2"),
            Some("p"),
            &Overrides::default(),
        );
        let plan = settings.plan(settings.seed.unwrap()).unwrap();
        let life = Life::of(
            &plan,
            &settings,
            None,
            WORKING_SET.0,
            Duration::from_secs(60),
        );
        let (loading, serving) = (Duration::ZERO, life.loaded);
        let status = |path: &str, t| life.route_status(path, t, t < life.loaded, false);
        // Another model's name is not this server's: 404 at once, not 503 then 200.
        assert_eq!(status("/v2/models/heart-disease/ready", serving), 404);
        assert_eq!(status("/v2/models/heart/ready", loading), 503);
        assert_eq!(status("/v2/models/heart/ready", serving), 200);
        assert_eq!(status("/v2/models/heart/versions/1/ready", serving), 200);
        assert_eq!(status("/v2/models/heart/versions/2/ready", serving), 404);
        // The event stream answers 200 from the start.
        assert_eq!(status("/chaos/events", loading), 200);
        assert_eq!(status("/v2/models/heart/infer", serving), 405);
        assert_eq!(status("/livez/", serving), 404);
        // gRPC health follows the same checks.
        assert_eq!(life.grpc_serving("", loading, true, false), Some(true));
        assert_eq!(
            life.grpc_serving(INFERENCE_SERVICE, loading, true, false),
            Some(false)
        );
        assert_eq!(life.grpc_serving("other", serving, false, false), None);
    }

    #[test]
    fn sigterm_drains_unless_ignored_or_hung() {
        let mut life = Life::config_error("x");
        life.exit = None;
        life.shutdown_delay = Duration::from_secs(5);
        let grace = Duration::from_secs(30);
        let t = Duration::from_secs(100);
        let idle = Duration::ZERO;
        assert_eq!(life.sigterm(t, grace, idle).1.ending, Ending::Completed);
        // A queue's backlog is served before the exit, up to the drain timeout.
        let (at, exit) = life.sigterm(t, grace, Duration::from_secs(4));
        assert_eq!(exit.ending, Ending::Completed);
        assert_eq!(at, t + Duration::from_millis(9_050));
        let (at, _) = life.sigterm(t, grace, Duration::from_secs(60));
        assert_eq!(
            at,
            t + Duration::from_millis(15_050),
            "5 s delay, 10 s drain"
        );
        life.ignore_sigterm = true;
        assert_eq!(
            life.sigterm(t, grace, idle),
            (t + grace, Exit::code(137, String::new()))
        );
        life.ignore_sigterm = false;
        life.hang = Some(Duration::from_secs(50));
        assert_eq!(life.sigterm(t, grace, idle).0, t + grace);
    }

    #[test]
    fn a_leak_reaches_the_limit_when_its_rate_says() {
        let profile = Profile::load("memory-leak").unwrap();
        let plan = Plan::new(&profile, 1, 1.0);
        let settings = Settings::of(&container(&[], "x"), Some("p"), &Overrides::default());
        let life = Life::of(
            &plan,
            &settings,
            Some(128 << 20),
            38 << 20,
            Duration::from_secs(600),
        );
        let (at, exit) = life.exit.unwrap();
        assert_eq!(exit.ending, Ending::OOMKilled);
        // 5 s after ready, then 90 MiB at 10 MiB/s.
        let expected = life.loaded + Duration::from_secs(5) + Duration::from_secs(9);
        assert!(at.abs_diff(expected) < Duration::from_millis(10), "{at:?}");
    }

    #[test]
    fn exec_probes_of_the_binary_check_its_routes() {
        assert_eq!(
            probe_command(&[
                "/usr/local/bin/chaos-inference".into(),
                "probe".into(),
                "readyz".into()
            ]),
            Some("/readyz")
        );
        assert_eq!(probe_command(&["cat".into(), "/tmp/healthy".into()]), None);
        let grpc = |rest: &[&str]| {
            let mut command = vec!["chaos-inference".to_string(), "probe".into(), "grpc".into()];
            command.extend(rest.iter().map(|a| a.to_string()));
            probe_command(&command)
        };
        assert_eq!(grpc(&[]), Some("/livez"));
        assert_eq!(grpc(&["--service", ""]), Some("/livez"));
        assert_eq!(
            grpc(&["--service", "inference.GRPCInferenceService"]),
            Some("/readyz")
        );
        assert_eq!(
            grpc(&["--service=inference.GRPCInferenceService"]),
            Some("/readyz")
        );
        assert_eq!(grpc(&["--service", "other"]), None);
    }
}
