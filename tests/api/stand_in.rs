//! The stand-in from outside: the server given another application's timeline as its profile
//! listens on that application's ports, answers its probe paths and gRPC health services as
//! the timeline says, and shuts down as it does.

use std::time::{Duration, Instant};

use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::helpers::{Spawn, TestServer, free_port};

const SCALE: f64 = 0.2;

fn timeline(http: u16, grpc: u16) -> String {
    format!(
        r#"description = "a service with HTTP and gRPC health"
[startup]
load-delay = "10s"          # 2 s at this scale
[shutdown]
exit-after = "10s"          # 2 s
unready-on-sigterm = false
[endpoints]
http-port = {http}
grpc-port = {grpc}
liveness = ["/alive", "grpc:"]
readiness = ["/ready", "grpc:svc.Ready", "exec:cat /tmp/ready"]
always = ["/"]
[endpoints.latency]
"/ready" = "500ms..600ms"   # 100-120 ms
[resources]
working-set = "300Mi"
"#
    )
}

async fn health(server: &TestServer, service: &str) -> Result<ServingStatus, Code> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.grpc_port()))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| ServingStatus::try_from(r.into_inner().status).unwrap())
        .map_err(|s| s.code())
}

#[tokio::test]
async fn a_stand_in_listens_answers_and_shuts_down_as_its_timeline_says() {
    let dir = tempfile::tempdir().unwrap();
    let (http, grpc) = (free_port(), free_port());
    let file = dir.path().join("service.toml");
    std::fs::write(&file, timeline(http, grpc)).unwrap();
    let mut server = Spawn::default()
        .profile(file.to_str().unwrap(), SCALE)
        .without("BIND")
        .without("GRPC_BIND")
        .listening();
    // The application's ports, not this server's.
    assert_eq!(server.port(), http);
    assert_eq!(server.grpc_port(), grpc);
    server.logs_with(&["standing in for another application", "exec probes"]);
    // It holds the application's memory.
    // (Written once the port is bound, so polled: a busy machine takes a while.)
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut rss = server.rss_bytes();
    while rss < 300 << 20 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        rss = server.rss_bytes();
    }
    assert!(rss >= 300 << 20, "resident {rss} bytes");

    // Loading: liveness passes (live-while-loading), readiness fails, `/` answers.
    assert_eq!(server.status("/alive").await, 200);
    assert_eq!(server.status("/ready").await, 503);
    assert_eq!(server.status("/").await, 200);
    assert_eq!(health(&server, "").await, Ok(ServingStatus::Serving));
    assert_eq!(
        health(&server, "svc.Ready").await,
        Ok(ServingStatus::NotServing)
    );
    assert_eq!(health(&server, "not.declared").await, Err(Code::NotFound));

    // Loaded: readiness passes, after its recorded latency.
    server
        .wait_status("/ready", 200, Duration::from_secs(30))
        .await;
    let asked = Instant::now();
    assert_eq!(server.status("/ready").await, 200);
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(100), "/ready took {took:?}");
    assert_eq!(
        health(&server, "svc.Ready").await,
        Ok(ServingStatus::Serving)
    );

    // SIGTERM: readiness keeps passing until it exits, about 2 s later, with 0.
    let signalled = server.started.elapsed();
    server.signal(libc::SIGTERM);
    assert_eq!(server.status("/ready").await, 200);
    let (status, seen) = server.wait_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", server.logs().join("\n"));
    let after = seen.by - signalled;
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_secs(15),
        "exited {after:?} after SIGTERM"
    );
}

#[tokio::test]
async fn bind_and_grpc_bind_still_choose_where_a_stand_in_listens() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("service.toml");
    // Ports it must not use: the harness's BIND and GRPC_BIND (port 0) win.
    std::fs::write(&file, timeline(1, 2)).unwrap();
    let server = Spawn::default()
        .profile(file.to_str().unwrap(), SCALE)
        .listening();
    assert_ne!(server.port(), 1);
    assert_ne!(server.grpc_port(), 2);
    assert_eq!(server.status("/").await, 200);
}
