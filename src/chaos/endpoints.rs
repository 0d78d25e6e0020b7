//! What a timeline file declares about an application beyond its schedule: where it listens and
//! what each probe target follows (`[endpoints]`), and its memory (`[resources]`). A timeline
//! file is a profile with these tables; `simulate` reads them to model any application, and
//! `chaos-inference timeline` checks and prints one.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use super::duration::DurationRange;

/// One thing a probe can call, as a timeline file names it: an HTTP path (`/healthz`), a
/// `grpc.health.v1.Health` service (`grpc:` for the server as a whole, `grpc:my.Service`), or an
/// exec probe's command with its words joined by spaces (`exec:cat /tmp/healthy`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    /// An HTTP path, without its query.
    Path(String),
    Grpc(String),
    Exec(String),
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(service) = text.strip_prefix("grpc:") {
            Ok(Endpoint::Grpc(service.trim().to_string()))
        } else if let Some(command) = text.strip_prefix("exec:") {
            let words: Vec<&str> = command.split_whitespace().collect();
            if words.is_empty() {
                return Err(format!("`{text}`: exec: needs a command"));
            }
            Ok(Endpoint::Exec(words.join(" ")))
        } else if text.starts_with('/') && !text.contains(char::is_whitespace) {
            Ok(Endpoint::Path(
                text.split('?').next().unwrap_or(text).to_string(),
            ))
        } else {
            Err(format!(
                "expected a path (/healthz), grpc:SERVICE or exec:COMMAND, got `{text}`"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for Endpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Path(p) => f.write_str(p),
            Endpoint::Grpc(s) => write!(f, "grpc:{s}"),
            Endpoint::Exec(c) => write!(f, "exec:{c}"),
        }
    }
}

/// `[endpoints]`: the application's ports, which endpoints follow liveness, readiness and
/// startup (the same rules as this server's `/livez`, `/readyz` and `/startupz`: liveness passes
/// unless unhealthy, hung or, with `live-while-loading = false`, loading; readiness once loaded
/// and not unready or shutting down; startup once loaded), which answer as soon as the port is
/// open, and how long each takes.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Endpoints {
    pub http_port: u16,
    pub grpc_port: Option<u16>,
    #[serde(default)]
    pub liveness: Vec<Endpoint>,
    #[serde(default)]
    pub readiness: Vec<Endpoint>,
    #[serde(default)]
    pub startup: Vec<Endpoint>,
    /// Answer 200 (SERVING, exit 0) from the moment the port opens.
    #[serde(default)]
    pub always: Vec<Endpoint>,
    /// How long each takes to answer: a duration or a range.
    #[serde(default)]
    pub latency: BTreeMap<Endpoint, DurationRange>,
}

impl Endpoints {
    /// Checks what serde cannot: ports, and each endpoint declared once. Errors name the key.
    pub fn check(&self) -> Result<(), String> {
        if self.http_port == 0 {
            return Err("endpoints.http-port: expected a port from 1 to 65535, got 0".into());
        }
        if self.grpc_port == Some(0) {
            return Err("endpoints.grpc-port: expected a port from 1 to 65535, got 0".into());
        }
        if self.grpc_port == Some(self.http_port) {
            return Err(format!(
                "endpoints.grpc-port: {} is also the http-port; gRPC and HTTP need ports of their own",
                self.http_port
            ));
        }
        let mut seen: BTreeMap<&Endpoint, &str> = BTreeMap::new();
        for (key, list) in [
            ("liveness", &self.liveness),
            ("readiness", &self.readiness),
            ("startup", &self.startup),
            ("always", &self.always),
        ] {
            for endpoint in list {
                if let Some(first) = seen.insert(endpoint, key) {
                    return Err(format!(
                        "endpoints.{key}: `{endpoint}` is already in endpoints.{first}; an endpoint follows one check"
                    ));
                }
                if matches!(endpoint, Endpoint::Grpc(_)) && self.grpc_port.is_none() {
                    return Err(format!(
                        "endpoints.{key}: `{endpoint}` needs endpoints.grpc-port"
                    ));
                }
            }
        }
        if let Some(endpoint) = self.latency.keys().find(|e| !seen.contains_key(e)) {
            return Err(format!(
                "endpoints.latency: `{endpoint}` is not in liveness, readiness, startup or always"
            ));
        }
        Ok(())
    }
}

/// A memory size or a uniform range of them (`300Mi`, `250Mi..350Mi`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRange {
    pub low: u64,
    pub high: u64,
}

impl FromStr for MemoryRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let one = |part: &str| {
            crate::config::quantity(part)
                .map(|bytes| bytes as u64)
                .map_err(|_| format!("expected a size such as 300Mi or a range such as 250Mi..350Mi, got `{text}`"))
        };
        let (low, high) = match text.split_once("..") {
            Some((low, high)) => (one(low)?, one(high)?),
            None => (one(text)?, one(text)?),
        };
        if low > high {
            return Err(format!("range `{text}` ends before it starts"));
        }
        Ok(MemoryRange { low, high })
    }
}

impl<'de> Deserialize<'de> for MemoryRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for MemoryRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        if self.low == self.high {
            write!(f, "{:.0} MiB", mib(self.low))
        } else {
            write!(f, "{:.0}-{:.0} MiB", mib(self.low), mib(self.high))
        }
    }
}

/// `[resources]`: what the application holds in memory once started, and how fast that grows
/// (a leak the `leak` fault models from the start).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Resources {
    pub working_set: Option<MemoryRange>,
    pub growth_mib_per_hour: Option<f64>,
}

impl Resources {
    /// Checks the growth; errors name the key.
    pub fn check(&self) -> Result<(), String> {
        match self.growth_mib_per_hour {
            Some(g) if !(g.is_finite() && g > 0.0 && g <= 1e6) => Err(format!(
                "resources.growth-mib-per-hour: expected a number above 0 and at most 1000000, got {g}"
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_as_paths_grpc_services_and_commands() {
        assert_eq!(
            "/healthz?x=1".parse::<Endpoint>().unwrap(),
            Endpoint::Path("/healthz".into())
        );
        assert_eq!(
            "grpc:".parse::<Endpoint>().unwrap(),
            Endpoint::Grpc("".into())
        );
        assert_eq!(
            "exec:cat   /tmp/healthy".parse::<Endpoint>().unwrap(),
            Endpoint::Exec("cat /tmp/healthy".into())
        );
        assert!("healthz".parse::<Endpoint>().is_err());
        assert!("exec:".parse::<Endpoint>().is_err());
        assert_eq!(Endpoint::Grpc("a.B".into()).to_string(), "grpc:a.B");
    }

    #[test]
    fn sizes_and_ranges_of_memory() {
        let r: MemoryRange = "250Mi..350Mi".parse().unwrap();
        assert_eq!((r.low, r.high), (250 << 20, 350 << 20));
        assert_eq!(r.to_string(), "250-350 MiB");
        assert!("350Mi..250Mi".parse::<MemoryRange>().is_err());
        assert!("lots".parse::<MemoryRange>().is_err());
    }

    #[test]
    fn an_endpoint_follows_one_check_and_latency_names_a_declared_one() {
        let mut e = Endpoints {
            http_port: 8080,
            liveness: vec!["/healthz".parse().unwrap()],
            readiness: vec!["/healthz".parse().unwrap()],
            ..Endpoints::default()
        };
        assert!(
            e.check()
                .unwrap_err()
                .contains("already in endpoints.liveness")
        );
        e.readiness = vec!["/ready".parse().unwrap()];
        e.latency
            .insert("/nope".parse().unwrap(), "5ms".parse().unwrap());
        assert!(
            e.check()
                .unwrap_err()
                .starts_with("endpoints.latency: `/nope`")
        );
        e.latency.clear();
        e.readiness.push("grpc:".parse().unwrap());
        assert!(e.check().unwrap_err().contains("needs endpoints.grpc-port"));
        e.grpc_port = Some(9000);
        assert_eq!(e.check(), Ok(()));
    }
}
