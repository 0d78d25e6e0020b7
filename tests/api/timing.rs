//! Times in tests, measured so that a busy machine cannot make them lie.
//!
//! A planned chaos event happens at a moment of the server's own clock: milliseconds since its
//! process started (`ready_at_ms`, `uptime_ms` and the events of `GET /chaos`). The test sees it
//! by polling, on its own clock (since it spawned the process), and a poll can only say that
//! the change came after the last look that saw the old state was sent and before the first
//! look that saw the new one came back: a [`Seen`] interval, never one moment. The server's
//! start lies between two known moments of the test's clock ([`ServerClock`]), so a [`Seen`]
//! interval converts to an interval of server time, and the assertion is that the planned moment
//! fits it: never seen before it was planned, and not later than [`LATE`] after. No time is the
//! difference of two polled times, so polling late (the machine is busy) cannot make an event
//! look early.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::TestServer;

/// How late a planned event may be seen: the timer, the scheduler of a loaded 2-core machine,
/// the model load of a debug build and the process's exit all delay it; nothing makes it early.
pub const LATE: Duration = Duration::from_millis(1500);

/// The server reports whole milliseconds, truncated.
const ROUNDING: Duration = Duration::from_millis(1);

/// When something seen by polling happened, on the test's clock (time since spawn): after
/// `after` (when the last look that saw the old state was sent) and by `by` (when the first look
/// that saw the new state had its answer).
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    pub after: Duration,
    pub by: Duration,
}

/// The server's clock against the test's: the process started between `start_earliest` and
/// `start_latest` after spawn, and became ready `ready_at` after its start (its own account).
#[derive(Debug, Clone, Copy)]
pub struct ServerClock {
    pub start_earliest: Duration,
    pub start_latest: Duration,
    pub ready_at: Option<Duration>,
}

impl ServerClock {
    /// Reads the server's uptime from `GET /chaos`: the process started `uptime` before a
    /// moment between sending the request and reading its answer.
    pub async fn read(server: &TestServer) -> ServerClock {
        let sent = server.started.elapsed();
        let chaos: Value = server.get_json("/chaos").await;
        let answered = server.started.elapsed();
        let uptime = Duration::from_millis(chaos["uptime_ms"].as_u64().expect("uptime_ms"));
        ServerClock {
            // The process cannot start before it was spawned.
            start_earliest: sent.saturating_sub(uptime + ROUNDING),
            start_latest: answered.saturating_sub(uptime),
            ready_at: chaos["ready_at_ms"].as_u64().map(Duration::from_millis),
        }
    }

    /// When the server became ready by its own clock; it must be by now.
    pub fn ready_at(&self) -> Duration {
        self.ready_at.expect("the server is not ready yet")
    }

    /// The interval of server time (since its start) in which a `seen` change happened.
    pub fn server_time(&self, seen: Seen) -> (Duration, Duration) {
        (
            seen.after.saturating_sub(self.start_latest),
            seen.by.saturating_sub(self.start_earliest),
        )
    }
}

/// Asserts that a change planned at `planned` (server time) and seen as `seen` (test time) came
/// neither before it was planned nor more than [`LATE`] after; the message names every time.
pub fn assert_on_time(what: &str, seen: Seen, planned: Duration, clock: &ServerClock) {
    let (earliest, latest) = clock.server_time(seen);
    assert!(
        latest + ROUNDING >= planned && earliest <= planned + LATE,
        "{what}: planned at {planned:?} after the server's start; seen after {:?} and by {:?} \
         after spawn, and the server started {:?}..{:?} after spawn, so it happened between \
         {earliest:?} and {latest:?} after the server's start; allowed {planned:?}..{:?}",
        seen.after,
        seen.by,
        clock.start_earliest,
        clock.start_latest,
        planned + LATE,
    );
}

/// Asserts a time the server reports of itself (`reported`, since its start) against the plan:
/// not before `planned`, at most [`LATE`] after.
pub fn assert_reported_on_time(what: &str, reported: Duration, planned: Duration) {
    assert!(
        reported + ROUNDING >= planned && reported <= planned + LATE,
        "{what}: the server reports {reported:?} after its start, planned at {planned:?} \
         (allowed {planned:?}..{:?})",
        planned + LATE
    );
}

/// Polls `look` until it returns `Some`, every `interval`, for at most `limit`; returns the
/// value and when it was seen. `after` is when the last look that returned `None` started (zero
/// when the first look succeeded: then the change came before polling began).
pub async fn poll<T, F, Fut>(
    server: &TestServer,
    what: &str,
    interval: Duration,
    limit: Duration,
    mut look: F,
) -> (T, Seen)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    let mut after = Duration::ZERO;
    loop {
        let sent = server.started.elapsed();
        if let Some(value) = look().await {
            let by = server.started.elapsed();
            return (value, Seen { after, by });
        }
        after = sent;
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {limit:?}; logs:\n{}",
            server.logs().join("\n")
        );
        tokio::time::sleep(interval).await;
    }
}
