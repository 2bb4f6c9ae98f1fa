//! The simulator as a browser sees it: a page on another origin (another port of loopback)
//! calls it with `fetch` and an `Authorization` header, as the web SDK does in webhook mode:
//! `GET /api/botmeta/{botId}` for the name and icon, then messages with the SDK's extra fields.
//! The pre-flight names `authorization` and is cached: one per URL, however many requests.

use std::io::{Read, Write};
use std::process::Command;

mod common;

use common::{bin, SimProcess as Sim};

fn sim(record: &std::path::Path) -> Sim {
    Sim::start(&[std::ffi::OsStr::new("--record"), record.as_os_str()])
}

fn token(sim: &Sim, user: &str) -> String {
    let o = bin()
        .args(["token", "--user", user, "--client-id"])
        .arg(sim.info["client_id"].as_str().unwrap())
        .arg("--client-secret")
        .arg(sim.info["client_secret"].as_str().unwrap())
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Serves `page` to every request on a port of its own (the page's origin).
fn serve_page(page: String) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(20) {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                page.len(),
                page
            );
        }
    });
    port
}

#[test]
fn the_preflight_names_authorization_and_is_answered_for_caching() {
    let dir = std::env::temp_dir().join(format!("hookbench-browser-pf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = sim(&dir.join("record.jsonl"));
    let url = sim.info["instances"][0]["v2_url"].as_str().unwrap();
    let r = reqwest::blocking::Client::new()
        .request(reqwest::Method::OPTIONS, url)
        .header("origin", "http://127.0.0.1:9")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let h = |n: &str| {
        r.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_lowercase())
            .unwrap_or_default()
    };
    assert!(h("access-control-allow-headers").contains("authorization"));
    assert!(!h("access-control-allow-headers").contains('*'));
    assert!(h("access-control-allow-methods").contains("post"));
    assert_eq!(h("access-control-allow-origin"), "*");
    assert!(h("access-control-max-age").parse::<u64>().unwrap() >= 600);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn botmeta_answers_the_name_and_an_icon_it_serves() {
    let dir = std::env::temp_dir().join(format!("hookbench-browser-meta-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sim = sim(&dir.join("record.jsonl"));
    let base = sim.info["base_url"].as_str().unwrap();
    let bot = sim.info["bot_id"].as_str().unwrap();
    let client = reqwest::blocking::Client::new();
    let meta_url = format!("{base}/api/botmeta/{bot}");
    let unauth = client.get(&meta_url).send().unwrap();
    assert_eq!(unauth.status(), 401);
    let meta: serde_json::Value = client
        .get(&meta_url)
        .header("authorization", format!("bearer {}", token(&sim, "u1")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["botId"], bot);
    assert!(!meta["name"].as_str().unwrap().is_empty());
    let icon = client.get(meta["icon"].as_str().unwrap()).send().unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    assert!(icon.text().unwrap().starts_with("<svg"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_browser_page_talks_to_the_simulator_with_one_preflight_per_url() {
    let Some(browser) = common::chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (.ci/run does)"
        );
        eprintln!("chromium not installed: skipping the browser check outside CI");
        return;
    };
    let dir = std::env::temp_dir().join(format!("hookbench-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("record.jsonl");
    let sim = sim(&record);
    let base = sim.info["base_url"].as_str().unwrap();
    let bot = sim.info["bot_id"].as_str().unwrap();
    let msg = sim.info["instances"][0]["v2_url"].as_str().unwrap();
    let meta = format!("{base}/api/botmeta/{bot}");
    let page = format!(
        r#"<!doctype html><html><body><pre id="out">pending</pre><script>
(async () => {{
  const auth = {{ Authorization: 'bearer {token}' }};
  const out = [];
  try {{
    let r = await fetch('{meta}', {{ headers: auth }});
    const meta = await r.json();
    out.push('meta ' + r.status + ' ' + meta.name);
    for (let i = 0; i < 3; i++) {{
      r = await fetch('{msg}', {{
        method: 'POST',
        headers: Object.assign({{ 'Content-Type': 'application/json' }}, auth),
        body: JSON.stringify({{ message: {{ type: 'text', val: 'balance' }},
          from: {{ id: 'web-user' }}, to: {{ id: 'Kore.ai' }}, token: {{}} }}),
      }});
      const body = await r.json();
      out.push('message ' + r.status + ' ' + (body.data ? body.data.length : 0));
    }}
    r = await fetch('{meta}', {{ headers: auth }});
    out.push('meta again ' + r.status);
    out.push(await new Promise((done) => {{
      const img = new Image();
      img.onload = () => done('icon ' + img.naturalWidth);
      img.onerror = () => done('icon failed');
      img.src = meta.icon;
    }}));
  }} catch (e) {{ out.push('error ' + e); }}
  document.getElementById('out').textContent = out.join('|');
}})();
</script></body></html>"#,
        token = token(&sim, "web-user"),
    );
    let port = serve_page(page);
    let profile = dir.join("profile");
    let dom = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=20000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    let out = dom
        .split("<pre id=\"out\">")
        .nth(1)
        .and_then(|s| s.split("</pre>").next())
        .unwrap_or_default()
        .to_string();
    let parts: Vec<&str> = out.split('|').collect();
    assert!(parts[0].starts_with("meta 200 "), "{out}");
    for p in &parts[1..4] {
        assert!(p.starts_with("message 200 ") && !p.ends_with(" 0"), "{out}");
    }
    assert_eq!(parts[4], "meta again 200", "{out}");
    assert_eq!(parts[5], "icon 64", "{out}");
    // What the simulator saw: one pre-flight per URL, every request answered.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&record)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |method: &str, suffix: &str| {
        lines
            .iter()
            .filter(|l| l["method"] == method && l["path"].as_str().unwrap().ends_with(suffix))
            .count()
    };
    let msg_path = msg.split("127.0.0.1").nth(1).unwrap();
    let msg_path = &msg_path[msg_path.find('/').unwrap()..];
    let meta_path = format!("/api/botmeta/{bot}");
    assert_eq!(count("POST", msg_path), 3, "{lines:#?}");
    assert_eq!(
        count("OPTIONS", msg_path),
        1,
        "pre-flights repeat: {lines:#?}"
    );
    assert_eq!(count("GET", &meta_path), 2);
    assert_eq!(
        count("OPTIONS", &meta_path),
        1,
        "pre-flights repeat: {lines:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
