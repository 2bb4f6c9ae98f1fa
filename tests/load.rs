//! The load engine on loopback: bounded runs of both models, ramps, thresholds, a target that
//! is down, a stalling target, Ctrl-C, and the reports (JSON against its schema, HTML in
//! headless Chromium).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hookbench::engine::conversation::Target;
use hookbench::engine::load::{self, StopSignal};
use hookbench::engine::suite::{Environment, TestOptions};
use hookbench::scenario::{parse_str, Scenario};

fn scenario(text: &str) -> Scenario {
    parse_str(
        text,
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/load.yaml")),
        &|_| None,
    )
    .unwrap()
}

async fn run(text: &str) -> load::report::LoadReport {
    run_beside(text, |_| async {}).await
}

/// Runs the load with `beside` (given the resolved target) running alongside it.
async fn run_beside<F: std::future::Future<Output = ()>>(
    text: &str,
    beside: impl FnOnce(&Target) -> F,
) -> load::report::LoadReport {
    run_in(Environment::default(), text, beside).await
}

/// Runs the load in `env` with `beside` running alongside it.
async fn run_in<F: std::future::Future<Output = ()>>(
    mut env: Environment,
    text: &str,
    beside: impl FnOnce(&Target) -> F,
) -> load::report::LoadReport {
    let s = scenario(text);
    let opts = TestOptions::default();
    let target = env.resolve(&s, &opts).await.unwrap();
    let l = s.load.clone().unwrap();
    let side = beside(&target);
    let (r, ()) = tokio::join!(
        load::run(
            Arc::new(s),
            Arc::new(target),
            l,
            Arc::new(StopSignal::default()),
            |_, _| {},
        ),
        side
    );
    env.shutdown().await;
    r
}

const QUICK: &str =
    "steps:\n  - send: balance\n    expect:\n      - end_of_task: { task: Show Balance }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_runs_users_in_a_loop_and_thresholds_hold() {
    let text = format!("{QUICK}load: {{ users: 5, duration: 2s, grace: 2s }}\nthresholds:\n  - turn.latency.p99 < 2s\n  - errors.rate < 0.1%\n  - assertions.pass_rate > 99.9%\n  - sync.over_budget == 0\n  - step[send balance].latency.p95 < 2s\n");
    let r = run(&text).await;
    assert!(r.counts.conversations > 20, "{:?}", r.counts);
    assert_eq!(r.counts.turns_failed, 0);
    assert!(r.passed(), "{:#?}", r.verdict);
    // The five thresholds, then the run's own two gates; no default gate beside thresholds.
    assert_eq!(r.verdict.gates.len(), 7, "{:#?}", r.verdict);
    assert!(r
        .verdict
        .gates
        .iter()
        .all(|g| g.origin != load::verdict::GateOrigin::Default));
    assert!(r.timeseries.len() >= 2);
    // The series reaches the end of the run even when the last tick came late.
    let last = r.timeseries.last().unwrap();
    assert!(last.t >= 1.9 && last.throughput > 0.0, "{last:?}");
    assert!(r.timeseries.iter().all(|p| p.active == 5));
    assert_eq!(r.steps[0].count, r.counts.turns);
    let turn = &r.distributions["turn"];
    assert!(turn.count > 0 && turn.p50 > 0.0 && turn.p50 < 100.0);
    // Histograms round-trip exactly from the JSON.
    let h = load::metrics::decode_hdr(&turn.hdr).unwrap();
    assert_eq!(h.len(), turn.count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_turns_measure_deliveries_and_count_the_unmatched() {
    let text = "target: { mode: async, instance: ivrInst-async, async: { quiet: 300ms, max_wait: 5s } }\nsteps:\n  - send: balance\n    expect:\n      - messages: 2\n      - end_of_task: { task: Show Balance }\nload: { users: 3, duration: 2s, grace: 3s }\nthresholds:\n  - async.missing == 0\n  - async.delivery.p95 < 2s\n  - async.unmatched == 0\n";
    let r = run_beside(text, |target| {
        let url = target
            .receiver
            .as_ref()
            .expect("async targets get a receiver")
            .url
            .clone();
        async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let http = reqwest::Client::new();
            for to in ["nobody", "also-nobody", "a-user-of-another-run"] {
                let body =
                    serde_json::json!({"to": to, "data": [{"type": "text", "val": "stray"}]});
                let r = http.post(&url).json(&body).send().await.unwrap();
                assert_eq!(r.status(), 200);
            }
        }
    })
    .await;
    let c = &r.counts;
    assert!(c.async_turns >= 3, "{c:?}");
    assert_eq!(c.turns_failed, 0, "{c:?}");
    assert_eq!(c.async_missing, 0);
    assert!(c.deliveries >= c.async_turns, "{c:?}");
    assert!(r.distributions["async_delivery"].count >= c.async_turns);
    assert_eq!(c.unmatched_deliveries, 3, "{c:?}");
    let held: Vec<bool> = r.verdict.gates.iter().map(|t| t.passed).collect();
    assert_eq!(held, [true, true, false, true, true], "{:#?}", r.verdict);
    assert_eq!(r.verdict.outcome, load::verdict::Outcome::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_arrives_at_its_rate_and_measures_from_the_intended_start() {
    let text = format!("{QUICK}load: {{ rate: 40/s, duration: 2s }}\n");
    let r = run(&text).await;
    let n = r.counts.conversations;
    assert!((70..=90).contains(&n), "{n} conversations at 40/s for 2 s");
    let actual = &r.distributions["conversation"];
    let intended = &r.distributions["conversation_intended"];
    assert_eq!(actual.count, intended.count);
    assert!(intended.p50 >= actual.p50);
    assert!(r.timeseries.iter().all(|p| p.rate == Some(40.0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramps_follow_their_stages() {
    let text = format!(
        "{QUICK}load:\n  stages: [{{to: 6, over: 2s}}, {{hold: 1s}}, {{to: 0, over: 1s}}]\n"
    );
    let r = run(&text).await;
    let active: Vec<u64> = r.timeseries.iter().map(|p| p.active).collect();
    assert!(active.iter().copied().max().unwrap() >= 5, "{active:?}");
    assert!(active[0] <= 4, "{active:?}");
    assert!(r.counts.conversations > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_target_shows_in_the_open_model_latency() {
    // The "slow" dialog on a polling-off instance stalls far beyond the 300 ms budget given here;
    // the open model keeps arriving regardless, and latency from the intended start shows it.
    let text = "target: { instance: ivrInst-nopoll, timeout: 300ms }\nsteps:\n  - send: slow\nload: { rate: 10/s, duration: 1s, grace: 3s }\nthresholds:\n  - sync.over_budget == 0\n";
    let r = run(text).await;
    assert!(r.counts.conversations >= 8, "{:?}", r.counts);
    assert_eq!(r.counts.over_budget, r.counts.turns, "{:?}", r.counts);
    assert!(r.distributions["conversation_intended"].p99 >= 300.0);
    assert!(!r.passed());
    assert!(
        r.counts.failures.keys().any(|k| k.starts_with("budget")),
        "{:?}",
        r.counts.failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_threshold_stops_the_run_early() {
    let text = format!("{QUICK}load: {{ users: 2, duration: 20s }}\nthresholds:\n  - {{ expr: \"turn.latency.max < 1us\", abort: true }}\n");
    let started = std::time::Instant::now();
    let r = run(&text).await;
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(
        r.aborted
            .as_deref()
            .unwrap_or("")
            .contains("turn.latency.max"),
        "{:?}",
        r.aborted
    );
    assert!(!r.passed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_search_names_the_last_rate_that_held() {
    let text = "target: { instance: ivrInst-nopoll, timeout: 15s }\nsteps:\n  - send: balance\nload: { capacity: { start: 5/s, step: 5/s, every: 1s, max: 15/s } }\nthresholds:\n  - conversations.count < 12\n";
    let r = run(text).await;
    let cap = r.capacity.as_ref().unwrap();
    assert!(!cap.steps.is_empty(), "{cap:?}");
    assert_eq!(cap.steps[0].rate, 5.0);
    // Finding a capacity is the result, not a failure: the rate that held is named first.
    let held = cap
        .last_passing_rate
        .expect("5/s holds `conversations.count < 12`");
    assert!(r.passed(), "{:#?}", r.verdict);
    assert_eq!(r.verdict.summary, format!("capacity {held}/s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capacity_search_where_no_step_held_fails() {
    let text = "target: { instance: ivrInst-nopoll, timeout: 15s }\nsteps:\n  - send: balance\nload: { capacity: { start: 5/s, step: 5/s, every: 1s, max: 15/s } }\nthresholds:\n  - turn.latency.max < 1us\n";
    let r = run(text).await;
    let cap = r.capacity.as_ref().unwrap();
    assert_eq!(cap.last_passing_rate, None, "{cap:?}");
    assert!(!r.passed());
    assert!(
        r.verdict.summary.contains("no step held"),
        "{}",
        r.verdict.summary
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_thresholds_a_failed_turn_fails_the_run() {
    let text = "steps:\n  - send: balance\n    expect:\n      - text: { contains: never said }\nload: { users: 2, duration: 1s }\n";
    let r = run(text).await;
    assert!(r.counts.turns_failed > 0);
    assert!(!r.passed(), "{:#?}", r.verdict);
    let broken: Vec<&str> = r
        .verdict
        .gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| g.expr.as_str())
        .collect();
    assert_eq!(broken, ["errors.assertion == 0"]);
    // Turned off, only the run's own gates remain, and they hold.
    let off = text.replace("duration: 1s }", "duration: 1s, default_gate: false }");
    let r = run(&off).await;
    assert!(r.passed(), "{:#?}", r.verdict);
    assert_eq!(r.verdict.gates.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_async_deliveries_are_counted_and_none_is_lost() {
    // Every adjacent pair swapped: the simulator posts [m2, task end, m1] for `balance`.
    let text = "target: { mode: async, instance: ivrInst-async, async: { quiet: 2s, max_wait: 5s } }\nsteps:\n  - send: balance\nload: { users: 2, iterations: 6 }\n";
    let mut bot = hookbench::sim::bot::Bot::demo();
    let inst = bot
        .instances
        .iter_mut()
        .find(|i| i.id == "ivrInst-async")
        .unwrap();
    inst.faults.async_reorder_rate = 1.0;
    let r = run_in(Environment::default().with_bot(bot), text, |_| async {}).await;
    let c = &r.counts;
    assert_eq!(c.async_turns, 6, "{c:?}");
    assert_eq!(
        c.deliveries, 18,
        "two messages and a task end per turn: {c:?}"
    );
    assert_eq!(c.reordered, 6, "{c:?}");
    assert_eq!((c.async_missing, c.unmatched_deliveries), (0, 0), "{c:?}");
    assert!(r.passed(), "{:#?}", r.verdict);
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hookbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// `hookbench run SCENARIO --users N --duration D --quiet EXTRA… --out OUT`, ready to run.
fn run_cmd(
    scenario: impl AsRef<std::ffi::OsStr>,
    users: &str,
    duration: &str,
    extra: &[&str],
    out: &Path,
) -> Command {
    let mut c = bin();
    c.arg("run")
        .arg(scenario)
        .args(["--users", users, "--duration", duration, "--quiet"])
        .args(extra)
        .arg("--out")
        .arg(out);
    c
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hookbench-load-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn binary_writes_reports_and_thresholds_gate_the_exit_code() {
    let out = tmp("gate");
    let ok = run_cmd("scenarios/quickstart.yaml", "3", "2s", &[], &out)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        stdout.contains("quickstart PASSED") && stdout.contains("latency (ms)"),
        "{stdout}"
    );
    for f in ["results.json", "report.html", "junit.xml"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    // The JSON validates against the checked-in schema.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/load-results.schema.json")).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errs: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errs.is_empty(), "{errs:#?}");
    // The embedded simulator's CPU time is reported apart from the generator's.
    let sim_cpu = v["generator"]["simulator_cpu_seconds"].as_f64();
    assert!(sim_cpu.is_some_and(|s| s > 0.0), "{}", v["generator"]);
    assert!(stdout.contains("the embedded simulator used"), "{stdout}");
    // `hookbench report` renders the HTML again.
    std::fs::remove_file(out.join("report.html")).unwrap();
    let again = bin()
        .arg("report")
        .arg(out.join("results.json"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(std::fs::read_to_string(out.join("report.html"))
        .unwrap()
        .contains("<svg"));

    let dir = tmp("fail");
    std::fs::create_dir_all(&dir).unwrap();
    let failing = dir.join("failing.yaml");
    std::fs::write(
        &failing,
        format!("{QUICK}thresholds:\n  - turn.latency.p50 < 1us\n"),
    )
    .unwrap();
    let out2 = dir.join("out");
    let bad = run_cmd(&failing, "2", "1s", &[], &out2).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let junit = std::fs::read_to_string(out2.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<failure") && junit.contains("turn.latency.p50 &lt; 1us"),
        "{junit}"
    );

    let unknown = dir.join("unknown.yaml");
    std::fs::write(
        &unknown,
        format!("{QUICK}thresholds:\n  - turn.latncy.p99 < 3s\n"),
    )
    .unwrap();
    let invalid = bin().args(["run"]).arg(&unknown).output().unwrap();
    assert_eq!(invalid.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&invalid.stderr).contains("did you mean `turn.latency`?"));
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_target_that_is_down_exits_3_and_still_writes_results() {
    let out = tmp("down");
    let r = run_cmd(
        "scenarios/quickstart.yaml",
        "2",
        "1s",
        &[
            "--target",
            "http://127.0.0.1:9/chatbot/v2/webhook/st-x",
            "--client-id",
            "c",
            "--client-secret",
            "s",
        ],
        &out,
    )
    .output()
    .unwrap();
    assert_eq!(
        r.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(
        v["counts"]["failures"]["transport: refused"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        v["counts"]
    );
    // Every report says what the exit code says: the default gate broke on transport errors.
    assert_eq!(v["verdict"]["outcome"], "unreachable");
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(stdout.contains("quickstart FAILED"), "{stdout}");
    assert!(!stdout.contains("PASSED"), "{stdout}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(!junit.contains("tests=\"0\""), "{junit}");
    assert!(
        junit.contains("<failure") && junit.contains("errors.transport == 0"),
        "{junit}"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn ctrl_c_stops_gracefully_and_writes_results() {
    let out = tmp("sigint");
    let child = run_cmd("scenarios/quickstart.yaml", "3", "60s", &[], &out)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    // A run stopped before its plan was done did not pass, though all it ran held.
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(v["aborted"], "stopped by request (Ctrl-C)");
    assert_eq!(v["verdict"]["outcome"], "failed");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<failure") && junit.contains("run: not stopped by request"),
        "{junit}"
    );
    assert!(v["duration_s"].as_f64().unwrap() < 10.0);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn html_report_renders_in_headless_chromium_with_its_charts() {
    let out = tmp("html");
    let r = run_cmd("scenarios/transfer.yaml", "2", "3s", &[], &out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stdout));
    let Some((html, log)) =
        common::render_dom(&out.join("report.html"), &out.join("chromium-profile"))
    else {
        let _ = std::fs::remove_dir_all(out);
        return;
    };
    assert!(html.contains("Latency percentiles over time"), "{log}");
    // Percentiles, throughput, active users, distribution and poll convergence; the error
    // charts are bars only when there were errors.
    assert!(
        html.matches("<svg").count() >= 5,
        "{}",
        html.matches("<svg").count()
    );
    for title in [
        "Throughput",
        "Active users",
        "Latency distribution and the sync budget",
        "Errors by class",
        "V2 poll convergence",
    ] {
        assert!(html.contains(title), "{title}");
    }
    assert!(html.contains("15 s sync budget"));
    assert!(html.contains("polled turn"));
    assert!(
        !log.contains("CONSOLE") && !log.contains("Uncaught"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn compare_flags_regressions_beyond_tolerance() {
    let out = tmp("compare");
    let ok = run_cmd("scenarios/quickstart.yaml", "2", "1s", &[], &out)
        .output()
        .unwrap();
    assert!(ok.status.success());
    let base = out.join("results.json");
    let same = bin().arg("compare").arg(&base).arg(&base).output().unwrap();
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    let p95 = v["distributions"]["turn"]["p95"].as_f64().unwrap();
    v["distributions"]["turn"]["p95"] = serde_json::json!(p95 * 3.0 + 50.0);
    let slower = out.join("slower.json");
    std::fs::write(&slower, v.to_string()).unwrap();
    let worse = bin()
        .arg("compare")
        .arg(&base)
        .arg(&slower)
        .output()
        .unwrap();
    assert_eq!(worse.status.code(), Some(1));
    let table = String::from_utf8_lossy(&worse.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("turn.p95") && l.ends_with("REGRESSED")),
        "{table}"
    );
    let lenient = bin()
        .arg("compare")
        .arg(&base)
        .arg(&slower)
        .args(["--latency-tolerance", "100000%"])
        .output()
        .unwrap();
    assert_eq!(lenient.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn live_prometheus_metrics_during_a_run() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tmp("live");
    let mut child = run_cmd(
        "scenarios/quickstart.yaml",
        "2",
        "4s",
        &["--metrics-listen", &format!("127.0.0.1:{port}")],
        &out,
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut body = String::new();
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(150));
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            if text.contains("hookbench_run_turns_total") {
                body = text;
                break;
            }
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(
        body.contains("hookbench_run_turn_latency_seconds{quantile=\"0.99\"}"),
        "{body}"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn http2_to_the_simulator() {
    let out = tmp("h2");
    let r = run_cmd("scenarios/quickstart.yaml", "4", "1s", &["--http2"], &out)
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(v["counts"]["turns"].as_u64().unwrap() > 10);
    assert_eq!(v["counts"]["turns_failed"], 0);
    let _ = std::fs::remove_dir_all(out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_per_user() {
    let text = format!("{QUICK}load: {{ users: 3, duration: 1s, connections: per_user }}\n");
    let s = scenario(&text);
    assert!(s.load.as_ref().unwrap().connection_per_user);
    let r = run(&text).await;
    assert!(r.counts.conversations > 3);
    assert_eq!(r.counts.turns_failed, 0);
}

#[test]
fn a_generator_at_its_connection_cap_says_so() {
    let out = tmp("cap");
    let r = run_cmd(
        "scenarios/quickstart.yaml",
        "6",
        "1s",
        &["--max-connections", "1"],
        &out,
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(v["counts"]["turns"].as_u64().unwrap() > 6);
    assert_eq!(v["counts"]["turns_failed"], 0);
    let warned = |w: &str| {
        w.contains("waited for a free connection")
            && w.contains("cap of 1")
            && w.contains("set by max_connections")
            && !w.contains("file-descriptor")
    };
    let warnings = v["generator"]["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| warned(w.as_str().unwrap())),
        "{warnings:?}"
    );
    assert!(stdout.lines().any(warned), "{stdout}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_target_killed_mid_run_exits_3() {
    use std::io::BufRead;
    let mut sim = bin()
        .args(["sim", "--listen", "127.0.0.1:0", "--print-config", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = info["instances"][0]["v2_url"].as_str().unwrap().to_string();
    let out = tmp("killed");
    let run = run_cmd(
        "scenarios/quickstart.yaml",
        "2",
        "3s",
        &[
            "--target",
            &url,
            "--client-id",
            info["client_id"].as_str().unwrap(),
            "--client-secret",
            info["client_secret"].as_str().unwrap(),
        ],
        &out,
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let _ = sim.kill();
    let _ = sim.wait();
    let status = run.wait_with_output().unwrap();
    assert_eq!(
        status.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(v["verdict"]["outcome"], "unreachable");
    assert!(v["counts"]["turns"].as_u64().unwrap() > v["counts"]["turns_failed"].as_u64().unwrap());
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_closed_stdout_does_not_turn_the_verdict_into_a_panic() {
    // `hookbench run … | head -1`: the reader goes away; the run still writes its reports and
    // exits with its verdict's code (1: a check failed), not a panic's 101.
    let dir = tmp("pipe");
    std::fs::create_dir_all(&dir).unwrap();
    let failing = dir.join("failing.yaml");
    std::fs::write(
        &failing,
        "steps:\n  - send: balance\n    expect:\n      - text: { contains: never said }\n",
    )
    .unwrap();
    let mut child = run_cmd(&failing, "1", "1s", &[], &dir.join("out"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
    assert!(dir.join("out/results.json").is_file());
    let _ = std::fs::remove_dir_all(dir);
}
