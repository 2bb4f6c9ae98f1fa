//! The result of a load run: plain data, serialised as versioned JSON and rendered by every
//! report. Histograms travel in HdrHistogram's serialized form so runs can be merged exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::metrics::{Counts, DistSummary};
pub use super::verdict::{Capacity, CapacityStep, Verdict};

/// Version of the load results format (`schemas/load-results.schema.json`).
pub const LOAD_SCHEMA_VERSION: &str = "2.1";

/// One second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since the start, at the end of the interval the point covers: one second, or
    /// less for the run's last, partial second.
    pub t: f64,
    /// Turns completed per second over the interval.
    pub throughput: f64,
    /// Conversations completed in the interval.
    pub conversations: u64,
    /// Users (closed) or conversations in flight (open).
    pub active: u64,
    /// Turn latency median (ms) in this second.
    pub p50_ms: f64,
    /// 95th percentile (ms).
    pub p95_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Failed turns in this second.
    pub errors: u64,
    /// Target arrival rate (open model), per second: in a shard, the shard's part of it.
    pub rate: Option<f64>,
    /// Wall-clock time at the end of the interval (Unix seconds), by which `hookbench merge`
    /// aligns the time series of shards.
    #[serde(default)]
    pub unix: f64,
}

/// Per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// The step's label.
    pub label: String,
    /// Runs.
    pub count: u64,
    /// Failures.
    pub failed: u64,
    /// Latency (ms).
    pub latency: DistSummary,
}

/// How the generator itself did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Generator {
    /// CPU time used by the generator (s): the process's, less an embedded simulator's.
    pub cpu_seconds: f64,
    /// CPU time of the embedded simulator (s), when the run started one.
    #[serde(default)]
    pub simulator_cpu_seconds: Option<f64>,
    /// CPU time per turn (µs).
    pub cpu_us_per_turn: f64,
    /// How late the generator's own 100 ms ticker woke (ms).
    pub scheduler_lag: Option<DistSummary>,
    /// Peak resident memory (MiB).
    pub max_rss_mib: f64,
    /// Where the generator, not the target, may be the bottleneck.
    pub warnings: Vec<String>,
}

/// A load run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// [`LOAD_SCHEMA_VERSION`].
    pub schema_version: String,
    /// Always `load`.
    pub kind: String,
    /// `hookbench x.y.z`.
    pub tool: String,
    /// Scenario name.
    pub scenario: String,
    /// Scenario file.
    pub file: String,
    /// Message URL.
    pub target: String,
    /// Workload, readable (`closed: 2000 users`).
    pub workload: String,
    /// ISO-8601 start.
    pub started_at: String,
    /// Wall time (s), grace included.
    pub duration_s: f64,
    /// The sync budget (ms).
    pub budget_ms: f64,
    /// Why the run stopped early, if it did.
    pub aborted: Option<String>,
    /// Counters.
    pub counts: Counts,
    /// Distributions by name (`turn`, `conversation`, `conversation_intended`, `poll_convergence`,
    /// `polls`, `async_delivery`, `start_lag`); latencies in ms.
    pub distributions: BTreeMap<String, DistSummary>,
    /// Per step.
    pub steps: Vec<StepReport>,
    /// The verdict and every gate behind it.
    pub verdict: Verdict,
    /// Capacity search.
    pub capacity: Option<Capacity>,
    /// One point per second.
    pub timeseries: Vec<Point>,
    /// Generator health.
    pub generator: Generator,
    /// Which run this is and which part of it: what `hookbench merge` checks and judges.
    #[serde(default)]
    pub run: RunInfo,
}

/// What identifies a run and its parts, so the results of its shards can be merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The run's id, the same in every shard (`--run-id`, generated when not given).
    pub id: String,
    /// `sha256:` of the scenario and every file it reads, so shards of different scenarios
    /// are not merged.
    pub scenario_digest: String,
    /// This part of the run: `{index, count}` (`{0, 1}` for a run on one machine).
    pub shard: crate::scenario::shard::Shard,
    /// When the load started (Unix seconds).
    pub started_unix: f64,
    /// The gates the whole run answers to, as written: a shard's own verdict holds only the
    /// run's own rules, and `hookbench merge` judges these on the merged data.
    pub thresholds: Vec<GateSpec>,
    /// Merged results: one row per shard merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardRow>,
    /// Merged with `--allow-partial`: the shard indexes that were missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_shards: Vec<u32>,
}

/// A gate as the scenario wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSpec {
    /// The expression (`turn.latency.p99 < 3s`).
    pub expr: String,
    /// Stops the run when broken.
    pub abort: bool,
    /// A written threshold, or the default gate.
    pub origin: super::verdict::GateOrigin,
}

/// One shard in merged results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardRow {
    /// The shard's index.
    pub index: u32,
    /// Its wall time (s).
    pub duration_s: f64,
    /// Turns.
    pub turns: u64,
    /// Failed turns.
    pub turns_failed: u64,
    /// Conversations.
    pub conversations: u64,
    /// Turn latency median (ms).
    pub p50_ms: f64,
    /// Turn latency 99th percentile (ms).
    pub p99_ms: f64,
    /// The generator's CPU time (s).
    pub cpu_seconds: f64,
    /// Its own verdict (the run's own rules).
    pub outcome: super::verdict::Outcome,
    /// Why it stopped early, if it did.
    pub aborted: Option<String>,
}

impl LoadReport {
    /// True when every gate held (see [`Verdict`]).
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }
}
