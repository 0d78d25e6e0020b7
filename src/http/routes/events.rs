//! `GET /chaos/events`: the status page's live feed, as Server-Sent Events.
//!
//! One `status` event on connect (everything `GET /chaos` says, plus the probes and the recent
//! traffic), then `phase` on every phase change, `fault` on every chaos event and `stats` once
//! a second. A stream ends after it reports `draining`, so open pages never hold up a drain;
//! while a hang fault holds the process it goes silent, as every other route does, and the
//! page reports the connection lost.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use actix_web::web::Bytes;
use actix_web::{HttpResponse, http::header, web};
use serde::Serialize;

use crate::chaos::engine::ChaosEngine;
use crate::health::{Health, Phase};
use crate::http::AppState;
use crate::http::routes::chaos::{ChaosStatus, NextEvent, OverloadQueue, PastEvent};
use crate::http::routes::health::ProbeCodes;
use crate::metrics::GaugeGuard;
use crate::stats::{self, Sample, Stats};

/// The first event of a stream: the whole picture.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageStatus {
    pub model: String,
    #[serde(flatten)]
    pub chaos: ChaosStatus,
    pub probes: ProbeCodes,
    /// Inference traffic, one sample a second, oldest first (the last five minutes).
    pub stats: Vec<Sample>,
}

impl PageStatus {
    pub fn of(state: &AppState) -> Self {
        PageStatus {
            model: state.model_name.clone(),
            chaos: ChaosStatus::of(&state.chaos),
            probes: ProbeCodes::of(&state.health),
            stats: state.stats.recent(),
        }
    }
}

/// A `phase` event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PhaseEvent {
    pub phase: Phase,
    pub at_ms: u64,
    pub probes: ProbeCodes,
}

/// A `fault` event: what happened, and what comes next now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FaultEvent {
    pub event: PastEvent,
    pub next: Vec<NextEvent>,
}

/// A `stats` event.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsEvent {
    pub uptime_ms: u64,
    pub phase: Phase,
    pub probes: ProbeCodes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<Sample>,
    /// The active overload fault's queue, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overload: Option<OverloadQueue>,
}

/// The events of the stream: the one list the feed and the OpenAPI document read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Status,
    Phase,
    Fault,
    Stats,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Status,
        EventKind::Phase,
        EventKind::Fault,
        EventKind::Stats,
    ];

    /// The SSE event name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Status => "status",
            EventKind::Phase => "phase",
            EventKind::Fault => "fault",
            EventKind::Stats => "stats",
        }
    }

    /// The component schema of its `data`.
    pub fn schema(self) -> &'static str {
        match self {
            EventKind::Status => "PageStatus",
            EventKind::Phase => "PhaseEvent",
            EventKind::Fault => "FaultEvent",
            EventKind::Stats => "StatsEvent",
        }
    }
}

/// One SSE frame: `event: NAME` and one `data:` line of JSON.
fn frame(kind: EventKind, data: &impl Serialize) -> Bytes {
    let name = kind.name();
    // The payloads are plain structs of strings and numbers: serialising cannot fail.
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".into());
    Bytes::from(format!("event: {name}\ndata: {json}\n\n"))
}

/// What one stream has sent and what it waits on.
struct Feed {
    health: Arc<Health>,
    chaos: Arc<ChaosEngine>,
    stats: Arc<Stats>,
    phase_changes: tokio::sync::watch::Receiver<u64>,
    fault_events: tokio::sync::watch::Receiver<u64>,
    ticks: tokio::time::Interval,
    phase: Phase,
    events_seen: u64,
    queue: VecDeque<Bytes>,
    ended: bool,
    /// Counts this stream in `chaos_inference_event_streams` while it is open; actix drops the
    /// stream when the client goes away.
    _open: GaugeGuard,
}

impl Feed {
    fn new(state: &AppState) -> Self {
        let mut phase_changes = state.health.subscribe();
        let mut fault_events = state.chaos.subscribe_events();
        phase_changes.mark_unchanged();
        fault_events.mark_unchanged();
        // Counted before the snapshot and after subscribing: an event recorded in between is
        // sent again rather than missed.
        let (_, events_seen) = state.chaos.events_since(u64::MAX);
        let page = PageStatus::of(state);
        let mut ticks = tokio::time::interval(stats::INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Feed {
            health: Arc::clone(&state.health),
            chaos: Arc::clone(&state.chaos),
            stats: Arc::clone(&state.stats),
            phase_changes,
            fault_events,
            ticks,
            phase: page.chaos.phase,
            events_seen,
            queue: VecDeque::from([frame(EventKind::Status, &page)]),
            ended: false,
            _open: GaugeGuard::enter(&state.metrics.event_streams),
        }
    }

    fn uptime_ms(&self) -> u64 {
        self.chaos.uptime().as_millis() as u64
    }

    /// Queues what changed since the last look: new chaos events first (they cause phase
    /// changes), then the phase.
    fn catch_up(&mut self) {
        let (events, seen) = self.chaos.events_since(self.events_seen);
        self.events_seen = seen;
        if !events.is_empty() {
            let status = ChaosStatus::of(&self.chaos);
            for event in events {
                let event = PastEvent::from(event);
                self.queue.push_back(frame(
                    EventKind::Fault,
                    &FaultEvent {
                        event,
                        next: status.next.clone(),
                    },
                ));
            }
        }
        let phase = self.health.phase();
        if phase != self.phase {
            self.phase = phase;
            self.queue.push_back(frame(
                EventKind::Phase,
                &PhaseEvent {
                    phase,
                    at_ms: self.uptime_ms(),
                    probes: ProbeCodes::of(&self.health),
                },
            ));
            if phase == Phase::Draining {
                self.ended = true;
            }
        }
    }

    fn stats_frame(&self) -> Bytes {
        frame(
            EventKind::Stats,
            &StatsEvent {
                uptime_ms: self.uptime_ms(),
                phase: self.health.phase(),
                probes: ProbeCodes::of(&self.health),
                sample: self.stats.latest(),
                overload: OverloadQueue::of(&self.chaos),
            },
        )
    }

    /// The next frame, or `None` once the stream is over.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.queue.pop_front() {
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            if self.health.hung() {
                // Silent, like every route of a hung process.
                std::future::pending::<()>().await;
            }
            tokio::select! {
                changed = self.phase_changes.changed() => {
                    if changed.is_err() { return None; }
                }
                changed = self.fault_events.changed() => {
                    if changed.is_err() { return None; }
                }
                _ = self.ticks.tick() => {
                    let stats = self.stats_frame();
                    self.catch_up();
                    self.queue.push_back(stats);
                    continue;
                }
            }
            self.catch_up();
        }
    }
}

/// The status page's live feed (Server-Sent Events): `status` on connect, then `phase`,
/// `fault` and, once a second, `stats`. Each `data:` line is one JSON object.
#[utoipa::path(get, path = "/chaos/events", tag = "chaos",
    responses((status = 200, content_type = "text/event-stream",
        description = "Server-Sent Events: `status` (PageStatus) on connect, `phase` (PhaseEvent), `fault` (FaultEvent), `stats` (StatsEvent) once a second; the stream ends after `phase` reports draining",
        body = PageStatus)))]
pub async fn events(state: web::Data<AppState>) -> HttpResponse {
    let feed = Feed::new(&state);
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let frame = feed.next().await?;
        Some((Ok::<_, Infallible>(frame), feed))
    });
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Proxies that buffer (nginx) would hold the events back.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}
