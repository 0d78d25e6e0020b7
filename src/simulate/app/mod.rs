//! The application inside a container, the two ways its timeline is known: this server's, from
//! the container's environment read as the server reads its own ([`Settings`], the same plan
//! the server follows), or any application's, from a timeline file ([`file`]).

pub mod file;

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::manifest::{Container, EnvValue};
use super::timeline::{Routes, Shape};
use crate::chaos::overrides::ChaosArgs;
use crate::chaos::plan::Plan;
use crate::chaos::profile::Profile;
use crate::chaos::seed;
use crate::config::{DEFAULT_MODEL_NAME, parse_duration};
/// The server's route table, which the application model reads (and tests hold the server to).
pub use crate::http::routes::{ROUTES, Route};

/// Resident memory of an idle server, the base a leak grows from: 38 MiB measured on this
/// project's reference machine (2 HTTP and 2 inference workers, the built-in model), with room
/// either side for other CPU counts and for what the kernel charges the cgroup.
pub const WORKING_SET: (u64, u64) = (30 << 20, 45 << 20);
/// From the process start to `/readyz` passing with no chaos: the model loads and warms up
/// (26 ms measured by `bench/run.sh`).
pub const MODEL_LOAD: Duration = Duration::from_millis(50);
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
    /// Whether `BIND` and `GRPC_BIND` were given (a stand-in otherwise takes its application's
    /// ports).
    pub ports_given: (bool, bool),
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
            model_name: env("MODEL_NAME").unwrap_or_else(|| DEFAULT_MODEL_NAME.into()),
            model_version: match container.env.get("MODEL_PATH") {
                None => Some(BUILT_IN_MODEL_VERSION.into()),
                Some(_) => None,
            },
            ..Settings::defaults()
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
                settings.ports_given.0 = true;
                settings.http_port = bind
                    .parse::<std::net::SocketAddr>()
                    .map_err(|_| format!("BIND: expected HOST:PORT, got `{bind}`"))?
                    .port();
            }
            if let Some(bind) = env("GRPC_BIND") {
                settings.ports_given.1 = true;
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

impl Settings {
    /// The server's settings with no environment at all (its defaults, no profile).
    pub fn defaults() -> Settings {
        Settings {
            profile: Err(String::new()),
            seed: None,
            time_scale: 1.0,
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(10),
            http_port: HTTP_PORT,
            grpc_port: Some(GRPC_PORT),
            model_name: DEFAULT_MODEL_NAME.into(),
            model_version: Some(BUILT_IN_MODEL_VERSION.into()),
            ports_given: (false, false),
            chaos: None,
        }
    }

    /// The server's shape: its ports, its own routes for its model, its shutdown; or, with a
    /// timeline file as its profile, the application it stands in for (its ports unless `BIND`
    /// or `GRPC_BIND` say otherwise, its endpoints), as `stand_in` replays it.
    pub fn shape(&self) -> Shape {
        if let Ok(profile) = &self.profile
            && profile.endpoints.is_some()
        {
            let timeline = file::AppTimeline {
                source: profile.name.clone(),
                profile: profile.clone(),
            };
            let mut shape = timeline.shape();
            if self.ports_given.0 {
                shape.http_port = self.http_port;
            }
            if self.ports_given.1 {
                shape.grpc_port = self.grpc_port;
            }
            shape.drain_timeout = self.drain_timeout;
            shape.load_overhead = MODEL_LOAD;
            return shape;
        }
        Shape {
            http_port: self.http_port,
            grpc_port: self.grpc_port,
            routes: Routes::Server {
                model_name: self.model_name.clone(),
                model_version: self.model_version.clone(),
            },
            shutdown_delay: self.shutdown_delay,
            drain_timeout: self.drain_timeout,
            unready_on_sigterm: true,
            load_overhead: MODEL_LOAD,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::manifest::Container;
    use crate::simulate::manifest::{App, Handler};
    use crate::simulate::timeline::{
        Ending, Exit, INFERENCE_SERVICE, Outcome, QueueView, Timeline, probe_command,
    };

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
            ports: Vec::new(),
            pre_stop_sleep: None,
            timeline_annotation: None,
            app: App::Unknown,
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
        let life = Timeline::of(
            &plan,
            &settings.shape(),
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
        let mut life = Timeline::of(
            &plan,
            &settings.shape(),
            None,
            WORKING_SET.0,
            Duration::from_secs(60),
        );
        let t = life.loaded + Duration::from_secs(1);
        let busy = QueueView {
            wait: Duration::from_millis(1500),
            backlog: Duration::from_millis(1500),
            full: true,
            draw: 0.0,
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
        let life = Timeline::of(
            &plan,
            &settings.shape(),
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
        let life = Timeline::of(
            &plan,
            &settings.shape(),
            None,
            WORKING_SET.0,
            Duration::from_secs(60),
        );
        let (loading, serving) = (Duration::ZERO, life.loaded);
        let status = |path: &str, t| match life.probe(&http(path), t, None) {
            Outcome::Success => 200,
            Outcome::Failure(m) => m.rsplit(' ').next().unwrap().parse().unwrap(),
            Outcome::Timeout => 0,
        };
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
        let grpc = |service: &str, t| {
            life.probe(
                &Handler::Grpc {
                    port: 8001,
                    service: service.into(),
                },
                t,
                None,
            )
        };
        assert_eq!(grpc("", loading), Outcome::Success);
        assert!(
            matches!(grpc(INFERENCE_SERVICE, loading), Outcome::Failure(m) if m.contains("NOT_SERVING"))
        );
        assert!(matches!(grpc("other", serving), Outcome::Failure(m) if m.contains("NotFound")));
    }

    #[test]
    fn sigterm_drains_unless_ignored_or_hung() {
        let mut life = Timeline::config_error("x", &Settings::defaults().shape());
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
        let life = Timeline::of(
            &plan,
            &settings.shape(),
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
