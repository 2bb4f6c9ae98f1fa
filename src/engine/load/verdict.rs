//! The verdict of a load run, decided in one place: the terminal summary, `results.json`,
//! `junit.xml`, the HTML report and the exit code all read the [`Verdict`] this module builds.
//!
//! A run answers to its gates. With `thresholds:` those are the gates; without them the
//! default gate holds every failure class to zero (a failed check, a protocol error, a broken
//! budget, an undecodable answer or a transport error fails the run), unless the plan turns
//! the default gate off. A capacity search answers to its capacity instead: it passes when at
//! least one step held. Every run also answers to two gates of its own: it completed at least
//! one turn, and it was not stopped by request before its plan was done.

use serde::{Deserialize, Serialize};

use super::metrics::Counts;

/// One step of a capacity search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapacityStep {
    /// Arrival rate (per second).
    pub rate: f64,
    /// Every threshold held over the step.
    pub passed: bool,
    /// The thresholds that broke.
    pub broken: Vec<String>,
}

/// A capacity search's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// The last rate that held every threshold (per second); `None` if the first step broke.
    pub last_passing_rate: Option<f64>,
    /// Each step.
    pub steps: Vec<CapacityStep>,
}

/// What a run's verdict means for the caller (and the exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every gate held.
    Passed,
    /// A gate broke.
    Failed,
    /// A gate broke and the target could not be reached or answered with transport errors.
    Unreachable,
}

/// Where a gate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateOrigin {
    /// A threshold the scenario wrote.
    Threshold,
    /// The default gate (no thresholds written).
    Default,
    /// The capacity search's result.
    Capacity,
    /// A rule every run answers to (it ran; it was not interrupted).
    Run,
}

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// As written (`turn.latency.p99 < 3s`), or what the rule says.
    pub expr: String,
    /// Where it comes from.
    pub origin: GateOrigin,
    /// Held.
    pub passed: bool,
    /// The measured value, readable (`2.3 s`, `0.12%`, `17`), or `no data`.
    pub actual: String,
    /// Stops the run when broken.
    pub abort: bool,
}

/// The verdict of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Passed, failed, or failed with an unreachable target.
    pub outcome: Outcome,
    /// One line for people: `capacity 40/s` or `2 of 7 gates broke: …`.
    pub summary: String,
    /// Every gate, in the order they are reported.
    pub gates: Vec<Gate>,
}

impl Verdict {
    /// True when every gate held.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }
}

/// Everything the verdict depends on.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The scenario's thresholds, or the default gate, evaluated over the whole run (ignored
    /// for a capacity search, whose steps were judged by them already).
    pub gates: Vec<Gate>,
    /// The run's counters.
    pub counts: &'a Counts,
    /// The capacity search, when the run was one.
    pub capacity: Option<&'a Capacity>,
    /// The run was stopped by request (Ctrl-C, SIGTERM) before its plan was done.
    pub interrupted: bool,
}

/// Decides the verdict.
pub fn decide(inputs: Inputs<'_>) -> Verdict {
    let Inputs {
        gates: measured,
        counts,
        capacity,
        interrupted,
    } = inputs;
    let mut gates = Vec::new();
    match capacity {
        Some(cap) => {
            let held = cap.last_passing_rate;
            let broke = cap.steps.iter().find(|s| !s.passed);
            let actual = match (held, broke) {
                (Some(r), Some(b)) => format!(
                    "{} held; {} broke {}",
                    rate(r),
                    rate(b.rate),
                    b.broken.join(", ")
                ),
                (Some(r), None) => format!("{} held (no step broke)", rate(r)),
                (None, Some(b)) => format!(
                    "no step held: {} broke {}",
                    rate(b.rate),
                    b.broken.join(", ")
                ),
                (None, None) => "no step completed".into(),
            };
            gates.push(Gate {
                expr: "capacity: at least one step held".into(),
                origin: GateOrigin::Capacity,
                passed: held.is_some(),
                actual,
                abort: false,
            });
        }
        None => gates.extend(measured),
    }
    gates.push(Gate {
        expr: "run: at least one turn completed".into(),
        origin: GateOrigin::Run,
        passed: counts.turns > 0,
        actual: format!("{} turns", counts.turns),
        abort: false,
    });
    gates.push(Gate {
        expr: "run: not stopped by request".into(),
        origin: GateOrigin::Run,
        passed: !interrupted,
        actual: if interrupted {
            "stopped by request".into()
        } else {
            "ran to the end of its plan".into()
        },
        abort: false,
    });
    let broken: Vec<&Gate> = gates.iter().filter(|g| !g.passed).collect();
    let outcome = if broken.is_empty() {
        Outcome::Passed
    } else if counts.failed_by_class.transport > 0 {
        Outcome::Unreachable
    } else {
        Outcome::Failed
    };
    let summary = match (
        capacity.and_then(|c| c.last_passing_rate),
        broken.as_slice(),
    ) {
        (Some(r), []) => format!("capacity {}", rate(r)),
        (None, []) => format!("all {} gates held", gates.len()),
        (_, b) => format!(
            "{} of {} gates broke: {}",
            b.len(),
            gates.len(),
            b.iter()
                .map(|g| format!("{} (actual {})", g.expr, g.actual))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    Verdict {
        outcome,
        summary,
        gates,
    }
}

/// A rate, readable: `40/s`, `2.5/s`.
fn rate(r: f64) -> String {
    if r.fract() == 0.0 {
        format!("{r:.0}/s")
    } else {
        format!("{r}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(passed: bool) -> Gate {
        Gate {
            expr: "errors.assertion == 0".into(),
            origin: GateOrigin::Default,
            passed,
            actual: if passed { "0" } else { "3" }.into(),
            abort: false,
        }
    }

    fn counts(turns: u64, transport: u64) -> Counts {
        let mut c = Counts {
            turns,
            ..Default::default()
        };
        c.failed_by_class.transport = transport;
        c
    }

    /// The verdict of a run (not a capacity search) with these gates and counts.
    fn run_verdict(gates: Vec<Gate>, counts: &Counts, interrupted: bool) -> Verdict {
        decide(Inputs {
            gates,
            counts,
            capacity: None,
            interrupted,
        })
    }

    #[test]
    fn a_broken_gate_fails_and_transport_errors_make_it_unreachable() {
        let v = run_verdict(vec![gate(true), gate(false)], &counts(10, 0), false);
        assert_eq!(v.outcome, Outcome::Failed);
        assert!(v.summary.starts_with("1 of 4 gates broke"), "{}", v.summary);
        let v = run_verdict(vec![gate(false)], &counts(10, 10), false);
        assert_eq!(v.outcome, Outcome::Unreachable);
    }

    #[test]
    fn nothing_ran_or_interrupted_never_passes() {
        let v = run_verdict(vec![], &counts(0, 0), false);
        assert_eq!(v.outcome, Outcome::Failed);
        let v = run_verdict(vec![gate(true)], &counts(5, 0), true);
        assert_eq!(v.outcome, Outcome::Failed);
    }

    #[test]
    fn a_capacity_search_passes_when_a_step_held_and_names_the_rate_first() {
        let c = counts(100, 0);
        let step = |rate, passed: bool| CapacityStep {
            rate,
            passed,
            broken: if passed {
                vec![]
            } else {
                vec!["turn.latency.p99 < 1s (actual 2.00 s)".into()]
            },
        };
        let cap = Capacity {
            last_passing_rate: Some(40.0),
            steps: vec![step(30.0, true), step(40.0, true), step(50.0, false)],
        };
        let v = decide(Inputs {
            gates: vec![gate(false)],
            counts: &c,
            capacity: Some(&cap),
            interrupted: false,
        });
        assert_eq!(v.outcome, Outcome::Passed, "{v:#?}");
        assert_eq!(v.summary, "capacity 40/s");
        assert!(v.gates[0].actual.starts_with("40/s held; 50/s broke"));
        let none = Capacity {
            last_passing_rate: None,
            steps: vec![step(30.0, false)],
        };
        let v = decide(Inputs {
            gates: vec![],
            counts: &c,
            capacity: Some(&none),
            interrupted: false,
        });
        assert_eq!(v.outcome, Outcome::Failed);
    }
}
