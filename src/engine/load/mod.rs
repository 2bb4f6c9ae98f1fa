//! The load engine: many users running the conversation executor at once, under a closed
//! model (users, ramps), an open model (arrival rate, ramps, Poisson spacing, concurrency cap)
//! or a capacity search, with metrics merged once a second and thresholds that gate the run.

mod aggregate;
mod build;
pub mod merge;
pub mod metrics;
pub mod report;
mod schedule;
pub mod thresholds;
pub mod verdict;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::conversation::{Conversation, Target, UserState};
use super::results::{Failure, StepResult, StepStatus};
use crate::scenario::{Action, Load, LoadModel, Mode, Scenario, Stage};
use metrics::{record, FailureKey, Sample, Shards};
use report::{Capacity, LoadReport, Point};

/// Asks a run to stop gracefully (Ctrl-C).
#[derive(Debug, Default)]
pub struct StopSignal {
    stopped: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    /// Requests the stop.
    pub fn stop(&self) {
        self.stopped.store(true, Relaxed);
        self.notify.notify_waiters();
    }

    /// True once requested.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Relaxed)
    }

    async fn wait(&self) {
        let notified = self.notify.notified();
        if !self.is_stopped() {
            notified.await;
        }
    }
}

struct Control {
    scenario: Arc<Scenario>,
    target: Arc<Target>,
    shards: Shards,
    stop_starting: AtomicBool,
    allowed_users: AtomicU64,
    started: AtomicU64,
    active: AtomicU64,
    cap: Option<u64>,
    stop: Arc<StopSignal>,
    /// The receiver's unmatched count already collected.
    unmatched_seen: AtomicU64,
    /// This process's part of a run split over machines.
    shard: crate::scenario::shard::Shard,
    /// Wall-clock time of the start (Unix seconds).
    start_unix: f64,
}

impl Control {
    /// The time-series point for what `s` holds: `span` seconds ending `t` seconds in.
    fn point(&self, model: &LoadModel, s: &Sample, t: f64, span: f64) -> Point {
        Point {
            t,
            throughput: s.counts.turns as f64 / span,
            conversations: s.counts.conversations,
            active: match model {
                LoadModel::Closed { .. } => self.allowed_users.load(Relaxed),
                _ => self.active.load(Relaxed),
            },
            p50_ms: q(&s.dists.turn, 0.5),
            p95_ms: q(&s.dists.turn, 0.95),
            p99_ms: q(&s.dists.turn, 0.99),
            errors: s.counts.turns_failed,
            rate: rate_at(model, Duration::from_secs_f64(t))
                .map(|r| r / f64::from(self.shard.count)),
            unix: self.start_unix + t,
        }
    }

    /// Moves what the users recorded into `into`, with the deliveries the receiver could not
    /// match since the last call.
    fn collect(&self, into: &mut Sample) {
        self.shards.drain_into(into);
        if let Some(r) = &self.target.receiver {
            let now = r.unmatched();
            let before = self.unmatched_seen.swap(now, Relaxed);
            into.counts.unmatched_deliveries += now.saturating_sub(before);
        }
    }

    /// Claims this shard's next conversation (its local number, from 0), or `None` when
    /// starts are over.
    fn claim(&self) -> Option<u64> {
        if self.stop_starting.load(Relaxed) || self.stop.is_stopped() {
            return None;
        }
        let n = self.started.fetch_add(1, Relaxed);
        if self.cap.is_some_and(|c| n >= c) {
            self.stop_starting.store(true, Relaxed);
            return None;
        }
        Some(n)
    }

    /// Runs conversation `n` (numbered over the whole run), this shard's `local`-th, on
    /// `own` connections when given, else on the shared pool.
    #[allow(clippy::too_many_arguments)]
    async fn conversation(
        &self,
        vu: u64,
        n: u64,
        local: u64,
        intended: Option<Instant>,
        own: Option<&Target>,
        carry: &mut UserState,
    ) {
        let actual = Instant::now();
        self.active.fetch_add(1, Relaxed);
        // The shard reads its own rows only (rows i, i + count, …), in turn.
        let row = self.scenario.data.as_ref().map(|d| {
            let mine = self.shard.share(d.rows.len() as u64).max(1);
            self.shard.global(local % mine) as usize % d.rows.len()
        });
        let conv = Conversation {
            scenario: &self.scenario,
            target: own.unwrap_or(&self.target),
        };
        let timeout = self.target.timeout;
        let mode = self.target.mode;
        let outcome = conv
            .drive(vu, n + 1, row, carry, &mut |step, r| {
                self.shards
                    .with(|s| record_step(s, step, &r, mode, timeout))
            })
            .await;
        self.active.fetch_sub(1, Relaxed);
        self.shards
            .with(|s| record_conversation(s, outcome.passed, actual, intended));
    }
}

/// The typed key a failure is counted under; no text is built per failure.
fn failure_key(f: &Failure, r: &StepResult) -> FailureKey {
    match f {
        Failure::Assertion { .. } => r
            .assertions
            .iter()
            .find(|a| !a.passed)
            .map_or(FailureKey::Other("assertion"), |a| {
                FailureKey::Assertion(a.check.clone())
            }),
        Failure::Protocol { status, code, .. } => FailureKey::Protocol {
            status: *status,
            code: *code,
        },
        Failure::Transport { kind, .. } => FailureKey::Transport(*kind),
        Failure::Budget { message, .. } => FailureKey::Budget(message),
        Failure::Decode { .. } => FailureKey::Decode,
    }
}

fn record_step(
    s: &mut Sample,
    step: &crate::scenario::Step,
    r: &StepResult,
    mode: Mode,
    budget: Duration,
) {
    // Think steps send nothing; `drive` reports no skipped steps.
    if matches!(step.action, Action::Think(_)) {
        return;
    }
    let c = &mut s.counts;
    let latency = Duration::from_secs_f64(r.latency_ms / 1000.0);
    c.turns += 1;
    let failed = r.status == StepStatus::Failed;
    if let Some(slot) = c.step_runs.get_mut(r.index) {
        slot.0 += 1;
        slot.1 += u64::from(failed);
    }
    if let Some(f) = &r.failure {
        c.turns_failed += 1;
        c.failed_by_class.count(f.class());
        c.count_failure(failure_key(f, r), 1);
    }
    c.assertions += r.assertions.len() as u64;
    c.assertions_passed += r.assertions.iter().filter(|a| a.passed).count() as u64;
    match mode {
        Mode::Sync => {
            c.sync_turns += 1;
            let share = latency.as_secs_f64() / budget.as_secs_f64().max(1e-9);
            let budget_broken = matches!(r.failure, Some(Failure::Budget { .. })) && r.polls == 0;
            c.over_50pct += u64::from(share > 0.5 || budget_broken);
            c.over_80pct += u64::from(share > 0.8 || budget_broken);
            c.over_budget += u64::from(share > 1.0 || budget_broken);
            if r.polls > 0 {
                c.polled_turns += 1;
                c.in_progress += u64::from(r.in_progress);
                let _ = s.dists.polls.record(u64::from(r.polls));
                record(&mut s.dists.poll_convergence, latency);
            }
        }
        Mode::Async => {
            c.async_turns += 1;
            c.deliveries += u64::from(r.deliveries);
            c.async_missing += u64::from(r.deliveries == 0);
            c.duplicates += u64::from(r.duplicates);
            c.reordered += u64::from(r.reordered);
            for t in r.timings.iter().filter(|t| t.event == "delivery") {
                record(&mut s.dists.async_delivery, Duration::from_micros(t.at_us));
            }
            // A notification's job status: polls until it converged, and how long that took.
            if let Some(t) = r.timings.iter().find(|t| t.event == "status") {
                c.polled_turns += 1;
                let _ = s.dists.polls.record(u64::from(r.polls));
                record(
                    &mut s.dists.poll_convergence,
                    Duration::from_micros(t.at_us),
                );
            }
        }
    }
    if r.http_status.is_some() || r.failure.is_none() {
        record(&mut s.dists.turn, latency);
        if let Some(h) = s.dists.steps.get_mut(r.index) {
            record(h, latency);
        }
    }
}

fn record_conversation(s: &mut Sample, passed: bool, actual: Instant, intended: Option<Instant>) {
    s.counts.conversations += 1;
    s.counts.conversations_failed += u64::from(!passed);
    let end = Instant::now();
    record(&mut s.dists.conversation, end - actual);
    if let Some(i) = intended {
        record(&mut s.dists.conversation_intended, end - i);
        let lag = actual.saturating_duration_since(i);
        record(&mut s.dists.start_lag, lag);
        s.counts.late_starts += u64::from(lag > Duration::from_millis(10));
    }
}

/// The value of a ramp at time `t`: linear between stage ends, starting from `initial`.
pub fn ramp(initial: f64, stages: &[Stage], t: Duration) -> f64 {
    let mut value = initial;
    let mut start = Duration::ZERO;
    for s in stages {
        let end = start + s.over;
        if t < end {
            return match s.target {
                None => value,
                Some(target) => {
                    value
                        + (target - value)
                            * ((t - start).as_secs_f64() / s.over.as_secs_f64().max(1e-9))
                }
            };
        }
        if let Some(target) = s.target {
            value = target;
        }
        start = end;
    }
    value
}

fn stages_length(stages: &[Stage]) -> Duration {
    stages.iter().map(|s| s.over).sum()
}

/// How long a load starts conversations for, when not given.
pub fn default_duration(load: &Load) -> Duration {
    match &load.model {
        LoadModel::Closed { stages, .. } | LoadModel::Open { stages, .. } if !stages.is_empty() => {
            stages_length(stages)
        }
        LoadModel::Capacity {
            start,
            step,
            every,
            max,
            ..
        } => {
            let steps = if *step > 0.0 && max.is_finite() {
                (((max - start) / step).floor() as u32 + 1).min(20)
            } else {
                10
            };
            *every * steps
        }
        _ => Duration::from_secs(30),
    }
}

/// The workload, readable.
pub fn describe(load: &Load) -> String {
    match &load.model {
        LoadModel::Closed { users, stages } if stages.is_empty() => {
            format!("closed: {}", crate::common::count(*users, "user", "users"))
        }
        LoadModel::Closed { users, stages } => {
            let peak = stages
                .iter()
                .filter_map(|s| s.target)
                .fold(*users as f64, f64::max);
            format!(
                "closed: ramp of {} from {users} to at most {peak} users",
                stage_count(stages.len())
            )
        }
        LoadModel::Open {
            rate,
            stages,
            poisson,
            max_concurrency,
        } => format!(
            "open: {rate}/s{}{}{}",
            if stages.is_empty() {
                String::new()
            } else {
                format!(", ramp of {}", stage_count(stages.len()))
            },
            if *poisson { ", poisson" } else { "" },
            max_concurrency
                .map(|m| format!(", at most {m} concurrent"))
                .unwrap_or_default()
        ),
        LoadModel::Capacity {
            start,
            step,
            every,
            max,
            ..
        } => {
            format!(
                "capacity search: {start}/s +{step}/s every {}{}",
                crate::common::duration::format_duration(*every),
                if max.is_finite() {
                    format!(" up to {max}/s")
                } else {
                    String::new()
                }
            )
        }
    }
}

fn rate_at(model: &LoadModel, t: Duration) -> Option<f64> {
    match model {
        LoadModel::Open { rate, stages, .. } => Some(ramp(*rate, stages, t)),
        LoadModel::Capacity {
            start,
            step,
            every,
            max,
            ..
        } => {
            let k = (t.as_secs_f64() / every.as_secs_f64().max(1e-9)).floor();
            Some((start + step * k).min(*max))
        }
        LoadModel::Closed { .. } => None,
    }
}

/// The HTTP client a load plan asks for: HTTP/1.1 keep-alive (its pool capped by
/// `max_connections`, else by the descriptor limit) or HTTP/2 multiplexing.
pub fn client_for(load: &Load) -> crate::client::HttpClient {
    use crate::client::http::HttpVersion;
    let version = if load.http2 {
        HttpVersion::Http2
    } else {
        HttpVersion::Http1
    };
    let client = crate::client::HttpClient::with_version(version);
    match load.max_connections {
        Some(n) => client.with_connection_limit(usize::try_from(n).unwrap_or(usize::MAX)),
        None => client,
    }
}

/// Runs the load until its duration or iteration count, a stop request, or a broken abort
/// threshold; then lets conversations in flight finish within the grace period. The parts:
/// the scheduler starts users ([`schedule`]), the aggregator merges their metrics once a
/// second ([`aggregate`]), and the report is built from what they left ([`build`]).
pub async fn run(
    scenario: Arc<Scenario>,
    target: Arc<Target>,
    load: Load,
    stop: Arc<StopSignal>,
    on_tick: impl FnMut(&Point, &Sample) + Send + 'static,
) -> LoadReport {
    let before = build::Before::now(&target);
    let steps = scenario.steps.len();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let ctl = Arc::new(Control {
        scenario: scenario.clone(),
        target: target.clone(),
        shards: Shards::new(threads, steps),
        stop_starting: AtomicBool::new(false),
        allowed_users: AtomicU64::new(0),
        started: AtomicU64::new(0),
        active: AtomicU64::new(0),
        cap: load.iterations.map(|n| load.shard.share(n)),
        stop: stop.clone(),
        unmatched_seen: AtomicU64::new(target.receiver.as_ref().map_or(0, |r| r.unmatched())),
        shard: load.shard,
        start_unix: before.started_unix,
    });
    let duration = load.duration.unwrap_or_else(|| default_duration(&load));
    let gates = aggregate::Gates::of(&scenario, &load);
    let start = Instant::now();
    let agg = Arc::new(Mutex::new(aggregate::Aggregate::new(steps)));
    let ticker = aggregate::spawn(
        ctl.clone(),
        agg.clone(),
        load.model.clone(),
        gates.clone(),
        start,
        on_tick,
    );
    let tasks = schedule::start_users(&ctl, &load, start, duration).await;
    schedule::drain(tasks, &ctl, load.grace).await;
    ticker.abort();
    let elapsed = start.elapsed();
    let mut a = agg.lock().unwrap_or_else(|p| p.into_inner());
    a.close(&ctl, &load.model, elapsed);
    let interrupted = stop.is_stopped() && a.aborted.is_none();
    if interrupted {
        a.aborted = Some("stopped by request (Ctrl-C)".into());
    }
    let capacity = matches!(load.model, LoadModel::Capacity { .. }).then(|| Capacity {
        last_passing_rate: a
            .capacity
            .iter()
            .take_while(|s| s.passed)
            .last()
            .map(|s| s.rate),
        steps: a.capacity.clone(),
    });
    // A shard answers to the run's own rules only: the thresholds are the whole run's, and
    // `hookbench merge` judges them on the merged data (a shard's share would pass or fail
    // them by its size, as k6's per-pod thresholds do).
    let measured = if load.shard.is_split() {
        let c = &a.total.counts;
        // A shard whose every turn failed in transport did not run its part: the target was
        // not there, and the pod says so (exit 3) instead of waiting for the merge to.
        let answered = c.turns == 0 || c.failed_by_class.transport < c.turns;
        let mut own = vec![verdict::Gate {
            expr: "shard: the target answered".into(),
            origin: verdict::GateOrigin::Run,
            passed: answered,
            actual: format!(
                "{} of {} turns failed in transport",
                c.failed_by_class.transport, c.turns
            ),
            abort: false,
        }];
        own.extend(a.aborted.iter().map(|why| verdict::Gate {
            expr: "shard: no abort threshold broke".into(),
            origin: verdict::GateOrigin::Run,
            passed: false,
            actual: why.clone(),
            abort: true,
        }));
        own
    } else {
        gates.measure(&a.total, elapsed)
    };
    let mut verdict = verdict::decide(verdict::Inputs {
        gates: measured,
        counts: &a.total.counts,
        capacity: capacity.as_ref(),
        interrupted,
    });
    if load.shard.is_split() {
        verdict.summary = format!(
            "{}; shard {} of run {}: the run's {} judged on the merge (hookbench merge)",
            verdict.summary,
            load.shard,
            load.run_id.as_deref().unwrap_or_default(),
            crate::common::count(gates.specs().len() as u64, "gate is", "gates are")
        );
    }
    build::report(build::Parts {
        scenario: &scenario,
        target: &target,
        load: &load,
        before,
        elapsed,
        threads,
        agg: &a,
        capacity,
        verdict,
        gates: gates.specs(),
    })
}

fn stage_count(n: usize) -> String {
    crate::common::count(n as u64, "stage", "stages")
}

fn q(h: &hdrhistogram::Histogram<u64>, p: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(p) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_read_as_sentences() {
        let mut load = Load::default();
        assert_eq!(describe(&load), "closed: 1 user");
        load.model = LoadModel::Closed {
            users: 0,
            stages: vec![
                Stage {
                    target: Some(50.0),
                    over: Duration::from_secs(10),
                },
                Stage {
                    target: None,
                    over: Duration::from_secs(20),
                },
                Stage {
                    target: Some(0.0),
                    over: Duration::from_secs(5),
                },
            ],
        };
        assert_eq!(
            describe(&load),
            "closed: ramp of 3 stages from 0 to at most 50 users"
        );
    }

    #[test]
    fn ramps_are_linear_and_hold() {
        let stages = [
            Stage {
                target: Some(100.0),
                over: Duration::from_secs(10),
            },
            Stage {
                target: None,
                over: Duration::from_secs(10),
            },
            Stage {
                target: Some(0.0),
                over: Duration::from_secs(5),
            },
        ];
        assert_eq!(ramp(0.0, &stages, Duration::from_secs(5)), 50.0);
        assert_eq!(ramp(0.0, &stages, Duration::from_secs(15)), 100.0);
        assert_eq!(ramp(0.0, &stages, Duration::from_millis(22_500)), 50.0);
        assert_eq!(ramp(0.0, &stages, Duration::from_secs(60)), 0.0);
        assert_eq!(ramp(7.0, &[], Duration::from_secs(3)), 7.0);
    }
}
