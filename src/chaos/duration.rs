//! Durations and `a..b` uniform ranges, as written in profiles and `CHAOS_*` variables.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Deserializer};

/// A fixed duration (`25s`) or a uniform draw from a range (`20s..30s`, both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange {
    pub low: Duration,
    pub high: Duration,
}

impl DurationRange {
    /// A range holding one value.
    pub const fn fixed(d: Duration) -> Self {
        DurationRange { low: d, high: d }
    }

    /// True when the range holds a single value.
    pub fn is_fixed(&self) -> bool {
        self.low == self.high
    }

    /// Draws a value, uniform over the range at millisecond resolution (so draws are exact and
    /// print the same everywhere).
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        if self.is_fixed() {
            return self.low;
        }
        let low = self.low.as_millis() as u64;
        let high = self.high.as_millis() as u64;
        Duration::from_millis(rng.random_range(low..=high))
    }
}

/// The longest duration a profile or override may name. Far beyond any schedule worth running,
/// and it keeps every draw, scaling and sum of durations exact (milliseconds fit in `u64`).
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

impl FromStr for DurationRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let form = "expected a duration such as 30s or a range such as 20s..30s";
        let one = |part: &str| {
            let d = humantime::parse_duration(part.trim())
                .map_err(|_| format!("{form}, got `{text}`"))?;
            if d > MAX_DURATION {
                return Err(format!(
                    "`{}` is longer than the limit of {} days",
                    part.trim(),
                    MAX_DURATION.as_secs() / 86_400
                ));
            }
            Ok(d)
        };
        match text.split_once("..") {
            None => one(text).map(DurationRange::fixed),
            Some((low, high)) => {
                let (low, high) = (one(low)?, one(high)?);
                if low > high {
                    Err(format!("range `{text}` ends before it starts"))
                } else {
                    Ok(DurationRange { low, high })
                }
            }
        }
    }
}

impl fmt::Display for DurationRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_fixed() {
            write!(f, "{}", humantime::format_duration(self.low))
        } else {
            write!(
                f,
                "{}..{}",
                humantime::format_duration(self.low),
                humantime::format_duration(self.high)
            )
        }
    }
}

impl<'de> Deserialize<'de> for DurationRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Multiplies a duration by the time scale, rounding to whole microseconds.
pub fn scale(d: Duration, time_scale: f64) -> Duration {
    Duration::from_micros((d.as_secs_f64() * time_scale * 1e6).round() as u64)
}

/// Formats a duration for people: `1m 27s 300ms`.
pub fn show(d: Duration) -> String {
    let ms = Duration::from_millis(d.as_millis() as u64);
    if ms.is_zero() && !d.is_zero() {
        return format!("{}us", d.as_micros());
    }
    humantime::format_duration(ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn parses_fixed_and_ranges() {
        let r: DurationRange = "20s..30s".parse().unwrap();
        assert_eq!(r.low, Duration::from_secs(20));
        assert_eq!(r.high, Duration::from_secs(30));
        let f: DurationRange = "1m30s".parse().unwrap();
        assert!(f.is_fixed());
        assert_eq!(f.low, Duration::from_secs(90));
        assert_eq!(
            " 250ms ".parse::<DurationRange>().unwrap().low,
            Duration::from_millis(250)
        );
    }

    #[test]
    fn refuses_bad_forms_with_the_expected_form() {
        for bad in [
            "",
            "20",
            "abc",
            "30s..20s",
            "5s..",
            "..5s",
            "1x",
            "366days",
            "1s..1000000000years",
        ] {
            let e = bad.parse::<DurationRange>().unwrap_err();
            assert!(
                e.contains("expected")
                    || e.contains("ends before")
                    || e.contains("limit of 365 days"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn samples_stay_inside_and_are_reproducible() {
        let r: DurationRange = "20s..30s".parse().unwrap();
        let mut a = ChaCha8Rng::seed_from_u64(7);
        let mut b = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..1000 {
            let x = r.sample(&mut a);
            assert!(x >= r.low && x <= r.high);
            assert_eq!(x, r.sample(&mut b));
        }
    }

    #[test]
    fn scaling_is_exact_to_the_microsecond() {
        assert_eq!(
            scale(Duration::from_secs(60), 0.01),
            Duration::from_millis(600)
        );
        assert_eq!(
            scale(Duration::from_millis(1), 0.5),
            Duration::from_micros(500)
        );
        assert_eq!(scale(Duration::from_secs(2), 1.0), Duration::from_secs(2));
    }
}
