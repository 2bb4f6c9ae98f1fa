//! An HTTP/1.1 keep-alive pool on hyper's connection API: the load engine's hot path.
//!
//! A request takes an idle connection for its host (the most recently used first, so a
//! quiet run keeps few connections warm) or opens one, and gives it back once the whole answer
//! is read. A connection found closed is dropped; a request that a reused connection could
//! not send goes out on another one. Nothing else sits between a user and the socket: no
//! URL re-parsing into pool keys, no connect race, no waiter queue.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use super::http::{classify_text, TransportError, TransportKind};

/// Connections idle longer than this are not reused (servers close idle keep-alive
/// connections after a while; 60 s is below the common defaults).
const IDLE_LIMIT: Duration = Duration::from_secs(60);

type Sender = SendRequest<Full<Bytes>>;

struct Idle {
    tx: Sender,
    since: Instant,
}

/// Idle connections by host (`host:port`); runs rarely talk to more than one.
#[derive(Default)]
pub struct H1Pool {
    idle: Mutex<Vec<(String, Vec<Idle>)>>,
}

impl std::fmt::Debug for H1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self
            .idle
            .lock()
            .map(|g| g.iter().map(|(_, v)| v.len()).sum::<usize>())
            .unwrap_or(0);
        f.debug_struct("H1Pool").field("idle", &idle).finish()
    }
}

/// A connection lent to one request; give it back with [`H1Pool::put`] once the body is read.
#[derive(Debug)]
pub struct Lent {
    tx: Sender,
}

impl H1Pool {
    /// Idle connections to `host` (for tests and diagnostics).
    pub fn idle_count(&self, host: &str) -> usize {
        self.idle
            .lock()
            .map(|g| {
                g.iter()
                    .find(|(h, _)| h == host)
                    .map_or(0, |(_, v)| v.len())
            })
            .unwrap_or(0)
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
        let mut g = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        match g.iter_mut().find(|(h, _)| h == host) {
            Some((_, list)) => list.push(idle),
            None => g.push((host.to_string(), vec![idle])),
        }
    }

    /// Sends `req` to `host` (`host:port`) on an idle connection or a new one.
    pub async fn send(
        &self,
        host: &str,
        mut req: http::Request<Full<Bytes>>,
    ) -> Result<(http::Response<Incoming>, Lent), TransportError> {
        loop {
            let (mut tx, reused) = match self.take(host) {
                Some(tx) => (tx, true),
                None => (connect(host).await?, false),
            };
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

async fn connect(host: &str) -> Result<Sender, TransportError> {
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

/// Classifies a hyper error (with its sources).
pub fn classify_hyper(e: &hyper::Error, connect: bool) -> TransportError {
    let mut t = classify_text(&super::http::chain(e), connect);
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        t.kind = TransportKind::Reset;
    } else if e.is_timeout() {
        t.kind = TransportKind::TimedOut;
    }
    t
}
