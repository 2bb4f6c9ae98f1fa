//! A hook that sees every request and async delivery of a simulator and may answer a request
//! itself: certification mode records a client this way and injects the conditions of its
//! plan (a 401, a 429, …) without the simulator knowing about plans.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// A request as an observer sees it.
#[derive(Debug)]
pub struct Seen<'a> {
    /// The method.
    pub method: &'a Method,
    /// The path.
    pub path: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The whole body.
    pub body: &'a [u8],
    /// When it arrived.
    pub at: Instant,
}

/// Sees a simulator's traffic.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// A request arrived; returns its number and, to answer instead of the simulator, a
    /// response.
    fn request(&self, seen: &Seen<'_>) -> (u64, Option<Response>);
    /// The answer to request `id` (the simulator's or the observer's own).
    fn answered(&self, id: u64, status: u16, body: &[u8]);
    /// An async delivery to POST_URL: its body, the receiver's status (none when it could not
    /// be reached) and how long the receiver took.
    fn delivered(&self, body: &[u8], status: Option<u16>, elapsed: Duration);
}

/// The most of a request or response body an observer is shown (uploads included).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Middleware: shows the request to the observer, lets it answer, and shows it the answer.
pub async fn observe(State(o): State<Arc<dyn Observer>>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let (id, answer) = o.request(&Seen {
        method: &parts.method,
        path: parts.uri.path(),
        headers: &parts.headers,
        body: &bytes,
        at,
    });
    let response = match answer {
        Some(r) => r,
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    let (parts, body) = response.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .unwrap_or_default();
    o.answered(id, parts.status.as_u16(), &bytes);
    Response::from_parts(parts, Body::from(bytes))
}
