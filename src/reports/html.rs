//! The self-contained HTML report of a load run (inline CSS and SVG; opens without a network).

use minijinja::{context, Environment, Value};

use super::charts::{bars, line, HLine, Series};
use crate::engine::load::metrics::decode_hdr;
use crate::engine::load::report::LoadReport;

const TEMPLATE: &str = include_str!("templates/load.html");

fn latency_curve(report: &LoadReport) -> String {
    // Percentile curve of turn latency on a log scale of "nines", with the sync budget.
    // Values in µs; shown in seconds, or in milliseconds when every turn took under one second.
    let mut points = Vec::new();
    if let Some(h) = report
        .distributions
        .get("turn")
        .and_then(|d| decode_hdr(&d.hdr))
        .filter(|h| !h.is_empty())
    {
        let mut x = 0.0;
        while x <= 4.0 {
            let q = 1.0 - 1.0 / 10f64.powf(x);
            points.push((x, h.value_at_quantile(q) as f64));
            x += 0.05;
        }
    }
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let (unit, scale) = if max < 1e6 {
        ("milliseconds", 1e3)
    } else {
        ("seconds", 1e6)
    };
    for p in &mut points {
        p.1 /= scale;
    }
    // The sync budget applies to sync turns only.
    let sync = report.counts.sync_turns > 0;
    let budget = HLine {
        y: report.budget_ms * 1e3 / scale,
        label: format!("{:.0} s sync budget", report.budget_ms / 1000.0),
    };
    line(
        &[Series {
            name: "turn latency".into(),
            color: "#2563eb",
            points,
        }],
        "percentile",
        unit,
        sync.then_some(&budget),
        true,
    )
}

/// Renders the report.
pub fn render(report: &LoadReport) -> Result<String, minijinja::Error> {
    let ts = &report.timeseries;
    let pct = line(
        &[
            Series {
                name: "p50".into(),
                color: "#16a34a",
                points: ts.iter().map(|p| (p.t, p.p50_ms)).collect(),
            },
            Series {
                name: "p95".into(),
                color: "#f59e0b",
                points: ts.iter().map(|p| (p.t, p.p95_ms)).collect(),
            },
            Series {
                name: "p99".into(),
                color: "#dc2626",
                points: ts.iter().map(|p| (p.t, p.p99_ms)).collect(),
            },
        ],
        "seconds since start",
        "turn latency (ms)",
        None,
        false,
    );
    let throughput = line(
        &[Series {
            name: "turns/s".into(),
            color: "#2563eb",
            points: ts.iter().map(|p| (p.t, p.throughput)).collect(),
        }],
        "seconds since start",
        "turns per second",
        None,
        false,
    );
    let active = line(
        &[Series {
            name: "active".into(),
            color: "#7c3aed",
            points: ts.iter().map(|p| (p.t, p.active as f64)).collect(),
        }],
        "seconds since start",
        "users / conversations in flight",
        None,
        false,
    );
    let mut by_class: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    for (k, v) in &report.counts.failures {
        let class = k.split(':').next().unwrap_or(k).to_string();
        *by_class.entry(class).or_default() += *v as f64;
    }
    let errors_by_class = bars(&by_class.into_iter().collect::<Vec<_>>(), "#dc2626", "");
    let errors_detail = bars(
        &report
            .counts
            .failures
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect::<Vec<_>>(),
        "#f97316",
        "",
    );
    let poll = report.distributions.get("poll_convergence");
    let poll_chart = match poll.filter(|p| p.count > 0) {
        Some(p) => bars(
            &[
                ("p50".into(), p.p50),
                ("p90".into(), p.p90),
                ("p95".into(), p.p95),
                ("p99".into(), p.p99),
                ("max".into(), p.max),
            ],
            "#0891b2",
            "ms",
        ),
        None => r#"<p class="empty">no polled turns</p>"#.into(),
    };
    let mut env = Environment::new();
    env.add_template("load.html", TEMPLATE)?;
    let tmpl = env.get_template("load.html")?;
    let passed = report.passed();
    tmpl.render(context! {
        r => Value::from_serialize(report),
        passed => passed,
        chart_percentiles => Value::from_safe_string(pct),
        chart_throughput => Value::from_safe_string(throughput),
        chart_active => Value::from_safe_string(active),
        chart_errors => Value::from_safe_string(errors_by_class),
        chart_errors_detail => Value::from_safe_string(errors_detail),
        chart_poll => Value::from_safe_string(poll_chart),
        chart_distribution => Value::from_safe_string(latency_curve(report)),
    })
}
