//! Fault and latency injection per channel instance: what a capacity test needs to see how a
//! client behaves when the platform is slow or misbehaves.

use std::time::Duration;

use rand::Rng;
use serde::Deserialize;

use crate::common::Delay;

/// `faults:` in a bot file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFaults {
    #[serde(default)]
    latency: Option<Delay>,
    #[serde(default)]
    errors: Vec<RawErrorFault>,
    #[serde(default)]
    drop_rate: Option<f64>,
    #[serde(default)]
    malformed_rate: Option<f64>,
    #[serde(default)]
    async_duplicate_rate: Option<f64>,
    #[serde(default)]
    async_reorder_rate: Option<f64>,
    #[serde(default)]
    async_delay: Option<Delay>,
    #[serde(default)]
    async_ack_delay: Option<Delay>,
    #[serde(default)]
    poll_redeliver: bool,
    #[serde(default)]
    bare_errors: bool,
    #[serde(default)]
    poll_one_batch: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawErrorFault {
    status: u16,
    rate: f64,
}

/// Validated fault settings. All rates are probabilities per request (or per delivery).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Added before every answer on the instance (messages and polls).
    pub latency: Delay,
    /// Answer with this status instead of processing, with this probability.
    pub errors: Vec<(u16, f64)>,
    /// Close the connection without an answer.
    pub drop_rate: f64,
    /// Answer 200 with a truncated, invalid JSON body.
    pub malformed_rate: f64,
    /// POST an async message twice.
    pub async_duplicate_rate: f64,
    /// Swap an async message with the next one.
    pub async_reorder_rate: f64,
    /// Extra delay before each async POST.
    pub async_delay: Delay,
    /// Protocol deviations, for testing certification and clients: delay before the async
    /// acknowledgement.
    pub async_ack_delay: Delay,
    /// A pollId whose messages were delivered answers them again (single delivery broken).
    pub poll_redeliver: bool,
    /// V2 error answers without `_v` and `_t` (a wrong envelope).
    pub bare_errors: bool,
    /// A poll delivers one service node's messages at a time, with a new pollId while more
    /// follow, however late it comes (chained pollIds whatever a client's poll interval).
    pub poll_one_batch: bool,
}

/// What to do with one request, drawn from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Process normally.
    None,
    /// Answer with this status.
    Status(u16),
    /// Close the connection.
    Drop,
    /// Process, then corrupt the body.
    Malformed,
}

/// Why fault settings are invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FaultError(pub String);

fn rate(name: &str, v: Option<f64>) -> Result<f64, FaultError> {
    let v = v.unwrap_or(0.0);
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(FaultError(format!(
            "{name} must be between 0 and 1, got {v}"
        )))
    }
}

impl Faults {
    pub(crate) fn from_raw(r: RawFaults) -> Result<Faults, FaultError> {
        let mut errors = Vec::new();
        for e in r.errors {
            if !(400..=599).contains(&e.status) {
                return Err(FaultError(format!(
                    "errors: status {} is not an error status (400..599)",
                    e.status
                )));
            }
            errors.push((e.status, rate("errors.rate", Some(e.rate))?));
        }
        let total: f64 = errors.iter().map(|(_, r)| r).sum();
        if total > 1.0 {
            return Err(FaultError(format!(
                "errors: rates add up to {total}, above 1"
            )));
        }
        Ok(Faults {
            latency: r.latency.unwrap_or_default(),
            errors,
            drop_rate: rate("drop_rate", r.drop_rate)?,
            malformed_rate: rate("malformed_rate", r.malformed_rate)?,
            async_duplicate_rate: rate("async_duplicate_rate", r.async_duplicate_rate)?,
            async_reorder_rate: rate("async_reorder_rate", r.async_reorder_rate)?,
            async_delay: r.async_delay.unwrap_or_default(),
            async_ack_delay: r.async_ack_delay.unwrap_or_default(),
            poll_redeliver: r.poll_redeliver,
            bare_errors: r.bare_errors,
            poll_one_batch: r.poll_one_batch,
        })
    }

    /// True when nothing is injected (the fast path skips the dice).
    pub fn is_quiet(&self) -> bool {
        self.latency.is_zero()
            && self.errors.is_empty()
            && self.drop_rate == 0.0
            && self.malformed_rate == 0.0
    }

    /// Draws the fate of one request.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Injected {
        if self.drop_rate > 0.0 && rng.random_bool(self.drop_rate) {
            return Injected::Drop;
        }
        if !self.errors.is_empty() {
            let x: f64 = rng.random();
            let mut acc = 0.0;
            for &(status, r) in &self.errors {
                acc += r;
                if x < acc {
                    return Injected::Status(status);
                }
            }
        }
        if self.malformed_rate > 0.0 && rng.random_bool(self.malformed_rate) {
            return Injected::Malformed;
        }
        Injected::None
    }

    /// The added latency for one answer.
    pub fn latency<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        self.latency.sample(rng)
    }
}

/// Cuts a JSON body in half so it no longer parses.
pub fn corrupt(body: &[u8]) -> Vec<u8> {
    let cut = (body.len() / 2).max(1).min(body.len());
    let mut out = body[..cut].to_vec();
    out.extend_from_slice(b"\x01");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_checked() {
        let raw: RawFaults = serde_json::from_str(
            r#"{"errors":[{"status":500,"rate":0.7},{"status":503,"rate":0.6}]}"#,
        )
        .unwrap();
        assert!(Faults::from_raw(raw).unwrap_err().0.contains("above 1"));
        let raw: RawFaults = serde_json::from_str(r#"{"drop_rate": 2}"#).unwrap();
        assert!(Faults::from_raw(raw).is_err());
    }

    #[test]
    fn certain_error_always_fires() {
        let raw: RawFaults =
            serde_json::from_str(r#"{"errors":[{"status":503,"rate":1.0}]}"#).unwrap();
        let f = Faults::from_raw(raw).unwrap();
        let mut rng = rand::rng();
        assert!((0..100).all(|_| f.draw(&mut rng) == Injected::Status(503)));
        assert!(serde_json::from_slice::<serde_json::Value>(&corrupt(br#"{"a":1}"#)).is_err());
    }
}
