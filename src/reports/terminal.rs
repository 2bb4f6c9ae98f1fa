//! The terminal listing of a test run: scenarios, steps, pass or fail and the reason.

use std::fmt::Write;

use crate::common::count;
use crate::engine::results::{ScenarioResult, StepStatus, Summary};

/// Colours on or off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// ANSI colours.
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// One scenario run with its steps.
pub fn scenario(r: &ScenarioResult, style: Style) -> String {
    let mut out = String::new();
    let mark = if r.passed {
        style.paint("32", "PASS")
    } else {
        style.paint("31;1", "FAIL")
    };
    let row = r.row.map(|n| format!(" [row {n}]")).unwrap_or_default();
    let _ = writeln!(
        out,
        "{mark} {}{row}  ({}, {:.0} ms)",
        r.name, r.file, r.duration_ms
    );
    if let Some(e) = &r.setup_error {
        let _ = writeln!(out, "     {}", style.paint("31", &format!("setup: {e}")));
    }
    for s in &r.steps {
        let (mark, detail) = match s.status {
            StepStatus::Passed => (style.paint("32", "ok  "), timing(s)),
            StepStatus::Failed => (style.paint("31", "FAIL"), timing(s)),
            StepStatus::Skipped => (style.paint("90", "skip"), String::new()),
        };
        let _ = writeln!(out, "     {mark} {:<32} {detail}", s.label);
        if s.status == StepStatus::Failed {
            for a in s.assertions.iter().filter(|a| !a.passed) {
                let _ = writeln!(
                    out,
                    "          {} (line {})\n            expected: {}\n            actual:   {}",
                    style.paint("31", &a.check),
                    a.line,
                    a.expected,
                    a.actual
                );
            }
            if let Some(f) = s.failure.as_ref().filter(|f| f.class() != "assertion") {
                let _ = writeln!(
                    out,
                    "          {}",
                    style.paint("31", &format!("{} error: {}", f.class(), f.summary()))
                );
            }
            if let Some(c) = &s.reproduce {
                let _ = writeln!(out, "          reproduce:");
                for line in c.lines() {
                    let _ = writeln!(out, "            {line}");
                }
            }
        }
    }
    out
}

fn timing(s: &crate::engine::results::StepResult) -> String {
    let mut t = format!("{:>8.1} ms", s.latency_ms);
    if s.polls > 0 {
        let _ = write!(t, "  {}", count(s.polls, "poll", "polls"));
    }
    if s.deliveries > 0 {
        let _ = write!(t, "  {}", count(s.deliveries, "delivery", "deliveries"));
    }
    t
}

/// The closing summary line.
pub fn summary(s: &Summary, duration_ms: f64) -> String {
    let mut line = format!("{} passed, {} failed", s.passed, s.failed);
    let _ = write!(
        line,
        " ({}, {}, {}, {:.1} s)",
        count(s.scenarios as u64, "scenario run", "scenario runs"),
        count(s.steps as u64, "step", "steps"),
        count(s.assertions as u64, "check", "checks"),
        duration_ms / 1000.0
    );
    if s.unmatched_deliveries > 0 {
        let _ = write!(
            line,
            "; {} for no user of the run",
            count(s.unmatched_deliveries, "async delivery", "async deliveries")
        );
    }
    if !s.failures.is_empty() {
        let classes: Vec<String> = s
            .failures
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = write!(line, "; failures by class: {}", classes.join(", "));
    }
    line
}

/// The end-of-run summary table of a load run.
pub fn load_summary(r: &crate::engine::load::report::LoadReport, style: Style) -> String {
    let mut out = String::new();
    let verdict = if r.passed() && r.run.shard.is_split() {
        // A shard's own rules held; the scenario's verdict is the merge's to give.
        style.paint("33;1", "SHARD DONE")
    } else if r.passed() {
        style.paint("32;1", "PASSED")
    } else {
        style.paint("31;1", "FAILED")
    };
    let _ = writeln!(
        out,
        "\n{} {verdict}  {}\n  {} against {}  ({:.1} s)",
        r.scenario, r.verdict.summary, r.workload, r.target, r.duration_s
    );
    if let Some(a) = &r.aborted {
        let _ = writeln!(out, "  stopped early: {a}");
    }
    let c = &r.counts;
    let _ = writeln!(
        out,
        "  conversations {} ({} failed, {} interrupted)   turns {} ({} failed, {:.2}%)   checks {}/{} passed",
        c.conversations,
        c.conversations_failed,
        c.conversations_interrupted,
        c.turns,
        c.turns_failed,
        100.0 * c.turns_failed as f64 / c.turns.max(1) as f64,
        c.assertions_passed,
        c.assertions
    );
    if c.sync_turns > 0 {
        let _ = writeln!(
            out,
            "  sync budget {:.0} s: {} turns over 50%, {} over 80%, {} over 100%",
            r.budget_ms / 1000.0,
            c.over_50pct,
            c.over_80pct,
            c.over_budget
        );
    }
    if c.polled_turns > 0 {
        let _ = writeln!(
            out,
            "  polling: {}, {}",
            count(c.polled_turns, "polled turn", "polled turns"),
            count(c.in_progress, "Inprogress answer", "Inprogress answers")
        );
    }
    if c.async_turns > 0 {
        let _ = writeln!(
            out,
            "  async: {}, {}, {} missing, {}, {} reordered, {} unmatched",
            count(c.async_turns, "turn", "turns"),
            count(c.deliveries, "delivery", "deliveries"),
            c.async_missing,
            count(c.duplicates, "duplicate", "duplicates"),
            c.reordered,
            c.unmatched_deliveries
        );
    }
    if c.dropped_starts + c.late_starts > 0 {
        let _ = writeln!(
            out,
            "  starts: {} dropped at the concurrency cap, {} late",
            c.dropped_starts, c.late_starts
        );
    }
    let mut latency = vec![
        ["latency (ms)", "count", "p50", "p95", "p99", "p99.9", "max"]
            .map(String::from)
            .to_vec(),
    ];
    let mut row = |name: String, d: &crate::engine::load::metrics::DistSummary| {
        let mut cells = vec![name.chars().take(40).collect(), d.count.to_string()];
        cells.extend([d.p50, d.p95, d.p99, d.p999, d.max].map(|v| format!("{v:.1}")));
        latency.push(cells);
    };
    for name in [
        "turn",
        "conversation",
        "conversation_intended",
        "poll_convergence",
        "async_delivery",
        "start_lag",
    ] {
        if let Some(d) = r.distributions.get(name).filter(|d| d.count > 0) {
            row(name.to_string(), d);
        }
    }
    for s in &r.steps {
        row(format!("  {}", s.label), &s.latency);
    }
    out.push('\n');
    out.push_str(&table("  ", latency, 1..));
    if !c.failures.is_empty() {
        let _ = writeln!(out, "\n  failures:");
        let rows = c
            .failures
            .iter()
            .map(|(k, v)| vec![v.to_string(), k.clone()])
            .collect();
        out.push_str(&table("    ", rows, 0..1));
    }
    if let Some(cap) = &r.capacity {
        let _ = match cap.last_passing_rate {
            Some(rate) => writeln!(
                out,
                "\n  capacity: {rate}/s is the last rate that held its gates"
            ),
            None => writeln!(out, "\n  capacity: the first rate already broke a gate"),
        };
    }
    if !r.run.shards.is_empty() {
        let _ = writeln!(out, "\n  shards of run {}:", r.run.id);
        let mut rows = vec![[
            "shard",
            "turns",
            "failed",
            "conversations",
            "p50 ms",
            "p99 ms",
            "wall s",
            "own rules",
        ]
        .map(String::from)
        .to_vec()];
        for s in &r.run.shards {
            rows.push(vec![
                s.index.to_string(),
                s.turns.to_string(),
                s.turns_failed.to_string(),
                s.conversations.to_string(),
                format!("{:.1}", s.p50_ms),
                format!("{:.1}", s.p99_ms),
                format!("{:.1}", s.duration_s),
                format!("{:?}", s.outcome).to_lowercase(),
            ]);
        }
        out.push_str(&table("    ", rows, 1..7));
        if !r.run.missing_shards.is_empty() {
            let missing: Vec<String> = r.run.missing_shards.iter().map(u32::to_string).collect();
            let _ = writeln!(
                out,
                "    {}",
                style.paint(
                    "33",
                    &format!("missing: {} (partial merge)", missing.join(", "))
                )
            );
        }
    }
    let _ = writeln!(out, "\n  gates:");
    let gates = r
        .verdict
        .gates
        .iter()
        .map(|t| {
            let mark = if t.passed {
                style.paint("32", "pass")
            } else {
                style.paint("31;1", "FAIL")
            };
            vec![mark, t.expr.clone(), format!("actual {}", t.actual)]
        })
        .collect();
    out.push_str(&table("    ", gates, 0..0));
    for w in &r.generator.warnings {
        let _ = writeln!(out, "  {}", style.paint("33", &format!("warning: {w}")));
    }
    let _ = write!(
        out,
        "  generator: {:.2} s CPU, {:.1} µs per turn, peak {:.0} MiB",
        r.generator.cpu_seconds, r.generator.cpu_us_per_turn, r.generator.max_rss_mib
    );
    match r.generator.simulator_cpu_seconds {
        Some(sim) => {
            let _ = writeln!(out, " (the embedded simulator used {sim:.2} s CPU besides)");
        }
        None => out.push('\n'),
    }
    out
}

/// Rows as a borderless table (the first row is the header, if any), each line after
/// `indent`, with the columns in `right` right-aligned.
fn table(indent: &str, rows: Vec<Vec<String>>, right: impl std::ops::RangeBounds<usize>) -> String {
    use tabled::settings::{object::Columns, Alignment, Padding, Style};
    let mut t = tabled::builder::Builder::from(rows).build();
    t.with(Style::blank())
        .with(Padding::new(0, 2, 0, 0))
        .modify(Columns::new(right), Alignment::right());
    let mut out = String::new();
    for line in t.to_string().lines() {
        let _ = writeln!(out, "{indent}{}", line.trim_end());
    }
    out
}
