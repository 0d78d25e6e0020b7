//! Offered load, through a Service, to its pods, and each pod's queue: what `simulate --load`
//! adds to the kubelet's rules. Pure: rates, capacities and times in, waits and counts out.
//!
//! The model, with its sources:
//!
//! - **The split.** kube-proxy in iptables mode sends each new connection to one of the `n`
//!   Ready endpoints at random, each with probability `1/n` (`pkg/proxy/iptables/proxier.go`
//!   writes `-m statistic --mode random --probability 1/(n-i)` for the i-th of n rules), so a
//!   pod gets `R/n` of a rate `R`. A random split of a steady stream is not steady: thinning a
//!   stream with squared coefficient of variation `ca2` with probability `p` leaves
//!   `p * ca2 + 1 - p` (Whitt, "Approximations for the GI/G/m queue", 1993, section 4), so a
//!   pod's arrivals from a fixed-rate client (`ca2` 0) vary with `1 - 1/n`.
//! - **Above saturation** (utilisation `rho = lambda * E[S] / c > 1`), a fluid model: the wait
//!   a new arrival faces grows at `rho - 1` seconds per second; below it, a backlog drains at
//!   `1 - rho`. A queue limit `L` stops the wait at `L * E[S] / c` and sheds what arrives
//!   beyond.
//! - **The queueing spread** around the fluid wait: the variance of the work that arrived in
//!   the current busy period, `lambda * t * (ca2 + cs2) * (E[S] / c)^2` (the diffusion
//!   approximation of a heavily loaded queue, Kingman 1962; Whitt 2002, chapter 9). The
//!   earliest scenario adds two standard deviations to the fluid wait, the latest takes two
//!   off, the drawn ones one fixed factor per pod.
//! - **Below saturation**, with no fluid backlog, the steady state of a GI/G/c queue: the
//!   Allen-Cunneen approximation `E[Wq] = C(c, a) / (c * mu - lambda) * (ca2 + cs2) / 2`, with
//!   Erlang's `C(c, a)` the chance to wait at all (Allen, "Probability, Statistics, and
//!   Queueing Theory", 1990), and its exponential tail `P(Wq > t) = C * exp(-C * t / E[Wq])`
//!   (exact for M/M/c). It gives each probe a chance to wait longer than its timeout.
//!
//! Requests that wait are served even when their client has given up (the server cannot tell;
//! measured: a queue of abandoned requests still drains one service time each), so client
//! time-outs do not shorten the queue.

use crate::chaos::fault::{Overload, ProbeQueue};
use crate::load::Rates;

/// Milliseconds since the manifests were applied.
pub type Ms = u64;

/// Standard deviations of the queueing spread the earliest and latest scenarios take.
pub const SPREAD_SIGMAS: f64 = 2.0;

/// What a container can serve: its `overload` fault, as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capacity {
    /// Requests served at once.
    pub workers: u32,
    /// Mean time a prediction holds a worker, seconds.
    pub service_s: f64,
    /// The service time's squared coefficient of variation.
    pub service_scv: f64,
    /// How long a queued probe holds a worker, seconds.
    pub probe_s: f64,
    /// Whether probes wait in the same queue as predictions.
    pub probes_queued: bool,
    /// Requests that may wait; beyond, they are shed.
    pub queue_limit: Option<u32>,
    pub shed_status: u16,
    /// Whether probes can be shed too.
    pub shed_probes: bool,
}

impl Capacity {
    /// The capacity of an overload fault whose ranges a plan has drawn.
    pub fn of(overload: &Overload) -> Capacity {
        Capacity {
            workers: overload.workers,
            service_s: overload.service_time.mean_seconds(),
            service_scv: overload.service_time.scv(),
            probe_s: (overload.probe_time.low.as_secs_f64()
                + overload.probe_time.high.as_secs_f64())
                / 2.0,
            probes_queued: overload.probes == ProbeQueue::Queued,
            queue_limit: overload.queue_limit,
            shed_status: overload.shed_status,
            shed_probes: overload.shed_probes,
        }
    }

    /// Predictions per second it serves at most.
    pub fn per_second(&self) -> f64 {
        f64::from(self.workers) / self.service_s.max(1e-9)
    }

    /// Offered rate over capacity.
    pub fn utilisation(&self, rate: f64) -> f64 {
        rate / self.per_second()
    }

    /// The longest a request waits, when the queue has a limit: a full queue ahead of it.
    pub fn max_wait(&self) -> Option<f64> {
        self.queue_limit
            .map(|limit| f64::from(limit) * self.service_s / f64::from(self.workers))
    }

    /// How much one request's wait varies per request arrived, squared: `(E[S] / c)^2`.
    fn work_per_request_squared(&self) -> f64 {
        let w = self.service_s / f64::from(self.workers);
        w * w
    }
}

/// Arrival variability of one of `n` endpoints that share a fixed-rate stream at random.
pub fn split_scv(n: usize) -> f64 {
    if n == 0 { 0.0 } else { 1.0 - 1.0 / n as f64 }
}

/// Erlang's C: the chance that an arrival finds all `c` workers busy, at `a` Erlangs of offered
/// work (`a < c`). From Erlang's B by its recursion, which stays exact for many workers.
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if a <= 0.0 {
        return 0.0;
    }
    if a >= f64::from(c) {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let c = f64::from(c);
    c * b / (c - a * (1.0 - b))
}

/// The steady state of a queue below saturation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Steady {
    /// The chance to wait at all.
    pub p_wait: f64,
    /// The mean wait, seconds.
    pub mean_wait: f64,
}

impl Steady {
    /// Allen-Cunneen's approximation at `rate` with arrival variability `arrival_scv`; `None`
    /// at or above saturation.
    pub fn of(rate: f64, capacity: &Capacity, arrival_scv: f64) -> Option<Steady> {
        let mu = capacity.per_second();
        if rate >= mu {
            return None;
        }
        let a = rate * capacity.service_s;
        let p_wait = erlang_c(capacity.workers, a);
        let mean_wait = p_wait / (mu - rate) * (arrival_scv + capacity.service_scv) / 2.0;
        Some(Steady { p_wait, mean_wait })
    }

    /// The chance that a request waits longer than `t` seconds.
    pub fn exceeds(&self, t: f64) -> f64 {
        if self.mean_wait <= 0.0 || self.p_wait <= 0.0 {
            return 0.0;
        }
        if t <= 0.0 {
            return self.p_wait;
        }
        self.p_wait * (-self.p_wait * t / self.mean_wait).exp()
    }

    /// One wait drawn from two uniform numbers in `[0, 1)`.
    pub fn sample(&self, u: f64, v: f64) -> f64 {
        if u >= self.p_wait || self.mean_wait <= 0.0 {
            0.0
        } else {
            -(self.mean_wait / self.p_wait) * (1.0 - v).max(f64::MIN_POSITIVE).ln()
        }
    }
}

/// Expected kills per hour of a probe that fails with chance `p` at each try and kills after
/// `failure_threshold` failures in a row, every `period_s`: a run of that many failures starts
/// at a try with chance `(1 - p) * p^k` (tries are far enough apart to be independent).
pub fn kills_per_hour(p: f64, failure_threshold: u32, period_s: f64) -> f64 {
    let k = i32::try_from(failure_threshold).unwrap_or(i32::MAX);
    3600.0 / period_s * (1.0 - p) * p.powi(k)
}

/// What a pod does with requests that reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// No process listens (not started, port not yet open, shut down, exited): refused.
    Closed,
    /// The process answers 503 at once (the model is loading).
    Unavailable,
    /// The process accepts and never answers (hung): every request times out.
    Silent,
    /// Requests queue for the workers.
    Open,
}

/// What happened to the requests sent, as a client counts them (fluid counts: expected
/// numbers, not whole requests).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcomes {
    /// Answered 2xx within the client's time-out.
    pub served: f64,
    /// Answered after the client gave up.
    pub timed_out: f64,
    /// Refused at once by a full queue.
    pub shed: f64,
    /// No connection: no endpoint, or one whose process does not listen.
    pub refused: f64,
    /// 503 while loading, or cut off by the process's end while queued.
    pub failed: f64,
}

impl Outcomes {
    pub fn add(&mut self, other: &Outcomes) {
        self.served += other.served;
        self.timed_out += other.timed_out;
        self.shed += other.shed;
        self.refused += other.refused;
        self.failed += other.failed;
    }

    pub fn sent(&self) -> f64 {
        self.served + self.timed_out + self.shed + self.refused + self.failed
    }
}

/// One pod's queue: the fluid wait a new arrival faces, the spread around it, and the counts of
/// what its arrivals got.
#[derive(Debug, Clone, PartialEq)]
pub struct PodQueue {
    /// When the queue was last brought up to date.
    at: Ms,
    /// The fluid wait, seconds.
    backlog: f64,
    /// Variance of the work arrived in this busy period, seconds squared.
    variance: f64,
    /// Arrivals per second.
    rate: f64,
    arrival_scv: f64,
    capacity: Option<Capacity>,
    door: Door,
    /// The client's time-out, seconds.
    client_timeout: f64,
    pub outcomes: Outcomes,
}

impl PodQueue {
    /// An empty queue at `at` with no arrivals.
    pub fn new(at: Ms, client_timeout: f64) -> PodQueue {
        PodQueue {
            at,
            backlog: 0.0,
            variance: 0.0,
            rate: 0.0,
            arrival_scv: 0.0,
            capacity: None,
            door: Door::Closed,
            client_timeout,
            outcomes: Outcomes::default(),
        }
    }

    /// Arrivals per second now.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The fluid wait now, seconds.
    pub fn backlog(&self) -> f64 {
        self.backlog
    }

    pub fn capacity(&self) -> Option<&Capacity> {
        self.capacity.as_ref()
    }

    /// Offered rate over capacity (0 with no capacity limit).
    pub fn utilisation(&self) -> f64 {
        self.capacity.map_or(0.0, |c| c.utilisation(self.rate))
    }

    /// The steady state now, when below saturation with no backlog.
    pub fn steady(&self) -> Option<Steady> {
        let capacity = self.capacity?;
        if self.backlog > 0.0 || self.door != Door::Open {
            return None;
        }
        Steady::of(self.rate, &capacity, self.arrival_scv)
    }

    /// From now on: this arrival rate and variability, capacity and door. Bring the queue up to
    /// date first ([`PodQueue::advance`]).
    pub fn set(&mut self, rate: f64, arrival_scv: f64, capacity: Option<Capacity>, door: Door) {
        self.rate = rate;
        self.arrival_scv = arrival_scv;
        self.capacity = capacity;
        self.door = door;
        if capacity.is_none() {
            self.backlog = 0.0;
            self.variance = 0.0;
        }
    }

    /// The process is gone: what still waits is cut off (those still within the client's
    /// time-out fail instead of being served), and a new process starts with an empty queue.
    pub fn cut(&mut self) {
        if let Some(capacity) = self.capacity {
            let still_waited_for = (self.client_timeout - capacity.service_s).max(0.0);
            let cut = self.backlog.min(still_waited_for) * capacity.per_second();
            let cut = cut.min(self.outcomes.served);
            self.outcomes.served -= cut;
            self.outcomes.failed += cut;
        }
        self.backlog = 0.0;
        self.variance = 0.0;
    }

    /// Brings the queue to `to`: the wait moves with the utilisation, arrivals are counted.
    pub fn advance(&mut self, to: Ms) {
        if to <= self.at {
            return;
        }
        let mut dt = (to - self.at) as f64 / 1000.0;
        self.at = to;
        let arrivals = self.rate * dt;
        let Some(capacity) = self.capacity else {
            match self.door {
                Door::Open => self.outcomes.served += arrivals,
                Door::Unavailable => self.outcomes.failed += arrivals,
                Door::Closed => self.outcomes.refused += arrivals,
                Door::Silent => self.outcomes.timed_out += arrivals,
            }
            return;
        };
        let accepted_rate = match self.door {
            Door::Open => self.rate,
            Door::Unavailable => {
                self.outcomes.failed += arrivals;
                0.0
            }
            Door::Closed => {
                self.outcomes.refused += arrivals;
                0.0
            }
            Door::Silent => {
                self.outcomes.timed_out += arrivals;
                0.0
            }
        };
        let mu = capacity.per_second();
        let slope = accepted_rate / mu - 1.0;
        let cap = capacity.max_wait().unwrap_or(f64::INFINITY);
        // A request counts as timed out when its wait and its service end after the client's
        // time-out.
        let late_from = self.client_timeout - capacity.service_s;
        let spread =
            (self.arrival_scv + capacity.service_scv) * capacity.work_per_request_squared();
        while dt > 0.0 {
            if self.backlog <= 0.0 && slope < 0.0 {
                // Below saturation with nothing queued: the steady state.
                let late = Steady::of(accepted_rate, &capacity, self.arrival_scv)
                    .map_or(0.0, |s| s.exceeds(late_from));
                let n = accepted_rate * dt;
                self.outcomes.timed_out += n * late;
                self.outcomes.served += n * (1.0 - late);
                self.variance = 0.0;
                return;
            }
            if self.backlog >= cap && slope >= 0.0 {
                // A full queue: the workers take what they serve, the rest is shed.
                self.outcomes.shed += (accepted_rate - mu).max(0.0) * dt;
                self.count_waiting(mu * dt, self.backlog, self.backlog, late_from);
                return;
            }
            // A straight stretch until the wait reaches 0 or the limit, or the time is up.
            let reach = if slope < 0.0 {
                self.backlog / -slope
            } else if slope > 0.0 {
                (cap - self.backlog) / slope
            } else {
                f64::INFINITY
            };
            let step = dt.min(reach);
            let from = self.backlog;
            let to = (from + slope * step).clamp(0.0, cap);
            self.count_waiting(accepted_rate * step, from, to, late_from);
            self.variance += accepted_rate * step * spread;
            self.backlog = if step >= reach && slope < 0.0 {
                0.0
            } else {
                to
            };
            dt -= step;
            if step >= reach && slope < 0.0 {
                // The busy period is over.
                self.variance = 0.0;
            }
        }
    }

    /// `n` arrivals spread evenly while the wait goes linearly from `from` to `to`: those whose
    /// wait passes `late_from` time out.
    fn count_waiting(&mut self, n: f64, from: f64, to: f64, late_from: f64) {
        let late_share = if (from - to).abs() < 1e-12 {
            if from > late_from { 1.0 } else { 0.0 }
        } else {
            let (low, high) = (from.min(to), from.max(to));
            ((high - late_from.max(low)) / (high - low)).clamp(0.0, 1.0)
        };
        self.outcomes.timed_out += n * late_share;
        self.outcomes.served += n * (1.0 - late_share);
    }

    /// The wait a queued probe arriving now faces, seconds: the fluid wait moved by `sigmas`
    /// standard deviations of the spread, or, below saturation with no backlog, the steady
    /// state's wait drawn from `draw` (two uniforms) or its mean.
    pub fn wait(&self, sigmas: f64, draw: Option<(f64, f64)>) -> f64 {
        let Some(capacity) = self.capacity else {
            return 0.0;
        };
        if self.door != Door::Open {
            return self.backlog;
        }
        if let Some(steady) = self.steady() {
            return match draw {
                Some((u, v)) => steady.sample(u, v),
                None => steady.mean_wait,
            };
        }
        let cap = capacity.max_wait().unwrap_or(f64::INFINITY);
        (self.backlog + sigmas * self.variance.sqrt()).clamp(0.0, cap)
    }

    /// Whether the queue is full: a sheddable request arriving now is refused.
    pub fn full(&self) -> bool {
        self.capacity
            .and_then(|c| c.max_wait())
            .is_some_and(|cap| self.door == Door::Open && self.backlog >= cap - 1e-9)
    }
}

/// The load `simulate --load` offers: a rate in steps, through a Service (or straight) to the
/// pods of some workloads, from clients that give up after a time-out.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub rates: Rates,
    /// The client's time-out (`--load-timeout`).
    pub client_timeout: std::time::Duration,
    /// The Service it enters through, when the input has one that selects the workload.
    pub service: Option<String>,
    /// The workloads whose pods share it (those the Service selects).
    pub workloads: Vec<String>,
}

impl Offered {
    /// Requests per second at `t` (milliseconds after apply).
    pub fn rate_at(&self, t: Ms) -> f64 {
        self.rates.at(std::time::Duration::from_millis(t))
    }

    /// When the rate changes, after the start.
    pub fn changes(&self) -> impl Iterator<Item = Ms> + '_ {
        self.rates
            .steps()
            .iter()
            .map(|s| s.from.as_millis() as Ms)
            .filter(|t| *t > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capacity(workers: u32, service_ms: f64) -> Capacity {
        Capacity {
            workers,
            service_s: service_ms / 1000.0,
            service_scv: 0.0,
            probe_s: 0.001,
            probes_queued: true,
            queue_limit: None,
            shed_status: 503,
            shed_probes: false,
        }
    }

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-12)
    }

    #[test]
    fn erlang_c_matches_the_tables() {
        // One worker: the chance to wait is the utilisation.
        assert!(close(erlang_c(1, 0.8), 0.8, 1e-12));
        // Two workers at 1 Erlang: C = 1/3 (a^2/2 * 2/(2-1) over 1 + 1 + 1).
        assert!(close(erlang_c(2, 1.0), 1.0 / 3.0, 1e-12));
        // Ten workers at 8 Erlangs: 0.4092 (standard Erlang C tables).
        assert!(close(erlang_c(10, 8.0), 0.4092, 1e-3));
        assert_eq!(erlang_c(3, 3.5), 1.0);
    }

    #[test]
    fn allen_cunneen_is_exact_for_a_poisson_single_worker_queue() {
        // M/M/1: E[Wq] = rho / (mu - lambda). With ca2 = cs2 = 1 the approximation is exact.
        let mut c = capacity(1, 25.0);
        c.service_scv = 1.0;
        let s = Steady::of(30.0, &c, 1.0).unwrap();
        assert!(close(s.mean_wait, 0.75 / (40.0 - 30.0), 1e-12));
        assert!(close(s.p_wait, 0.75, 1e-12));
        // M/M/1's tail: P(Wq > t) = rho * exp(-(mu - lambda) t).
        assert!(close(s.exceeds(0.2), 0.75 * (-10.0f64 * 0.2).exp(), 1e-9));
        // A fixed service time and a steady stream split three ways: (2/3 + 0) / 2 against the
        // Poisson queue's (1 + 1) / 2, a third of its wait.
        let d = Steady::of(30.0, &capacity(1, 25.0), split_scv(3)).unwrap();
        assert!(close(d.mean_wait, s.mean_wait / 3.0, 1e-9));
        assert!(
            Steady::of(40.0, &capacity(1, 25.0), 1.0).is_none(),
            "saturated"
        );
    }

    #[test]
    fn below_saturation_a_one_second_probe_timeout_is_practically_never_reached() {
        // The overload profile at 100/s over 3 pods: 33/s on 40/s.
        let s = Steady::of(100.0 / 3.0, &capacity(1, 25.0), split_scv(3)).unwrap();
        let p = s.exceeds(1.0 - 0.001);
        assert!(p < 1e-8, "{p}");
        assert!(kills_per_hour(p, 3, 5.0) < 1e-20);
        // Sampling follows the tail: the share of draws above 100 ms matches exceeds(0.1).
        let n = 100_000;
        let above = (0..n)
            .filter(|i| {
                let u = (*i as f64 + 0.5) / n as f64;
                let v = ((*i * 7919) % n) as f64 / n as f64;
                s.sample(u, v) > 0.1
            })
            .count() as f64
            / n as f64;
        assert!(
            (above - s.exceeds(0.1)).abs() < 0.01,
            "{above} vs {}",
            s.exceeds(0.1)
        );
    }

    #[test]
    fn above_saturation_the_wait_grows_at_utilisation_minus_one() {
        let mut q = PodQueue::new(0, 5.0);
        // 50/s on 40/s: rho 1.25, the wait grows 0.25 s each second.
        q.set(50.0, split_scv(2), Some(capacity(1, 25.0)), Door::Open);
        q.advance(4_000);
        assert!(close(q.backlog(), 1.0, 1e-9), "{}", q.backlog());
        // The spread: 50 * 4 * 0.5 * 0.025^2 = 0.0625 s^2, 0.25 s.
        assert!(close(q.wait(2.0, None), 1.5, 1e-9));
        assert!(close(q.wait(-2.0, None), 0.5, 1e-9));
        // Half the load: it drains at 0.5 s per second and is empty 2 s later.
        q.set(20.0, split_scv(2), Some(capacity(1, 25.0)), Door::Open);
        q.advance(5_000);
        assert!(close(q.backlog(), 0.5, 1e-9));
        q.advance(7_000);
        assert_eq!(q.backlog(), 0.0);
        assert!(q.steady().is_some(), "back to the steady state");
        // Every request was served within the 5 s time-out.
        assert!(close(q.outcomes.sent(), 200.0 + 60.0, 1e-9));
        assert!(q.outcomes.timed_out < 1e-6, "{:?}", q.outcomes);
    }

    #[test]
    fn requests_that_wait_past_the_client_timeout_are_counted_as_timed_out() {
        // rho 2: the wait grows 1 s per second; with a 1 s time-out and 25 ms of service, a
        // request times out once its wait passes 0.975 s: over 0..2 s, 1.025 s of the 2 s.
        let mut q = PodQueue::new(0, 1.0);
        q.set(80.0, 0.0, Some(capacity(1, 25.0)), Door::Open);
        q.advance(2_000);
        assert!(close(q.outcomes.timed_out, 80.0 * 1.025, 1e-9));
        assert!(close(q.outcomes.served, 80.0 * 0.975, 1e-9));
        // The process ends: what still waits within the time-out fails instead.
        let served = q.outcomes.served;
        q.cut();
        assert!(close(served - q.outcomes.served, 0.975 * 40.0, 1e-9));
        assert_eq!(q.backlog(), 0.0);
    }

    #[test]
    fn a_queue_limit_caps_the_wait_and_sheds_the_rest() {
        let mut c = capacity(1, 25.0);
        c.queue_limit = Some(20);
        // 20 waiting at 25 ms: at most 0.5 s.
        assert_eq!(c.max_wait(), Some(0.5));
        let mut q = PodQueue::new(0, 5.0);
        q.set(80.0, 0.0, Some(c), Door::Open);
        q.advance(10_000);
        assert!(close(q.backlog(), 0.5, 1e-9));
        assert!(q.full());
        assert!(q.wait(2.0, None) <= 0.5);
        // Full after 0.5 s (rho 2); from then on 40/s served, 40/s shed.
        assert!(close(q.outcomes.shed, 40.0 * 9.5, 1e-9));
        assert!(close(q.outcomes.served, 80.0 * 0.5 + 40.0 * 9.5, 1e-9));
    }

    #[test]
    fn a_closed_or_loading_pod_refuses_or_fails_what_reaches_it() {
        let mut q = PodQueue::new(0, 5.0);
        q.set(10.0, 0.0, Some(capacity(1, 25.0)), Door::Closed);
        q.advance(1_000);
        q.set(10.0, 0.0, Some(capacity(1, 25.0)), Door::Unavailable);
        q.advance(3_000);
        assert_eq!((q.outcomes.refused, q.outcomes.failed), (10.0, 20.0));
        // With no capacity limit every request is served.
        q.set(10.0, 0.0, None, Door::Open);
        q.advance(4_000);
        assert_eq!(q.outcomes.served, 10.0);
        assert_eq!(q.wait(2.0, None), 0.0);
    }

    #[test]
    fn a_random_split_of_a_steady_stream_varies_with_one_minus_one_over_n() {
        assert_eq!(split_scv(1), 0.0);
        assert_eq!(split_scv(2), 0.5);
        assert!(close(split_scv(4), 0.75, 1e-12));
    }
}
