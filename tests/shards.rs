//! A run split over four shard processes (as the pods of a Kubernetes Indexed Job, with
//! `JOB_COMPLETION_INDEX`) against one simulator, merged: the shares add up, no user is in two
//! shards, the merged percentiles are those of the shards' histograms added, and a threshold
//! that breaks only on the whole run breaks on the merge. Also the manifests of `kube`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hookbench::engine::load::metrics::{decode_hdr, hist};

mod common;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hookbench-shards-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

use common::{bin, SimProcess as Sim};

fn sim() -> Sim {
    Sim::start(&[])
}

/// The simulator's live sessions, from its metrics.
fn live_sessions(base: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("hookbench_sim_active_sessions "))
        .unwrap()
        .trim()
        .parse::<f64>()
        .unwrap() as u64
}

const SCENARIO: &str = r#"
name: sharded
user: { id: "u-{{vu}}-{{iteration}}" }
auth:
  client_id: "${HOOKBENCH_CLIENT_ID}"
  client_secret: "${HOOKBENCH_CLIENT_SECRET}"
steps:
  - think: 100ms
  - send: balance
    expect:
      - status: 200
thresholds:
  - errors.rate == 0
  # Each shard runs 25 conversations, the whole run 100: this breaks only on the whole.
  - conversations.count < 60
"#;

/// Four shards of one run, their results files.
fn run_shards(dir: &Path, sim: &Sim) -> Vec<PathBuf> {
    let scenario = dir.join("sharded.yaml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let url = sim.info["instances"][0]["v2_url"].as_str().unwrap();
    let children: Vec<_> = (0..4)
        .map(|i| {
            let out = dir.join(format!("shard{i}"));
            let child = bin()
                .arg("run")
                .arg(&scenario)
                .args(["--users", "8", "--iterations", "100", "--shards", "4"])
                .args(["--run-id", "it-run", "--quiet", "--target", url])
                .arg("--out")
                .arg(&out)
                .env("JOB_COMPLETION_INDEX", i.to_string())
                .env(
                    "HOOKBENCH_CLIENT_ID",
                    sim.info["client_id"].as_str().unwrap(),
                )
                .env(
                    "HOOKBENCH_CLIENT_SECRET",
                    sim.info["client_secret"].as_str().unwrap(),
                )
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (out, child)
        })
        .collect();
    children
        .into_iter()
        .map(|(out, child)| {
            let o = child.wait_with_output().unwrap();
            // A shard answers to the run's own rules: its part passes `conversations < 60`
            // whatever it holds, and the thresholds wait for the merge.
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            out.join("results.json")
        })
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn four_shards_merge_into_the_whole_run() {
    let dir = tmp("four");
    let sim = sim();
    let base = sim.info["base_url"].as_str().unwrap().to_string();
    let before = live_sessions(&base);
    let files = run_shards(&dir, &sim);
    // 100 conversations, each a new user: 100 new sessions, so no user was in two shards.
    assert_eq!(live_sessions(&base) - before, 100);
    let mut union = hist();
    for (i, f) in files.iter().enumerate() {
        let r = json(f);
        assert_eq!(r["run"]["id"], "it-run");
        assert_eq!(r["run"]["shard"]["index"], i);
        assert_eq!(r["run"]["shard"]["count"], 4);
        assert!(r["run"]["scenario_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
        assert_eq!(r["counts"]["conversations"], 25);
        assert!(r["timeseries"][0]["unix"].as_f64().unwrap() > 1.7e9);
        let h = decode_hdr(r["distributions"]["turn"]["hdr"].as_str().unwrap()).unwrap();
        union.add(&h).unwrap();
    }
    // The merge of the files, given as a folder.
    let out = dir.join("merged");
    let merged = bin()
        .arg("merge")
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&merged.stdout);
    // `conversations < 60` breaks on the whole run only: the merge fails with 1.
    assert_eq!(
        merged.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&merged.stderr)
    );
    let m = json(&out.join("results.json"));
    assert_eq!(m["counts"]["conversations"], 100);
    assert_eq!(m["counts"]["turns"], 100);
    let gate = |expr: &str| {
        m["verdict"]["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["expr"] == expr)
            .cloned()
            .unwrap_or_else(|| panic!("no gate {expr}"))
    };
    assert_eq!(gate("conversations.count < 60")["passed"], false);
    assert_eq!(gate("conversations.count < 60")["actual"], "100");
    assert_eq!(gate("errors.rate == 0")["passed"], true);
    assert_eq!(gate("merge: all 4 shards merged")["passed"], true);
    assert_eq!(m["verdict"]["outcome"], "failed");
    assert_eq!(m["run"]["shards"].as_array().unwrap().len(), 4);
    // Percentiles of the merge are those of the union of the shards' histograms.
    let turn = &m["distributions"]["turn"];
    assert_eq!(turn["count"], union.len());
    for (p, key) in [(0.5, "p50"), (0.99, "p99")] {
        let want = union.value_at_quantile(p) as f64 / 1000.0;
        assert_eq!(turn[key].as_f64().unwrap(), want, "{key}");
    }
    let merged_hist = decode_hdr(turn["hdr"].as_str().unwrap()).unwrap();
    assert_eq!(merged_hist, union);
    // The report shows a row per shard; the JUnit file holds the failed gate.
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Shards of run it-run"));
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(junit.contains("conversations.count &lt; 60"), "{junit}");

    // The same merge from a stream of log lines, as `kubectl logs` gives it.
    let mut logs = String::new();
    for f in &files {
        let doc: serde_json::Value = json(f);
        logs.push_str("[pod/x] some progress line\n");
        logs.push_str(&format!(
            "[pod/x] {}\n",
            serde_json::to_string(&doc).unwrap()
        ));
    }
    let mut child = bin()
        .args(["merge", "-", "--out"])
        .arg(dir.join("from-logs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), logs.as_bytes()).unwrap();
    drop(child.stdin.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
    let again = json(&dir.join("from-logs/results.json"));
    assert_eq!(
        again["distributions"]["turn"]["hdr"],
        m["distributions"]["turn"]["hdr"]
    );

    // Refusals: a shard twice, a shard missing, another run.
    let twice = bin()
        .arg("merge")
        .args(&files)
        .arg(&files[1])
        .output()
        .unwrap();
    assert_eq!(twice.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("shard 1 of run `it-run` is given twice")
    );
    let missing = bin().arg("merge").args(&files[..3]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing: 3"));
    let partial = bin()
        .arg("merge")
        .args(&files[..3])
        .arg("--allow-partial")
        .arg("--out")
        .arg(dir.join("partial"))
        .output()
        .unwrap();
    assert_eq!(partial.status.code(), Some(1));
    let p = json(&dir.join("partial/results.json"));
    assert_eq!(p["run"]["missing_shards"], serde_json::json!([3]));
    let mut other = json(&files[3]);
    other["run"]["id"] = "another".into();
    let other_file = dir.join("other.json");
    std::fs::write(&other_file, other.to_string()).unwrap();
    let mixed = bin()
        .arg("merge")
        .args(&files[..3])
        .arg(&other_file)
        .output()
        .unwrap();
    assert_eq!(mixed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&mixed.stderr).contains("belongs to run `another`"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_cannot_be_split_is_refused_by_name() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--users", "3", "--shard", "0/4"],
            "3 users cannot be split over 4 shards",
        ),
        (&["--users", "4", "--shard", "4/4"], "not below the count"),
        (&["--users", "4", "--shards", "4"], "JOB_COMPLETION_INDEX"),
        (
            &["--users", "4", "--start-at", "tomorrow"],
            "not a start time",
        ),
    ];
    for (args, says) in cases {
        let o = bin()
            .args(["run", "scenarios/quickstart.yaml"])
            .args(args)
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn a_shard_started_late_says_so_and_starts_at_once() {
    let dir = tmp("late");
    let o = bin()
        .args([
            "run",
            "scenarios/quickstart.yaml",
            "--iterations",
            "2",
            "--quiet",
        ])
        .args([
            "--start-at",
            "2026-01-01T00:00:00Z",
            "--results-stdout",
            "--out",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("the start time passed"));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "load");
    assert!(!last["run"]["id"].as_str().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

fn kube(extra: &[&str]) -> std::process::Output {
    bin()
        .args([
            "kube",
            "scenarios/transfer.yaml",
            "--shards",
            "2",
            "--image",
        ])
        .args(["registry.example/hookbench:0.1", "--namespace", "load"])
        .args(["--run-id", "cap-1", "--users", "4000", "--duration", "10m"])
        .args(extra)
        .output()
        .unwrap()
}

/// The manifests, with the start time (rendered from the clock) masked.
fn manifests() -> String {
    let o = kube(&[]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout).unwrap();
    let re = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap();
    re.replace_all(&text, "<START>").into_owned()
}

#[test]
fn kube_manifests_are_an_indexed_job_reading_a_secret() {
    let text = manifests();
    insta::assert_snapshot!("kube_transfer", text);
    let docs: Vec<serde_json::Value> = text
        .split("\n---\n")
        .skip(1)
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let job = &docs[1];
    assert_eq!(job["spec"]["completionMode"], "Indexed");
    assert_eq!(job["spec"]["completions"], 2);
    assert_eq!(job["spec"]["parallelism"], 2);
    assert_eq!(job["spec"]["backoffLimit"], 0);
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["restartPolicy"], "Never");
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for want in [
        "--shards",
        "--start-at",
        "--results-stdout",
        "--metrics-listen",
        "--users",
    ] {
        assert!(args.contains(&want), "{args:?}");
    }
    assert_eq!(
        pod["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "hookbench-credentials"
    );
    // Every file the scenario reads is in the ConfigMap, and no credential.
    let data = docs[0]["data"].as_object().unwrap();
    assert!(data.keys().any(|k| k.ends_with("transfer.yaml")));
    let all = text.to_lowercase();
    assert!(
        !all.contains("demo-secret"),
        "a credential went into the manifests"
    );
    // A secret written in the scenario is refused.
    let dir = tmp("kube-secret");
    let s = dir.join("s.yaml");
    std::fs::write(
        &s,
        "auth: { client_id: a, client_secret: plain-text }\nsteps:\n  - send: hi\n",
    )
    .unwrap();
    let o = bin()
        .arg("kube")
        .arg(&s)
        .args(["--shards", "2", "--users", "2", "--image", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("client secret is written in the scenario"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The manifests validate against the Kubernetes schemas, offline, with the
/// `kubernetes-validate` package (`.ci/run` installs it; skipped elsewhere without it).
#[test]
fn kube_manifests_validate_against_the_kubernetes_schemas() {
    let has = Command::new("kubernetes-validate")
        .arg("--version")
        .output()
        .is_ok();
    if !has {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install kubernetes-validate (.ci/run does)"
        );
        eprintln!("kubernetes-validate not installed: skipping");
        return;
    }
    let o = kube(&[]);
    let dir = tmp("kube-validate");
    let f = dir.join("manifests.yaml");
    std::fs::write(&f, &o.stdout).unwrap();
    let v = Command::new("kubernetes-validate")
        .args(["--strict", "--kubernetes-version", "1.30"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A shard against a target that is not there does not say it ran its part: every turn failed
/// in transport, so it exits 3 and says why, and a shard that ran says SHARD DONE, not PASSED.
#[test]
fn a_shard_against_a_missing_target_fails_and_a_good_one_is_done_not_passed() {
    let dir = tmp("down");
    let down = bin()
        .args([
            "run",
            "scenarios/quickstart.yaml",
            "--users",
            "2",
            "--iterations",
            "2",
        ])
        .args([
            "--shard",
            "0/2",
            "--run-id",
            "down",
            "--quiet",
            "--no-color",
        ])
        .args(["--target", "http://127.0.0.1:9/chatbot/v2/webhook/st-x"])
        .args(["--client-id", "a", "--client-secret", "b", "--out"])
        .arg(dir.join("down"))
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(3));
    let out = String::from_utf8_lossy(&down.stdout);
    assert!(
        out.contains("FAILED") && out.contains("shard: the target answered"),
        "{out}"
    );
    let r = json(&dir.join("down/results.json"));
    assert_eq!(r["verdict"]["outcome"], "unreachable");
    let good = bin()
        .args([
            "run",
            "scenarios/quickstart.yaml",
            "--users",
            "2",
            "--iterations",
            "2",
        ])
        .args([
            "--shard",
            "0/2",
            "--run-id",
            "up",
            "--quiet",
            "--no-color",
            "--out",
        ])
        .arg(dir.join("up"))
        .output()
        .unwrap();
    assert_eq!(good.status.code(), Some(0));
    let out = String::from_utf8_lossy(&good.stdout);
    assert!(
        out.contains("SHARD DONE") && !out.contains("PASSED"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
