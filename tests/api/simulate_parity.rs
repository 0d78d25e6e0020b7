//! `simulate`'s application timeline held to the real server: the server runs a profile at a
//! small time scale with a fixed seed, every GET route of its OpenAPI document is sampled over
//! the run (with another model's name and version too), each answer bracketed by the server's
//! own uptime before and after it, and the status `simulate` predicts for that path at that
//! moment of the run must be the one the server gave.
//!
//! The one thing the plan does not fix is how long the model itself takes to load: the
//! prediction takes `app::MODEL_LOAD`, the server takes what it takes. So the simulated run is
//! aligned on the server's own ready time (`/chaos` `ready_at_ms`; every post-load fault of
//! these profiles is anchored on ready), and samples taken while one says loaded and the other
//! does not are left out.

use std::time::{Duration, Instant};

use chaos_inference::simulate::app::{Overrides, Settings, WORKING_SET};
use chaos_inference::simulate::manifest::{self, Handler};
use chaos_inference::simulate::timeline::{Outcome, Timeline};
use serde_json::Value;

use crate::helpers::Spawn;

const SEED: u64 = 7;
const SCALE: f64 = 0.05;
/// How late the server may switch a fault on or off: its engine's timers fire late on a busy
/// machine, never early (3 ms seen with every core busy). 100 ms is far above that and well below
/// the shortest window here (500 ms), so a window that is missing, misplaced by more than that,
/// or predicted for the wrong route still fails.
const TIMER_LATE: Duration = Duration::from_millis(100);
/// The step at which the prediction is read across that allowance.
const STEP: Duration = Duration::from_millis(1);
/// What a whole-millisecond reading of the server's clock can cut.
const ROUNDING: Duration = Duration::from_millis(1);

/// Every GET path of the server's OpenAPI document, its parameters filled in with this
/// model's name and version and with others.
async fn get_paths() -> Vec<String> {
    let server = Spawn::default().ready().await;
    let doc = server.get_json("/openapi.json").await;
    let mut paths = Vec::new();
    for (pattern, item) in doc["paths"].as_object().unwrap() {
        if item.get("get").is_none() {
            continue;
        }
        for (name, version) in [
            ("heart-disease", "1"),
            ("another", "1"),
            ("heart-disease", "2"),
        ] {
            let path = pattern
                .replace("{name}", name)
                .replace("{version}", version);
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    assert!(paths.len() >= 15, "{paths:?}");
    paths
}

/// What `simulate` predicts a container running `profile` answers: its timeline.
fn predicted(profile: &str) -> Timeline {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: c\n    image: chaos-inference:v1\n    env:\n    - {{name: CHAOS_PROFILE, value: {profile}}}\n    - {{name: CHAOS_SEED, value: \"{SEED}\"}}\n    - {{name: CHAOS_TIME_SCALE, value: \"{SCALE}\"}}\n"
    );
    let input = manifest::read(&[("parity.yaml".into(), yaml)]).unwrap();
    let container = &input.workloads[0].template.containers[0];
    let settings = Settings::of(container, Some("p"), &Overrides::default());
    assert_eq!(settings.seed, Some(SEED));
    let plan = settings.plan(SEED).unwrap();
    Timeline::of(
        &plan,
        &settings.shape(),
        None,
        WORKING_SET.0,
        Duration::from_secs(3600),
    )
}

/// The status `life` predicts for a GET of `path` at `t` into the run.
fn predicted_status(life: &Timeline, path: &str, t: Duration) -> Option<u16> {
    let handler = Handler::Http {
        path: path.into(),
        port: life.http_port,
    };
    match life.probe(&handler, t, None) {
        Outcome::Success => Some(200),
        Outcome::Failure(message) => message
            .rsplit_once("statuscode: ")
            .and_then(|(_, code)| code.parse().ok()),
        Outcome::Timeout => None,
    }
}

/// The server's uptime and ready time from `/chaos`, or `None` once it is gone.
async fn clock(server: &crate::helpers::TestServer) -> Option<(Duration, Option<Duration>)> {
    let chaos: Value = server
        .client
        .get(server.url("/chaos"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let ms = |v: &Value| v.as_u64().map(Duration::from_millis);
    Some((ms(&chaos["uptime_ms"])?, ms(&chaos["ready_at_ms"])))
}

/// Runs `profile` for `watch` (or until the server exits) and holds every sample to the
/// prediction; returns how many samples were compared.
async fn holds(profile: &str, watch: Duration) -> usize {
    let paths = get_paths().await;
    let life = predicted(profile);
    holds_on(profile, &paths, life, watch).await
}

/// Holds the samples of `paths` of the server running `profile` to `life`.
async fn holds_on(profile: &str, paths: &[String], life: Timeline, watch: Duration) -> usize {
    let server = Spawn::default()
        .profile(profile, SCALE)
        .env("CHAOS_SEED", SEED.to_string())
        .listening();
    let deadline = Instant::now() + watch;
    let mut samples = Vec::new();
    'run: while Instant::now() < deadline {
        for path in paths {
            let Some((before, _)) = clock(&server).await else {
                break 'run;
            };
            let Ok(response) = server.client.get(server.url(path)).send().await else {
                break 'run;
            };
            let status = response.status().as_u16();
            drop(response);
            let Some((after, ready_at)) = clock(&server).await else {
                break 'run;
            };
            samples.push((path.clone(), before, after, status, ready_at));
        }
    }
    let ready_at = samples
        .iter()
        .rev()
        .find_map(|s| s.4)
        .unwrap_or_else(|| panic!("{profile}: never ready while sampled"));
    // The simulated run, moved so that its load ends when the server's did.
    let to_simulated = |t: Duration| {
        if t < ready_at {
            t
        } else {
            t - ready_at + life.loaded
        }
    };
    let (load_from, load_to) = (life.loaded.min(ready_at), life.loaded.max(ready_at));
    let mut compared = 0;
    let mut wrong = Vec::new();
    for (path, before, after, status, _) in &samples {
        if *after >= load_from && *before <= load_to {
            continue;
        }
        // The answer came between `before` and `after`, from a server whose switches may lag
        // the plan by up to TIMER_LATE, on a clock read in whole milliseconds (`uptime_ms` and
        // `ready_at_ms` each cut up to 1 ms): any status predicted from `before - TIMER_LATE`
        // to `after + 2 ms` is right.
        let (from, to) = (before.saturating_sub(TIMER_LATE), *after + 2 * ROUNDING);
        let mut expected = Vec::new();
        let mut t = from;
        loop {
            let status = predicted_status(&life, path, to_simulated(t.min(to)));
            if !expected.contains(&status) {
                expected.push(status);
            }
            if t >= to {
                break;
            }
            t += STEP;
        }
        compared += 1;
        if !expected.contains(&Some(*status)) {
            wrong.push(format!(
                "GET {path} answered {status} at {before:?}..{after:?} of the run (server clock), \
                 predicted {expected:?} from {from:?} to {to:?} (late timers and rounding allowed)"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{profile}: {} of {compared} samples differ (server ready at {ready_at:?}, predicted load {:?}):\n{}",
        wrong.len(),
        life.loaded,
        wrong.join("\n")
    );
    compared
}

#[tokio::test]
async fn v2_loading_serving_and_crashing_answers_as_predicted() {
    // Loads for 1.25 s at this scale and seed, exits 3.3 s after ready.
    let compared = holds("v2", Duration::from_secs(8)).await;
    assert!(compared >= 40, "only {compared} samples");
}

#[tokio::test]
async fn slow_start_answers_as_predicted_while_liveness_fails_during_the_load() {
    let compared = holds("slow-start", Duration::from_millis(6_500)).await;
    assert!(compared >= 40, "only {compared} samples");
}

#[tokio::test]
async fn flapping_readiness_answers_as_predicted_through_its_windows() {
    let compared = holds("flapping-readiness", Duration::from_secs(5)).await;
    assert!(compared >= 40, "only {compared} samples");
}

#[tokio::test]
async fn unhealthy_liveness_answers_as_predicted() {
    let compared = holds("unhealthy", Duration::from_secs(5)).await;
    assert!(compared >= 40, "only {compared} samples");
}

/// A stand-in: the server replaying another application's timeline file answers that
/// application's paths as `simulate` predicts the application does (its own routes stay the
/// server's, and are not what the timeline models).
#[tokio::test]
async fn a_stand_in_answers_its_applications_paths_as_predicted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.toml");
    // At the 0.05 time scale: loaded after 1 s (liveness failing meanwhile), then unready for
    // 0.5 s in every 1.5 s from 1 s after ready.
    std::fs::write(
        &file,
        "description = \"an application\"
[startup]
load-delay = \"20s\"
live-while-loading = false
[endpoints]
http-port = 8080
liveness = [\"/health/live\"]
readiness = [\"/health/ready\", \"/readyz\"]
always = [\"/\"]
[[fault]]
type = \"unready\"
after = \"20s\"
for = \"10s\"
every = \"30s\"
",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let mut settings = Settings::defaults();
    settings.profile = Ok(chaos_inference::chaos::profile::Profile::load(path).unwrap());
    settings.seed = Some(SEED);
    settings.time_scale = SCALE;
    // The server listens where the test says (BIND given), as the prediction is told.
    settings.ports_given = (true, true);
    let plan = settings.plan(SEED).unwrap();
    let life = Timeline::of(
        &plan,
        &settings.shape(),
        None,
        WORKING_SET.0,
        Duration::from_secs(3600),
    );
    let paths: Vec<String> = ["/health/live", "/health/ready", "/readyz", "/", "/nope"]
        .map(String::from)
        .to_vec();
    let compared = holds_on(path, &paths, life, Duration::from_secs(5)).await;
    assert!(compared >= 40, "only {compared} samples");
}
