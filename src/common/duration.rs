//! Typed durations as written in YAML files and on the command line: `250ms`, `15s`, `1m`,
//! `1.5s`, ranges `300ms..2s`, and latency distributions.
//!
//! Bare numbers are refused on purpose: `timeout: 15` could mean seconds or milliseconds, and a
//! harness that guesses wrong measures the wrong thing.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason} (expected a number with a unit: `250ms`, `15s`, `2m`, `1h`)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses a single duration such as `250ms`, `1.5s`, `2m`, `1h` or `500us`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| err("missing unit"))?;
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(err("missing number"));
    }
    let value: f64 = num.parse().map_err(|_| err("not a number"))?;
    let secs_per_unit = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(err("unknown unit")),
    };
    let secs = value * secs_per_unit;
    if !secs.is_finite() || secs > 1e9 {
        return Err(err("too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Waits for `d`, without touching the timer when it is zero: a zero-length tokio sleep still
/// registers a timer entry and yields until the driver's next tick, which costs a wake-up and up
/// to a millisecond on the simulator's hottest path.
pub async fn pause(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// Waits until `deadline` with sub-millisecond accuracy: tokio's timer fires on millisecond
/// ticks after the deadline, which would add up to a millisecond or more to every injected
/// latency; the last stretch is covered by yielding to the scheduler instead.
pub async fn pause_until(deadline: std::time::Instant) {
    const SPIN: Duration = Duration::from_micros(1500);
    let now = std::time::Instant::now();
    if deadline <= now {
        return;
    }
    if deadline - now > SPIN {
        tokio::time::sleep_until((deadline - SPIN).into()).await;
    }
    while std::time::Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// Formats a duration the way it would be written in a file (`1.5s`, `250ms`).
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        "0s".to_string()
    } else if nanos % 3_600_000_000_000 == 0 {
        format!("{}h", nanos / 3_600_000_000_000)
    } else if nanos % 60_000_000_000 == 0 {
        format!("{}m", nanos / 60_000_000_000)
    } else if nanos % 1_000_000_000 == 0 {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// A duration read from text: `15s`. Serialises back to the same form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DurationSpec(pub Duration);

impl DurationSpec {
    /// The wrapped duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for DurationSpec {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

impl FromStr for DurationSpec {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(Self)
    }
}

impl fmt::Display for DurationSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl Serialize for DurationSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for DurationSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A delay: fixed (`50ms`), uniform over a range (`300ms..2s`), or drawn from a distribution
/// (`exp(50ms)` with that mean, `normal(50ms, 10ms)` with mean and standard deviation, never
/// below zero).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Delay {
    /// Always the same.
    Fixed(Duration),
    /// Uniform between the bounds, inclusive.
    Uniform(Duration, Duration),
    /// Exponential with the given mean.
    Exponential(Duration),
    /// Normal with mean and standard deviation, clamped at zero.
    Normal(Duration, Duration),
}

impl Default for Delay {
    fn default() -> Self {
        Delay::Fixed(Duration::ZERO)
    }
}

impl Delay {
    /// Draws one delay.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match *self {
            Delay::Fixed(d) => d,
            Delay::Uniform(lo, hi) => {
                if hi <= lo {
                    lo
                } else {
                    let span = (hi - lo).as_nanos() as u64;
                    lo + Duration::from_nanos(rng.random_range(0..=span))
                }
            }
            Delay::Exponential(mean) => {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                Duration::from_secs_f64(-u.ln() * mean.as_secs_f64())
            }
            Delay::Normal(mean, sd) => {
                // Box-Muller transform: two uniforms give one standard normal.
                let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = rng.random_range(0.0..1.0);
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                let secs = mean.as_secs_f64() + z * sd.as_secs_f64();
                Duration::from_secs_f64(secs.max(0.0))
            }
        }
    }

    /// The largest value it can take, where that is bounded (used to check budgets up front).
    pub fn max(&self) -> Option<Duration> {
        match *self {
            Delay::Fixed(d) => Some(d),
            Delay::Uniform(_, hi) => Some(hi),
            Delay::Exponential(_) | Delay::Normal(..) => None,
        }
    }

    /// True when it always yields zero.
    pub fn is_zero(&self) -> bool {
        matches!(*self, Delay::Fixed(d) if d.is_zero())
    }
}

impl FromStr for Delay {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad = |reason| DurationError {
            input: s.to_string(),
            reason,
        };
        if let Some(inner) = s.strip_prefix("exp(").and_then(|r| r.strip_suffix(')')) {
            return Ok(Delay::Exponential(parse_duration(inner)?));
        }
        if let Some(inner) = s.strip_prefix("normal(").and_then(|r| r.strip_suffix(')')) {
            let (m, sd) = inner
                .split_once(',')
                .ok_or_else(|| bad("normal(MEAN, STDDEV) needs two durations"))?;
            return Ok(Delay::Normal(parse_duration(m)?, parse_duration(sd)?));
        }
        if let Some((lo, hi)) = s.split_once("..") {
            let (lo, hi) = (parse_duration(lo)?, parse_duration(hi)?);
            if hi < lo {
                return Err(bad("range end is before its start"));
            }
            return Ok(Delay::Uniform(lo, hi));
        }
        Ok(Delay::Fixed(parse_duration(s)?))
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Delay::Fixed(d) => write!(f, "{}", format_duration(d)),
            Delay::Uniform(lo, hi) => write!(f, "{}..{}", format_duration(lo), format_duration(hi)),
            Delay::Exponential(m) => write!(f, "exp({})", format_duration(m)),
            Delay::Normal(m, sd) => {
                write!(f, "normal({}, {})", format_duration(m), format_duration(sd))
            }
        }
    }
}

impl Serialize for Delay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Delay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("500us").unwrap(), Duration::from_micros(500));
    }

    #[test]
    fn refuses_bare_numbers_and_unknown_units() {
        assert!(parse_duration("15")
            .unwrap_err()
            .to_string()
            .contains("missing unit"));
        assert!(parse_duration("15 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn delays_parse_and_print_back() {
        for s in ["50ms", "300ms..2s", "exp(50ms)", "normal(50ms, 10ms)"] {
            let d: Delay = s.parse().unwrap();
            assert_eq!(d.to_string(), s);
        }
        assert!("2s..1s".parse::<Delay>().is_err());
    }

    #[test]
    fn uniform_samples_stay_in_range() {
        let d: Delay = "1s..2s".parse().unwrap();
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let v = d.sample(&mut rng);
            assert!(v >= Duration::from_secs(1) && v <= Duration::from_secs(2));
        }
    }

    #[test]
    fn normal_never_negative() {
        let d = Delay::Normal(Duration::from_millis(1), Duration::from_millis(100));
        let mut rng = rand::rng();
        assert!((0..1000).all(|_| d.sample(&mut rng) >= Duration::ZERO));
    }
}
