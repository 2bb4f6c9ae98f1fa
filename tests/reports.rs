//! Snapshot tests of the reports (insta), with timings redacted: the terminal output, JSON and
//! JUnit of a real `hookbench test` run against the embedded simulator, and the load reports
//! (terminal summary, threshold JUnit, `compare`) rendered from a results file checked in as
//! a fixture (`tests/fixtures/load-results.json`, from a 20-user run of
//! `scenarios/transfer.yaml`). Review changes with `cargo insta review` or by reading the
//! `.snap.new` files next to the snapshots.

use std::path::Path;

use hookbench::engine::load::report::LoadReport;
use hookbench::engine::results::TestReport;
use hookbench::engine::suite::{self, TestOptions};
use hookbench::reports::{compare, junit, terminal};

const PLAIN: terminal::Style = terminal::Style { color: false };

/// One scenario with a step that passes, one that fails on a check and one skipped after it.
const SCENARIO: &str = r#"name: report snapshot
user: { id: snapshot-user }
steps:
  - event: ON_CONNECT
    expect:
      - status: 200
      - text: { contains: Welcome }
  - send: balance
    expect:
      - messages: 2
      - end_of_task: { reason: Fulfilled, task: Show Balance }
      - text: { contains: "a text the bot never says" }
  - send: menu
"#;

async fn test_report() -> TestReport {
    let s = hookbench::scenario::parse_str(SCENARIO, Path::new("snapshot.yaml"), &|_| None)
        .expect("valid scenario");
    suite::run(&[s], &TestOptions::default(), |_| {}).await
}

/// Milliseconds and port numbers vary from run to run.
fn timing_filters() -> Vec<(&'static str, &'static str)> {
    vec![
        (r"\d+(\.\d+)? ms", "[ms]"),
        (r"\d+\.\d+ s\b", "[s]"),
        (r#"time="[0-9.]+""#, r#"time="[s]""#),
        (r#"timestamp="[^"]+""#, r#"timestamp="[time]""#),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:[port]"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_run_terminal_and_junit() {
    let report = test_report().await;
    let text = report
        .scenarios
        .iter()
        .map(|r| terminal::scenario(r, PLAIN))
        .collect::<String>()
        + &terminal::summary(&report.summary, report.duration_ms);
    insta::with_settings!({ filters => timing_filters() }, {
        insta::assert_snapshot!("test_terminal", text);
        insta::assert_snapshot!("test_junit", junit::render(&report));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_run_json() {
    let report = test_report().await;
    let value: serde_json::Value =
        serde_json::from_str(&hookbench::reports::json(&report)).unwrap();
    insta::with_settings!({ filters => timing_filters() }, {
        insta::assert_json_snapshot!("test_json", value, {
            ".started_at" => "[time]",
            ".duration_ms" => "[ms]",
            ".scenarios[].duration_ms" => "[ms]",
            ".scenarios[].steps[].latency_ms" => "[ms]",
            ".scenarios[].steps[].first_byte_ms" => "[ms]",
            ".scenarios[].steps[].timings[].at_us" => "[us]",
        });
    });
}

fn load_fixture() -> LoadReport {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/load-results.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn load_summary_and_threshold_junit() {
    let r = load_fixture();
    insta::assert_snapshot!("load_terminal", terminal::load_summary(&r, PLAIN));
    insta::with_settings!({ filters => timing_filters() }, {
        insta::assert_snapshot!("load_junit", junit::gates(&r));
    });
}

#[test]
fn compare_names_regressions_beyond_tolerance() {
    let base = load_fixture();
    let mut new = load_fixture();
    new.distributions.get_mut("turn").unwrap().p95 *= 1.5;
    new.counts.turns_failed = new.counts.turns / 100;
    let rows = compare::compare(
        &base,
        &new,
        compare::Tolerances {
            latency: 0.10,
            error_rate: 0.001,
            throughput: 0.05,
        },
    );
    assert!(rows.iter().any(|r| r.regressed));
    insta::assert_snapshot!("compare", compare::render(&rows));
}

#[test]
fn an_async_run_has_no_sync_budget_line_and_counts_its_words() {
    let mut r = load_fixture();
    r.counts.sync_turns = 0;
    r.counts.async_turns = 1;
    r.counts.deliveries = 1;
    let text = terminal::load_summary(&r, PLAIN);
    assert!(!text.contains("sync budget"), "{text}");
    assert!(text.contains("async: 1 turn, 1 delivery,"), "{text}");
    let summary = hookbench::engine::results::Summary {
        unmatched_deliveries: 1,
        ..Default::default()
    };
    let line = terminal::summary(&summary, 1.0);
    assert!(line.contains("1 async delivery for no user"), "{line}");
    assert!(
        line.contains("0 scenario runs, 0 steps, 0 checks"),
        "{line}"
    );
}
