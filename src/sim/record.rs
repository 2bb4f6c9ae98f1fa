//! `--record FILE`: every inbound request as one JSON line, token redacted, for certifying
//! clients later. Lines are written by a thread of their own so the server never waits on disk.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Map, Value};

/// Sends lines to the writer thread.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<String>,
}

impl Recorder {
    /// Creates (truncates) the file and starts the writer.
    pub fn create(path: &Path) -> std::io::Result<Recorder> {
        let file = std::fs::File::create(path)?;
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("hookbench-record".into())
            .spawn(move || {
                let mut w = std::io::BufWriter::new(file);
                while let Ok(line) = rx.recv() {
                    let _ = w.write_all(line.as_bytes());
                    let _ = w.write_all(b"\n");
                    // Flush when the queue is drained, so a reader sees whole lines promptly.
                    if let Ok(more) = rx.try_recv() {
                        let _ = w.write_all(more.as_bytes());
                        let _ = w.write_all(b"\n");
                    }
                    let _ = w.flush();
                }
            })?;
        Ok(Recorder { tx })
    }
}

/// Keeps the scheme, hides the credential: `bearer <redacted>`.
pub fn redact_authorization(value: &str) -> String {
    match value.trim().split_once(' ') {
        Some((scheme, _)) => format!("{scheme} <redacted>"),
        None => "<redacted>".to_string(),
    }
}

/// Middleware: records the request (and the status it got) as one JSON line.
pub async fn record(State(rec): State<Recorder>, req: Request, next: Next) -> Response {
    let time = crate::protocol::ids::created_on_now();
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, 64 * 1024 * 1024).await.unwrap_or_default();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        let v = value.to_str().unwrap_or("<binary>");
        let v = if name == http::header::AUTHORIZATION {
            redact_authorization(v)
        } else {
            v.to_string()
        };
        headers.insert(name.as_str().to_string(), Value::String(v));
    }
    let body_json = if bytes.is_empty() {
        Value::Null
    } else if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        v
    } else if let Ok(s) = std::str::from_utf8(&bytes) {
        Value::String(s.to_string())
    } else {
        json!({ "base64": base64::engine::general_purpose::STANDARD.encode(&bytes) })
    };
    let method = parts.method.to_string();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let line = json!({
        "time": time, "method": method, "path": path, "headers": headers,
        "body": body_json, "status": response.status().as_u16(),
    });
    let _ = rec.tx.send(line.to_string());
    response
}
