//! Pod construction for one scenario: the modelled container's settings and timeline, and the
//! cluster's pace (start, restart, notice, resync, probe phases), each drawn within its slack.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use super::{Cluster, Item, PodTrace};
use crate::chaos::plan::{Draw, Plan, mix};
use crate::simulate::app::{Settings, WORKING_SET};
use crate::simulate::kubelet::{Ms, Pace, Pod, PodSpec, ProbeKind};
use crate::simulate::manifest::App;
use crate::simulate::manifest::Kind;
use crate::simulate::queue::Scoped;
use crate::simulate::timeline::Timeline;

/// The unknowns one run takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// Everything as early as it can be: quick cluster, every range at its low end.
    Earliest,
    /// Everything as late as it can be.
    Latest,
    /// Each unknown drawn from this seed.
    Drawn(u64),
}

/// The cluster's pace, drawn per pod: the documented slack of `docs/simulate.md`.
pub mod slack {
    use super::Ms;
    /// Pod created to container running (sandbox, image present): a few hundred milliseconds
    /// on the reference cluster, seconds on a busy node.
    pub const START: (Ms, Ms) = (200, 4_000);
    /// Restart decided to container running again.
    pub const RESTART: (Ms, Ms) = (300, 2_000);
    /// A container's exit to the kubelet acting on it (the PLEG relists every second).
    pub const NOTICE: (Ms, Ms) = (0, 1_500);
    /// A container's start to its probe workers seeing it running: the same relist, then the
    /// pod's sync writes the status they read (on the e2e's kubelet, MLServer under a liveness
    /// probe acting on one failure a second ran 2-3 s each time, longer than a probe in its
    /// first second allows, and once outlived it).
    pub const SEEN: (Ms, Ms) = (0, 1_500);
    /// A pod in back-off is synced again every 10-15 s: a restart lands up to 15 s late.
    pub const RESYNC: (Ms, Ms) = (0, 15_000);
    /// A controller acting on a change.
    pub const CONTROLLER: (Ms, Ms) = (50, 1_000);
}

impl Cluster<'_> {
    /// A value in `range`: its low end in the earliest scenario, high end in the latest.
    pub(super) fn pick(&mut self, range: (Ms, Ms)) -> Ms {
        match self.scenario {
            Scenario::Earliest => range.0,
            Scenario::Latest => range.1,
            Scenario::Drawn(_) => self.rng.random_range(range.0..=range.1),
        }
    }

    /// A memory size in `low..=high`: the earliest scenario takes the high end (a limit is
    /// reached sooner), the latest the low end.
    fn pick_bytes(&mut self, low: u64, high: u64) -> u64 {
        match self.scenario {
            Scenario::Earliest => high,
            Scenario::Latest => low,
            Scenario::Drawn(_) => self.rng.random_range(low..=high),
        }
    }

    /// A new pod of workload `w`'s ReplicaSet `set`, on template `revision`.
    pub(super) fn create_pod(&mut self, w: usize, set: usize, revision: usize, name: String) {
        let template = self.states[w].templates[revision].clone();
        let kind = self.states[w].workload.kind;
        let index = self.pods.len();
        // A pod's name is known in advance only when the manifest gives it.
        let known_name = (kind == Kind::Pod).then_some(name.as_str());
        // A pod whose containers have no timeline is not simulated.
        let Some(container) = template.modelled() else {
            return;
        };
        let unknown_seed = |scenario: Scenario| {
            let base = match scenario {
                Scenario::Drawn(seed) => seed,
                Scenario::Earliest => 11,
                Scenario::Latest => 12,
            };
            mix(base, index as u64 + 1)
        };
        let horizon = Duration::from_millis(self.horizon);
        let (life, app, seed) = match &container.app {
            App::Timeline(timeline) if !timeline.is_server_profile() => {
                // Another application: nothing seeds its draws, so every one is covered.
                let seed = unknown_seed(self.scenario);
                let draw = match self.scenario {
                    Scenario::Drawn(_) => Draw::Seed(seed),
                    Scenario::Earliest => Draw::Lowest(seed),
                    Scenario::Latest => Draw::Highest(seed),
                };
                let time_scale = self.overrides.time_scale.unwrap_or(1.0);
                let working_set = timeline
                    .working_set()
                    .map_or(0, |r| self.pick_bytes(r.low, r.high));
                let life = Timeline::of(
                    &Plan::drawn(&timeline.profile, draw, time_scale),
                    &timeline.shape(),
                    container.memory_limit,
                    working_set,
                    horizon,
                );
                (life, format!("timeline {}", timeline.source), None)
            }
            App::Timeline(_) | App::Server | App::Unknown => {
                let mut settings = Settings::of(container, known_name, self.overrides);
                if let App::Timeline(timeline) = &container.app {
                    // A built-in profile named as the timeline: the server with that profile.
                    settings.profile = Ok(timeline.profile.clone());
                }
                let working_set = self.pick_bytes(WORKING_SET.0, WORKING_SET.1);
                let draw_seed = settings.seed.unwrap_or_else(|| unknown_seed(self.scenario));
                let draw = match (settings.seed.is_some(), self.scenario) {
                    (true, _) | (false, Scenario::Drawn(_)) => Draw::Seed(draw_seed),
                    (false, Scenario::Earliest) => Draw::Lowest(draw_seed),
                    (false, Scenario::Latest) => Draw::Highest(draw_seed),
                };
                let (life, app) = match &settings.profile {
                    Ok(profile) => (
                        Timeline::of(
                            &Plan::drawn(profile, draw, settings.time_scale),
                            &settings.shape(),
                            container.memory_limit,
                            working_set,
                            horizon,
                        ),
                        profile.name.clone(),
                    ),
                    Err(message) => (
                        Timeline::config_error(message, &settings.shape()),
                        format!("(exits 2: {message})"),
                    ),
                };
                (life, app, settings.seed)
            }
        };
        let spec = PodSpec {
            container: container.name.clone(),
            probes: [
                container.startup.clone(),
                container.liveness.clone(),
                container.readiness.clone(),
            ],
            restart_policy: template.restart_policy,
            grace: template.grace,
        };
        let pace = self.pace(&spec, &life);
        let life = Arc::new(life);
        let mut clock = Scoped::new(&mut self.queue, |w| Item::Pod(index, w));
        let pod = Pod::new(
            name,
            self.now,
            Arc::new(spec),
            Arc::clone(&life),
            pace,
            &mut clock,
        );
        self.pods.push(PodTrace {
            pod,
            workload: w,
            set,
            revision,
            life,
            app,
            seed,
        });
        self.pod_changed(index);
    }

    /// The cluster's pace for a new pod.
    fn pace(&mut self, spec: &PodSpec, life: &Timeline) -> Pace {
        let start = self.pick(slack::START);
        // The probes' phases: in the earliest run every probe ticks the moment its answer first
        // changes (liveness when it first fails, startup and readiness when the model has
        // loaded); in the latest, a millisecond after, so it waits a whole period.
        // Rounded up: a tick a fraction of a millisecond early would still see the old answer.
        let ms = |d: Duration| {
            if d == Duration::MAX {
                0
            } else {
                d.as_micros().div_ceil(1000) as Ms
            }
        };
        let loaded = ms(life.loaded);
        let failing = life.liveness_fails_from().map_or(0, ms);
        let mut phases = [0; 3];
        for (i, probe) in spec.probes.iter().enumerate() {
            let Some(probe) = probe else { continue };
            let period = u64::from(probe.period) * 1000;
            let moment = if i == ProbeKind::Liveness as usize {
                start + failing
            } else {
                start + loaded
            };
            phases[i] = match self.scenario {
                Scenario::Earliest => moment % period,
                Scenario::Latest => (moment + 1) % period,
                Scenario::Drawn(_) => self.rng.random_range(0..period),
            };
        }
        Pace {
            start,
            restart: self.pick(slack::RESTART),
            notice: self.pick(slack::NOTICE),
            resync: std::array::from_fn(|_| self.pick(slack::RESYNC)),
            seen: std::array::from_fn(|_| self.pick(slack::SEEN)),
            phases,
        }
    }
}
