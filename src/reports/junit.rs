//! JUnit XML: a testcase per scenario run; `<failure>` when a check, the protocol or a budget
//! failed, `<error>` when the target could not be reached or answered garbage.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::engine::results::{Failure, ScenarioResult, StepStatus, TestReport};

fn case(r: &ScenarioResult) -> TestCase {
    let name = match r.row {
        Some(row) => format!("{} [row {row}]", r.name),
        None => r.name.clone(),
    };
    let failed_step = r.steps.iter().find(|s| s.status == StepStatus::Failed);
    let status = match (&r.setup_error, failed_step) {
        (Some(e), _) => {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
            s.set_message(e.clone()).set_type("setup");
            s
        }
        (None, Some(step)) => {
            let f = step.failure.as_ref().expect("failed steps carry a failure");
            let kind = match f {
                Failure::Transport { .. } | Failure::Decode { .. } => NonSuccessKind::Error,
                _ => NonSuccessKind::Failure,
            };
            let mut s = TestCaseStatus::non_success(kind);
            s.set_message(format!(
                "step {} `{}` (line {}): {}",
                step.index + 1,
                step.label,
                step.line,
                f.summary()
            ));
            s.set_type(f.class());
            let mut description = String::new();
            for a in &step.assertions {
                description.push_str(&format!(
                    "{} {} (line {}): expected {}, got {}\n",
                    if a.passed { "ok  " } else { "FAIL" },
                    a.check,
                    a.line,
                    a.expected,
                    a.actual
                ));
            }
            if let Some(c) = &step.reproduce {
                description.push_str("\nreproduce:\n");
                description.push_str(c);
            }
            s.set_description(description);
            s
        }
        (None, None) => TestCaseStatus::success(),
    };
    let mut tc = TestCase::new(name, status);
    tc.set_classname(r.file.clone());
    tc.set_time(Duration::from_secs_f64(r.duration_ms / 1000.0));
    tc.set_assertions(r.steps.iter().map(|s| s.assertions.len()).sum());
    tc
}

/// The JUnit document.
pub fn render(report: &TestReport) -> String {
    let mut suite = TestSuite::new("hookbench test");
    suite.add_test_cases(report.scenarios.iter().map(case));
    suite.set_time(Duration::from_secs_f64(report.duration_ms / 1000.0));
    let mut r = Report::new("hookbench");
    r.add_test_suite(suite);
    r.set_time(Duration::from_secs_f64(report.duration_ms / 1000.0));
    r.to_string().unwrap_or_default()
}

/// JUnit for a load run: one testcase per gate of its verdict (thresholds or the default
/// gate, the capacity search, and the run's own gates), so the test count is never zero.
pub fn gates(report: &crate::engine::load::report::LoadReport) -> String {
    use crate::engine::load::verdict::GateOrigin;
    let mut suite = TestSuite::new(format!("hookbench run: {}", report.scenario));
    for g in &report.verdict.gates {
        let status = if g.passed {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("{} (actual {})", g.expr, g.actual))
                .set_type(match g.origin {
                    GateOrigin::Threshold => "threshold",
                    GateOrigin::Default => "default gate",
                    GateOrigin::Capacity => "capacity",
                    GateOrigin::Run => "run",
                });
            s
        };
        let mut tc = TestCase::new(g.expr.clone(), status);
        tc.set_classname(report.file.clone());
        if g.passed {
            tc.set_system_out(format!("actual {}", g.actual));
        }
        suite.add_test_case(tc);
    }
    let mut out = format!("verdict: {}", report.verdict.summary);
    if let Some(a) = &report.aborted {
        out.push_str(&format!("\nstopped early: {a}"));
    }
    suite.set_system_out(out);
    suite.set_time(Duration::from_secs_f64(report.duration_s));
    let mut r = Report::new("hookbench");
    r.add_test_suite(suite);
    r.to_string().unwrap_or_default()
}

/// JUnit for a certification: one testcase per check; a failed required check is a
/// `<failure>` (an `<error>` when the target could not be reached), a skipped one `<skipped>`,
/// a recommended check that did not hold passes with a WARNING line in its output.
pub fn certification(c: &crate::certify::Certification) -> String {
    use crate::certify::CheckStatus;
    let mut suite = TestSuite::new(format!(
        "hookbench certify {} --profile {}",
        c.side.as_str(),
        c.profile.as_str()
    ));
    for check in &c.checks {
        let reason = check.reason.clone().unwrap_or_default();
        let status = match check.result {
            CheckStatus::Passed | CheckStatus::Warning | CheckStatus::Review => {
                TestCaseStatus::success()
            }
            CheckStatus::Failed => {
                let kind = if check.unreachable {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(reason.clone()).set_type("required");
                s
            }
            CheckStatus::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(reason.clone());
                s
            }
        };
        let mut tc = TestCase::new(format!("{} {}", check.id, check.title), status);
        tc.set_classname(format!("certify.{}", c.side.as_str()));
        tc.set_time(Duration::from_secs_f64(check.duration_ms / 1000.0));
        match check.result {
            CheckStatus::Warning => {
                tc.set_system_out(format!("WARNING (recommended): {reason}"));
            }
            CheckStatus::Review => {
                tc.set_system_out("REVIEW: a person judges this from the evidence in results.json");
            }
            _ => {}
        }
        suite.add_test_case(tc);
    }
    for sc in &c.scenarios {
        let status = if sc.passed {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(sc.failure.clone().unwrap_or_default())
                .set_type("scenario");
            s
        };
        let mut tc = TestCase::new(format!("{} ({})", sc.label(), sc.name), status);
        tc.set_classname("certify.scenarios");
        tc.set_time(Duration::from_secs_f64(sc.duration_ms / 1000.0));
        suite.add_test_case(tc);
    }
    suite.set_system_out(format!(
        "certificate: {} for {} {}",
        c.result.as_str(),
        c.product.name,
        c.product.version
    ));
    let mut r = Report::new("hookbench");
    r.add_test_suite(suite);
    r.to_string().unwrap_or_default()
}
