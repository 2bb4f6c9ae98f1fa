//! Certification: the embedded simulator earns a certificate for the full channel profile, the
//! bundle verifies and `verify` catches every tampering; simulator faults that break one rule
//! each fail exactly the checks of that rule; what cannot be checked never passes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hookbench::certify::catalogue::Profile;
use hookbench::certify::{
    certify_channel, Certification, ChannelRun, CheckStatus, Grade, Product, SimTarget,
};
use hookbench::client::HttpClient;
use hookbench::error::Exit;
use hookbench::sim::Bot;

const DEMO: &str = include_str!("../scenarios/bots/demo.bot.yaml");

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hookbench"))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hookbench-certify-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The demo bot with `faults` on the instance whose line is `instance_line`.
fn demo_with(instance_line: &str, faults: &str) -> Bot {
    let marker = format!("  - id: {instance_line}");
    let at = DEMO.find(&marker).expect("instance in the demo bot");
    let line_end = at + DEMO[at..].find('\n').unwrap() + 1;
    let text = format!(
        "{}    faults: {faults}\n{}",
        &DEMO[..line_end],
        &DEMO[line_end..]
    );
    Bot::from_yaml(&text, "demo-with-faults.bot.yaml", None).unwrap()
}

fn channel_run(
    profile: Profile,
    target: hookbench::certify::channel::ChannelTarget,
    jobs: usize,
    timeout_s: u64,
) -> ChannelRun {
    ChannelRun {
        profile,
        product: Product {
            name: "test".into(),
            version: "1".into(),
        },
        target,
        jobs,
        timeout: Duration::from_secs(timeout_s),
    }
}

async fn certify(bot: Bot, profile: Profile) -> Certification {
    let sim = SimTarget::start(bot).await.unwrap();
    let run = channel_run(profile, sim.target.clone(), 16, 30);
    let c = certify_channel(&run, HttpClient::new(), Some(sim.receiver.clone())).await;
    sim.stop().await;
    c
}

fn ids(c: &Certification, status: CheckStatus) -> Vec<&str> {
    c.checks
        .iter()
        .filter(|k| k.result == status)
        .map(|k| k.id.as_str())
        .collect()
}

#[tokio::test]
async fn a_pollid_delivered_twice_fails_single_delivery_only() {
    let c = certify(
        demo_with("default", "{ poll_redeliver: true }"),
        Profile::V2Poll,
    )
    .await;
    assert_eq!(ids(&c, CheckStatus::Failed), ["CH-V2-POLL-04"], "{c:#?}");
    assert_eq!(c.result, Grade::Failed);
    assert_eq!(Exit::from(&c), Exit::Failed);
    let failed = c.checks.iter().find(|k| k.id == "CH-V2-POLL-04").unwrap();
    // Explained like a contract mismatch: which request, which field, expected and actual.
    let m = &failed.mismatches[0];
    assert_eq!(m.field, "status");
    assert_eq!(m.expected, "400");
    assert!(m.actual.starts_with("200"), "{m:?}");
    let ex = &failed.evidence[m.exchange.unwrap()];
    assert!(ex.url.contains("/poll/"), "{ex:?}");
}

#[tokio::test]
async fn an_error_envelope_without_its_tags_fails_the_envelope_checks() {
    let c = certify(demo_with("default", "{ bare_errors: true }"), Profile::Auth).await;
    // The 401 checks read the envelope; the unknown bot has no instance to take the fault
    // from, and the 413 check reads only the message.
    assert_eq!(
        ids(&c, CheckStatus::Failed),
        [
            "CH-AUTH-01",
            "CH-AUTH-02",
            "CH-AUTH-03",
            "CH-AUTH-04",
            "CH-AUTH-05"
        ],
        "{c:#?}"
    );
    for k in c.checks.iter().filter(|k| k.result == CheckStatus::Failed) {
        assert_eq!(k.mismatches[0].field, "/_v", "{k:?}");
    }
}

#[tokio::test]
async fn a_slow_async_ack_is_a_warning_not_a_failure() {
    let c = certify(
        demo_with("ivrInst-async", "{ async_ack_delay: 1500ms }"),
        Profile::V2Async,
    )
    .await;
    assert_eq!(ids(&c, CheckStatus::Warning), ["CH-V2-ASYNC-02"], "{c:#?}");
    assert!(ids(&c, CheckStatus::Failed).is_empty(), "{c:#?}");
    assert_eq!(c.result, Grade::Warned);
    assert_eq!(Exit::from(&c), Exit::Ok);
}

#[tokio::test]
async fn a_required_check_that_cannot_run_withholds_the_certificate() {
    let sim = SimTarget::start(Bot::demo()).await.unwrap();
    let mut target = sim.target.clone();
    target.v2_nopoll = None;
    let run = channel_run(Profile::V2NoPoll, target, 4, 30);
    let c = certify_channel(&run, HttpClient::new(), None).await;
    sim.stop().await;
    assert!(ids(&c, CheckStatus::Skipped).contains(&"CH-V2-NOPOLL-02"));
    assert_eq!(c.result, Grade::Failed);
}

#[tokio::test]
async fn an_unreachable_target_exits_3() {
    let sim = SimTarget::start(Bot::demo()).await.unwrap();
    let mut target = sim.target.clone();
    sim.stop().await;
    // Nothing listens there any more.
    target.v2_nopoll = None;
    let run = channel_run(Profile::V2Poll, target, 4, 5);
    let c = certify_channel(&run, HttpClient::new(), None).await;
    assert_eq!(c.result, Grade::Failed);
    assert!(c.unreachable());
    assert_eq!(Exit::from(&c), Exit::Unreachable);
}

fn grep_tokens(dir: &Path) {
    let jwt = regex::Regex::new(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.").unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(
            !text.contains("demo-secret-hookbench"),
            "{} holds the client secret",
            path.display()
        );
        assert!(
            !jwt.is_match(&text),
            "{} holds a whole token",
            path.display()
        );
    }
}

#[test]
fn the_simulator_earns_a_full_certificate_and_verify_catches_tampering() {
    let out = tmp("full");
    let started = std::time::Instant::now();
    let r = bin()
        .args([
            "certify",
            "channel",
            "--profile",
            "full",
            "--product",
            "demo",
        ])
        .args(["--product-version", "1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(stdout.contains("PASSED: 46 passed, 0 failed"), "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    grep_tokens(&out);
    // results.json follows its schema.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schemas/certification.schema.json")).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errs: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errs.is_empty(), "{errs:#?}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("tests=\"46\"") && !junit.contains("<failure"),
        "{junit}"
    );

    let verify = |dir: &Path, key: Option<&Path>| {
        let mut cmd = bin();
        cmd.arg("verify").arg(dir);
        if let Some(k) = key {
            cmd.arg("--public-key").arg(k);
        }
        let r = cmd.output().unwrap();
        (
            r.status.code(),
            String::from_utf8_lossy(&r.stdout).into_owned(),
        )
    };
    let (code, text) = verify(&out, None);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("self-signed"), "{text}");

    let copy = |name: &str| {
        let dir = tmp(name);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&out).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
        dir
    };
    // One changed byte in any file.
    for file in [
        "results.json",
        "junit.xml",
        "certificate.html",
        "certificate.json",
    ] {
        let dir = copy("flip");
        let mut bytes = std::fs::read(dir.join(file)).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 0x01;
        std::fs::write(dir.join(file), bytes).unwrap();
        let (code, text) = verify(&dir, None);
        assert_eq!(code, Some(1), "{file}: {text}");
        let _ = std::fs::remove_dir_all(dir);
    }
    // A removed file, an extra file.
    let dir = copy("removed");
    std::fs::remove_file(dir.join("junit.xml")).unwrap();
    let (code, text) = verify(&dir, None);
    assert_eq!(code, Some(1));
    assert!(text.contains("junit.xml"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
    let dir = copy("extra");
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    let (code, text) = verify(&dir, None);
    assert_eq!(code, Some(1));
    assert!(text.contains("notes.txt"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
    // A wrong key.
    let key = out.with_extension("key");
    let _ = std::fs::remove_file(&key);
    let r = bin().arg("keygen").arg("--out").arg(&key).output().unwrap();
    assert_eq!(r.status.code(), Some(0));
    let (code, text) = verify(&out, Some(&key.with_extension("key.pub")));
    assert_eq!(code, Some(1));
    assert!(text.contains("signature"), "{text}");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("key.pub"));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn a_bundle_signed_with_a_given_key_verifies_with_that_key() {
    let dir = tmp("signed");
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("lab.key");
    assert_eq!(
        bin()
            .arg("keygen")
            .arg("--out")
            .arg(&key)
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
    let out = dir.join("bundle");
    let r = bin()
        .args([
            "certify",
            "channel",
            "--profile",
            "auth",
            "--product",
            "demo",
        ])
        .args(["--product-version", "1", "--signing-key"])
        .arg(&key)
        .arg("--out")
        .arg(&out)
        .arg("--archive")
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    // The archive verifies like the folder; a changed byte in it does not.
    let archive = dir.join("bundle.tar.gz");
    let r = bin()
        .arg("verify")
        .arg(&archive)
        .arg("--public-key")
        .arg(dir.join("lab.key.pub"))
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let mut bytes = std::fs::read(&archive).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&archive, bytes).unwrap();
    let r = bin().arg("verify").arg(&archive).output().unwrap();
    assert_eq!(
        r.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let r = bin()
        .arg("verify")
        .arg(&out)
        .arg("--public-key")
        .arg(dir.join("lab.key.pub"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{text}");
    assert!(!text.contains("self-signed"), "{text}");
    // keygen never overwrites a key.
    assert_eq!(
        bin()
            .arg("keygen")
            .arg("--out")
            .arg(&key)
            .status()
            .unwrap()
            .code(),
        Some(2)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_failed_certificate_is_written_but_does_not_verify() {
    let dir = tmp("failed");
    let bot = dir.join("bot.yaml");
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::write(
        &bot,
        DEMO.replace(
            "    polling: true\n",
            "    polling: true\n    faults: { poll_redeliver: true }\n",
        ),
    );
    // `certify channel` has no --bot: drive a simulator the CLI's way, through --target.
    let sim = common::SimProcess::start(&[std::ffi::OsStr::new("--bot"), bot.as_os_str()]);
    let cfg = &sim.info;
    let out = dir.join("bundle");
    let r = bin()
        .args([
            "certify",
            "channel",
            "--profile",
            "v2-poll",
            "--product",
            "demo",
        ])
        .args(["--product-version", "1", "--target"])
        .arg(cfg["instances"][0]["v2_url"].as_str().unwrap())
        .args(["--client-id", cfg["client_id"].as_str().unwrap()])
        .args(["--client-secret", cfg["client_secret"].as_str().unwrap()])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED  CH-V2-POLL-04"), "{stdout}");
    grep_tokens(&out);
    let v = bin().arg("verify").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&v.stdout);
    assert_eq!(v.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAILED") && text.contains("CH-V2-POLL-04"),
        "{text}"
    );
    let html = std::fs::read_to_string(out.join("certificate.html")).unwrap();
    assert!(html.contains("not a certificate of conformance"));
    drop(sim);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_certificate_renders_in_headless_chromium() {
    let out = tmp("html");
    let r = bin()
        .args([
            "certify",
            "channel",
            "--profile",
            "v2-poll",
            "--product",
            "Widget <b>",
        ])
        .args(["--product-version", "2.1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    let Some((html, log)) =
        common::render_dom(&out.join("certificate.html"), &out.join("chromium-profile"))
    else {
        let _ = std::fs::remove_dir_all(out);
        return;
    };
    // The product name is text, not markup; every check is there with its requirement.
    assert!(html.contains("Widget &lt;b&gt; 2.1"), "{log}");
    assert!(html.contains("class=\"grade PASSED\""), "{html}");
    for id in ["CH-V2-POLL-01", "CH-V2-POLL-07", "CH-V2-01"] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id}");
    }
    assert!(html.contains("§4.1 Polling"));
    assert!(!log.contains("Uncaught"), "{log}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn the_owners_scenarios_are_functional_evidence_and_must_pass() {
    let dir = tmp("scenarios");
    std::fs::create_dir_all(&dir).unwrap();
    let failing = dir.join("wrong.yaml");
    std::fs::write(
        &failing,
        "name: wrong answer\nsteps:\n  - send: balance\n    expect:\n      - text: { contains: \"no such text\" }\n",
    )
    .unwrap();
    let certify = |scenario: &Path, out: &Path| {
        bin()
            .args([
                "certify",
                "channel",
                "--profile",
                "auth",
                "--product",
                "demo",
            ])
            .args(["--product-version", "1", "--scenarios"])
            .arg(scenario)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    let ok = dir.join("ok");
    let r = certify(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.yaml"),
        &ok,
    );
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASSED  scenario"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ok.join("results.json")).unwrap()).unwrap();
    assert_eq!(v["scenarios"][0]["passed"], true, "{v}");
    assert_eq!(
        bin().arg("verify").arg(&ok).status().unwrap().code(),
        Some(0)
    );

    let bad = dir.join("bad");
    let r = certify(&failing, &bad);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAILED  scenario"), "{stdout}");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bad.join("results.json")).unwrap()).unwrap();
    assert_eq!(v["result"], "FAILED");
    let junit = std::fs::read_to_string(bad.join("junit.xml")).unwrap();
    assert!(junit.contains("wrong answer"), "{junit}");
    // A scenario file that does not parse is a usage error before anything runs.
    std::fs::write(&failing, "name: x\nsteps: 3\n").unwrap();
    assert_eq!(certify(&failing, &dir.join("usage")).status.code(), Some(2));
    let _ = std::fs::remove_dir_all(dir);
}
