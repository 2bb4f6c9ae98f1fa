//! Shared by the integration tests: a simulator process on a free loopback port, and HTML
//! rendered in a browser. Not every test binary uses every helper.
#![allow(dead_code)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The hookbench binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hookbench"))
}

/// `hookbench sim` in its own process on port 0, with its `--print-config json` line; stopped
/// when dropped.
pub struct SimProcess {
    child: Child,
    /// What the simulator printed: base_url, bot_id, client_id, client_secret, instances, apps.
    pub info: serde_json::Value,
}

impl SimProcess {
    /// Starts it with `extra` arguments (`--record FILE`, `--bot FILE`, …).
    pub fn start(extra: &[&std::ffi::OsStr]) -> SimProcess {
        let mut child = bin()
            .args([
                "sim",
                "--listen",
                "127.0.0.1:0",
                "--print-config",
                "json",
                "--log",
                "error",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the simulator starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("the simulator prints its configuration");
        SimProcess {
            child,
            info: serde_json::from_str(&line).expect("JSON configuration"),
        }
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Chromium, when installed.
pub fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// The DOM of `page` after headless Chromium ran it, and Chromium's log; `None` without a
/// Chromium (CI installs one, so there it must be found).
pub fn render_dom(page: &Path, profile: &Path) -> Option<(String, String)> {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium (.ci/run does)"
        );
        eprintln!("chromium not installed: skipping the browser check outside CI");
        return None;
    };
    let dom = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    Some((
        String::from_utf8_lossy(&dom.stdout).into_owned(),
        String::from_utf8_lossy(&dom.stderr).into_owned(),
    ))
}
