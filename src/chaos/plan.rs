//! The plan: a pure function of (profile, seed, time scale).
//!
//! Every random draw of a profile (range values, probabilities) comes from the seed here, so the
//! `plan` subcommand prints exactly what the server will do, and the same seed gives the same
//! timeline on every run. Each fault draws from its own stream, so adding a fault to a profile
//! does not move the others.

use std::fmt::Write as _;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::duration::{DurationRange, scale, show};
use super::fault::{Anchor, Effect};
use super::profile::Profile;

/// One fault of the profile, with its draws done and the time scale applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Position in the profile (`fault[index]`).
    pub index: usize,
    /// What it does, with durations scaled and once-per-plan draws done.
    pub effect: Effect,
    pub anchor: Anchor,
    /// From the anchor to the first occurrence.
    pub first: Duration,
    /// How long each occurrence lasts; `None` for ever (or instantaneous for crash and hang).
    pub window: Option<Duration>,
    /// Time between occurrence starts; `None` for a single occurrence.
    pub period: Option<Duration>,
    pub probability: f64,
    stream: u64,
}

/// One occurrence of a schedule, relative to its anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurrence {
    pub number: u64,
    pub start: Duration,
    pub end: Option<Duration>,
    /// False when the probability draw skipped this occurrence.
    pub happens: bool,
}

impl Schedule {
    /// Occurrence `k` (from 0), or `None` past the last one.
    pub fn occurrence(&self, k: u64) -> Option<Occurrence> {
        if k > 0 && self.period.is_none() {
            return None;
        }
        let offset = self.period.map_or(Some(Duration::ZERO), |p| {
            p.checked_mul(u32::try_from(k).ok()?)
        })?;
        let start = self.first.checked_add(offset)?;
        let happens = self.probability >= 1.0
            || ChaCha8Rng::seed_from_u64(mix(self.stream, k)).random::<f64>() < self.probability;
        Some(Occurrence {
            number: k,
            start,
            end: self.window.and_then(|w| start.checked_add(w)),
            happens,
        })
    }
}

/// Everything the server will do, decided up front.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub profile: String,
    pub description: String,
    pub seed: u64,
    pub time_scale: f64,
    /// Port closed for this long at start.
    pub bind_delay: Duration,
    /// Port open, model loading, for at least this long.
    pub load_delay: Duration,
    pub ignore_sigterm: bool,
    /// A timeline's: after SIGTERM, how long until it exits by itself.
    pub exit_after: Option<Duration>,
    /// Whether readiness fails the moment SIGTERM comes (a timeline may say it does not).
    pub unready_on_sigterm: bool,
    /// `/livez` passes during the load.
    pub live_while_loading: bool,
    pub schedules: Vec<Schedule>,
}

/// Seeds a stream from the plan seed and a position, so streams never overlap (splitmix64).
pub fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Stream numbers: startup draws use these, fault `i` uses `FAULT_STREAMS + i`.
const BIND_STREAM: u64 = 1;
const LOAD_STREAM: u64 = 2;
const EXIT_STREAM: u64 = 3;
const FAULT_STREAMS: u64 = 1000;

/// How a plan's ranges are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// From the seed: what the server does.
    Seed(u64),
    /// Every range at its low end (probabilities still from the seed): the earliest times the
    /// profile allows, for `simulate`.
    Lowest(u64),
    /// Every range at its high end.
    Highest(u64),
}

impl Plan {
    /// Draws every range and applies the time scale. Pure: same inputs, same plan.
    pub fn new(profile: &Profile, seed: u64, time_scale: f64) -> Plan {
        Plan::drawn(profile, Draw::Seed(seed), time_scale)
    }

    /// The plan with its ranges drawn as `draw` says.
    pub fn drawn(profile: &Profile, draw: Draw, time_scale: f64) -> Plan {
        let (Draw::Seed(seed) | Draw::Lowest(seed) | Draw::Highest(seed)) = draw;
        let pick = move |r: DurationRange, rng: &mut ChaCha8Rng| match draw {
            Draw::Seed(_) => r.sample(rng),
            Draw::Lowest(_) => r.low,
            Draw::Highest(_) => r.high,
        };
        let draw_once = |range: Option<DurationRange>, stream: u64| {
            range.map_or(Duration::ZERO, |r| {
                scale(
                    pick(r, &mut ChaCha8Rng::seed_from_u64(mix(seed, stream))),
                    time_scale,
                )
            })
        };
        let schedules = profile
            .faults
            .iter()
            .enumerate()
            .map(|(index, fault)| {
                let stream = mix(seed, FAULT_STREAMS + index as u64);
                let mut rng = ChaCha8Rng::seed_from_u64(stream);
                let mut take =
                    |r: Option<DurationRange>| r.map(|r| scale(pick(r, &mut rng), time_scale));
                let timing = &fault.timing;
                let first = take(timing.after).unwrap_or(Duration::ZERO);
                let window = take(timing.duration);
                let period = take(timing.every);
                let effect = fault
                    .effect
                    .resolve(&mut |r: DurationRange| pick(r, &mut rng), time_scale);
                Schedule {
                    index,
                    effect,
                    anchor: timing.from,
                    first,
                    window,
                    period,
                    probability: timing.probability.unwrap_or(1.0),
                    stream,
                }
            })
            .collect();
        Plan {
            profile: profile.name.clone(),
            description: profile.description.clone(),
            seed,
            time_scale,
            bind_delay: draw_once(profile.startup.bind_delay, BIND_STREAM),
            load_delay: draw_once(profile.startup.load_delay, LOAD_STREAM),
            ignore_sigterm: profile.shutdown.ignore_sigterm,
            exit_after: profile
                .shutdown
                .exit_after
                .map(|r| draw_once(Some(r), EXIT_STREAM)),
            unready_on_sigterm: profile.shutdown.unready_on_sigterm.unwrap_or(true),
            live_while_loading: profile.startup.live_while_loading.unwrap_or(true),
            schedules,
        }
    }

    /// The timeline as text: what `chaos-inference plan` prints. Repeating schedules show their
    /// first `repeats` occurrences.
    pub fn render(&self, repeats: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "profile     {}", self.profile);
        if !self.description.is_empty() {
            let _ = writeln!(out, "            {}", self.description);
        }
        let _ = writeln!(out, "seed        {}", self.seed);
        let _ = writeln!(out, "time scale  {}", self.time_scale);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "start + {:<12} port opens{}",
            show(self.bind_delay),
            if self.bind_delay.is_zero() {
                String::new()
            } else {
                " (closed until then: TCP probes fail)".into()
            }
        );
        let _ = writeln!(
            out,
            "start + {:<12} model load begins{}",
            show(self.bind_delay),
            if self.live_while_loading {
                ""
            } else {
                " (/livez answers 503 until it ends)"
            }
        );
        let _ = writeln!(
            out,
            "ready                = start + {} + model load time{}",
            show(self.bind_delay + self.load_delay),
            if self.load_delay.is_zero() {
                String::new()
            } else {
                format!(" (load delay {})", show(self.load_delay))
            }
        );
        for line in self.timeline(repeats) {
            let _ = writeln!(out, "{line}");
        }
        if self.ignore_sigterm {
            let _ = writeln!(
                out,
                "on SIGTERM           ignored: only SIGKILL ends the process"
            );
        } else {
            let _ = writeln!(
                out,
                "on SIGTERM           {}, {}",
                if self.unready_on_sigterm {
                    "readiness fails"
                } else {
                    "readiness keeps passing"
                },
                match self.exit_after {
                    Some(after) => format!("exit 0 after {}", show(after)),
                    None => "in-flight requests finish, exit 0".into(),
                }
            );
        }
        out
    }

    /// One line per event, in time order within each anchor (start first, then ready).
    pub fn timeline(&self, repeats: u64) -> Vec<String> {
        let mut events: Vec<(Anchor, Duration, String)> = Vec::new();
        for s in &self.schedules {
            for k in 0..repeats.max(1) {
                let Some(o) = s.occurrence(k) else { break };
                let what = format!("fault[{}] {}", s.index, s.effect.describe());
                if !o.happens {
                    events.push((
                        s.anchor,
                        o.start,
                        format!("{what}: skipped (probability {})", s.probability),
                    ));
                    continue;
                }
                match (o.end, !s.effect.kind().can_stop()) {
                    (_, true) | (None, false) => {
                        events.push((s.anchor, o.start, format!("{what} starts")))
                    }
                    (Some(end), false) => {
                        events.push((s.anchor, o.start, format!("{what} starts")));
                        events.push((
                            s.anchor,
                            end,
                            format!("fault[{}] {} ends", s.index, s.effect.kind()),
                        ));
                    }
                }
            }
            if let Some(p) = s.period {
                events.push((
                    s.anchor,
                    Duration::MAX,
                    format!("fault[{}] repeats every {}", s.index, show(p)),
                ));
            }
        }
        events.sort_by_key(|(anchor, at, _)| (*anchor == Anchor::Ready, *at));
        events
            .into_iter()
            .map(|(anchor, at, what)| {
                let base = if anchor == Anchor::Start {
                    "start"
                } else {
                    "ready"
                };
                if at == Duration::MAX {
                    format!("{:<20} {what}", "...")
                } else {
                    format!("{:<20} {what}", format!("{base} + {}", show(at)))
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::fault::CrashMode;
    use crate::chaos::profile::BUILTINS;

    fn profile(name: &str) -> Profile {
        let b = BUILTINS.iter().find(|b| b.name == name).unwrap();
        Profile::parse(b.name, b.text).unwrap()
    }

    fn custom(text: &str) -> Profile {
        Profile::parse("custom", text).unwrap()
    }

    #[test]
    fn same_inputs_same_plan_and_other_seeds_differ() {
        let p = profile("v2");
        assert_eq!(Plan::new(&p, 42, 1.0), Plan::new(&p, 42, 1.0));
        let a = Plan::new(&p, 1, 1.0);
        let b = Plan::new(&p, 2, 1.0);
        assert_ne!(
            (a.load_delay, a.schedules[0].first),
            (b.load_delay, b.schedules[0].first)
        );
        assert_eq!(a.render(3), Plan::new(&p, 1, 1.0).render(3));
    }

    #[test]
    fn v2_draws_stay_in_their_ranges_for_many_seeds() {
        let p = profile("v2");
        for seed in 0..500 {
            let plan = Plan::new(&p, seed, 1.0);
            assert!(
                (20..=30).contains(&plan.load_delay.as_secs()),
                "{:?}",
                plan.load_delay
            );
            let crash = &plan.schedules[0];
            assert_eq!(crash.anchor, Anchor::Ready);
            assert!(
                crash.first >= Duration::from_secs(60) && crash.first <= Duration::from_secs(120)
            );
            assert_eq!(
                crash.effect,
                Effect::Crash {
                    mode: CrashMode::Exit,
                    exit_code: 1
                }
            );
        }
    }

    #[test]
    fn time_scale_multiplies_every_duration() {
        let p = profile("flapping-readiness");
        let one = Plan::new(&p, 9, 1.0);
        let fast = Plan::new(&p, 9, 0.01);
        let s1 = &one.schedules[0];
        let s2 = &fast.schedules[0];
        assert_eq!(s2.first, scale(s1.first, 0.01));
        assert_eq!(s2.window, Some(Duration::from_millis(100)));
        assert_eq!(s2.period, Some(Duration::from_millis(300)));
        let v2 = profile("v2");
        assert_eq!(
            Plan::new(&v2, 3, 0.1).load_delay,
            scale(Plan::new(&v2, 3, 1.0).load_delay, 0.1)
        );
    }

    #[test]
    fn windows_repeat_on_a_fake_clock() {
        let plan = Plan::new(&profile("flapping-readiness"), 5, 1.0);
        let s = &plan.schedules[0];
        let secs = Duration::from_secs;
        let o: Vec<_> = (0..3).map(|k| s.occurrence(k).unwrap()).collect();
        assert_eq!((o[0].start, o[0].end), (secs(20), Some(secs(30))));
        assert_eq!((o[1].start, o[1].end), (secs(50), Some(secs(60))));
        assert_eq!((o[2].start, o[2].end), (secs(80), Some(secs(90))));
    }

    #[test]
    fn single_occurrences_do_not_repeat() {
        let plan = Plan::new(&profile("crash-loop"), 5, 1.0);
        let s = &plan.schedules[0];
        assert_eq!(s.occurrence(0).unwrap().start, Duration::from_secs(5));
        assert!(s.occurrence(1).is_none());
    }

    #[test]
    fn probability_skips_some_occurrences_reproducibly() {
        let p = custom(
            "[[fault]]\ntype = \"unready\"\nafter = \"1s\"\nfor = \"1s\"\nevery = \"2s\"\nprobability = 0.5\n",
        );
        let plan = Plan::new(&p, 77, 1.0);
        let happened: Vec<bool> = (0..200)
            .map(|k| plan.schedules[0].occurrence(k).unwrap().happens)
            .collect();
        let count = happened.iter().filter(|h| **h).count();
        assert!((60..=140).contains(&count), "{count} of 200");
        let again: Vec<bool> = (0..200)
            .map(|k| {
                Plan::new(&p, 77, 1.0).schedules[0]
                    .occurrence(k)
                    .unwrap()
                    .happens
            })
            .collect();
        assert_eq!(happened, again);
    }

    #[test]
    fn adding_a_fault_does_not_move_the_others() {
        let one = custom("[[fault]]\ntype = \"crash\"\nafter = \"10s..20s\"\n");
        let two = custom(
            "[[fault]]\ntype = \"crash\"\nafter = \"10s..20s\"\n[[fault]]\ntype = \"hang\"\nafter = \"1s..9s\"\n",
        );
        assert_eq!(
            Plan::new(&one, 4, 1.0).schedules[0].first,
            Plan::new(&two, 4, 1.0).schedules[0].first
        );
    }

    #[test]
    fn lognormal_latency_has_its_median_and_a_long_tail() {
        let plan = Plan::new(&profile("latency"), 1, 1.0);
        let Effect::Latency(latency) = &plan.schedules[0].effect else {
            panic!()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut draws: Vec<f64> = (0..20_000)
            .map(|_| latency.sample(&mut rng).as_secs_f64())
            .collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[10_000];
        let p99 = draws[19_800];
        assert!((0.045..0.055).contains(&median), "median {median}");
        assert!((0.8..1.25).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn the_rendered_timeline_names_each_event() {
        let text = Plan::new(&profile("v2"), 11, 1.0).render(3);
        assert!(text.contains("profile     v2"), "{text}");
        assert!(
            text.contains("fault[0] crash (exit code 1) starts"),
            "{text}"
        );
        assert!(text.contains("load delay"), "{text}");
        let flapping = Plan::new(&profile("flapping-readiness"), 11, 1.0).render(2);
        assert!(flapping.contains("ready + 20s"), "{flapping}");
        assert!(flapping.contains("ready + 30s"), "{flapping}");
        assert!(flapping.contains("repeats every 30s"), "{flapping}");
    }
}

/// Properties of the planner for any profile, seed and time scale.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::chaos::duration::scale;
    use proptest::prelude::*;

    /// Milliseconds: after (low), after spread, for, every minus for; and probability in percent.
    type Timings = (u64, u64, u64, u64, u64);

    /// A profile text with random timings for one fault of each windowed kind and a crash.
    fn profile_text() -> impl Strategy<Value = (String, Vec<Timings>)> {
        let timing = (
            0u64..600_000,
            0u64..60_000,
            1u64..30_000,
            0u64..60_000,
            0u64..=100,
        );
        proptest::collection::vec(timing, 1..5).prop_map(|timings| {
            let mut text = String::from("[startup]\nload-delay = \"1s..3s\"\n");
            for (i, (after, spread, window, extra, p)) in timings.iter().enumerate() {
                let kind = ["unready", "unhealthy", "latency", "errors"][i % 4];
                text.push_str(&format!(
                    "[[fault]]\ntype = \"{kind}\"\nafter = \"{after}ms..{}ms\"\nfor = \"{window}ms\"\nevery = \"{}ms\"\nprobability = {}\n",
                    after + spread,
                    window + extra,
                    *p as f64 / 100.0
                ));
                match kind {
                    "latency" => text.push_str("distribution = \"uniform\"\ndelay = \"1ms..5ms\"\n"),
                    "errors" => text.push_str("rate = 0.5\n"),
                    _ => {}
                }
            }
            text.push_str("[[fault]]\ntype = \"crash\"\nafter = \"1m..2m\"\n");
            (text, timings)
        })
    }

    proptest! {
        #[test]
        fn plans_are_ordered_inside_their_windows_scaled_exactly_and_reproducible(
            (text, timings) in profile_text(),
            seed in any::<u64>(),
            time_scale in prop_oneof![Just(1.0), 0.001f64..10.0],
        ) {
            let profile = Profile::parse("prop", &text).unwrap();
            let plan = Plan::new(&profile, seed, time_scale);
            prop_assert_eq!(&plan, &Plan::new(&profile, seed, time_scale));
            let unscaled = Plan::new(&profile, seed, 1.0);
            prop_assert_eq!(plan.load_delay, scale(unscaled.load_delay, time_scale));
            for (s, u) in plan.schedules.iter().zip(&unscaled.schedules) {
                prop_assert_eq!(s.first, scale(u.first, time_scale));
                prop_assert_eq!(s.window, u.window.map(|w| scale(w, time_scale)));
                prop_assert_eq!(s.period, u.period.map(|p| scale(p, time_scale)));
            }
            for (s, (after, spread, window, extra, _)) in unscaled.schedules.iter().zip(&timings) {
                let ms = |d: Duration| d.as_millis() as u64;
                prop_assert!(ms(s.first) >= *after && ms(s.first) <= after + spread);
                prop_assert_eq!(s.window.map(ms), Some(*window));
                prop_assert!(s.period.map(ms).is_some_and(|p| p >= *window && p <= window + extra));
            }
            for s in &plan.schedules {
                let mut previous: Option<Occurrence> = None;
                for k in 0..20 {
                    let Some(o) = s.occurrence(k) else { break };
                    if let Some(end) = o.end {
                        prop_assert!(end >= o.start);
                    }
                    if let Some(p) = previous {
                        prop_assert!(o.start > p.start || s.period == Some(Duration::ZERO));
                        prop_assert!(p.end.is_none_or(|end| end <= o.start), "windows overlap");
                    }
                    previous = Some(o);
                }
            }
        }
    }
}
