//! What faults do to the process itself: crash modes, memory, CPU, and the hang that holds
//! every request. The engine decides when; this module only does.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use prometheus::IntGauge;
use tokio::sync::mpsc;

use super::fault::CrashMode;
use crate::health::Health;

/// The process-level effects the engine switches. One implementation acts on this process
/// ([`ProcessEffects`]); the engine's tests record the calls instead.
pub trait Effects: Send + Sync {
    /// Ends the process as `mode` says (never [`CrashMode::Hang`], which the engine handles
    /// through health), after writing `reason` where Kubernetes shows it.
    fn crash(&self, mode: CrashMode, exit_code: u8, reason: &str);
    /// Starts leaking (`Some(mib_per_second, max_mib)`) or stops growing (`None`).
    fn leak(&self, rate: Option<(f64, Option<f64>)>);
    /// Starts (`Some(cores)`) or stops (`None`) the CPU burn of `source`.
    fn burn(&self, source: &str, cores: Option<f64>);
}

/// A crash the main task must carry out because it cannot happen on a worker (a panic).
#[derive(Debug)]
pub struct CrashOrder {
    pub reason: String,
}

/// The effects on this process.
pub struct ProcessEffects {
    termination_log: PathBuf,
    crash_orders: mpsc::UnboundedSender<CrashOrder>,
    leaker: Leaker,
    burner: Burner,
}

impl ProcessEffects {
    /// Effects that write crash reasons to `termination_log` and count leaked bytes in
    /// `leaked_bytes`; the receiver gets the crashes only the main task can carry out.
    pub fn new(
        termination_log: PathBuf,
        leaked_bytes: IntGauge,
    ) -> (Self, mpsc::UnboundedReceiver<CrashOrder>) {
        let (crash_orders, receiver) = mpsc::unbounded_channel();
        let effects = ProcessEffects {
            termination_log,
            crash_orders,
            leaker: Leaker::new(leaked_bytes),
            burner: Burner::default(),
        };
        (effects, receiver)
    }
}

impl Effects for ProcessEffects {
    fn crash(&self, mode: CrashMode, exit_code: u8, reason: &str) {
        if let Err(e) = std::fs::write(&self.termination_log, format!("{reason}\n")) {
            tracing::debug!(path = %self.termination_log.display(), error = %e, "termination log not written");
        }
        match mode {
            CrashMode::Exit => std::process::exit(i32::from(exit_code)),
            CrashMode::Abort => std::process::abort(),
            CrashMode::Sigkill => kill_self(),
            CrashMode::Oom => exhaust_memory(),
            // A panic on a tokio worker would only end that task: the main task panics instead.
            CrashMode::Panic => {
                let _ = self.crash_orders.send(CrashOrder {
                    reason: reason.to_string(),
                });
            }
            // The engine holds the process through health; nothing ends here.
            CrashMode::Hang => {}
        }
    }

    fn leak(&self, rate: Option<(f64, Option<f64>)>) {
        match rate {
            Some((mib_per_second, max_mib)) => self.leaker.start(mib_per_second, max_mib),
            None => self.leaker.stop(),
        }
    }

    fn burn(&self, source: &str, cores: Option<f64>) {
        match cores {
            Some(cores) => self.burner.start(source, cores),
            None => self.burner.stop(source),
        }
    }
}

/// The same for async handlers (gRPC): a call that arrives while hung never completes, and the
/// runtime's threads stay free for the timers.
pub async fn pend_if_hung(health: &Health) {
    if health.hung() {
        std::future::pending::<()>().await;
    }
}

/// Blocks the calling thread for good while a hang holds the server, as a deadlock would: the
/// port stays open and connections are accepted, but nothing answers, probes included, so
/// kubelet probes time out instead of failing fast. For threads that serve requests one by one.
pub fn block_if_hung(health: &Health) {
    if health.hung() {
        loop {
            thread::park();
        }
    }
}

const MIB: usize = 1 << 20;
/// How often the leak grows: ten small steps a second look like a steady leak in any graph.
const LEAK_TICK: Duration = Duration::from_millis(100);
/// The CPU burner's duty-cycle period.
const BURN_PERIOD: Duration = Duration::from_millis(100);

/// Holds memory on purpose, growing at a steady rate on its own thread.
struct Leaker {
    running: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<Box<[u8]>>>>,
    gauge: IntGauge,
}

impl Leaker {
    /// A leaker holding nothing yet.
    fn new(gauge: IntGauge) -> Self {
        Leaker {
            running: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(Vec::new())),
            gauge,
        }
    }

    /// Starts growing by `mib_per_second` until `max_mib` (or for ever). Idempotent.
    fn start(&self, mib_per_second: f64, max_mib: Option<f64>) {
        if self.running.swap(true, Ordering::SeqCst) {
            return;
        }
        let running = Arc::clone(&self.running);
        let held = Arc::clone(&self.held);
        let gauge = self.gauge.clone();
        let step = ((mib_per_second * MIB as f64) * LEAK_TICK.as_secs_f64()).max(1.0) as usize;
        let cap = max_mib.map_or(usize::MAX, |m| (m * MIB as f64) as usize);
        let spawned = thread::Builder::new()
            .name("chaos-leak".into())
            .spawn(move || {
                let mut next = Instant::now();
                while running.load(Ordering::SeqCst) {
                    let total = gauge.get() as usize;
                    if total >= cap {
                        break;
                    }
                    // Filled with a non-zero byte so every page is written and becomes resident:
                    // zeroed allocations would stay virtual and never reach a memory limit.
                    let chunk = vec![0xA5u8; step.min(cap - total)].into_boxed_slice();
                    gauge.add(chunk.len() as i64);
                    held.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
                    next += LEAK_TICK;
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                running.store(false, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.running.store(false, Ordering::SeqCst);
            tracing::error!("cannot start the leak thread");
        }
    }

    /// Stops growing; what is held stays held.
    fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
    }
}

/// Threads that keep cores busy, by source, so each fault can be stopped on its own.
#[derive(Default)]
struct Burner {
    running: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
}

impl Burner {
    /// Burns `cores` cores (a fraction runs one thread at that duty cycle).
    fn start(&self, source: &str, cores: f64) {
        let flag = Arc::new(AtomicBool::new(true));
        if let Some(old) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(source.to_string(), Arc::clone(&flag))
        {
            old.store(false, Ordering::SeqCst);
        }
        let mut left = cores;
        let mut i = 0;
        while left > 0.0 {
            let duty = left.min(1.0);
            left -= duty;
            let flag = Arc::clone(&flag);
            let _ = thread::Builder::new()
                .name(format!("chaos-burn-{i}"))
                .spawn(move || burn(&flag, duty));
            i += 1;
        }
    }

    /// Stops the threads of `source`.
    fn stop(&self, source: &str) {
        if let Some(flag) = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(source)
        {
            flag.store(false, Ordering::SeqCst);
        }
    }
}

fn burn(running: &AtomicBool, duty: f64) {
    let busy = BURN_PERIOD.mul_f64(duty);
    let mut x: u64 = 1;
    while running.load(Ordering::Relaxed) {
        let start = Instant::now();
        while start.elapsed() < busy {
            // Keeps the loop from being optimised away.
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        if duty < 1.0 {
            thread::sleep(BURN_PERIOD - busy);
        }
    }
}

/// SIGKILL to this process: what the kernel does to an OOM victim or the kubelet after a grace
/// period; no handler, no cleanup, exit code 137.
fn kill_self() -> ! {
    // SAFETY: kill(2) with our own pid and a valid signal number has no memory-safety effects.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    loop {
        thread::park();
    }
}

/// Allocates and writes memory until something kills the process: the container's memory limit
/// (OOMKilled), the kernel OOM killer, or a failed allocation (abort).
fn exhaust_memory() -> ! {
    let mut held: Vec<Box<[u8]>> = Vec::new();
    loop {
        held.push(vec![0x5Au8; 64 * MIB].into_boxed_slice());
        std::hint::black_box(&held);
    }
}
