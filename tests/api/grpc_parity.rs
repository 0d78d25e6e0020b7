//! Every built-in profile shows the same liveness and readiness over gRPC health as over HTTP.
//!
//! Each sample reads `/livez` and `/readyz`, then gRPC Check for service `""` and for the
//! inference service, then HTTP again. When the two HTTP reads agree, nothing changed in between,
//! so the gRPC reads must say the same. The HTTP states seen, in order, must also contain the
//! profile's own story (loading, ready, unready window, crash...), so a profile that did nothing
//! cannot pass.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{Spawn, TestServer};

/// What a probe saw: an answer that passes, one that fails, or no answer (timeout, refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Pass,
    Fail,
    Silent,
}
use Seen::{Fail, Pass, Silent};

/// Liveness and readiness as one state.
type State = (Seen, Seen);

/// The kubelet's default probe timeout (`timeoutSeconds: 1`): what a kubelet would count as
/// silence, and long enough that a busy machine's slow answer is not taken for a hang.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

async fn http(server: &TestServer, path: &str) -> Seen {
    match server
        .client
        .get(server.url(path))
        .timeout(PROBE_TIMEOUT)
        .send()
        .await
    {
        Ok(r) if r.status() == 200 => Pass,
        Ok(_) => Fail,
        Err(_) => Silent,
    }
}

async fn grpc(client: &mut Option<HealthClient<Channel>>, port: u16, service: &str) -> Seen {
    if client.is_none() {
        let Ok(channel) = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect_timeout(PROBE_TIMEOUT)
            .connect()
            .await
        else {
            return Silent;
        };
        *client = Some(HealthClient::new(channel));
    }
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.into(),
    });
    request.set_timeout(PROBE_TIMEOUT);
    match client.as_mut().unwrap().check(request).await {
        Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => Pass,
        Ok(_) => Fail,
        Err(_) => Silent,
    }
}

/// Samples for `length` (or until the server has been silent for a while), asserting gRPC agrees
/// with HTTP on every settled sample; `during(elapsed)` runs between samples (to send a signal).
/// Returns the distinct HTTP states in order.
async fn timeline(
    server: &TestServer,
    length: Duration,
    mut during: impl FnMut(Duration),
) -> Vec<State> {
    let port = server.grpc_port();
    server.port();
    let mut client = None;
    let mut states: Vec<State> = Vec::new();
    let (mut settled, mut silent) = (0, 0);
    let started = Instant::now();
    while started.elapsed() < length && silent < 3 {
        during(started.elapsed());
        let before = (http(server, "/livez").await, http(server, "/readyz").await);
        let over_grpc = (
            grpc(&mut client, port, "").await,
            grpc(&mut client, port, "inference.GRPCInferenceService").await,
        );
        let after = (http(server, "/livez").await, http(server, "/readyz").await);
        if before != after {
            continue;
        }
        settled += 1;
        assert_eq!(
            over_grpc,
            before,
            "gRPC health disagrees with HTTP at {:?}; states so far {states:?}",
            started.elapsed()
        );
        if states.last() != Some(&before) {
            states.push(before);
        }
        silent = if before == (Silent, Silent) {
            silent + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(settled >= 10, "only {settled} settled samples");
    states
}

/// True when `story` appears in `states` in order (other states may come between).
fn tells(states: &[State], story: &[State]) -> bool {
    let mut rest = states.iter();
    story.iter().all(|s| rest.any(|t| t == s))
}

async fn parity(profile: &str, scale: f64, length: Duration, story: &[State]) {
    let server = Spawn::default().profile(profile, scale).start();
    let states = timeline(&server, length, |_| ()).await;
    assert!(
        tells(&states, story),
        "{profile}: saw {states:?}, expected the story {story:?}"
    );
}

const LOADING: State = (Pass, Fail);
const READY: State = (Pass, Pass);
const GONE: State = (Silent, Silent);

#[tokio::test]
async fn v2_loading_ready_then_gone() {
    // Loads 0.4-0.6 s, exits 1.2-2.4 s after ready.
    parity("v2", 0.02, Duration::from_secs(8), &[LOADING, READY, GONE]).await;
}

#[tokio::test]
async fn slow_start_neither_live_nor_ready_while_loading() {
    let story = [(Fail, Fail), READY];
    parity("slow-start", 0.02, Duration::from_secs(4), &story).await;
}

#[tokio::test]
async fn flapping_readiness_goes_unready_and_back_twice() {
    // Ready, then unready 0.5 s in every 1.5 s from 1 s after ready.
    let story = [READY, LOADING, READY, LOADING, READY];
    parity("flapping-readiness", 0.05, Duration::from_secs(5), &story).await;
}

#[tokio::test]
async fn unhealthy_fails_liveness_and_stays_ready() {
    parity(
        "unhealthy",
        0.01,
        Duration::from_secs(3),
        &[READY, (Fail, Pass)],
    )
    .await;
}

#[tokio::test]
async fn liveness_hang_goes_silent_on_both() {
    parity(
        "liveness-hang",
        0.02,
        Duration::from_secs(6),
        &[READY, GONE],
    )
    .await;
}

#[tokio::test]
async fn crash_loop_ready_then_gone() {
    parity("crash-loop", 0.1, Duration::from_secs(6), &[READY, GONE]).await;
}

#[tokio::test]
async fn profiles_without_probe_faults_stay_live_and_ready() {
    for profile in ["none", "latency", "errors", "cpu-burn", "memory-leak"] {
        let server = Spawn::default().profile(profile, 0.1).start();
        let states = timeline(&server, Duration::from_millis(1500), |_| ()).await;
        assert!(
            states == [READY] || states == [LOADING, READY],
            "{profile}: saw {states:?}"
        );
    }
}

#[tokio::test]
async fn slow_shutdown_is_unready_over_both_from_sigterm_on() {
    let server = Spawn::default().profile("slow-shutdown", 0.1).ready().await;
    let mut sent = false;
    let states = timeline(&server, Duration::from_secs(3), |elapsed| {
        if !sent && elapsed > Duration::from_millis(500) {
            server.signal(libc::SIGTERM);
            sent = true;
        }
    })
    .await;
    assert!(tells(&states, &[READY, LOADING]), "saw {states:?}");
}
