//! Load metrics: HDR histograms (microseconds, 3 significant digits) and counters, recorded
//! into per-thread shards and merged by one aggregator on an interval, so a request never
//! waits on another thread and never sends a message.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::http::TransportKind;

/// Values above this (10 minutes) widen the histogram automatically.
const HIST_MAX_US: u64 = 600_000_000;

/// A new histogram for microsecond values.
pub fn hist() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid bounds");
    h.auto(true);
    h
}

/// Records a duration in microseconds (at least 1).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let v = (d.as_micros() as u64).max(1);
    let _ = h.record(v);
}

/// The distributions.
#[derive(Debug, Clone)]
pub struct Dists {
    /// Every turn.
    pub turn: Histogram<u64>,
    /// Per step, by index.
    pub steps: Vec<Histogram<u64>>,
    /// Conversations from their actual start.
    pub conversation: Histogram<u64>,
    /// Conversations from their intended start (open model).
    pub conversation_intended: Histogram<u64>,
    /// Polled turns: request to final message.
    pub poll_convergence: Histogram<u64>,
    /// Polls per polled turn.
    pub polls: Histogram<u64>,
    /// Async: request to each delivery.
    pub async_delivery: Histogram<u64>,
    /// Open model: actual minus intended start.
    pub start_lag: Histogram<u64>,
}

impl Dists {
    fn new(steps: usize) -> Self {
        Self {
            turn: hist(),
            steps: (0..steps).map(|_| hist()).collect(),
            conversation: hist(),
            conversation_intended: hist(),
            poll_convergence: hist(),
            polls: hist(),
            async_delivery: hist(),
            start_lag: hist(),
        }
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Histogram<u64>> {
        [
            &mut self.turn,
            &mut self.conversation,
            &mut self.conversation_intended,
            &mut self.poll_convergence,
            &mut self.polls,
            &mut self.async_delivery,
            &mut self.start_lag,
        ]
        .into_iter()
        .chain(self.steps.iter_mut())
    }

    fn add(&mut self, other: &Dists) {
        let _ = self.turn.add(&other.turn);
        let _ = self.conversation.add(&other.conversation);
        let _ = self.conversation_intended.add(&other.conversation_intended);
        let _ = self.poll_convergence.add(&other.poll_convergence);
        let _ = self.polls.add(&other.polls);
        let _ = self.async_delivery.add(&other.async_delivery);
        let _ = self.start_lag.add(&other.start_lag);
        for (a, b) in self.steps.iter_mut().zip(&other.steps) {
            let _ = a.add(b);
        }
    }
}

/// The counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Turns run.
    pub turns: u64,
    /// Turns that failed.
    pub turns_failed: u64,
    /// Per step: runs and failures.
    pub step_runs: Vec<(u64, u64)>,
    /// Conversations completed.
    pub conversations: u64,
    /// Conversations with a failed step.
    pub conversations_failed: u64,
    /// Conversations cut off at the end of the grace period.
    pub conversations_interrupted: u64,
    /// Checks evaluated.
    pub assertions: u64,
    /// Checks that held.
    pub assertions_passed: u64,
    /// Sync turns.
    pub sync_turns: u64,
    /// Sync turns over 50% of the budget.
    pub over_50pct: u64,
    /// Sync turns over 80% of the budget.
    pub over_80pct: u64,
    /// Sync turns over the budget (including 504s).
    pub over_budget: u64,
    /// V2 turns that polled.
    pub polled_turns: u64,
    /// `Inprogress` answers.
    pub in_progress: u64,
    /// Async turns.
    pub async_turns: u64,
    /// Async deliveries.
    pub deliveries: u64,
    /// Async turns with no delivery.
    pub async_missing: u64,
    /// Duplicate deliveries.
    pub duplicates: u64,
    /// Out-of-order deliveries.
    pub reordered: u64,
    /// Deliveries the POST_URL receiver could not match to a waiting user (unknown or
    /// missing `to`, or after the user's turn ended).
    #[serde(default)]
    pub unmatched_deliveries: u64,
    /// Open model: starts dropped at the concurrency cap.
    pub dropped_starts: u64,
    /// Open model: starts more than 10 ms behind schedule.
    pub late_starts: u64,
    /// Failed turns by class.
    #[serde(default)]
    pub failed_by_class: ClassCounts,
    /// Failures by class and detail (`assertion: text contains "x"`, `protocol: 429`, …), as
    /// the results file and the reports show them.
    pub failures: BTreeMap<String, u64>,
    /// The same, while the run records: typed keys, at most [`DETAILS_PER_CLASS`] details per
    /// class (the rest counted under the class's `other`).
    #[serde(skip)]
    pub failure_keys: HashMap<FailureKey, u64>,
}

/// How many distinct details a failure class keeps before counting the rest as `other`:
/// failures that differ in every request (a message with an id in it) cannot grow a run's
/// memory or its report without bound.
pub const DETAILS_PER_CLASS: usize = 32;

/// What a failure is counted under: its class and a bounded detail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FailureKey {
    /// A check that did not hold, by its label (the scenario's checks: a bounded set).
    Assertion(Arc<str>),
    /// An error status, with the envelope's code when it differs.
    Protocol {
        /// HTTP status.
        status: u16,
        /// `errors[0].code`.
        code: Option<u16>,
    },
    /// A transport failure by kind.
    Transport(TransportKind),
    /// A broken budget, by which.
    Budget(&'static str),
    /// An undecodable answer.
    Decode,
    /// Details of this class beyond the cap.
    Other(&'static str),
}

impl FailureKey {
    /// The class (`assertion`, `protocol`, `budget`, `transport`, `decode`).
    pub fn class(&self) -> &'static str {
        match self {
            FailureKey::Assertion(_) => "assertion",
            FailureKey::Protocol { .. } => "protocol",
            FailureKey::Transport(_) => "transport",
            FailureKey::Budget(_) => "budget",
            FailureKey::Decode => "decode",
            FailureKey::Other(class) => class,
        }
    }
}

impl std::fmt::Display for FailureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKey::Assertion(check) => write!(f, "assertion: {check}"),
            FailureKey::Protocol { status, code } => match code {
                Some(c) if c != status => write!(f, "protocol: {status} (code {c})"),
                _ => write!(f, "protocol: {status}"),
            },
            FailureKey::Transport(kind) => {
                write!(f, "transport: {}", format!("{kind:?}").to_lowercase())
            }
            FailureKey::Budget(which) => write!(f, "budget: {which}"),
            FailureKey::Decode => f.write_str("decode"),
            FailureKey::Other(class) => write!(f, "{class}: other"),
        }
    }
}

/// Failed turns by the class of their failure: what the default gate and `errors.<class>`
/// thresholds read, and what decides between exit codes 1 and 3.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// A check did not hold.
    pub assertion: u64,
    /// The target answered an error envelope or broke the protocol.
    pub protocol: u64,
    /// A sync, poll or async time budget broke.
    pub budget: u64,
    /// The request did not complete (refused, reset, timed out).
    pub transport: u64,
    /// The answer was not the JSON the protocol says.
    pub decode: u64,
}

impl ClassCounts {
    /// Counts one failure of class `class` (as [`crate::engine::results::Failure::class`]).
    pub fn count(&mut self, class: &str) {
        match class {
            "assertion" => self.assertion += 1,
            "protocol" => self.protocol += 1,
            "budget" => self.budget += 1,
            "transport" => self.transport += 1,
            _ => self.decode += 1,
        }
    }

    fn add(&mut self, o: &ClassCounts) {
        self.assertion += o.assertion;
        self.protocol += o.protocol;
        self.budget += o.budget;
        self.transport += o.transport;
        self.decode += o.decode;
    }
}

impl Counts {
    /// Counts `n` failures under `key`, or under its class's `other` once the class has
    /// [`DETAILS_PER_CLASS`] details.
    pub fn count_failure(&mut self, key: FailureKey, n: u64) {
        if let Some(v) = self.failure_keys.get_mut(&key) {
            *v += n;
            return;
        }
        let class = key.class();
        let details = self
            .failure_keys
            .keys()
            .filter(|k| k.class() == class && !matches!(k, FailureKey::Other(_)))
            .count();
        let key = if details >= DETAILS_PER_CLASS && !matches!(key, FailureKey::Other(_)) {
            FailureKey::Other(class)
        } else {
            key
        };
        *self.failure_keys.entry(key).or_default() += n;
    }

    /// Writes the typed failure counts out as the readable `failures` map of the results.
    pub fn settle_failures(&mut self) {
        for (k, v) in self.failure_keys.drain() {
            *self.failures.entry(k.to_string()).or_default() += v;
        }
    }

    /// Adds another span's counts (the typed and the written failure counts alike).
    pub fn add(&mut self, o: &Counts) {
        self.turns += o.turns;
        self.turns_failed += o.turns_failed;
        if self.step_runs.len() < o.step_runs.len() {
            self.step_runs.resize(o.step_runs.len(), (0, 0));
        }
        for (a, b) in self.step_runs.iter_mut().zip(&o.step_runs) {
            a.0 += b.0;
            a.1 += b.1;
        }
        self.conversations += o.conversations;
        self.conversations_failed += o.conversations_failed;
        self.conversations_interrupted += o.conversations_interrupted;
        self.assertions += o.assertions;
        self.assertions_passed += o.assertions_passed;
        self.sync_turns += o.sync_turns;
        self.over_50pct += o.over_50pct;
        self.over_80pct += o.over_80pct;
        self.over_budget += o.over_budget;
        self.polled_turns += o.polled_turns;
        self.in_progress += o.in_progress;
        self.async_turns += o.async_turns;
        self.deliveries += o.deliveries;
        self.async_missing += o.async_missing;
        self.duplicates += o.duplicates;
        self.reordered += o.reordered;
        self.unmatched_deliveries += o.unmatched_deliveries;
        self.dropped_starts += o.dropped_starts;
        self.late_starts += o.late_starts;
        self.failed_by_class.add(&o.failed_by_class);
        for (k, v) in &o.failures {
            *self.failures.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.failure_keys {
            self.count_failure(k.clone(), *v);
        }
    }
}

/// Everything recorded over some span.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Distributions.
    pub dists: Dists,
    /// Counters.
    pub counts: Counts,
}

impl Sample {
    /// Empty, for a scenario of `steps` steps.
    pub fn new(steps: usize) -> Self {
        Self {
            dists: Dists::new(steps),
            counts: Counts {
                step_runs: vec![(0, 0); steps],
                ..Default::default()
            },
        }
    }

    /// Adds another sample.
    pub fn add(&mut self, o: &Sample) {
        self.dists.add(&o.dists);
        self.counts.add(&o.counts);
    }

    /// Empties it, keeping the histograms' memory.
    pub fn reset(&mut self) {
        for h in self.dists.all_mut() {
            h.reset();
        }
        let steps = self.counts.step_runs.len();
        self.counts = Counts {
            step_runs: vec![(0, 0); steps],
            ..Default::default()
        };
    }
}

/// A number per thread, handed out in order as threads first record.
fn thread_slot() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: usize = NEXT.fetch_add(1, Relaxed);
    }
    SLOT.with(|s| *s)
}

/// Per-thread shards: a recorder locks only its own thread's shard, which the aggregator
/// touches once per interval.
#[derive(Debug)]
pub struct Shards {
    shards: Vec<Mutex<Sample>>,
}

impl Shards {
    /// Shards for `threads` worker threads.
    pub fn new(threads: usize, steps: usize) -> Self {
        Self {
            shards: (0..(threads * 2).max(2))
                .map(|_| Mutex::new(Sample::new(steps)))
                .collect(),
        }
    }

    /// Records into the calling thread's shard.
    pub fn with<R>(&self, f: impl FnOnce(&mut Sample) -> R) -> R {
        let i = thread_slot() % self.shards.len();
        let mut s = self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// Moves everything recorded so far into `into` and empties the shards.
    pub fn drain_into(&self, into: &mut Sample) {
        for s in &self.shards {
            let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
            into.add(&s);
            s.reset();
        }
    }
}

/// A distribution summarised, with its serialized HDR histogram so runs can be merged exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistSummary {
    /// Samples.
    pub count: u64,
    /// Milliseconds (polls: counts).
    pub min: f64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// The histogram in HdrHistogram V2 compressed form, base64 (values in microseconds).
    pub hdr: String,
}

/// Summarises a histogram; `scale` divides values (1000 for ms from µs, 1 for counts).
pub fn summarise(h: &Histogram<u64>, scale: f64) -> DistSummary {
    use base64::Engine;
    use hdrhistogram::serialization::Serializer;
    let mut buf = Vec::new();
    let _ = hdrhistogram::serialization::V2DeflateSerializer::new().serialize(h, &mut buf);
    let empty = h.is_empty();
    let q = |p: f64| {
        if empty {
            0.0
        } else {
            h.value_at_quantile(p) as f64 / scale
        }
    };
    DistSummary {
        count: h.len(),
        min: if empty { 0.0 } else { h.min() as f64 / scale },
        mean: if empty { 0.0 } else { h.mean() / scale },
        p50: q(0.50),
        p90: q(0.90),
        p95: q(0.95),
        p99: q(0.99),
        p999: q(0.999),
        max: if empty { 0.0 } else { h.max() as f64 / scale },
        hdr: base64::engine::general_purpose::STANDARD.encode(buf),
    }
}

/// Reads a histogram back from [`DistSummary::hdr`].
pub fn decode_hdr(s: &str) -> Option<Histogram<u64>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut std::io::Cursor::new(bytes))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_and_reset() {
        let shards = Shards::new(2, 3);
        shards.with(|s| {
            record(&mut s.dists.turn, Duration::from_millis(50));
            s.counts.turns += 1;
            s.counts.count_failure(
                FailureKey::Protocol {
                    status: 429,
                    code: None,
                },
                1,
            );
        });
        let mut total = Sample::new(3);
        shards.drain_into(&mut total);
        assert_eq!(total.counts.turns, 1);
        assert_eq!(total.dists.turn.len(), 1);
        let mut again = Sample::new(3);
        shards.drain_into(&mut again);
        assert_eq!(again.counts.turns, 0);
        assert!(again.dists.turn.is_empty());
    }

    #[test]
    fn failure_details_are_capped_per_class() {
        let mut c = Counts::default();
        for i in 0..100u16 {
            c.count_failure(
                FailureKey::Protocol {
                    status: 400 + i,
                    code: None,
                },
                1,
            );
        }
        c.count_failure(FailureKey::Transport(TransportKind::Refused), 2);
        c.settle_failures();
        assert_eq!(c.failures.len(), DETAILS_PER_CLASS + 2, "{:?}", c.failures);
        assert_eq!(
            c.failures["protocol: other"],
            100 - DETAILS_PER_CLASS as u64
        );
        assert_eq!(c.failures["protocol: 400"], 1);
        assert_eq!(c.failures["transport: refused"], 2);
    }

    #[test]
    fn summaries_round_trip_exactly() {
        let mut h = hist();
        for ms in 1..=1000u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let s = summarise(&h, 1000.0);
        assert!((s.p50 - 500.0).abs() < 1.0, "{}", s.p50);
        assert!((s.p99 - 990.0).abs() < 1.5, "{}", s.p99);
        let back = decode_hdr(&s.hdr).unwrap();
        assert_eq!(back.len(), 1000);
        assert_eq!(back.value_at_quantile(0.99), h.value_at_quantile(0.99));
    }
}
