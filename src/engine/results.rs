//! What runs produce: plain data that every report (terminal, JSON, JUnit) is a function of.

use std::sync::Arc;

use serde::Serialize;

use crate::client::http::TransportKind;

/// Version of the JSON results format (`schemas/results.schema.json`).
pub const RESULTS_SCHEMA_VERSION: &str = "2.0";

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Failure {
    /// A check did not hold.
    Assertion {
        /// The check.
        check: String,
        /// What it wanted.
        expected: String,
        /// What it got.
        actual: String,
    },
    /// The channel answered with an error envelope or broke the protocol.
    Protocol {
        /// HTTP status.
        status: u16,
        /// `errors[0].code`, when there was an envelope.
        code: Option<u16>,
        /// `errors[0].msg` or what was wrong.
        message: String,
    },
    /// The request did not complete.
    Transport {
        /// Refused, reset, timed out, TLS, …
        kind: TransportKind,
        /// Details.
        message: String,
    },
    /// The turn broke its time budget (sync 15 s, poll or async max wait).
    Budget {
        /// The budget this run holds the turn to; `None` when the target itself declared the
        /// timeout (a 504 after its own budget, which this run does not know).
        limit_ms: Option<f64>,
        /// What it took.
        elapsed_ms: f64,
        /// Which budget.
        message: &'static str,
    },
    /// A body that is not the JSON the protocol says.
    Decode {
        /// What could not be read.
        message: String,
    },
}

impl Failure {
    /// `assertion`, `protocol`, `transport`, `budget` or `decode`.
    pub fn class(&self) -> &'static str {
        match self {
            Failure::Assertion { .. } => "assertion",
            Failure::Protocol { .. } => "protocol",
            Failure::Transport { .. } => "transport",
            Failure::Budget { .. } => "budget",
            Failure::Decode { .. } => "decode",
        }
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        match self {
            Failure::Assertion {
                check,
                expected,
                actual,
            } => format!("{check}: expected {expected}, got {actual}"),
            Failure::Protocol {
                status,
                code,
                message,
            } => match code {
                Some(c) => format!("HTTP {status}: {message} (code {c})"),
                None => format!("HTTP {status}: {message}"),
            },
            Failure::Transport { kind, message } => {
                format!("transport {kind:?}: {message}").to_lowercase()
            }
            Failure::Budget {
                message,
                limit_ms,
                elapsed_ms,
            } => match limit_ms {
                Some(limit) => format!("{message}: {elapsed_ms:.1} ms against {limit:.0} ms"),
                None => format!("{message} after {elapsed_ms:.1} ms"),
            },
            Failure::Decode { message } => format!("undecodable answer: {message}"),
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssertionResult {
    /// The check as written.
    pub check: Arc<str>,
    /// Line in the scenario.
    pub line: u64,
    /// Held.
    pub passed: bool,
    /// What it wanted.
    pub expected: String,
    /// What it got.
    pub actual: String,
}

/// A timed event of a step (microseconds from the step's first request).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    /// `sent`, `first_byte`, `body`, `poll`, `delivery`, `upload`.
    pub event: &'static str,
    /// Microseconds since the step's request was sent.
    pub at_us: u64,
}

/// Step status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Ran and every check held.
    Passed,
    /// Ran and failed.
    Failed,
    /// Not run: an earlier step failed.
    Skipped,
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    /// 0-based.
    pub index: usize,
    /// `send transfer`.
    pub label: Arc<str>,
    /// Source file (included steps name theirs).
    pub file: Arc<str>,
    /// Line.
    pub line: u64,
    /// Outcome.
    pub status: StepStatus,
    /// HTTP status of the message request.
    pub http_status: Option<u16>,
    /// Request sent to final message (ms).
    pub latency_ms: f64,
    /// Request sent to response head (ms).
    pub first_byte_ms: Option<f64>,
    /// Polls made.
    pub polls: u32,
    /// `Inprogress` answers.
    pub in_progress: u32,
    /// Async deliveries received.
    pub deliveries: u32,
    /// Async deliveries seen twice.
    pub duplicates: u32,
    /// Async deliveries older than one before them.
    pub reordered: u32,
    /// The bot's texts.
    pub texts: Vec<String>,
    /// Checks.
    pub assertions: Vec<AssertionResult>,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// On the failed step: the `hookbench replay` command that repeats the conversation up to
    /// and including this step against the same target (no secret in it).
    pub reproduce: Option<String>,
    /// Timed events.
    pub timings: Vec<Timing>,
}

/// One scenario run (once per data row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioResult {
    /// `name:`.
    pub name: String,
    /// The file.
    pub file: String,
    /// Data row (1-based), when fed.
    pub row: Option<usize>,
    /// The user id used.
    pub user: String,
    /// All steps passed.
    pub passed: bool,
    /// Wall time (ms).
    pub duration_ms: f64,
    /// Steps.
    pub steps: Vec<StepResult>,
    /// A failure before any step ran (bad key file, unknown instance).
    pub setup_error: Option<String>,
}

impl ScenarioResult {
    /// The first failure, if any.
    pub fn first_failure(&self) -> Option<&Failure> {
        self.steps.iter().find_map(|s| s.failure.as_ref())
    }
}

/// Counts for the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Scenario runs.
    pub scenarios: usize,
    /// Passed runs.
    pub passed: usize,
    /// Failed runs.
    pub failed: usize,
    /// Steps run.
    pub steps: usize,
    /// Checks evaluated.
    pub assertions: usize,
    /// Checks that failed.
    pub assertions_failed: usize,
    /// Failures by class.
    pub failures: std::collections::BTreeMap<String, usize>,
    /// Async deliveries the receiver got for no user of the run.
    pub unmatched_deliveries: u64,
}

/// A `hookbench test` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestReport {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: &'static str,
    /// `hookbench x.y.z`.
    pub tool: String,
    /// ISO-8601 start.
    pub started_at: String,
    /// Wall time (ms).
    pub duration_ms: f64,
    /// Counts.
    pub summary: Summary,
    /// Runs.
    pub scenarios: Vec<ScenarioResult>,
}

impl TestReport {
    /// Builds the report and its summary.
    pub fn new(started_at: String, duration_ms: f64, scenarios: Vec<ScenarioResult>) -> Self {
        let mut s = Summary {
            scenarios: scenarios.len(),
            ..Default::default()
        };
        for r in &scenarios {
            if r.passed {
                s.passed += 1;
            } else {
                s.failed += 1;
            }
            if r.setup_error.is_some() {
                *s.failures.entry("setup".into()).or_default() += 1;
            }
            for st in r.steps.iter().filter(|st| st.status != StepStatus::Skipped) {
                s.steps += 1;
                s.assertions += st.assertions.len();
                s.assertions_failed += st.assertions.iter().filter(|a| !a.passed).count();
                if let Some(f) = &st.failure {
                    *s.failures.entry(f.class().into()).or_default() += 1;
                }
            }
        }
        Self {
            schema_version: RESULTS_SCHEMA_VERSION,
            tool: format!("hookbench {}", env!("CARGO_PKG_VERSION")),
            started_at,
            duration_ms,
            summary: s,
            scenarios,
        }
    }

    /// True when any step failed on transport (the target could not be reached).
    pub fn has_transport_failures(&self) -> bool {
        self.summary.failures.contains_key("transport")
    }
}
