//! Counters the simulator exposes at `GET /metrics` (Prometheus text format). Plain atomics:
//! no lock on the request path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The routes counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// V1 message.
    V1Message,
    /// V2 message.
    V2Message,
    /// V2 poll.
    Poll,
    /// Upload token.
    UploadToken,
    /// Upload chunk.
    UploadChunk,
    /// Upload merge.
    UploadMerge,
    /// One-shot upload.
    UploadFile,
    /// `/healthz`.
    Health,
    /// `/metrics`.
    Metrics,
    /// Anything else (404s, preflights).
    Other,
}

const ROUTES: [(Route, &str); 10] = [
    (Route::V1Message, "v1_message"),
    (Route::V2Message, "v2_message"),
    (Route::Poll, "v2_poll"),
    (Route::UploadToken, "upload_token"),
    (Route::UploadChunk, "upload_chunk"),
    (Route::UploadMerge, "upload_merge"),
    (Route::UploadFile, "upload_file"),
    (Route::Health, "healthz"),
    (Route::Metrics, "metrics"),
    (Route::Other, "other"),
];

const STATUSES: [u16; 12] = [200, 204, 400, 401, 404, 413, 429, 500, 502, 503, 504, 0];

/// Simulator counters.
#[derive(Debug)]
pub struct Metrics {
    requests: Vec<AtomicU64>,
    /// Async messages POSTed successfully.
    pub async_deliveries: AtomicU64,
    /// Async POST retries.
    pub async_retries: AtomicU64,
    /// Async messages given up on after every retry.
    pub async_failures: AtomicU64,
    /// Async messages with no POST_URL to go to.
    pub async_undeliverable: AtomicU64,
    /// Connections closed by fault injection.
    pub dropped_connections: AtomicU64,
    /// Sync requests answered 504.
    pub sync_timeouts: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: (0..ROUTES.len() * STATUSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            async_deliveries: AtomicU64::new(0),
            async_retries: AtomicU64::new(0),
            async_failures: AtomicU64::new(0),
            async_undeliverable: AtomicU64::new(0),
            dropped_connections: AtomicU64::new(0),
            sync_timeouts: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn count(&self, route: Route, status: u16) {
        let r = ROUTES
            .iter()
            .position(|(x, _)| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[r * STATUSES.len() + s].fetch_add(1, Relaxed);
    }

    /// Requests counted for a route and status (0 = any other status).
    pub fn requests(&self, route: Route, status: u16) -> u64 {
        let r = ROUTES
            .iter()
            .position(|(x, _)| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len() - 1);
        self.requests[r * STATUSES.len() + s].load(Relaxed)
    }

    /// The Prometheus exposition.
    pub fn render(&self, active_sessions: usize, pending_polls: usize) -> String {
        use crate::common::prometheus::{Exposition, Kind};
        let mut requests = Vec::new();
        for (ri, (_, route)) in ROUTES.iter().enumerate() {
            for (si, status) in STATUSES.iter().enumerate() {
                let v = self.requests[ri * STATUSES.len() + si].load(Relaxed);
                if v > 0 {
                    let status = if *status == 0 {
                        "other".to_string()
                    } else {
                        status.to_string()
                    };
                    requests.push((*route, status, v as f64));
                }
            }
        }
        let labels: Vec<[(&str, &str); 2]> = requests
            .iter()
            .map(|(route, status, _)| [("route", *route), ("status", status.as_str())])
            .collect();
        let mut e = Exposition::new();
        e.family(
            "hookbench_sim_requests_total",
            Kind::Counter,
            "Requests answered, by route and status.",
            labels
                .iter()
                .zip(&requests)
                .map(|(l, (_, _, v))| (&l[..], *v)),
        );
        let n = |a: &AtomicU64| a.load(Relaxed) as f64;
        for (name, kind, help, v) in [
            (
                "hookbench_sim_active_sessions",
                Kind::Gauge,
                "Live conversation sessions.",
                active_sessions as f64,
            ),
            (
                "hookbench_sim_pending_polls",
                Kind::Gauge,
                "Poll batches not yet delivered.",
                pending_polls as f64,
            ),
            (
                "hookbench_sim_async_deliveries_total",
                Kind::Counter,
                "Async messages POSTed to POST_URL.",
                n(&self.async_deliveries),
            ),
            (
                "hookbench_sim_async_retries_total",
                Kind::Counter,
                "Async POST retries.",
                n(&self.async_retries),
            ),
            (
                "hookbench_sim_async_failures_total",
                Kind::Counter,
                "Async messages dropped after every retry.",
                n(&self.async_failures),
            ),
            (
                "hookbench_sim_async_undeliverable_total",
                Kind::Counter,
                "Async messages with no POST_URL.",
                n(&self.async_undeliverable),
            ),
            (
                "hookbench_sim_dropped_connections_total",
                Kind::Counter,
                "Connections closed by fault injection.",
                n(&self.dropped_connections),
            ),
            (
                "hookbench_sim_sync_timeouts_total",
                Kind::Counter,
                "Sync requests answered 504.",
                n(&self.sync_timeouts),
            ),
        ] {
            e.single(name, kind, help, v);
        }
        e.finish()
    }
}
