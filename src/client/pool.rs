//! An HTTP/1.1 keep-alive pool on hyper's connection API: the load engine's hot path.
//!
//! A request takes an idle connection for its host (the most recently used first, so a
//! quiet run keeps few connections warm) or opens one, and gives it back once the whole answer
//! is read. A connection found closed is dropped; a request that a reused connection could
//! not send goes out on another one. Nothing else sits between a user and the socket: no
//! URL re-parsing into pool keys, no connect race.
//!
//! Open connections are capped (by default to what the process's file-descriptor limit
//! allows, see [`default_limit`]): at the cap a request waits for a connection to come back
//! instead of failing to open one, and the wait is counted so the load engine can say the
//! generator, not the target, held the users back.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::error::{classify_hyper, classify_text, TransportError, TransportKind};

/// Connections idle longer than this are not reused (servers close idle keep-alive
/// connections after a while; 60 s is below the common defaults).
const IDLE_LIMIT: Duration = Duration::from_secs(60);

type Sender = SendRequest<Full<Bytes>>;

struct Idle {
    tx: Sender,
    since: Instant,
}

/// Idle connections by host (`host:port`); runs rarely talk to more than one.
pub struct H1Pool {
    idle: Mutex<Vec<(String, Vec<Idle>)>>,
    shared: Arc<Shared>,
    limit: usize,
    waits: AtomicU64,
}

/// What the connections' own tasks update when they end.
#[derive(Default)]
struct Shared {
    open: AtomicUsize,
    /// A connection came back to the pool or closed.
    freed: Notify,
}

impl Default for H1Pool {
    fn default() -> Self {
        Self::with_limit(default_limit())
    }
}

/// Open connections a pool allows by default: half of the file-descriptor limit left after
/// 256 for everything else (half, because against the embedded simulator both ends of each
/// connection live in this process); 4,096 when the limit cannot be read.
pub fn default_limit() -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<usize>().ok())
        });
    match soft {
        Some(n) => (n.saturating_sub(256) / 2).max(16),
        None => 4096,
    }
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self
            .idle
            .lock()
            .map(|g| g.iter().map(|(_, v)| v.len()).sum::<usize>())
            .unwrap_or(0);
        f.debug_struct("H1Pool")
            .field("idle", &idle)
            .field("open", &self.shared.open.load(Relaxed))
            .field("limit", &self.limit)
            .finish()
    }
}

/// A connection lent to one request; give it back with [`H1Pool::put`] once the body is read.
#[derive(Debug)]
pub struct Lent {
    tx: Sender,
}

impl H1Pool {
    /// A pool that keeps at most `limit` connections open.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            idle: Mutex::default(),
            shared: Arc::default(),
            limit: limit.max(1),
            waits: AtomicU64::new(0),
        }
    }

    /// Requests that waited for a connection because the pool was at its limit.
    pub fn waits(&self) -> u64 {
        self.waits.load(Relaxed)
    }

    /// The cap on open connections.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Closes one idle connection to a host other than `host`, if there is one. Its slot
    /// frees when its task sees it closed.
    fn evict_other(&self, host: &str) {
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let _closed = g
            .iter_mut()
            .filter(|(h, _)| h != host)
            .find_map(|(_, list)| list.pop());
    }

    fn take(&self, host: &str) -> Option<Sender> {
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let (_, list) = g.iter_mut().find(|(h, _)| h == host)?;
        while let Some(i) = list.pop() {
            if !i.tx.is_closed() && i.since.elapsed() < IDLE_LIMIT {
                return Some(i.tx);
            }
        }
        None
    }

    /// Gives a connection back after its answer was read whole.
    pub fn put(&self, host: &str, lent: Lent) {
        if lent.tx.is_closed() {
            return;
        }
        let idle = Idle {
            tx: lent.tx,
            since: Instant::now(),
        };
        {
            let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            match g.iter_mut().find(|(h, _)| h == host) {
                Some((_, list)) => list.push(idle),
                None => g.push((host.to_string(), vec![idle])),
            }
        }
        self.shared.freed.notify_one();
    }

    /// An idle connection, a new one, or (at the limit) the next one freed.
    async fn checkout(&self, host: &str) -> Result<(Sender, bool), TransportError> {
        let mut waited = false;
        loop {
            if let Some(tx) = self.take(host) {
                return Ok((tx, true));
            }
            if self.shared.open.fetch_add(1, Relaxed) < self.limit {
                return match Box::pin(connect(host, self.shared.clone())).await {
                    Ok(tx) => Ok((tx, false)),
                    Err(e) => {
                        self.shared.open.fetch_sub(1, Relaxed);
                        self.shared.freed.notify_one();
                        Err(e)
                    }
                };
            }
            self.shared.open.fetch_sub(1, Relaxed);
            // Slots held by idle connections to other hosts are given up first (one at a
            // time: the slot frees when the closed connection's task ends).
            self.evict_other(host);
            // At the limit: register for the next freed connection, then look once more so
            // one freed in between is not missed.
            let freed = self.shared.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(tx) = self.take(host) {
                return Ok((tx, true));
            }
            if self.shared.open.load(Relaxed) < self.limit {
                continue;
            }
            if !waited {
                waited = true;
                self.waits.fetch_add(1, Relaxed);
            }
            freed.await;
        }
    }

    /// Sends `req` to `host` (`host:port`) on an idle connection or a new one.
    pub async fn send(
        &self,
        host: &str,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<Incoming>, Lent), TransportError> {
        loop {
            let (mut tx, reused) = self.checkout(host).await?;
            if tx.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(TransportError {
                    kind: TransportKind::Reset,
                    message: format!("connection to {host} closed before the request"),
                });
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok((resp, Lent { tx })),
                Err(mut e) => match e.take_message() {
                    // Never written: a reused connection died while idle; try another.
                    Some(r) if reused => req = r,
                    _ => return Err(classify_hyper(e.error(), false)),
                },
            }
        }
    }
}

/// Opens a connection counted in `shared.open` (the caller counted it; its task uncounts it
/// when the connection ends).
async fn connect(host: &str, shared: Arc<Shared>) -> Result<Sender, TransportError> {
    let stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| connect_error(host, &e))?;
    let _ = stream.set_nodelay(true);
    let (tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| classify_hyper(&e, true))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("connection ended: {e}");
        }
        shared.open.fetch_sub(1, Relaxed);
        shared.freed.notify_one();
    });
    Ok(tx)
}

fn connect_error(host: &str, e: &std::io::Error) -> TransportError {
    use std::io::ErrorKind as K;
    let kind = match e.kind() {
        K::ConnectionRefused => TransportKind::Refused,
        K::TimedOut => TransportKind::TimedOut,
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => TransportKind::Reset,
        _ => classify_text(&e.to_string(), true).kind,
    };
    TransportError {
        kind,
        message: format!("cannot connect to {host}: {e}"),
    }
}
