//! The accept loop: hyper connections (HTTP/1.1 and HTTP/2) over the axum router, with graceful
//! shutdown and the ability to drop a connection without answering (fault injection), which
//! axum's own `serve` cannot do.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::server::DropConnection;
use super::state::SimState;

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open connections finish
/// for up to `grace`. With `hot`, messages and polls are answered by [`super::hot`] without
/// the router (for a router with no extra layers: an observer or a recorder sees everything). An HTTP/1.1 connection that has not sent a whole request head within
/// `idle` (when new, or between requests on keep-alive) is closed; HTTP/2 connections are
/// pinged as often and closed when the ping goes unanswered.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    hot: Option<Arc<SimState>>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    idle: Duration,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(idle)
        .keep_alive_timeout(Duration::from_secs(20));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors or similar: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let hot = hot.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let router = router.clone();
            let hot = hot.clone();
            async move {
                let req = match &hot {
                    Some(state) => super::hot::answer(state, req).await,
                    None => Err(req),
                };
                let resp = match req {
                    Ok(answered) => answered,
                    Err(req) => match router.oneshot(req.map(axum::body::Body::new)).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    },
                };
                if resp.extensions().get::<DropConnection>().is_some() {
                    Err(Dropped)
                } else {
                    Ok::<_, Dropped>(resp)
                }
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // The protocol is detected from the first bytes, before HTTP/1's header timer
            // runs: a connection that sends nothing is closed after `idle` here.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(idle, stream.peek(&mut first)).await,
                Ok(Ok(1..))
            ) {
                return;
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let _ = watcher.watch(conn.into_owned()).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; closing them");
    }
}
