//! Reports: each one a function of the result data.

pub mod certificate;
pub mod charts;
pub mod compare;
pub mod html;
pub mod junit;
pub mod terminal;

use crate::engine::results::TestReport;

/// The JSON results (`schemas/results.schema.json`).
pub fn json(report: &TestReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|_| "{}".into())
}
