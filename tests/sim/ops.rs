//! Operations: health, metrics, CORS, recording, graceful shutdown, and the `hookbench sim`
//! binary with `--print-config json`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use hookbench::protocol::Version;
use hookbench::sim::SimConfig;
use serde_json::Value;

use crate::common::{localhost, Harness};

#[tokio::test]
async fn healthz_and_metrics() {
    let h = Harness::demo().await;
    let base = h.sim.base_url();
    let r = h.http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    h.v2_text("default", "m", "transfer").await;
    h.v2_text("default", "m", "5").await;
    h.v2_text("default", "m", "savings").await;
    h.post_with(&h.url(Version::V2, "default"), None, "{}".into())
        .await;
    let text = h
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("hookbench_sim_requests_total{route=\"v2_message\",status=\"200\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("hookbench_sim_requests_total{route=\"v2_message\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(text.contains("hookbench_sim_active_sessions 1"), "{text}");
    assert!(text.contains("hookbench_sim_pending_polls 1"), "{text}");
    assert!(text.contains("# TYPE hookbench_sim_async_deliveries_total counter"));
}

#[tokio::test]
async fn cors_preflight_and_headers() {
    let h = Harness::demo().await;
    let url = h.url(Version::V2, "default");
    let r = h
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let r = h
        .http
        .post(&url)
        .header("origin", "https://shop.example")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn record_writes_one_redacted_line_per_request() {
    let dir = std::env::temp_dir().join(format!("hookbench-record-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("requests.jsonl");
    let mut config = SimConfig::demo();
    config.record = Some(path.clone());
    let h = Harness::with(config).await;
    let token = h.token("rec");
    h.v2_text("default", "rec", "balance").await;
    h.v1_text("default", "rec", "balance").await;
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(lines.len(), 2);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["method"], "POST");
    assert!(first["path"]
        .as_str()
        .unwrap()
        .starts_with("/chatbot/v2/webhook/"));
    assert_eq!(first["headers"]["authorization"], "bearer <redacted>");
    assert_eq!(first["body"]["message"]["val"], "balance");
    assert_eq!(first["status"], 200);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    let all = std::fs::read_to_string(&path).unwrap();
    assert!(!all.contains(&token));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let h = Harness::demo().await;
    h.v2_text("ivrInst-nopoll", "g", "transfer").await;
    h.v2_text("ivrInst-nopoll", "g", "1").await;
    let url = h.url(Version::V2, "ivrInst-nopoll");
    let token = h.token("g");
    let http = h.http.clone();
    let inflight = tokio::spawn(async move {
        http.post(url)
            .header("authorization", format!("bearer {token}"))
            .body(r#"{"message":{"type":"text","val":"savings"},"from":{"id":"g"}}"#)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let addr = h.sim.addr;
    h.sim.shutdown().await;
    assert_eq!(inflight.await.unwrap().unwrap(), 200);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn binary_prints_config_and_serves_until_terminated() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookbench"))
        .args([
            "sim",
            "--listen",
            &localhost().to_string(),
            "--print-config",
            "json",
            "--log",
            "warn",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let base = info["base_url"].as_str().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"));
    assert!(info["bot_id"].as_str().unwrap().starts_with("st-"));
    assert!(info["client_id"].as_str().unwrap().starts_with("cs-"));
    assert!(info["client_secret"].is_string());
    let instances = info["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 4);
    assert_eq!(instances[0]["id"], "default");
    assert_eq!(instances[1]["polling"], false);
    assert_eq!(instances[2]["mode"], "async");
    assert!(instances[1]["v2_url"]
        .as_str()
        .unwrap()
        .ends_with("/hookInstance/ivrInst-nopoll"));
    let health = std::net::TcpStream::connect(base.trim_start_matches("http://"));
    assert!(health.is_ok());
    // SIGTERM: graceful stop with exit code 0.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn binary_rejects_an_invalid_bot_file_with_its_location() {
    let dir = std::env::temp_dir().join(format!("hookbench-badbot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.bot.yaml");
    std::fs::write(&file, "bot: {id: st-1}\napps: [{client_id: c, client_secret: s}]\ninstances:\n  - id: a\n    mode: sometimes\nwelcome: hi\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hookbench"))
        .args(["sim", "--bot"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.bot.yaml:5:"), "{err}");
    assert!(err.contains("sometimes"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn idle_and_slowloris_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut bot = hookbench::sim::Bot::demo();
    bot.settings.connection_idle = Duration::from_millis(300);
    let h = Harness::with(SimConfig::new(bot)).await;
    let addr = h.sim.addr;
    // Closed within the idle time (plus a margin), whatever the client does.
    let closed = |mut s: tokio::net::TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        loop {
            match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) if std::time::Instant::now() < deadline => continue,
                _ => return false,
            }
        }
    };
    // A connection that never sends anything.
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A slowloris: a request head that never ends.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A kept-alive connection idle after its answer.
    let mut kept = tokio::net::TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (a, b, c) = tokio::join!(closed(silent), closed(slow), closed(kept));
    assert!(a && b && c, "silent {a}, slowloris {b}, kept-alive {c}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
