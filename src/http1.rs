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

impl Request<'_> {
    /// The request line and headers; `keep_alive` asks to keep the connection open.
    fn head(&self, keep_alive: bool) -> String {
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\nConnection: {connection}\r\n",
            self.method, self.path, self.host, self.user_agent
        );
        if !self.body.is_empty() || self.method == "POST" {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                self.body.len()
            ));
        }
        head.push_str("\r\n");
        head
    }
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
    let head = request.head(false);
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

/// One connection kept open across requests (`load --connections`): each answer is read whole
/// (by `Content-Length`, chunks, or to the close), so the next request follows on the same
/// connection, which a Service then keeps on the same pod. A connection the server closed is
/// opened again for the next request; one whose request failed or timed out is dropped.
pub struct KeepAlive {
    address: SocketAddr,
    stream: Option<TcpStream>,
    /// Connections opened so far.
    pub connects: u64,
}

impl KeepAlive {
    pub fn new(address: SocketAddr) -> Self {
        KeepAlive {
            address,
            stream: None,
            connects: 0,
        }
    }

    /// Sends `request` and reads its whole answer, all within `timeout`.
    pub fn exchange(
        &mut self,
        request: &Request<'_>,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let deadline = Instant::now() + timeout;
        let reused = self.stream.is_some();
        match self.try_exchange(request, deadline) {
            // An idle connection the server had already closed: once more on a new one.
            Err(Failure::Closed | Failure::Io(Stage::Send, _)) if reused => {
                self.stream = None;
                self.try_exchange(request, deadline)
            }
            other => other,
        }
    }

    fn try_exchange(
        &mut self,
        request: &Request<'_>,
        deadline: Instant,
    ) -> Result<Answer, Failure> {
        let left = || {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => {
                self.connects += 1;
                TcpStream::connect_timeout(&self.address, left())
                    .map_err(|e| Failure::Io(Stage::Connect, e))?
            }
        };
        let head = request.head(true);
        stream
            .set_write_timeout(Some(left()))
            .and_then(|()| stream.write_all(head.as_bytes()))
            .and_then(|()| stream.write_all(request.body))
            .map_err(|e| Failure::Io(Stage::Send, e))?;
        let mut read = |buffer: &mut Vec<u8>| -> Result<usize, Failure> {
            let mut chunk = [0u8; 4096];
            loop {
                if Instant::now() >= deadline {
                    return Err(Failure::TimedOut);
                }
                stream
                    .set_read_timeout(Some(left()))
                    .map_err(|e| Failure::Io(Stage::Answer, e))?;
                match stream.read(&mut chunk) {
                    Ok(n) => {
                        buffer.extend_from_slice(&chunk[..n]);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::Io(Stage::Answer, e)),
                }
            }
        };
        let mut answer = Vec::with_capacity(512);
        let head_end = loop {
            if let Some(i) = find(&answer, b"\r\n\r\n") {
                break i + 4;
            }
            if read(&mut answer)? == 0 {
                return Err(if answer.is_empty() {
                    Failure::Closed
                } else {
                    Failure::NotHttp
                });
            }
        };
        let head = String::from_utf8_lossy(&answer[..head_end]).to_string();
        let status_line = head.lines().next().unwrap_or("").to_string();
        let status = status_line
            .strip_prefix("HTTP/1.")
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or(Failure::NotHttp)?;
        let header = |name: &str| {
            head.lines().skip(1).find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_ascii_lowercase())
            })
        };
        let mut body = answer.split_off(head_end);
        let mut keep = header("connection").as_deref() != Some("close");
        if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            while body.len() < length {
                if read(&mut body)? == 0 {
                    return Err(Failure::Closed);
                }
            }
        } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            // The last chunk is `0\r\n\r\n` (no trailers from the servers this talks to).
            while !body.ends_with(b"0\r\n\r\n") {
                if read(&mut body)? == 0 {
                    return Err(Failure::Closed);
                }
            }
        } else {
            // No length: the answer ends with the connection.
            while read(&mut body)? > 0 {}
            keep = false;
        }
        if keep {
            self.stream = Some(stream);
        }
        Ok(Answer {
            status,
            status_line: status_line.trim_end().to_string(),
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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
    fn a_kept_connection_carries_several_requests_and_is_opened_again_when_closed() {
        // One connection answers three requests (with a body, chunked, empty), the third saying
        // it closes; the fourth request needs a second connection.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let answers: [&[u8]; 4] = [
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
                b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ];
            let mut answers = answers.iter();
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let Some(answer) = answers.next() else { return };
                    if head.is_empty() || stream.write_all(answer).is_err() {
                        break;
                    }
                    if answer.ends_with(b"close\r\n\r\n") {
                        break;
                    }
                }
            }
        });
        let mut connection = KeepAlive::new(address);
        let timeout = Duration::from_secs(5);
        assert_eq!(connection.exchange(&GET, timeout).unwrap().status, 200);
        assert_eq!(connection.exchange(&GET, timeout).unwrap().status, 503);
        assert_eq!(connection.exchange(&GET, timeout).unwrap().status, 204);
        assert_eq!(connection.connects, 1, "three requests on one connection");
        assert_eq!(connection.exchange(&GET, timeout).unwrap().status, 200);
        assert_eq!(connection.connects, 2, "the server closed it: a new one");
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
