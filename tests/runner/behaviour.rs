//! The runner against the embedded simulator and against simulators with faults: every example
//! passes, failures are classified, results are valid JSON and JUnit.

use std::path::Path;

use hookbench::engine::results::{Failure, StepStatus};
use hookbench::engine::suite::{self, TestOptions};
use hookbench::scenario::{parse_str, Scenario, Secret};
use hookbench::sim::{Bot, RunningSim, SimConfig};

fn scenario(text: &str) -> Scenario {
    parse_str(
        text,
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/x.yaml")),
        &|_| None,
    )
    .unwrap()
}

async fn fault_sim() -> RunningSim {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests"));
    let bot = Bot::from_yaml(
        include_str!("../sim/test.bot.yaml"),
        "test.bot.yaml",
        Some(&dir.join("fixtures")),
    )
    .unwrap();
    RunningSim::start(SimConfig::new(bot), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn opts(sim: &RunningSim, instance: &str, secret: &str) -> TestOptions {
    TestOptions {
        target: Some(sim.url(hookbench::protocol::Version::V2, instance)),
        client_id: Some("cs-hs".into()),
        client_secret: Some(Secret(secret.into())),
    }
}

#[tokio::test]
async fn every_example_scenario_passes_on_the_embedded_simulator() {
    let files =
        hookbench::cli::test::expand(&[Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")])
            .unwrap();
    let scenarios = hookbench::cli::test::load_all(&files).unwrap();
    let report = suite::run(&scenarios, &TestOptions::default(), |_| {}).await;
    for r in &report.scenarios {
        assert!(
            r.passed,
            "{}: {:#?}",
            r.name,
            r.steps.iter().find(|s| s.status == StepStatus::Failed)
        );
    }
    assert!(report.summary.assertions > 50);
    // The transfer scenario ran once per data row and polled.
    let transfers: Vec<_> = report
        .scenarios
        .iter()
        .filter(|r| r.name == "transfer funds")
        .collect();
    assert_eq!(transfers.len(), 2);
    assert!(transfers
        .iter()
        .all(|t| t.steps[3].polls >= 1 && t.steps[3].latency_ms >= 1000.0));
    // Async deliveries were counted.
    let asynch = report.scenarios.iter().find(|r| r.name == "async").unwrap();
    assert_eq!(asynch.steps[1].deliveries, 3);

    // JSON results validate against the checked-in schema.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/results.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let json: serde_json::Value = serde_json::from_str(&hookbench::reports::json(&report)).unwrap();
    let errs: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errs.is_empty(), "{errs:#?}");
    assert_eq!(json["schema_version"], "1.0");
}

#[tokio::test]
async fn failures_are_classified_and_reported() {
    let sim = fault_sim().await;
    let cases = [
        ("default", "wrong-secret", "protocol"),
        ("ivrInst-drop", "test-secret", "transport"),
        ("ivrInst-badjson", "test-secret", "decode"),
        ("ivrInst-e503", "test-secret", "protocol"),
    ];
    for (instance, secret, class) in cases {
        let s = scenario("name: c\nsteps:\n  - send: quick\n  - send: quick\n");
        let report = suite::run(
            std::slice::from_ref(&s),
            &opts(&sim, instance, secret),
            |_| {},
        )
        .await;
        let r = &report.scenarios[0];
        assert!(!r.passed);
        let f = r.steps[0].failure.as_ref().unwrap();
        assert_eq!(f.class(), class, "{instance}: {f:?}");
        assert_eq!(r.steps[1].status, StepStatus::Skipped);
        assert!(r.steps[0]
            .curl
            .as_ref()
            .is_some_and(|c| c.contains("curl -sS -X POST") && !c.contains(secret)));
        if let Failure::Protocol { status, .. } = f {
            assert!(*status == 401 || *status == 503);
        }
        let junit = hookbench::reports::junit::render(&report);
        let tag = if matches!(class, "transport" | "decode") {
            "<error"
        } else {
            "<failure"
        };
        assert!(junit.contains(tag), "{class}: {junit}");
    }
}

#[tokio::test]
async fn over_budget_turn_is_a_budget_failure() {
    let sim = fault_sim().await;
    let s = scenario("name: b\ntarget: {timeout: 300ms}\nsteps:\n  - send: long\n");
    let report = suite::run(
        std::slice::from_ref(&s),
        &opts(&sim, "ivrInst-short", "test-secret"),
        |_| {},
    )
    .await;
    let f = report.scenarios[0].steps[0].failure.as_ref().unwrap();
    assert_eq!(f.class(), "budget", "{f:?}");
}

#[tokio::test]
async fn an_expected_error_status_passes() {
    let sim = fault_sim().await;
    let s = scenario(
        "name: negative\nsteps:\n  - send: quick\n    expect:\n      - status: 401\n      - jsonpath: { path: \"$.errors[0].msg\", equals: Invalid Access token }\n",
    );
    let report = suite::run(
        std::slice::from_ref(&s),
        &opts(&sim, "default", "wrong-secret"),
        |_| {},
    )
    .await;
    assert!(
        report.scenarios[0].passed,
        "{:#?}",
        report.scenarios[0].steps[0]
    );
}

#[tokio::test]
async fn unreachable_target_is_a_transport_failure() {
    let s = scenario("name: down\nsteps:\n  - send: hi\n");
    let o = TestOptions {
        target: Some("http://127.0.0.1:9/chatbot/v2/webhook/st-x".into()),
        client_id: Some("c".into()),
        client_secret: Some(Secret("s".into())),
    };
    let report = suite::run(std::slice::from_ref(&s), &o, |_| {}).await;
    assert!(report.has_transport_failures());
    let Some(Failure::Transport { kind, .. }) = &report.scenarios[0].steps[0].failure else {
        panic!()
    };
    assert_eq!(format!("{kind:?}"), "Refused");
}

#[tokio::test]
async fn failed_assertion_names_the_check_with_expected_and_actual() {
    let s = scenario("name: f\nsteps:\n  - send: balance\n    expect:\n      - messages: 3\n      - not: { end_of_task: true }\n");
    let report = suite::run(std::slice::from_ref(&s), &TestOptions::default(), |_| {}).await;
    let step = &report.scenarios[0].steps[0];
    assert_eq!(step.assertions.len(), 2);
    assert!(!step.assertions[0].passed);
    assert_eq!(step.assertions[0].expected, "3 message(s)");
    assert_eq!(step.assertions[0].actual, "2");
    assert_eq!(&*step.assertions[1].check, "not end_of_task true");
    assert!(!step.assertions[1].passed);
}
