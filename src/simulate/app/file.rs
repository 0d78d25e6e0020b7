//! Any application's timeline, from a timeline file: the profile language (the same TOML,
//! durations, ranges, faults and checks) plus `[endpoints]` (its ports and what each probe
//! target follows) and `[resources]` (its memory), and the shutdown keys `exit-after` and
//! `unready-on-sigterm`. A built-in profile's name works too: the application then behaves as
//! this server does with that profile.

use std::path::Path;
use std::time::Duration;

use crate::chaos::duration::show;
use crate::chaos::endpoints::MemoryRange;
use crate::chaos::plan::{Draw, Plan};
use crate::chaos::profile::{BUILTINS, Profile};
use crate::simulate::timeline::{Check, DeclaredRoutes, Routes, Shape};

use super::Settings;

/// An application's timeline, as a file (or a built-in profile) declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct AppTimeline {
    /// The file as given (or the built-in profile's name).
    pub source: String,
    /// The schedule, the startup and the shutdown, checked as every profile is.
    pub profile: Profile,
}

impl AppTimeline {
    /// Parses a timeline file's text; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<AppTimeline, String> {
        let stem = Path::new(source)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or(source);
        let profile = Profile::parse(stem, text).map_err(|e| format!("{source}: {e}"))?;
        if profile.endpoints.is_none() {
            return Err(format!(
                "{source}: a timeline file needs [endpoints] with at least http-port (the application's port)"
            ));
        }
        Ok(AppTimeline {
            source: source.to_string(),
            profile,
        })
    }

    /// A built-in profile's name, or a timeline file's path (relative paths against `base`,
    /// the folder of the manifest that names it).
    pub fn load(name_or_path: &str, base: Option<&Path>) -> Result<AppTimeline, String> {
        if BUILTINS.iter().any(|b| b.name == name_or_path) {
            return Ok(AppTimeline {
                source: name_or_path.to_string(),
                profile: Profile::load(name_or_path)?,
            });
        }
        let path = match base {
            Some(base) if Path::new(name_or_path).is_relative() => base.join(name_or_path),
            _ => Path::new(name_or_path).to_path_buf(),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: cannot read the timeline: {e}; expected a timeline file or one of the built-in profiles",
                path.display()
            )
        })?;
        AppTimeline::parse(&path.display().to_string(), &text)
    }

    /// What it will do, in words: where it listens, what each probe target follows and how
    /// fast, its memory, its shutdown, then its plan (as `chaos-inference plan` prints one):
    /// for `seed`, or at each range's low and high end.
    pub fn describe(&self, seed: Option<u64>, time_scale: f64, repeats: u64) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(out, "timeline    {}", self.source);
        if let Some(endpoints) = &self.profile.endpoints {
            let grpc = endpoints
                .grpc_port
                .map_or(String::new(), |p| format!(", gRPC on {p}"));
            let _ = writeln!(out, "listens     HTTP on {}{grpc}", endpoints.http_port);
            for (what, list) in [
                ("follows liveness", &endpoints.liveness),
                ("follows readiness", &endpoints.readiness),
                ("follows startup", &endpoints.startup),
                ("answers once open", &endpoints.always),
            ] {
                for endpoint in list {
                    let latency = endpoints
                        .latency
                        .get(endpoint)
                        .map_or(String::new(), |l| format!(", in {l}"));
                    let _ = writeln!(out, "            {endpoint} {what}{latency}");
                }
            }
        }
        if let Some(ws) = self.working_set() {
            let _ = writeln!(out, "memory      {ws} when started");
        }
        let shutdown = &self.profile.shutdown;
        let _ = writeln!(
            out,
            "on SIGTERM  {}{}",
            match (shutdown.ignore_sigterm, shutdown.exit_after) {
                (true, _) => "ignored: only SIGKILL ends it".to_string(),
                (false, Some(after)) => format!("exits {after} after it"),
                (false, None) => "exits at once".to_string(),
            },
            if shutdown.unready_on_sigterm == Some(false) {
                "; readiness keeps passing until then"
            } else {
                "; readiness fails at once"
            }
        );
        let plans = match seed {
            Some(seed) => vec![(
                format!("seed {seed}"),
                Plan::new(&self.profile, seed, time_scale),
            )],
            None => vec![
                (
                    "earliest: every range at its low end".to_string(),
                    Plan::drawn(&self.profile, Draw::Lowest(1), time_scale),
                ),
                (
                    "latest: every range at its high end".to_string(),
                    Plan::drawn(&self.profile, Draw::Highest(1), time_scale),
                ),
            ],
        };
        for (name, plan) in plans {
            let _ = writeln!(out, "\n--- {name}");
            let _ = writeln!(
                out,
                "{:<20} port opens",
                format!("start + {}", show(plan.bind_delay))
            );
            let _ = writeln!(
                out,
                "{:<20} loaded: readiness and startup pass{}",
                format!("start + {}", show(plan.bind_delay + plan.load_delay)),
                if plan.live_while_loading {
                    ""
                } else {
                    " (liveness too; it fails until then)"
                }
            );
            for line in plan.timeline(repeats) {
                // The fault texts name this server's routes; here they are the checks'.
                let line = line
                    .replace("/livez answers 500", "liveness fails")
                    .replace("/readyz answers 503", "readiness fails");
                let _ = writeln!(out, "{line}");
            }
        }
        out
    }

    /// Whether it is this server's profile rather than another application's timeline.
    pub fn is_server_profile(&self) -> bool {
        self.profile.endpoints.is_none()
    }

    /// The memory it holds once started, when the file says.
    pub fn working_set(&self) -> Option<MemoryRange> {
        self.profile.resources.as_ref().and_then(|r| r.working_set)
    }

    /// Its shape: where it listens and what each probe target follows (its shutdown is the
    /// plan's: `exit-after`, `unready-on-sigterm`). A built-in profile's is the server's with no
    /// environment: port 8000, gRPC 8001, its own routes.
    pub fn shape(&self) -> Shape {
        let Some(endpoints) = &self.profile.endpoints else {
            return Settings::defaults().shape();
        };
        let mut answers = Vec::new();
        for (list, check) in [
            (&endpoints.liveness, Some(Check::Liveness)),
            (&endpoints.readiness, Some(Check::Readiness)),
            (&endpoints.startup, Some(Check::Startup)),
            (&endpoints.always, None),
        ] {
            answers.extend(list.iter().map(|e| (e.clone(), check)));
        }
        Shape {
            http_port: endpoints.http_port,
            grpc_port: endpoints.grpc_port,
            routes: Routes::Declared(DeclaredRoutes {
                answers,
                latency: endpoints
                    .latency
                    .iter()
                    .map(|(e, l)| (e.clone(), *l))
                    .collect(),
            }),
            // It exits by itself `exit-after` after SIGTERM (the plan's); no drain beyond that.
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::ZERO,
            unready_on_sigterm: true,
            load_overhead: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::endpoints::Endpoint;

    const JAVA: &str = r#"
description = "a Java service: 40-90 s to start, /actuator/health/liveness and /readiness"
[startup]
bind-delay = "5s..10s"
load-delay = "35s..80s"
[shutdown]
exit-after = "2s..4s"
unready-on-sigterm = false
[endpoints]
http-port = 8080
liveness = ["/actuator/health/liveness"]
readiness = ["/actuator/health/readiness"]
always = ["/"]
[endpoints.latency]
"/actuator/health/readiness" = "5ms..40ms"
[resources]
working-set = "300Mi..420Mi"
growth-mib-per-hour = 20
"#;

    #[test]
    fn a_timeline_file_is_a_profile_with_endpoints_and_resources() {
        let t = AppTimeline::parse("java.toml", JAVA).unwrap();
        assert!(!t.is_server_profile());
        let shape = t.shape();
        assert_eq!((shape.http_port, shape.grpc_port), (8080, None));
        let Routes::Declared(routes) = &shape.routes else {
            panic!("{:?}", shape.routes)
        };
        assert_eq!(
            routes.follows(&Endpoint::Path("/actuator/health/readiness".into())),
            Some(Some(Check::Readiness))
        );
        assert_eq!(routes.follows(&Endpoint::Path("/".into())), Some(None));
        assert_eq!(routes.follows(&Endpoint::Path("/nope".into())), None);
        let plan = Plan::drawn(&t.profile, Draw::Highest(1), 1.0);
        assert!(!plan.unready_on_sigterm);
        assert_eq!(plan.exit_after, Some(Duration::from_secs(4)));
        assert_eq!(t.working_set().unwrap().low, 300 << 20);
        // The growth is a leak from the start: 20 MiB an hour.
        assert!(t.profile.faults.iter().any(|f| matches!(
            f.effect,
            crate::chaos::fault::Effect::Leak { mib_per_second, .. } if (mib_per_second * 3600.0 - 20.0).abs() < 1e-9
        )));
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = AppTimeline::parse("t.toml", "[startup]\nload-delay = \"10s\"\n").unwrap_err();
        assert!(
            e.starts_with("t.toml: a timeline file needs [endpoints]"),
            "{e}"
        );
        let e = AppTimeline::parse(
            "t.toml",
            "[endpoints]\nhttp-port = 8080\nliveness = [\"healthz\"]\n",
        )
        .unwrap_err();
        assert!(e.starts_with("t.toml: line 3"), "{e}");
        assert!(
            e.contains("expected a path (/healthz), grpc:SERVICE or exec:COMMAND"),
            "{e}"
        );
        let e = AppTimeline::parse(
            "t.toml",
            "[endpoints]\nhttp-port = 8080\n[resources]\ngrowth-mib-per-hour = -1\n",
        )
        .unwrap_err();
        assert!(e.contains("resources.growth-mib-per-hour"), "{e}");
        let e = AppTimeline::load("no-such-timeline.toml", None).unwrap_err();
        assert!(e.contains("cannot read the timeline"), "{e}");
    }

    #[test]
    fn a_built_in_profile_is_the_server_with_that_profile() {
        let t = AppTimeline::load("v2", None).unwrap();
        assert!(t.is_server_profile());
        let shape = t.shape();
        assert_eq!(shape.http_port, 8000);
        assert!(matches!(shape.routes, Routes::Server { .. }));
    }
}
