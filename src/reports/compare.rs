//! `hookbench compare`: the differences between two load runs, and whether the new one
//! regressed beyond the given tolerances.

use std::fmt::Write;

use crate::engine::load::report::LoadReport;

/// How much worse the new run may be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerances {
    /// Relative latency increase allowed (0.10 = 10%).
    pub latency: f64,
    /// Absolute error-rate increase allowed (0.001 = 0.1 points).
    pub error_rate: f64,
    /// Relative throughput decrease allowed.
    pub throughput: f64,
}

/// One compared figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What.
    pub metric: String,
    /// Baseline.
    pub base: f64,
    /// New run.
    pub new: f64,
    /// Beyond tolerance.
    pub regressed: bool,
    /// Unit for display.
    pub unit: &'static str,
}

fn rate(r: &LoadReport) -> f64 {
    r.counts.turns_failed as f64 / r.counts.turns.max(1) as f64
}

/// Compares two runs.
pub fn compare(base: &LoadReport, new: &LoadReport, tol: Tolerances) -> Vec<Row> {
    let mut rows = Vec::new();
    let lat = |rows: &mut Vec<Row>, name: String, b: f64, n: f64| {
        // Sub-millisecond noise never counts as a regression.
        let regressed = n > b * (1.0 + tol.latency) && n - b > 1.0;
        rows.push(Row {
            metric: name,
            base: b,
            new: n,
            regressed,
            unit: "ms",
        });
    };
    for name in ["turn", "conversation", "poll_convergence", "async_delivery"] {
        if let (Some(b), Some(n)) = (base.distributions.get(name), new.distributions.get(name)) {
            if b.count == 0 && n.count == 0 {
                continue;
            }
            for (stat, bv, nv) in [
                ("p50", b.p50, n.p50),
                ("p95", b.p95, n.p95),
                ("p99", b.p99, n.p99),
            ] {
                lat(&mut rows, format!("{name}.{stat}"), bv, nv);
            }
        }
    }
    for s in &new.steps {
        if let Some(b) = base.steps.iter().find(|b| b.label == s.label) {
            lat(
                &mut rows,
                format!("step[{}].p95", s.label),
                b.latency.p95,
                s.latency.p95,
            );
        }
    }
    let (be, ne) = (rate(base), rate(new));
    rows.push(Row {
        metric: "errors.rate".into(),
        base: be * 100.0,
        new: ne * 100.0,
        regressed: ne > be + tol.error_rate,
        unit: "%",
    });
    let tp = |r: &LoadReport| r.counts.turns as f64 / r.duration_s.max(1e-9);
    let (bt, nt) = (tp(base), tp(new));
    rows.push(Row {
        metric: "throughput".into(),
        base: bt,
        new: nt,
        regressed: nt < bt * (1.0 - tol.throughput),
        unit: "turns/s",
    });
    rows.push(Row {
        metric: "sync.over_budget".into(),
        base: base.counts.over_budget as f64,
        new: new.counts.over_budget as f64,
        regressed: new.counts.over_budget > base.counts.over_budget,
        unit: "",
    });
    rows
}

/// The comparison as a table.
pub fn render(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<40} {:>17} {:>17} {:>9}\n",
        "metric", "base", "new", "change"
    );
    for r in rows {
        let change = if r.base.abs() > 1e-12 {
            format!("{:+.1}%", (r.new - r.base) / r.base * 100.0)
        } else {
            "n/a".into()
        };
        let mark = if r.regressed { "  REGRESSED" } else { "" };
        let name: String = r.metric.chars().take(40).collect();
        let _ = writeln!(
            out,
            "{name:<40} {:>9.2} {:<7} {:>9.2} {:<7} {change:>9}{mark}",
            r.base, r.unit, r.new, r.unit
        );
    }
    out
}
