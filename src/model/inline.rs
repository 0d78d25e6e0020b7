//! Which requests run on the HTTP worker that received them ("inline") instead of being handed
//! to an inference worker.
//!
//! Handing a run to another thread and waking the caller again costs a few microseconds; for a
//! model whose run costs about the same, running it inline is faster. But an inline run holds
//! the HTTP worker: every other connection of that worker (probes included) waits for it. So
//! the default (`auto`) decides from measurement at load: time the model's runs at growing row
//! counts and run inline only the row counts whose run fits [`BUDGET`]. A slow model gets no
//! inline runs at all.

use std::str::FromStr;
use std::time::{Duration, Instant};

/// The longest run an HTTP worker may be held for: about what answering one small request
/// costs, so an inline run delays the worker's other connections by at most one more request.
pub const BUDGET: Duration = Duration::from_micros(5);
/// Row counts tried, smallest first.
const SIZES: [usize; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
/// Runs timed per row count; the lower quartile decides.
const RUNS: usize = 21;
/// Stop timing a row count after this long (a slow model needs one run to be judged).
const TIMING_LIMIT: Duration = Duration::from_millis(20);

/// `INFERENCE_INLINE`: `auto` (measure), `off`, or a row count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InlinePolicy {
    Auto,
    Off,
    Rows(usize),
}

/// The largest explicit row count.
pub const MAX_ROWS: usize = 1024;

impl FromStr for InlinePolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "auto" => Ok(InlinePolicy::Auto),
            "off" | "0" => Ok(InlinePolicy::Off),
            other => match other.parse::<usize>() {
                Ok(rows) if rows <= MAX_ROWS => Ok(InlinePolicy::Rows(rows)),
                _ => Err(format!(
                    "expected auto, off or a row count from 0 to {MAX_ROWS}, got `{other}`"
                )),
            },
        }
    }
}

/// What was decided and why.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Requests of at most this many rows run inline; 0: none.
    pub max_rows: usize,
    /// The typical one-row run, when measured.
    pub one_row: Option<Duration>,
}

/// The lower quartile of timed runs of `run`: the run's own cost, without most of the noise a
/// busy machine adds (noise only ever adds). Stops early past [`TIMING_LIMIT`].
pub fn typical_run(mut run: impl FnMut() -> Result<(), String>) -> Result<Duration, String> {
    let mut times = Vec::with_capacity(RUNS);
    let started = Instant::now();
    while times.len() < RUNS && (times.is_empty() || started.elapsed() < TIMING_LIMIT) {
        let one = Instant::now();
        run()?;
        times.push(one.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 4])
}

/// Applies `policy`. For `auto`, `cost(rows)` is the measured run time of that many rows;
/// `fixed_rows` is the model's batch size when its first dimension is fixed (then only that
/// size can be run).
pub fn decide(
    policy: InlinePolicy,
    fixed_rows: Option<usize>,
    mut cost: impl FnMut(usize) -> Result<Duration, String>,
) -> Result<Decision, String> {
    match policy {
        InlinePolicy::Off => Ok(Decision {
            max_rows: 0,
            one_row: None,
        }),
        InlinePolicy::Rows(rows) => Ok(Decision {
            max_rows: rows,
            one_row: None,
        }),
        InlinePolicy::Auto => {
            if let Some(rows) = fixed_rows {
                let took = cost(rows)?;
                return Ok(Decision {
                    max_rows: if took <= BUDGET { rows } else { 0 },
                    one_row: (rows == 1).then_some(took),
                });
            }
            let mut decision = Decision {
                max_rows: 0,
                one_row: None,
            };
            for rows in SIZES {
                let took = cost(rows)?;
                if rows == 1 {
                    decision.one_row = Some(took);
                }
                if took > BUDGET {
                    break;
                }
                decision.max_rows = rows;
            }
            Ok(decision)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(x: f64) -> Duration {
        Duration::from_secs_f64(x / 1e6)
    }

    #[test]
    fn the_policy_reads_auto_off_and_row_counts() {
        assert_eq!("auto".parse(), Ok(InlinePolicy::Auto));
        assert_eq!("off".parse(), Ok(InlinePolicy::Off));
        assert_eq!(" 0 ".parse(), Ok(InlinePolicy::Off));
        assert_eq!("16".parse(), Ok(InlinePolicy::Rows(16)));
        assert_eq!("1024".parse(), Ok(InlinePolicy::Rows(1024)));
        for bad in ["1025", "-1", "on", "", "1.5"] {
            let error = bad.parse::<InlinePolicy>().unwrap_err();
            assert!(error.contains("auto, off or a row count"), "{bad}: {error}");
        }
    }

    /// A model that costs 1 µs plus 0.2 µs a row fits 16 rows in 5 µs, not 32.
    #[test]
    fn auto_runs_inline_the_row_counts_that_fit_the_budget() {
        let mut tried = Vec::new();
        let decision = decide(InlinePolicy::Auto, None, |rows| {
            tried.push(rows);
            Ok(micros(1.0 + 0.2 * rows as f64))
        })
        .unwrap();
        assert_eq!(decision.max_rows, 16);
        assert_eq!(decision.one_row, Some(micros(1.2)));
        assert_eq!(tried, [1, 2, 4, 8, 16, 32], "stops at the first size over");
    }

    #[test]
    fn a_slow_model_never_runs_inline() {
        let decision = decide(InlinePolicy::Auto, None, |_| Ok(Duration::from_millis(40))).unwrap();
        assert_eq!(decision.max_rows, 0);
        let fixed = decide(InlinePolicy::Auto, Some(4), |rows| {
            assert_eq!(rows, 4, "a fixed batch is the only size");
            Ok(micros(6.0))
        })
        .unwrap();
        assert_eq!(fixed.max_rows, 0);
        let cheap = decide(InlinePolicy::Auto, Some(4), |_| Ok(micros(3.0))).unwrap();
        assert_eq!(cheap.max_rows, 4);
    }

    #[test]
    fn explicit_settings_are_not_measured() {
        let never = |_| -> Result<Duration, String> { panic!("measured") };
        assert_eq!(decide(InlinePolicy::Off, None, never).unwrap().max_rows, 0);
        assert_eq!(
            decide(InlinePolicy::Rows(64), None, never)
                .unwrap()
                .max_rows,
            64
        );
    }

    #[test]
    fn timing_stops_early_for_slow_runs() {
        let mut calls = 0;
        let typical = typical_run(|| {
            calls += 1;
            std::thread::sleep(Duration::from_millis(25));
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 1);
        assert!(typical >= Duration::from_millis(25));
        let mut fast = 0;
        typical_run(|| {
            fast += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(fast, RUNS);
    }
}
