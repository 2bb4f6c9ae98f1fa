//! Evaluates thresholds against recorded metrics.

use std::time::Duration;

use super::metrics::Sample;
use super::verdict::{Gate, GateOrigin};
use crate::scenario::threshold::{Dist, FailureClass, MetricRef, Scalar, Stat, Threshold, Unit};

fn stat(h: &hdrhistogram::Histogram<u64>, s: Stat) -> Option<f64> {
    if h.is_empty() {
        return None;
    }
    Some(match s {
        Stat::Min => h.min() as f64,
        Stat::Max => h.max() as f64,
        Stat::Mean => h.mean(),
        Stat::P(p) => h.value_at_quantile(p / 100.0) as f64,
    })
}

/// The metric's value over `sample` (which spans `elapsed`); `None` when there is no data.
pub fn value(
    metric: &MetricRef,
    sample: &Sample,
    elapsed: Duration,
    labels: &[String],
) -> Option<f64> {
    let d = &sample.dists;
    let c = &sample.counts;
    match metric {
        MetricRef::Dist(dist, s) => {
            let h = match dist {
                Dist::Turn => &d.turn,
                Dist::Step(label) => &d.steps[labels.iter().position(|l| l == label)?],
                Dist::Conversation => &d.conversation,
                Dist::ConversationIntended => &d.conversation_intended,
                Dist::PollConvergence => &d.poll_convergence,
                Dist::Polls => &d.polls,
                Dist::AsyncDelivery => &d.async_delivery,
            };
            stat(h, *s)
        }
        MetricRef::Scalar(s) => Some(match s {
            Scalar::SyncOverBudget => c.over_budget as f64,
            Scalar::SyncOver80 => c.over_80pct as f64,
            Scalar::SyncOver50 => c.over_50pct as f64,
            Scalar::ErrorsRate => {
                if c.turns == 0 {
                    return None;
                }
                c.turns_failed as f64 / c.turns as f64
            }
            Scalar::ErrorsCount => c.turns_failed as f64,
            Scalar::ErrorsOf(class) => {
                let k = &c.failed_by_class;
                (match class {
                    FailureClass::Assertion => k.assertion,
                    FailureClass::Protocol => k.protocol,
                    FailureClass::Budget => k.budget,
                    FailureClass::Transport => k.transport,
                    FailureClass::Decode => k.decode,
                }) as f64
            }
            Scalar::AssertionsPassRate => {
                if c.assertions == 0 {
                    return None;
                }
                c.assertions_passed as f64 / c.assertions as f64
            }
            Scalar::Throughput => c.turns as f64 / elapsed.as_secs_f64().max(1e-9),
            Scalar::Conversations => c.conversations as f64,
            Scalar::AsyncMissing => c.async_missing as f64,
            Scalar::AsyncUnmatched => c.unmatched_deliveries as f64,
            Scalar::DroppedStarts => c.dropped_starts as f64,
        }),
    }
}

/// Shows a value in the metric's unit.
pub fn show(metric: &MetricRef, v: f64) -> String {
    match metric.unit() {
        Unit::Micros if v >= 1e6 => format!("{:.2} s", v / 1e6),
        Unit::Micros => format!("{:.1} ms", v / 1e3),
        Unit::Ratio => format!("{:.3}%", v * 100.0),
        Unit::Number if v.fract() == 0.0 => format!("{v:.0}"),
        Unit::Number => format!("{v:.2}"),
    }
}

/// One threshold's verdict as a gate of `origin`. Without data a threshold holds (nothing
/// broke it); the verdict's own "at least one turn" gate fails a run where nothing ran.
pub fn evaluate(
    t: &Threshold,
    origin: GateOrigin,
    sample: &Sample,
    elapsed: Duration,
    labels: &[String],
) -> Gate {
    let (passed, actual) = match value(&t.metric, sample, elapsed, labels) {
        Some(v) => (t.op.holds(v, t.value), show(&t.metric, v)),
        None => (true, "no data".into()),
    };
    Gate {
        expr: t.source.clone(),
        origin,
        passed,
        actual,
        abort: t.abort,
    }
}
