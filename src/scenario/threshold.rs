//! Threshold expressions (`turn.latency.p99 < 3s`): parsed and checked against the metric
//! names at validation time, evaluated against run metrics by the load engine.

use std::fmt;

use crate::common::duration::parse_duration;

/// A statistic of a distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stat {
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Mean.
    Mean,
    /// A percentile (0..=100).
    P(f64),
}

/// A distribution the engine measures (values in microseconds, or counts for polls).
#[derive(Debug, Clone, PartialEq)]
pub enum Dist {
    /// Every turn: request to final message.
    Turn,
    /// One step (by label or name).
    Step(String),
    /// Whole conversations, from their actual start.
    Conversation,
    /// Whole conversations, from their intended start (open model; coordinated-omission free).
    ConversationIntended,
    /// V2 polled turns: request to final message.
    PollConvergence,
    /// Polls per polled turn (a count).
    Polls,
    /// Async: request to each delivery.
    AsyncDelivery,
}

/// A scalar the engine measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// Sync turns over the 15 s budget (count).
    SyncOverBudget,
    /// Sync turns over 80% of the budget (count).
    SyncOver80,
    /// Sync turns over 50% of the budget (count).
    SyncOver50,
    /// Failed turns / turns.
    ErrorsRate,
    /// Failed turns.
    ErrorsCount,
    /// Failed turns of one class.
    ErrorsOf(FailureClass),
    /// Passed checks / checks.
    AssertionsPassRate,
    /// Turns per second over the run.
    Throughput,
    /// Completed conversations.
    Conversations,
    /// Async turns with no delivery.
    AsyncMissing,
    /// Async deliveries matched to no waiting user.
    AsyncUnmatched,
    /// Open-model starts dropped at the concurrency cap.
    DroppedStarts,
}

/// The class of a turn's failure, as `errors.<class>` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// A check did not hold.
    Assertion,
    /// An error envelope or a protocol violation.
    Protocol,
    /// A time budget broke.
    Budget,
    /// The request did not complete.
    Transport,
    /// An undecodable answer.
    Decode,
}

/// The left side of a threshold.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricRef {
    /// A statistic of a distribution.
    Dist(Dist, Stat),
    /// A scalar.
    Scalar(Scalar),
}

/// Comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    /// Applies the comparison.
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => (a - b).abs() < 1e-9,
            Op::Ne => (a - b).abs() >= 1e-9,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        })
    }
}

/// What unit a metric is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Microseconds (written as durations).
    Micros,
    /// A ratio (written as `0.1%` or `0.001`).
    Ratio,
    /// A count or rate (plain numbers).
    Number,
}

impl MetricRef {
    /// The unit of its values.
    pub fn unit(&self) -> Unit {
        match self {
            MetricRef::Dist(Dist::Polls, _) => Unit::Number,
            MetricRef::Dist(..) => Unit::Micros,
            MetricRef::Scalar(Scalar::ErrorsRate | Scalar::AssertionsPassRate) => Unit::Ratio,
            MetricRef::Scalar(_) => Unit::Number,
        }
    }
}

/// A parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written.
    pub source: String,
    /// Left side.
    pub metric: MetricRef,
    /// Comparison.
    pub op: Op,
    /// Right side, in the metric's unit.
    pub value: f64,
    /// Stop the run as soon as it breaks.
    pub abort: bool,
}

/// Why a threshold expression does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(pub String);

impl From<String> for ThresholdError {
    fn from(s: String) -> Self {
        ThresholdError(s)
    }
}

/// Metric names, for "did you mean" (distributions take a statistic: `.p95`, `.max`, …).
pub const METRIC_NAMES: [&str; 23] = [
    "turn.latency",
    "step[LABEL].latency",
    "conversation.duration",
    "conversation.duration_intended",
    "poll.convergence",
    "poll.polls",
    "async.delivery",
    "sync.over_budget",
    "sync.over_80pct",
    "sync.over_50pct",
    "errors.rate",
    "errors.count",
    "errors.assertion",
    "errors.protocol",
    "errors.budget",
    "errors.transport",
    "errors.decode",
    "assertions.pass_rate",
    "throughput",
    "conversations.count",
    "async.missing",
    "async.unmatched",
    "starts.dropped",
];

fn stat(s: &str) -> Option<Stat> {
    match s {
        "min" => Some(Stat::Min),
        "max" => Some(Stat::Max),
        "mean" | "avg" => Some(Stat::Mean),
        "median" => Some(Stat::P(50.0)),
        _ => s
            .strip_prefix('p')
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|p| (0.0..=100.0).contains(p))
            .map(Stat::P),
    }
}

/// Parses the metric name (left side).
pub fn parse_metric(name: &str) -> Result<MetricRef, ThresholdError> {
    let name = name.trim();
    let scalar = match name {
        "sync.over_budget" => Some(Scalar::SyncOverBudget),
        "sync.over_80pct" => Some(Scalar::SyncOver80),
        "sync.over_50pct" => Some(Scalar::SyncOver50),
        "errors.rate" => Some(Scalar::ErrorsRate),
        "errors.count" => Some(Scalar::ErrorsCount),
        "errors.assertion" => Some(Scalar::ErrorsOf(FailureClass::Assertion)),
        "errors.protocol" => Some(Scalar::ErrorsOf(FailureClass::Protocol)),
        "errors.budget" => Some(Scalar::ErrorsOf(FailureClass::Budget)),
        "errors.transport" => Some(Scalar::ErrorsOf(FailureClass::Transport)),
        "errors.decode" => Some(Scalar::ErrorsOf(FailureClass::Decode)),
        "assertions.pass_rate" => Some(Scalar::AssertionsPassRate),
        "throughput" => Some(Scalar::Throughput),
        "conversations.count" => Some(Scalar::Conversations),
        "async.missing" => Some(Scalar::AsyncMissing),
        "async.unmatched" => Some(Scalar::AsyncUnmatched),
        "starts.dropped" => Some(Scalar::DroppedStarts),
        _ => None,
    };
    if let Some(s) = scalar {
        return Ok(MetricRef::Scalar(s));
    }
    let (base, stat_s) = name
        .rsplit_once('.')
        .ok_or_else(|| format!("unknown metric `{name}`"))?;
    let st = stat(stat_s).ok_or_else(|| {
        format!("`{stat_s}` is not a statistic (p50, p95, p99, p99.9, min, max, mean)")
    })?;
    let dist = match base {
        "turn.latency" => Dist::Turn,
        "conversation.duration" => Dist::Conversation,
        "conversation.duration_intended" => Dist::ConversationIntended,
        "poll.convergence" => Dist::PollConvergence,
        "poll.polls" => Dist::Polls,
        "async.delivery" => Dist::AsyncDelivery,
        b => match b
            .strip_prefix("step[")
            .and_then(|r| r.strip_suffix("].latency"))
        {
            Some(label) if !label.trim().is_empty() => Dist::Step(label.trim().to_string()),
            _ => return Err(format!("unknown metric `{base}`").into()),
        },
    };
    Ok(MetricRef::Dist(dist, st))
}

/// Parses `METRIC OP VALUE`.
pub fn parse(expr: &str, abort: bool) -> Result<Threshold, ThresholdError> {
    let ops = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    // The operator is the first one outside step[...] brackets.
    let bracket_end = expr.find("].").map(|i| i + 1).unwrap_or(0);
    let (at, op, len) = ops
        .iter()
        .filter_map(|(s, op)| {
            expr[bracket_end..]
                .find(s)
                .map(|i| (i + bracket_end, *op, s.len()))
        })
        .min_by_key(|(i, _, l)| (*i, usize::MAX - l))
        .ok_or_else(|| format!("`{expr}` has no comparison (<, <=, >, >=, ==, !=)"))?;
    let metric = parse_metric(&expr[..at])?;
    let rhs = expr[at + len..].trim();
    let value = match metric.unit() {
        Unit::Micros => parse_duration(rhs)
            .map(|d| d.as_secs_f64() * 1e6)
            .map_err(|e| e.to_string())?,
        Unit::Ratio => match rhs.strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .map(|v| v / 100.0)
                .map_err(|_| format!("`{rhs}` is not a percentage"))?,
            None => rhs
                .parse::<f64>()
                .map_err(|_| format!("`{rhs}` is not a ratio (write 0.1% or 0.001)"))?,
        },
        Unit::Number => rhs
            .trim_end_matches("/s")
            .parse::<f64>()
            .map_err(|_| format!("`{rhs}` is not a number"))?,
    };
    Ok(Threshold {
        source: expr.trim().to_string(),
        metric,
        op,
        value,
        abort,
    })
}

/// The gate a load run answers to when the scenario names no thresholds: a turn that failed
/// for any reason fails the run. One gate per failure class, so a report says which kind broke.
pub fn default_gate() -> Vec<Threshold> {
    [
        "errors.assertion == 0",
        "errors.protocol == 0",
        "errors.budget == 0",
        "errors.decode == 0",
        "errors.transport == 0",
    ]
    .iter()
    .map(|e| parse(e, false).expect("the default gate parses"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let t = parse("turn.latency.p99 < 3s", false).unwrap();
        assert_eq!(t.metric, MetricRef::Dist(Dist::Turn, Stat::P(99.0)));
        assert_eq!((t.op, t.value), (Op::Lt, 3e6));
        assert_eq!(parse("errors.rate < 0.1%", false).unwrap().value, 0.001);
        assert_eq!(
            parse("sync.over_budget == 0", false).unwrap().metric,
            MetricRef::Scalar(Scalar::SyncOverBudget)
        );
        let s = parse("step[send savings].latency.p95 < 2s", false).unwrap();
        assert_eq!(
            s.metric,
            MetricRef::Dist(Dist::Step("send savings".into()), Stat::P(95.0))
        );
        assert_eq!(
            parse("assertions.pass_rate > 99.9%", false).unwrap().op,
            Op::Gt
        );
        assert_eq!(parse("poll.convergence.p95<=5s", false).unwrap().op, Op::Le);
    }

    #[test]
    fn rejects_unknown_metrics_and_units() {
        assert!(parse("turn.latncy.p99 < 3s", false)
            .unwrap_err()
            .0
            .contains("unknown metric"));
        assert!(parse("turn.latency.p99 < 3", false)
            .unwrap_err()
            .0
            .contains("missing unit"));
        assert!(parse("turn.latency.q99 < 3s", false)
            .unwrap_err()
            .0
            .contains("statistic"));
        assert!(parse("errors.rate 3", false)
            .unwrap_err()
            .0
            .contains("no comparison"));
    }
}
