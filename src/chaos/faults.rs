//! Faults that act on the process itself: memory, CPU, signals.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use prometheus::IntGauge;

const MIB: usize = 1 << 20;
/// How often the leak grows: ten small steps a second look like a steady leak in any graph.
const LEAK_TICK: Duration = Duration::from_millis(100);
/// The CPU burner's duty-cycle period.
const BURN_PERIOD: Duration = Duration::from_millis(100);

/// Holds memory on purpose, growing at a steady rate on its own thread.
pub struct Leaker {
    running: Arc<AtomicBool>,
    held: Arc<Mutex<Vec<Box<[u8]>>>>,
    gauge: IntGauge,
}

impl Leaker {
    /// A leaker holding nothing yet.
    pub fn new(gauge: IntGauge) -> Self {
        Leaker {
            running: Arc::new(AtomicBool::new(false)),
            held: Arc::new(Mutex::new(Vec::new())),
            gauge,
        }
    }

    /// Starts growing by `mib_per_second` until `max_mib` (or for ever). Idempotent.
    pub fn start(&self, mib_per_second: f64, max_mib: Option<f64>) {
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
    pub fn stop(&self) {
        self.running.store(false, Ordering::SeqCst);
    }
}

/// Threads that keep cores busy, by source, so each fault can be stopped on its own.
#[derive(Default)]
pub struct Burner {
    running: Mutex<BTreeMap<String, Arc<AtomicBool>>>,
}

impl Burner {
    /// Burns `cores` cores (a fraction runs one thread at that duty cycle).
    pub fn start(&self, source: &str, cores: f64) {
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
    pub fn stop(&self, source: &str) {
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
pub fn kill_self() -> ! {
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
pub fn exhaust_memory() -> ! {
    let mut held: Vec<Box<[u8]>> = Vec::new();
    loop {
        held.push(vec![0x5Au8; 64 * MIB].into_boxed_slice());
        std::hint::black_box(&held);
    }
}
