//! The terminal listing of a test run: scenarios, steps, pass or fail and the reason.

use std::fmt::Write;

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
            if let Some(c) = &s.curl {
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
        let _ = write!(t, "  {} poll(s)", s.polls);
    }
    if s.deliveries > 0 {
        let _ = write!(t, "  {} delivery(ies)", s.deliveries);
    }
    t
}

/// The closing summary line.
pub fn summary(s: &Summary, duration_ms: f64) -> String {
    let mut line = format!("{} passed, {} failed", s.passed, s.failed);
    let _ = write!(
        line,
        " ({} scenario run(s), {} step(s), {} check(s), {:.1} s)",
        s.scenarios,
        s.steps,
        s.assertions,
        duration_ms / 1000.0
    );
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
