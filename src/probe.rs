//! `chaos-inference probe`: an HTTP check for exec probes and Docker HEALTHCHECK in images that
//! have no curl. Exit 0 when the route answers 2xx, 1 otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

/// Which probe route to call.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProbeRoute {
    Livez,
    Readyz,
    Startupz,
}

/// Arguments of `chaos-inference probe`.
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// The route to check.
    #[arg(value_enum)]
    pub route: ProbeRoute,
    /// Server address; defaults to the port of BIND on 127.0.0.1.
    #[arg(long)]
    pub addr: Option<String>,
    /// Give up after this long.
    #[arg(long, default_value = "1s", value_parser = crate::config::parse_duration)]
    pub timeout: Duration,
}

impl ProbeArgs {
    fn target(&self) -> String {
        if let Some(addr) = &self.addr {
            return addr.clone();
        }
        let port = std::env::var("BIND")
            .ok()
            .and_then(|b| b.parse::<SocketAddr>().ok())
            .map_or(8000, |a| a.port());
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
    };
    let deadline = Instant::now() + args.timeout;
    let addr = target
        .to_socket_addrs()
        .map_err(|e| format!("{target}: {e}"))?
        .next()
        .ok_or_else(|| format!("{target}: no address"))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, left()).map_err(|e| format!("{target}: {e}"))?;
    stream
        .set_write_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: chaos-inference-probe\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("{target}: {e}"))?;
    stream
        .set_read_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(format!("{target}{path}: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&head[..read]);
    let status_line = text.lines().next().unwrap_or_default().to_string();
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if (200..300).contains(&code) {
        Ok(status_line)
    } else {
        Err(format!("{target}{path}: {status_line}"))
    }
}
