//! `chaos-inference probe`: an HTTP check for exec probes and Docker HEALTHCHECK in images that
//! have no curl, and a gRPC health check (`probe grpc`) for clusters older than 1.24, whose kubelet
//! has no `grpc:` probes. Exit 0 when the route answers 2xx (the service is SERVING), 1 otherwise.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::http1::{self, Until};

/// Which probe route to call.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProbeRoute {
    Livez,
    Readyz,
    Startupz,
    /// `grpc.health.v1.Health/Check` on the gRPC port, for `--service`.
    Grpc,
}

/// Arguments of `chaos-inference probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The route to check.
    #[arg(value_enum)]
    pub route: ProbeRoute,
    /// Server address; defaults to the port of BIND (GRPC_BIND for `grpc`) on 127.0.0.1.
    #[arg(long)]
    pub addr: Option<String>,
    /// For `grpc`: the health service to ask for; "" follows liveness,
    /// inference.GRPCInferenceService follows readiness.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Give up after this long.
    #[arg(long, default_value = "1s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
}

impl ProbeArgs {
    fn target(&self) -> String {
        if let Some(addr) = &self.addr {
            return addr.clone();
        }
        let (variable, default) = match self.route {
            ProbeRoute::Grpc => ("GRPC_BIND", 8001),
            _ => ("BIND", 8000),
        };
        let port = std::env::var(variable)
            .ok()
            .and_then(|b| b.parse::<SocketAddr>().ok())
            .map_or(default, |a| a.port());
        format!("127.0.0.1:{port}")
    }
}

/// Runs the probe; `Ok` carries the status line, `Err` why it failed.
pub fn run(args: &ProbeArgs) -> Result<String, String> {
    let target = args.target();
    let path = match args.route {
        ProbeRoute::Livez => "/livez",
        ProbeRoute::Readyz => "/readyz",
        ProbeRoute::Startupz => "/startupz",
        ProbeRoute::Grpc => return grpc(&target, &args.service, args.timeout),
    };
    if !args.service.is_empty() {
        return Err("--service applies to `probe grpc` only".into());
    }
    let address = target
        .to_socket_addrs()
        .map_err(|e| format!("{target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target}: no address"))?;
    let request = http1::Request {
        method: "GET",
        path,
        host: &target,
        user_agent: "chaos-inference-probe",
        body: b"",
    };
    // The status line decides; a body that is slow to come must not fail the probe.
    let answer = http1::exchange(address, &request, args.timeout, Until::StatusLine)
        .map_err(|e| format!("{target}{path}: {e}"))?;
    if (200..300).contains(&answer.status) {
        Ok(answer.status_line)
    } else {
        Err(format!("{target}{path}: {}", answer.status_line))
    }
}

/// `grpc.health.v1.Health/Check` for `service`, within `timeout` from connecting to the answer.
pub(crate) fn grpc(target: &str, service: &str, timeout: Duration) -> Result<String, String> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{target}"))
            .map_err(|e| format!("{target}: {e}"))?
            .connect()
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .map_err(|s| {
                format!(
                    "{target} service {service:?}: {:?}: {}",
                    s.code(),
                    s.message()
                )
            })?;
        let status = ServingStatus::try_from(answer.into_inner().status)
            .unwrap_or(ServingStatus::Unknown)
            .as_str_name();
        if status == "SERVING" {
            Ok(format!("{target} service {service:?}: {status}"))
        } else {
            Err(format!("{target} service {service:?}: {status}"))
        }
    };
    runtime.block_on(async {
        tokio::time::timeout(timeout, check)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{target} service {service:?}: no answer within {timeout:?}"
                ))
            })
    })
}
