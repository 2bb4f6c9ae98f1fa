//! The runner against the embedded simulator and against simulators with faults: every example
//! passes, failures are classified, results are valid JSON and JUnit.

use std::path::Path;

use hookbench::engine::results::{Failure, StepResult, StepStatus};
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
    assert_eq!(json["schema_version"], "2.0");
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
            .reproduce
            .as_ref()
            .is_some_and(|c| c.contains("hookbench replay") && !c.contains(secret)));
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

/// Runs one step against `instance` and returns the step and its budget failure's figures.
async fn budget_case(
    sim: &RunningSim,
    instance: &str,
    text: &str,
) -> (StepResult, Option<f64>, f64, String) {
    let s = scenario(text);
    let report = suite::run(
        std::slice::from_ref(&s),
        &opts(sim, instance, "test-secret"),
        |_| {},
    )
    .await;
    let step = report.scenarios[0].steps[0].clone();
    let Some(Failure::Budget {
        limit_ms,
        elapsed_ms,
        ..
    }) = step.failure.clone()
    else {
        panic!("not a budget failure: {step:#?}");
    };
    let summary = step.failure.as_ref().unwrap().summary();
    (step, limit_ms, elapsed_ms, summary)
}

#[tokio::test]
async fn budget_failures_report_one_clock_everywhere() {
    let sim = fault_sim().await;
    // Over this run's budget: the step's latency is the figure in the message.
    let (step, limit, elapsed, msg) = budget_case(
        &sim,
        "ivrInst-slow",
        "name: b\ntarget: {timeout: 100ms}\nsteps:\n  - send: quick\n",
    )
    .await;
    assert_eq!(limit, Some(100.0));
    assert_eq!(step.latency_ms, elapsed);
    assert!(elapsed >= 200.0, "{msg}");
    assert!(
        msg.contains(&format!("{elapsed:.1} ms against 100 ms")),
        "{msg}"
    );
    // A 504 after the platform's own 300 ms budget: not "against 15000 ms".
    let (step, limit, elapsed, msg) =
        budget_case(&sim, "ivrInst-short", "name: b\nsteps:\n  - send: long\n").await;
    assert_eq!(limit, None);
    assert_eq!(step.latency_ms, elapsed);
    assert!((300.0..1000.0).contains(&elapsed), "{msg}");
    assert!(!msg.contains("15000"), "{msg}");
    assert!(msg.contains("(504) after"), "{msg}");
    // Polling that does not converge in time: the latency is the time spent, not the first
    // answer's.
    let (step, limit, elapsed, msg) = budget_case(
        &sim,
        "default",
        "name: b\ntarget: {poll: {interval: 50ms, max_wait: 200ms}}\nsteps:\n  - send: chain\n",
    )
    .await;
    assert_eq!(limit, Some(200.0));
    assert_eq!(step.latency_ms, elapsed);
    assert!(elapsed >= 200.0, "{msg}");
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

/// A scenario that signs with the SDK security page's aliases (`kore_iss`, `kore_sub`,
/// `kore_jti`) passes against the simulator, which reads them.
#[tokio::test]
async fn a_scenario_signing_with_kore_claim_aliases_passes() {
    let sim = fault_sim().await;
    let s = scenario(
        "name: aliases\nauth: { client_id: cs-hs, client_secret: test-secret, claims: { app: kore_iss, jti: true } }\nsteps:\n  - send: quick\n    expect:\n      - status: 200\n",
    );
    let report = suite::run(
        std::slice::from_ref(&s),
        &opts(&sim, "default", "test-secret"),
        |_| {},
    )
    .await;
    assert!(
        report.scenarios[0].passed,
        "{:#?}",
        report.scenarios[0].steps[0]
    );
}

/// A scenario that encrypts its tokens (`auth.jwe`, the target's own key) passes against the
/// embedded simulator's JWE-required app; without `jwe` the same app refuses it.
#[tokio::test]
async fn a_scenario_with_jwe_passes_against_a_jwe_required_app() {
    let auth = "client_id: cs-3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7, client_secret: demo-jwe-secret-hookbench-fedcba9876543210";
    let none = TestOptions {
        target: None,
        client_id: None,
        client_secret: None,
    };
    for (jwe, passes) in [
        (", jwe: { alg: RSA-OAEP-256, enc: A128CBC-HS256 }", true),
        (", jwe: true", true),
        ("", false),
    ] {
        let s = scenario(&format!(
            "name: jwe\nauth: {{ {auth}{jwe} }}\nsteps:\n  - send: balance\n    expect:\n      - status: 200\n"
        ));
        let report = suite::run(std::slice::from_ref(&s), &none, |_| {}).await;
        assert_eq!(
            report.scenarios[0].passed, passes,
            "{jwe}: {:#?}",
            report.scenarios[0].steps[0]
        );
    }
}

/// `scenarios/notify.yaml`: three identities (data rows), each notified through notifyV2; each
/// delivery reaches the built-in POST_URL receiver and each job's status is SUCCESS.
#[tokio::test]
async fn notifications_reach_the_built_in_receiver_and_their_jobs_succeed() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/notify.yaml"
    ));
    let s = hookbench::scenario::load(path, &|_| None).unwrap();
    let none = TestOptions {
        target: None,
        client_id: None,
        client_secret: None,
    };
    let report = suite::run(std::slice::from_ref(&s), &none, |_| {}).await;
    assert_eq!(report.scenarios.len(), 3);
    for sc in &report.scenarios {
        assert!(sc.passed, "{:#?}", sc.steps[0]);
        let step = &sc.steps[0];
        assert_eq!(step.deliveries, 1);
        assert!(step.polls >= 1);
        assert!(step.timings.iter().any(|t| t.event == "status"));
    }
}

/// `target.browser`: a CORS pre-flight before the first request to each URL, per user, as the
/// web SDK's requests cost: the message URL once, every new pollId's URL once.
#[tokio::test]
async fn a_browser_target_preflights_each_new_url_once() {
    let s = scenario(
        "name: web\ntarget: { browser: { origin: \"https://shop.example\" }, poll: { interval: 100ms } }\nsteps:\n  - send: balance\n  - send: balance\n  - send: statement\n",
    );
    let none = TestOptions {
        target: None,
        client_id: None,
        client_secret: None,
    };
    let report = suite::run(std::slice::from_ref(&s), &none, |_| {}).await;
    let sc = &report.scenarios[0];
    assert!(sc.passed, "{:#?}", sc.steps);
    let preflights = |i: usize| {
        sc.steps[i]
            .timings
            .iter()
            .filter(|t| t.event == "preflight")
            .count()
    };
    assert_eq!(preflights(0), 1, "the message URL, first time");
    assert_eq!(preflights(1), 0, "cached");
    // `statement` answers with two chained pollIds: each new poll URL is pre-flighted once,
    // however often it is polled while in progress.
    assert!(sc.steps[2].polls >= 2, "{:#?}", sc.steps[2]);
    assert_eq!(preflights(2), 2, "{:#?}", sc.steps[2].timings);
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

/// A channel that records every message request and answers one text message.
async fn recording_channel() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use axum::routing::post;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s1, s2) = (seen.clone(), seen.clone());
    let app = axum::Router::new()
        .route(
            "/chatbot/v2/webhook/{bot}",
            post(move |body: axum::Json<serde_json::Value>| async move {
                s1.lock().unwrap().push(body.0);
                axum::Json(serde_json::json!({"data": [{"type": "text", "val": "ok"}]}))
            }),
        )
        .route(
            "/chatbot/hooks/{bot}",
            post(move |body: axum::Json<serde_json::Value>| async move {
                s2.lock().unwrap().push(body.0);
                axum::Json(serde_json::json!({"text": "ok"}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn request_bodies_carry_every_field_a_step_sets() {
    let (base, seen) = recording_channel().await;
    let text = r#"name: bodies
user: { id: "u-{{vu}}", first_name: Ada, last_name: Lovelace, email: ada@example.com }
steps:
  - event: ON_CONNECT
  - send: "hello {{user}}"
    new_session: true
    language: de
    tags:
      user: { tier: gold }
      message: { channel: "{{scenario}}" }
    custom_data: { order: "{{vu}}", nested: { n: 1 } }
    attachments:
      - { url: "https://example.com/a.png", file_type: image, file_name: a.png }
"#;
    for (version, path) in [
        ("v2", "/chatbot/v2/webhook/st-1"),
        ("v1", "/chatbot/hooks/st-1"),
    ] {
        seen.lock().unwrap().clear();
        let opts = TestOptions {
            target: Some(format!("{base}{path}")),
            client_id: Some("cs-1".into()),
            client_secret: Some(Secret("secret".into())),
        };
        let s = scenario(&text.replace(
            "name: bodies",
            &format!("name: bodies\ntarget: {{ version: {version} }}"),
        ));
        let v1 = version == "v1";
        let steps = if v1 { &s.steps[1..] } else { &s.steps[..] };
        let s = Scenario {
            steps: steps.to_vec(),
            ..s
        };
        let report = suite::run(&[s], &opts, |_| {}).await;
        assert!(
            report.scenarios[0].passed,
            "{version}: {:#?}",
            report.scenarios[0]
        );
        let bodies = seen.lock().unwrap().clone();
        let from = serde_json::json!({"id": "u-1", "userInfo": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"}});
        let attachment = serde_json::json!([{"url": "https://example.com/a.png", "fileType": "image", "fileName": "a.png"}]);
        let last = bodies.last().unwrap();
        assert_eq!(last["from"], from, "{version}");
        assert_eq!(last["to"], serde_json::json!({"id": "st-1"}), "{version}");
        assert_eq!(
            last["session"],
            serde_json::json!({"new": true}),
            "{version}"
        );
        assert_eq!(last["interactiveLanguage"], "de", "{version}");
        assert_eq!(
            last["customData"],
            serde_json::json!({"order": "1", "nested": {"n": 1}}),
            "{version}"
        );
        let tags = serde_json::json!([{"name": "tier", "value": "gold"}]);
        if v1 {
            assert_eq!(bodies.len(), 1);
            assert_eq!(last["message"]["text"], "hello u-1");
            assert_eq!(last["message"]["attachments"], attachment);
            assert_eq!(last["userLevelTags"], tags);
            assert_eq!(
                last["messageLevelTags"],
                serde_json::json!([{"name": "channel", "value": "bodies"}])
            );
            assert!(last.get("metaTags").is_none());
        } else {
            assert_eq!(bodies.len(), 2);
            assert_eq!(
                bodies[0]["message"],
                serde_json::json!({"type": "event", "val": "ON_CONNECT"})
            );
            assert_eq!(bodies[0]["session"], serde_json::json!({"new": true}));
            assert!(bodies[0].get("metaTags").is_none() && bodies[0].get("customData").is_none());
            assert_eq!(last["message"]["type"], "text");
            assert_eq!(last["message"]["val"], "hello u-1");
            assert_eq!(last["message"]["attachments"], attachment);
            assert_eq!(last["metaTags"]["userLevelTags"], tags);
            assert_eq!(
                last["metaTags"]["messageLevelTags"],
                serde_json::json!([{"name": "channel", "value": "bodies"}])
            );
        }
    }
}

#[tokio::test]
async fn immediate_polling_keeps_its_floor() {
    let sim = fault_sim().await;
    let s = scenario("name: p\ntarget: {poll: {interval: immediate}}\nsteps:\n  - send: chain\n");
    let report = suite::run(
        std::slice::from_ref(&s),
        &opts(&sim, "default", "test-secret"),
        |_| {},
    )
    .await;
    let step = &report.scenarios[0].steps[0];
    assert!(report.scenarios[0].passed, "{step:#?}");
    // Two 300 ms service nodes: at most one poll per 10 ms floor, and one in flight.
    let span_ms = step.latency_ms;
    assert!(
        step.polls >= 2 && f64::from(step.polls) <= span_ms / 10.0 + 2.0,
        "{} polls in {span_ms} ms",
        step.polls
    );
}

#[tokio::test]
async fn a_schema_failure_at_the_top_level_says_so() {
    let s = scenario("name: s\nsteps:\n  - send: balance\n    expect:\n      - schema: error\n");
    let report = suite::run(std::slice::from_ref(&s), &TestOptions::default(), |_| {}).await;
    let a = &report.scenarios[0].steps[0].assertions[0];
    assert!(!a.passed);
    assert!(
        a.actual
            .ends_with("is a required property at the top level"),
        "{}",
        a.actual
    );
}
