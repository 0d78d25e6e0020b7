//! One HTTP/1.1 exchange on a new connection, under one deadline from connecting to the last
//! byte read: what `probe` and `load` send. A new connection each time is the point (a Service
//! picks an endpoint per connection; a probe must not depend on an earlier one), and the status
//! line is all either needs, so there is no keep-alive, redirect or TLS here.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How much of the answer to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The status line only (a probe: a slow body must not fail it).
    StatusLine,
    /// The whole answer, until the server closes (a load: the request is done when it is).
    Close,
}

/// One request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The `Host` header.
    pub host: &'a str,
    pub user_agent: &'a str,
    /// Sent with `Content-Type: application/json` when not empty.
    pub body: &'a [u8],
}

/// The stage an exchange failed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Send,
    Answer,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Send => "send",
            Stage::Answer => "answer",
        }
    }
}

/// Why an exchange gave no status.
#[derive(Debug)]
pub enum Failure {
    /// An I/O error at a stage (a time-out is `TimedOut` or `WouldBlock`).
    Io(Stage, std::io::Error),
    /// The deadline passed while the answer was still coming.
    TimedOut,
    /// The server closed the connection without a byte.
    Closed,
    /// The answer does not start with an HTTP status line.
    NotHttp,
}

impl Failure {
    /// A short label of the failure's kind (`connect: connection refused`, `answer: timed
    /// out`), from a bounded set where the error is a common one.
    pub fn label(&self) -> String {
        match self {
            Failure::Io(stage, e) => {
                let what = match e.kind() {
                    ErrorKind::ConnectionRefused => "connection refused",
                    ErrorKind::ConnectionReset => "connection reset",
                    ErrorKind::TimedOut | ErrorKind::WouldBlock => "timed out",
                    ErrorKind::BrokenPipe => "broken pipe",
                    ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => "unreachable",
                    _ => return format!("{}: {e}", stage.as_str()),
                };
                format!("{}: {what}", stage.as_str())
            }
            Failure::TimedOut => "answer: timed out".into(),
            Failure::Closed => "answer: closed without a response".into(),
            Failure::NotHttp => "answer: not HTTP".into(),
        }
    }

    /// Whether it failed by running out of time.
    pub fn timed_out(&self) -> bool {
        match self {
            Failure::Io(_, e) => matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
            Failure::TimedOut => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Io(_, e) => write!(f, "{e}"),
            other => f.write_str(&other.label()),
        }
    }
}

/// The answer's status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// As the server wrote it, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
}

/// Sends `request` to `address` on a new connection and reads the answer's status, all within
/// `timeout`.
pub fn exchange(
    address: SocketAddr,
    request: &Request<'_>,
    timeout: Duration,
    until: Until,
) -> Result<Answer, Failure> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut stream =
        TcpStream::connect_timeout(&address, left()).map_err(|e| Failure::Io(Stage::Connect, e))?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nConnection: close\r\n",
        request.method, request.path, request.host, request.user_agent
    );
    if !request.body.is_empty() || request.method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            request.body.len()
        ));
    }
    head.push_str("\r\n");
    let sent = stream
        .set_write_timeout(Some(left()))
        .and_then(|()| stream.write_all(head.as_bytes()))
        .and_then(|()| stream.write_all(request.body));
    sent.map_err(|e| Failure::Io(Stage::Send, e))?;
    let mut answer = Vec::with_capacity(512);
    let mut buffer = [0u8; 4096];
    loop {
        if until == Until::StatusLine && answer.contains(&b'\n') {
            break;
        }
        stream
            .set_read_timeout(Some(left()))
            .map_err(|e| Failure::Io(Stage::Answer, e))?;
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Io(Stage::Answer, e)),
        }
        if until == Until::Close && Instant::now() >= deadline {
            return Err(Failure::TimedOut);
        }
    }
    if answer.is_empty() {
        return Err(Failure::Closed);
    }
    let line_end = answer
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(answer.len());
    let status_line = String::from_utf8_lossy(&answer[..line_end])
        .trim_end()
        .to_string();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(Failure::NotHttp)?;
    Ok(Answer {
        status,
        status_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers one connection with `reply` after reading the request head.
    fn serve_once(reply: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let _ = stream.write_all(reply);
        });
        address
    }

    const GET: Request<'static> = Request {
        method: "GET",
        path: "/livez",
        host: "x",
        user_agent: "test",
        body: b"",
    };

    #[test]
    fn reads_the_status_of_an_answer() {
        let address = serve_once(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        let answer = exchange(address, &GET, Duration::from_secs(5), Until::Close).unwrap();
        assert_eq!(answer.status, 503);
        assert_eq!(answer.status_line, "HTTP/1.1 503 Service Unavailable");
    }

    #[test]
    fn what_is_not_http_or_nothing_at_all_is_a_failure() {
        let address = serve_once(b"SSH-2.0-OpenSSH\r\n");
        let e = exchange(address, &GET, Duration::from_secs(5), Until::Close).unwrap_err();
        assert_eq!(e.label(), "answer: not HTTP");
        let address = serve_once(b"");
        let e = exchange(address, &GET, Duration::from_secs(5), Until::Close).unwrap_err();
        assert_eq!(e.label(), "answer: closed without a response");
    }

    #[test]
    fn a_closed_port_is_refused_and_a_silent_server_times_out() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = exchange(closed, &GET, Duration::from_secs(5), Until::Close).unwrap_err();
        assert_eq!(e.label(), "connect: connection refused");
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = exchange(
            silent.local_addr().unwrap(),
            &GET,
            Duration::from_millis(100),
            Until::StatusLine,
        )
        .unwrap_err();
        assert!(e.timed_out(), "{e:?}");
    }
}
