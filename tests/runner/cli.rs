//! The binary: exit codes, and the same scenarios against an external simulator by --target.

use std::path::{Path, PathBuf};
use std::process::Command;

use hookbench::sim::{RunningSim, SimConfig};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hookbench"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("HOOKBENCH_CLIENT_ID")
        .env_remove("HOOKBENCH_CLIENT_SECRET");
    c
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

#[test]
fn exit_codes() {
    let ok = bin()
        .args(["test", "scenarios/quickstart.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        stdout.contains("PASS quickstart") && stdout.contains("1 passed, 0 failed"),
        "{stdout}"
    );

    let failed = bin()
        .args([
            "test",
            "tests/fixtures/scenarios/false-assertion.yaml",
            "--no-color",
        ])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let out = String::from_utf8_lossy(&failed.stdout);
    assert!(
        out.contains("expected: a message containing \"a million dollars\""),
        "{out}"
    );
    assert!(
        out.contains("hookbench replay tests/fixtures/scenarios/false-assertion.yaml --step 1"),
        "{out}"
    );

    let invalid = bin()
        .args(["test", "tests/fixtures/scenarios/invalid.yaml"])
        .output()
        .unwrap();
    assert_eq!(invalid.status.code(), Some(2));
    let err = String::from_utf8_lossy(&invalid.stderr);
    assert!(
        err.contains("invalid.yaml:4:5") && err.contains("did you mean `expect`?"),
        "{err}"
    );

    let validate = bin().args(["validate", "scenarios"]).output().unwrap();
    assert_eq!(validate.status.code(), Some(0));

    let down = bin()
        .args([
            "test",
            "scenarios/quickstart.yaml",
            "--target",
            "http://127.0.0.1:9/chatbot/v2/webhook/st-x",
            "--client-id",
            "c",
            "--client-secret",
            "s",
        ])
        .output()
        .unwrap();
    assert_eq!(
        down.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&down.stdout)
    );

    let usage = bin().args(["test"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let missing = bin().args(["test", "no/such/file.yaml"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn writes_junit_and_json_even_when_failing() {
    let dir = std::env::temp_dir().join(format!("hookbench-out-{}", std::process::id()));
    let junit = dir.join("junit.xml");
    let json = dir.join("results.json");
    let out = bin()
        .args([
            "test",
            "scenarios/quickstart.yaml",
            "tests/fixtures/scenarios/false-assertion.yaml",
            "--junit",
        ])
        .arg(&junit)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(xml.matches("<testcase").count(), 2, "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1, "{xml}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["summary"]["passed"], 1);
    assert_eq!(v["summary"]["failed"], 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenarios_run_against_an_external_simulator() {
    // A port for the async receiver that the simulator's POST_URL points at.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = SimConfig::demo();
    config.post_url = Some(format!("http://127.0.0.1:{port}/hookbench/async"));
    let sim = RunningSim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let info = sim.info();
    let target = sim.url(hookbench::protocol::Version::V2, "default");
    let out = tokio::task::spawn_blocking(move || {
        bin()
            .args(["test", "scenarios", "--no-color", "--target", &target])
            .env("HOOKBENCH_CLIENT_ID", &info.client_id)
            .env("HOOKBENCH_CLIENT_SECRET", info.client_secret.unwrap())
            .env("HOOKBENCH_ASYNC_LISTEN", format!("127.0.0.1:{port}"))
            .current_dir(root())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("11 passed, 0 failed"), "{stdout}");
    // The requests reached the external simulator.
    let v2 = sim
        .state
        .metrics
        .requests(hookbench::sim::metrics::Route::V2Message, 200);
    assert!(v2 > 10, "{v2}");
}

/// The `hookbench replay …` line a failed `hookbench test` printed, as arguments.
fn reproducer(stdout: &str) -> Vec<String> {
    let line = stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("hookbench replay "))
        .unwrap_or_else(|| panic!("no reproducer in {stdout}"));
    let command = line.split("   #").next().unwrap();
    command
        .split_whitespace()
        .skip(1)
        .map(|w| w.trim_matches('\'').to_string())
        .collect()
}

#[test]
fn the_printed_reproducer_replays_the_conversation_up_to_the_failing_step() {
    let fixture = "tests/fixtures/scenarios/mid-conversation.yaml";
    let failed = bin()
        .args(["test", fixture, "--no-color"])
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&failed.stdout);
    // The embedded simulator is gone when the test exits: no port in the reproducer.
    assert!(!stdout.contains("127.0.0.1"), "{stdout}");
    let args = reproducer(&stdout);
    assert_eq!(args, ["replay", fixture, "--step", "3"]);
    // Run after the test has exited, the replay starts its own simulator, replays steps 1-2
    // and fails at step 3 as the test did (not with "Sorry, I didn't understand that").
    let replay = bin().args(&args).arg("--no-color").output().unwrap();
    let out = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "{out}");
    assert!(out.contains("reproduced"), "{out}");
    assert!(out.contains("Transferred 250 to savings."), "{out}");
    assert!(!out.contains("didn't understand"), "{out}");
    assert!(
        out.contains("expected: a message containing \"Transferred 999\""),
        "{out}"
    );
    // A step that passes is reported as not reproduced.
    let ok = bin()
        .args(["replay", fixture, "--step", "2"])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("not reproduced"));
    let bad = bin()
        .args(["replay", fixture, "--step", "9"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reproducer_of_an_external_target_names_it_and_no_secret() {
    let sim = RunningSim::start(SimConfig::demo(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let info = sim.info();
    let target = sim.url(hookbench::protocol::Version::V2, "default");
    let secret = info.client_secret.clone().unwrap();
    let (stdout, replay) = tokio::task::spawn_blocking(move || {
        let fixture = "tests/fixtures/scenarios/mid-conversation.yaml";
        let failed = bin()
            .args(["test", fixture, "--no-color", "--target", &target])
            .args(["--client-id", &info.client_id, "--client-secret", &secret])
            .output()
            .unwrap();
        assert_eq!(failed.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&failed.stdout).to_string();
        assert!(!stdout.contains(&secret), "{stdout}");
        let args = reproducer(&stdout);
        let replay = bin()
            .args(&args)
            .env("HOOKBENCH_CLIENT_SECRET", &secret)
            .output()
            .unwrap();
        (stdout, replay)
    })
    .await
    .unwrap();
    assert!(
        stdout.contains("--target http://127.0.0.1:")
            && stdout.contains("--client-id cs-")
            && stdout.contains("HOOKBENCH_CLIENT_SECRET"),
        "{stdout}"
    );
    let out = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "{out}");
    assert!(
        out.contains("reproduced") && out.contains("Transferred 250 to savings."),
        "{out}"
    );
}

#[test]
fn no_ansi_codes_reach_a_non_terminal() {
    use std::io::BufRead;
    // The simulator logs at info as it starts; its stderr here is a pipe.
    let mut sim = bin()
        .args(["sim", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(sim.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = sim.kill();
    let _ = sim.wait();
    assert!(line.contains("simulator serving"), "{line}");
    assert!(!line.contains('\u{1b}'), "{line:?}");
    let out = bin()
        .args(["test", "tests/fixtures/scenarios/false-assertion.yaml"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'));
}

#[test]
fn jobs_run_scenarios_at_once_and_keep_their_order() {
    let dir = std::env::temp_dir().join(format!("hookbench-jobs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..8 {
        std::fs::write(
            dir.join(format!("s{i}.yaml")),
            format!("name: thinker {i}\nsteps:\n  - think: 1s\n  - send: balance\n"),
        )
        .unwrap();
    }
    let started = std::time::Instant::now();
    let out = bin()
        .arg("test")
        .arg(&dir)
        .args(["--jobs", "8", "--no-color"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // Eight one-second thinks at once, not one after another.
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    let order: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PASS thinker "))
        .map(|l| &l[..1])
        .collect();
    assert_eq!(order, ["0", "1", "2", "3", "4", "5", "6", "7"], "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_message_far_over_the_limit_is_read_as_the_targets_413() {
    // The simulator answers 413 after 2 MiB, while the client is still sending 12 MB: the answer is
    // read and classified (a protocol 413, which the step expects), not a broken pipe.
    let dir = std::env::temp_dir().join(format!("hookbench-big-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big.yaml");
    let text = format!(
        "name: big\nsteps:\n  - send: \"{}\"\n    expect:\n      - status: 413\n      - jsonpath: {{ path: \"$.errors[0].code\", equals: 413 }}\n",
        "x".repeat(12_000_000)
    );
    std::fs::write(&file, text).unwrap();
    let out = bin().arg("test").arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        &stdout[..stdout.len().min(2000)]
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn symlink_loops_end_the_walk_and_endless_files_are_refused() {
    let dir = std::env::temp_dir().join(format!("hookbench-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("common")).unwrap();
    std::fs::copy(root().join("scenarios/quickstart.yaml"), dir.join("q.yaml")).unwrap();
    std::fs::copy(
        root().join("scenarios/common/greet.steps.yaml"),
        dir.join("common/greet.steps.yaml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(".", dir.join("a")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("b")).unwrap();
    let out = bin().arg("validate").arg(&dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("1 scenario valid"), "{stdout}");
    // A data file that never ends is refused after its size limit, not read for ever.
    std::fs::write(
        dir.join("zero.yaml"),
        "name: z\ndata: /dev/zero\nsteps: [{send: hi}]\n",
    )
    .unwrap();
    let out = bin()
        .arg("validate")
        .arg(dir.join("zero.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than"));
    let _ = std::fs::remove_dir_all(dir);
}

/// Botium convo files (with a partial convo, a button press, utterances expanded into rows, and
/// the Kore.ai webhook connector's `botium.json`) convert into scenarios that pass against a
/// simulator; the construct hookbench has no equivalent for is listed and fails the import.
#[test]
fn botium_convos_convert_and_pass_against_the_simulator() {
    let dir = std::env::temp_dir().join(format!("hookbench-botium-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let src = dir.join("project");
    std::fs::create_dir_all(&src).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/botium");
    for f in [
        "balance.convo.txt",
        "menu.pconvo.txt",
        "greetings.convo.txt",
        "greetings.utterances.txt",
    ] {
        std::fs::copy(fixtures.join(f), src.join(f)).unwrap();
    }
    let sim = crate::common::SimProcess::start(&[]);
    let info = &sim.info;
    let botium = serde_json::json!({"botium": {"Capabilities": {
        "PROJECTNAME": "demo", "CONTAINERMODE": "koreai-webhook",
        "KOREAI_WEBHOOK_URL": info["instances"][0]["v2_url"],
        "KOREAI_WEBHOOK_CLIENTID": info["client_id"],
        "KOREAI_WEBHOOK_CLIENTSECRET": info["client_secret"],
    }}});
    std::fs::write(src.join("botium.json"), botium.to_string()).unwrap();
    let out = dir.join("scenarios");
    let import = bin()
        .args(["import", "botium"])
        .arg(&src)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&import.stderr);
    assert_eq!(import.status.code(), Some(0), "{stderr}");
    // The secret stays out of the scenarios, and says so.
    assert!(stderr.contains("HOOKBENCH_CLIENT_SECRET"), "{stderr}");
    let balance = std::fs::read_to_string(out.join("balance.yaml")).unwrap();
    assert!(!balance.contains(info["client_secret"].as_str().unwrap()));
    assert!(
        balance.contains("send: menu"),
        "the partial is inlined: {balance}"
    );
    let greetings = std::fs::read_to_string(out.join("greetings.yaml")).unwrap();
    assert!(greetings.contains("good morning"), "{greetings}");
    // The converted scenarios pass against the simulator (3 greeting rows + 1 convo).
    let run = bin()
        .arg("test")
        .arg(&out)
        .env(
            "HOOKBENCH_CLIENT_SECRET",
            info["client_secret"].as_str().unwrap(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("4 passed") || stdout.matches("PASSED").count() >= 2,
        "{stdout}"
    );
    // A construct without an equivalent is listed by file and line, and fails the import.
    std::fs::copy(
        fixtures.join("unsupported.convo.txt"),
        src.join("unsupported.convo.txt"),
    )
    .unwrap();
    let again = bin()
        .args(["import", "botium"])
        .arg(&src)
        .arg("--out")
        .arg(dir.join("again"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("unsupported.convo.txt:8: skipped: `INTENT` asserter"),
        "{err}"
    );
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
