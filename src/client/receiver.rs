//! The built-in POST_URL receiver for async channels: an axum server that accepts deliveries
//! and hands each to the simulated user it is addressed to (`to`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

/// One POST the platform made.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When it arrived.
    pub at: Instant,
    /// The body.
    pub body: Value,
}

#[derive(Debug, Default)]
struct Inner {
    users: Mutex<HashMap<String, mpsc::UnboundedSender<Delivery>>>,
    unmatched: AtomicU64,
    received: AtomicU64,
}

/// A running receiver.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The URL to set as POST_URL when the receiver is reachable directly.
    pub url: String,
    /// Bound address.
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

/// Deliveries for one user; unsubscribes when dropped.
#[derive(Debug)]
pub struct Subscription {
    user: String,
    rx: mpsc::UnboundedReceiver<Delivery>,
    inner: Arc<Inner>,
}

impl Subscription {
    /// The next delivery, waiting at most until `deadline`.
    pub async fn next_until(&mut self, deadline: tokio::time::Instant) -> Option<Delivery> {
        tokio::time::timeout_at(deadline, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Deliveries already waiting (e.g. late ones from an earlier turn).
    pub fn drain(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Ok(d) = self.rx.try_recv() {
            out.push(d);
        }
        out
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(mut m) = self.inner.users.lock() {
            m.remove(&self.user);
        }
    }
}

/// Path deliveries are accepted at when no public URL says otherwise.
pub const DEFAULT_PATH: &str = "/hookbench/async";

impl Receiver {
    /// Listens on `addr`, accepting POSTs at the path of `public_url` (or [`DEFAULT_PATH`]).
    pub async fn start(addr: SocketAddr, public_url: Option<&str>) -> std::io::Result<Receiver> {
        let path = public_url
            .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
            .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
            .filter(|p| p.len() > 1)
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route(&path, post(accept))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let url = public_url
            .map(str::to_string)
            .unwrap_or_else(|| format!("http://{addr}{path}"));
        Ok(Receiver {
            url,
            addr,
            inner,
            task: Arc::new(task),
        })
    }

    /// Starts routing deliveries addressed to `user` to the returned subscription.
    pub fn subscribe(&self, user: &str) -> Subscription {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut m) = self.inner.users.lock() {
            m.insert(user.to_string(), tx);
        }
        Subscription {
            user: user.to_string(),
            rx,
            inner: self.inner.clone(),
        }
    }

    /// Deliveries for nobody we know.
    pub fn unmatched(&self) -> u64 {
        self.inner.unmatched.load(Relaxed)
    }

    /// All deliveries received.
    pub fn received(&self) -> u64 {
        self.inner.received.load(Relaxed)
    }

    /// Stops listening.
    pub fn stop(&self) {
        self.task.abort();
    }
}

async fn accept(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    inner.received.fetch_add(1, Relaxed);
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        inner.unmatched.fetch_add(1, Relaxed);
        return StatusCode::BAD_REQUEST;
    };
    let to = body.get("to").and_then(Value::as_str).map(str::to_string);
    let sender = to.and_then(|t| inner.users.lock().ok().and_then(|m| m.get(&t).cloned()));
    match sender {
        Some(tx) if tx.send(Delivery { at, body }).is_ok() => {}
        _ => {
            inner.unmatched.fetch_add(1, Relaxed);
        }
    }
    StatusCode::OK
}
