//! Merging the results of a run's shards into the results of the whole run: histograms added
//! exactly (percentiles are read from the sum, never averaged), counters summed, time series
//! aligned by wall clock, one row per shard, and the run's thresholds judged again on the
//! merged data by the same code that judges a run on one machine.
//!
//! A [`Merger`] takes one shard's results at a time, so memory holds one shard plus the
//! merged state however many shards there are.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::metrics::{decode_hdr, hist, summarise, Counts, DistSummary, Sample};
use super::report::{Generator, LoadReport, Point, RunInfo, ShardRow, StepReport};
use super::thresholds;
use super::verdict::{self, Gate, GateOrigin, Outcome};

/// Why shards cannot be merged.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MergeError {
    /// Nothing to merge.
    #[error("no results to merge")]
    Empty,
    /// Results of another run.
    #[error("{what} belongs to run `{found}`, not `{expected}` (merge the shards of one run)")]
    OtherRun {
        /// Which input.
        what: String,
        /// The first input's run id.
        expected: String,
        /// This one's.
        found: String,
    },
    /// Results of another scenario (or other files it reads).
    #[error("{what} ran another scenario (digest {found}, not {expected}): shards of one run run the same files")]
    OtherScenario {
        /// Which input.
        what: String,
        /// The first input's digest.
        expected: String,
        /// This one's.
        found: String,
    },
    /// A different shard count.
    #[error("{what} is shard {index} of {found}, not of {expected}")]
    OtherCount {
        /// Which input.
        what: String,
        /// Its index.
        index: u32,
        /// The first input's count.
        expected: u32,
        /// This one's.
        found: u32,
    },
    /// The same shard twice.
    #[error("shard {index} of run `{run}` is given twice ({what}): each shard is counted once")]
    Duplicate {
        /// Which input.
        what: String,
        /// The index.
        index: u32,
        /// The run.
        run: String,
    },
    /// Shards missing.
    #[error("{} of {count} shards of run `{run}` missing: {} (merge them all, or pass --allow-partial to merge what there is and say so)", missing.len(), list(missing))]
    Missing {
        /// The run.
        run: String,
        /// The count.
        count: u32,
        /// The missing indexes.
        missing: Vec<u32>,
    },
    /// A histogram that does not decode.
    #[error("{what}: the `{name}` histogram does not decode")]
    BadHistogram {
        /// Which input.
        what: String,
        /// Which histogram.
        name: String,
    },
    /// Steps differ.
    #[error("{what} has other steps than the first results ({found:?}, not {expected:?})")]
    OtherSteps {
        /// Which input.
        what: String,
        /// The first input's step labels.
        expected: Vec<String>,
        /// This one's.
        found: Vec<String>,
    },
}

fn list(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

/// The distributions of a results file, with the scale their summaries use.
const DISTS: [(&str, f64); 7] = [
    ("turn", 1000.0),
    ("conversation", 1000.0),
    ("conversation_intended", 1000.0),
    ("poll_convergence", 1000.0),
    ("polls", 1.0),
    ("async_delivery", 1000.0),
    ("start_lag", 1000.0),
];

/// One second of the merged time series.
#[derive(Debug, Default)]
struct Second {
    point: Point,
    rate: Option<f64>,
}

/// Takes the shards' results one at a time; [`Merger::finish`] gives the whole run's.
#[derive(Debug, Default)]
pub struct Merger {
    /// The first results, without their bulky parts: the run's identity and labels.
    first: Option<LoadReport>,
    rows: BTreeMap<u32, ShardRow>,
    counts: Counts,
    dists: BTreeMap<&'static str, Histogram<u64>>,
    steps: Vec<(String, u64, u64, Histogram<u64>)>,
    seconds: BTreeMap<i64, Second>,
    start: f64,
    end: f64,
    started_at: String,
    cpu: f64,
    sim_cpu: Option<f64>,
    max_rss: f64,
    warnings: Vec<String>,
    aborted: Vec<String>,
    interrupted: Vec<u32>,
}

impl Merger {
    /// An empty merge.
    pub fn new() -> Merger {
        Merger {
            start: f64::INFINITY,
            end: f64::NEG_INFINITY,
            ..Merger::default()
        }
    }

    /// Adds one shard's results; `what` names the input in errors.
    pub fn add(&mut self, r: LoadReport, what: &str) -> Result<(), MergeError> {
        let shard = r.run.shard;
        if let Some(first) = &self.first {
            let f = &first.run;
            if r.run.id != f.id {
                return Err(MergeError::OtherRun {
                    what: what.into(),
                    expected: f.id.clone(),
                    found: r.run.id.clone(),
                });
            }
            if r.run.scenario_digest != f.scenario_digest {
                return Err(MergeError::OtherScenario {
                    what: what.into(),
                    expected: f.scenario_digest.clone(),
                    found: r.run.scenario_digest.clone(),
                });
            }
            if shard.count != f.shard.count {
                return Err(MergeError::OtherCount {
                    what: what.into(),
                    index: shard.index,
                    expected: f.shard.count,
                    found: shard.count,
                });
            }
            let labels: Vec<&String> = r.steps.iter().map(|s| &s.label).collect();
            if labels.len() != self.steps.len()
                || labels.iter().zip(&self.steps).any(|(a, b)| **a != b.0)
            {
                return Err(MergeError::OtherSteps {
                    what: what.into(),
                    expected: self.steps.iter().map(|s| s.0.clone()).collect(),
                    found: labels.into_iter().cloned().collect(),
                });
            }
        }
        if self.rows.contains_key(&shard.index) {
            return Err(MergeError::Duplicate {
                what: what.into(),
                index: shard.index,
                run: r.run.id.clone(),
            });
        }
        let bad = |name: &str| MergeError::BadHistogram {
            what: what.into(),
            name: name.into(),
        };
        // Decode everything before changing anything: a bad input leaves the merge as it was.
        let mut decoded = Vec::new();
        for (name, _) in DISTS {
            if let Some(d) = r.distributions.get(name) {
                decoded.push((name, decode(d).ok_or_else(|| bad(name))?));
            }
        }
        let mut step_hists = Vec::new();
        for s in &r.steps {
            step_hists.push(decode(&s.latency).ok_or_else(|| bad(&s.label))?);
        }
        for (name, h) in decoded {
            let _ = self.dists.entry(name).or_insert_with(hist).add(&h);
        }
        if self.first.is_none() {
            self.steps = r
                .steps
                .iter()
                .map(|s| (s.label.clone(), 0, 0, hist()))
                .collect();
        }
        for ((slot, s), h) in self.steps.iter_mut().zip(&r.steps).zip(&step_hists) {
            slot.1 += s.count;
            slot.2 += s.failed;
            let _ = slot.3.add(h);
        }
        self.counts.add(&r.counts);
        let start = r.run.started_unix;
        for p in &r.timeseries {
            let unix = if p.unix > 0.0 { p.unix } else { start + p.t };
            let s = self.seconds.entry(unix.round() as i64).or_default();
            let m = &mut s.point;
            m.throughput += p.throughput;
            m.conversations += p.conversations;
            m.active += p.active;
            m.errors += p.errors;
            // A second's percentiles cannot be added: the merged series shows the slowest
            // shard's (the whole run's percentiles are exact, from the summed histograms).
            m.p50_ms = m.p50_ms.max(p.p50_ms);
            m.p95_ms = m.p95_ms.max(p.p95_ms);
            m.p99_ms = m.p99_ms.max(p.p99_ms);
            if let Some(rate) = p.rate {
                s.rate = Some(s.rate.unwrap_or(0.0) + rate);
            }
        }
        if start < self.start {
            self.start = start;
            self.started_at = r.started_at.clone();
        }
        self.end = self.end.max(start + r.duration_s);
        self.cpu += r.generator.cpu_seconds;
        if let Some(c) = r.generator.simulator_cpu_seconds {
            self.sim_cpu = Some(self.sim_cpu.unwrap_or(0.0) + c);
        }
        self.max_rss = self.max_rss.max(r.generator.max_rss_mib);
        for w in &r.generator.warnings {
            let w = format!("shard {}: {w}", shard.index);
            if self.warnings.len() < 50 && !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
        if let Some(a) = &r.aborted {
            self.aborted.push(format!("shard {}: {a}", shard.index));
        }
        let stopped = r
            .verdict
            .gates
            .iter()
            .any(|g| g.expr == "run: not stopped by request" && !g.passed);
        if stopped {
            self.interrupted.push(shard.index);
        }
        let turn = r.distributions.get("turn");
        self.rows.insert(
            shard.index,
            ShardRow {
                index: shard.index,
                duration_s: r.duration_s,
                turns: r.counts.turns,
                turns_failed: r.counts.turns_failed,
                conversations: r.counts.conversations,
                p50_ms: turn.map_or(0.0, |d| d.p50),
                p99_ms: turn.map_or(0.0, |d| d.p99),
                cpu_seconds: r.generator.cpu_seconds,
                outcome: r.verdict.outcome,
                aborted: r.aborted.clone(),
            },
        );
        if self.first.is_none() {
            let mut head = r;
            head.timeseries = Vec::new();
            head.distributions = BTreeMap::new();
            head.steps = Vec::new();
            self.first = Some(head);
        }
        Ok(())
    }

    /// The whole run's results, judged; refuses a merge with shards missing unless
    /// `allow_partial` (then a gate says what is missing and fails).
    pub fn finish(self, allow_partial: bool) -> Result<LoadReport, MergeError> {
        let first = self.first.ok_or(MergeError::Empty)?;
        let count = first.run.shard.count;
        let missing: Vec<u32> = (0..count).filter(|i| !self.rows.contains_key(i)).collect();
        if !missing.is_empty() && !allow_partial {
            return Err(MergeError::Missing {
                run: first.run.id.clone(),
                count,
                missing,
            });
        }
        let elapsed = (self.end - self.start).max(1e-3);
        let mut sample = Sample::new(self.steps.len());
        {
            let d = &mut sample.dists;
            let take = |name: &str| {
                let mut h = hist();
                if let Some(m) = self.dists.get(name) {
                    let _ = h.add(m);
                }
                h
            };
            d.turn = take("turn");
            d.conversation = take("conversation");
            d.conversation_intended = take("conversation_intended");
            d.poll_convergence = take("poll_convergence");
            d.polls = take("polls");
            d.async_delivery = take("async_delivery");
            d.start_lag = take("start_lag");
            for (slot, s) in d.steps.iter_mut().zip(&self.steps) {
                let _ = slot.add(&s.3);
            }
        }
        sample.counts = self.counts.clone();
        let labels: Vec<String> = self.steps.iter().map(|s| s.0.clone()).collect();
        // The whole run's gates, by the code that judges a run on one machine.
        let mut gates: Vec<Gate> = first
            .run
            .thresholds
            .iter()
            .filter_map(|g| {
                let th = crate::scenario::threshold::parse(&g.expr, g.abort).ok()?;
                Some(thresholds::evaluate(
                    &th,
                    g.origin,
                    &sample,
                    Duration::from_secs_f64(elapsed),
                    &labels,
                ))
            })
            .collect();
        let broken_shards: Vec<String> = self
            .rows
            .values()
            .filter(|r| r.outcome != Outcome::Passed)
            .map(|r| match &r.aborted {
                Some(a) => format!("shard {} ({a})", r.index),
                None => format!("shard {}", r.index),
            })
            .collect();
        if count > 1 {
            gates.push(Gate {
                expr: format!("merge: all {count} shards merged"),
                origin: GateOrigin::Run,
                passed: missing.is_empty(),
                actual: if missing.is_empty() {
                    format!("{count} of {count}")
                } else {
                    format!(
                        "{} of {count}; missing {}",
                        count as usize - missing.len(),
                        list(&missing)
                    )
                },
                abort: false,
            });
            gates.push(Gate {
                expr: "merge: every shard ran its part".into(),
                origin: GateOrigin::Run,
                passed: broken_shards.is_empty(),
                actual: if broken_shards.is_empty() {
                    "every shard's own rules held".into()
                } else {
                    format!("failed: {}", broken_shards.join(", "))
                },
                abort: false,
            });
        }
        let verdict = verdict::decide(verdict::Inputs {
            gates,
            counts: &sample.counts,
            capacity: None,
            interrupted: !self.interrupted.is_empty(),
        });
        let mut distributions = BTreeMap::new();
        for (name, scale) in DISTS {
            let h = match name {
                "turn" => &sample.dists.turn,
                "conversation" => &sample.dists.conversation,
                "conversation_intended" => &sample.dists.conversation_intended,
                "poll_convergence" => &sample.dists.poll_convergence,
                "polls" => &sample.dists.polls,
                "async_delivery" => &sample.dists.async_delivery,
                _ => &sample.dists.start_lag,
            };
            distributions.insert(name.to_string(), summarise(h, scale));
        }
        let steps = self
            .steps
            .iter()
            .map(|(label, count, failed, h)| StepReport {
                label: label.clone(),
                count: *count,
                failed: *failed,
                latency: summarise(h, 1000.0),
            })
            .collect();
        let start = self.start;
        let timeseries = self
            .seconds
            .into_iter()
            .map(|(sec, s)| Point {
                t: ((sec as f64 - start) * 10.0).round() / 10.0,
                rate: s.rate,
                unix: sec as f64,
                ..s.point
            })
            .collect();
        let turns = sample.counts.turns;
        let merged = self.rows.len();
        Ok(LoadReport {
            schema_version: super::report::LOAD_SCHEMA_VERSION.into(),
            kind: "load".into(),
            tool: format!("hookbench {}", env!("CARGO_PKG_VERSION")),
            workload: if count > 1 {
                format!("{} over {merged} of {count} shards", first.workload)
            } else {
                first.workload.clone()
            },
            started_at: self.started_at,
            duration_s: elapsed,
            aborted: (!self.aborted.is_empty()).then(|| self.aborted.join("; ")),
            counts: sample.counts.clone(),
            distributions,
            steps,
            verdict,
            capacity: None,
            timeseries,
            generator: Generator {
                cpu_seconds: self.cpu,
                simulator_cpu_seconds: self.sim_cpu,
                cpu_us_per_turn: self.cpu * 1e6 / turns.max(1) as f64,
                scheduler_lag: None,
                max_rss_mib: self.max_rss,
                warnings: self.warnings,
            },
            run: RunInfo {
                id: first.run.id.clone(),
                scenario_digest: first.run.scenario_digest.clone(),
                shard: crate::scenario::shard::Shard::WHOLE,
                started_unix: start,
                thresholds: first.run.thresholds.clone(),
                shards: self.rows.into_values().collect(),
                missing_shards: missing,
            },
            ..first
        })
    }
}

fn decode(d: &DistSummary) -> Option<Histogram<u64>> {
    if d.hdr.is_empty() {
        return (d.count == 0).then(hist);
    }
    decode_hdr(&d.hdr)
}
