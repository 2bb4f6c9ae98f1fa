//! The simulator's HTTP routes: V1 and V2 messages, polling, uploads, health and metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use tower_http::cors::{AllowHeaders, Any, CorsLayer};

use super::bot::{Instance, Mode};
use super::conversation::{Segment, Turn, UserContext};
use super::delivery;
use super::faults::{self, Injected};
use super::metrics::Route;
use super::state::{Owner, PollEntry, SimState};
use super::upload;
use crate::protocol::jwt::JwtError;
use crate::protocol::v2::Input;
use crate::protocol::{ids, v1, v2, ErrorKind, Version};

/// Marks a response whose connection must be closed without answering (fault injection).
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

pub use super::answer::{auth_error, authenticate, error, json, AUTH_ERROR_HEADER};
pub use super::bodies::{v1_body, v2_body, v2_body_at, v2_item};

type Shared = Arc<SimState>;

/// The simulator's router.
pub fn router(state: Shared) -> Router {
    let upload_limit = state.bot.settings.max_file_bytes as usize + 1024 * 1024;
    let api = Router::new()
        .route("/chatbot/hooks/{bot}", post(v1_first))
        .route(
            "/chatbot/hooks/{bot}/hookInstance/{inst}",
            post(v1_instance),
        )
        .route("/chatbot/v2/webhook/{bot}", post(v2_first))
        .route(
            "/chatbot/v2/webhook/{bot}/hookInstance/{inst}",
            post(v2_instance),
        )
        .route("/chatbot/v2/webhook/{bot}/poll/{poll}", get(poll))
        .merge(upload::routes(upload_limit))
        .merge(super::botmeta::routes())
        .merge(super::notify::routes())
        .route(
            "/healthz",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"status":"ok"}"#,
                )
            }),
        )
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state.clone());
    api.layer(middleware::from_fn_with_state(state, count))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::OPTIONS])
                // The headers a pre-flight asks for, named back: `*` does not cover
                // Authorization (Fetch standard), and browsers do not cache such pre-flights.
                .allow_headers(AllowHeaders::mirror_request())
                .max_age(Duration::from_secs(86_400)),
        )
}

async fn count(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let route = match req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some("/chatbot/hooks/{bot}") | Some("/chatbot/hooks/{bot}/hookInstance/{inst}") => {
            Route::V1Message
        }
        Some("/chatbot/v2/webhook/{bot}")
        | Some("/chatbot/v2/webhook/{bot}/hookInstance/{inst}") => Route::V2Message,
        Some("/chatbot/v2/webhook/{bot}/poll/{poll}") => Route::Poll,
        Some(p) if p.ends_with("/token") => Route::UploadToken,
        Some(p) if p.ends_with("/chunk") && req.method() == Method::POST => Route::UploadChunk,
        Some(p) if p.starts_with("/api/attachments/file/") => Route::UploadFile,
        Some(p) if p.starts_with("/api/attachments/") => Route::UploadMerge,
        Some("/healthz") => Route::Health,
        Some("/metrics") => Route::Metrics,
        _ => Route::Other,
    };
    let resp = next.run(req).await;
    counted(&state, route, &resp);
    resp
}

/// Counts an answer on its route, or as a dropped connection.
pub fn counted(state: &SimState, route: Route, resp: &Response) {
    if resp.extensions().get::<DropConnection>().is_some() {
        state
            .metrics
            .dropped_connections
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    } else {
        state.metrics.count(route, resp.status().as_u16());
    }
}

async fn metrics(State(state): State<Shared>) -> Response {
    let body = state
        .metrics
        .render(state.sessions.len(), state.pending_polls());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn not_found(req: Request) -> Response {
    let v = if req.uri().path().contains("/v2/") {
        Version::V2
    } else {
        Version::V1
    };
    error(v, ErrorKind::NotFound)
}

fn dropped() -> Response {
    let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    r.extensions_mut().insert(DropConnection);
    r
}

/// Looks up the instance a message URL names; 404 for an unknown bot or instance.
fn resolve<'a>(state: &'a SimState, bot: &str, inst: Option<&str>) -> Option<(u16, &'a Instance)> {
    if bot != state.bot.id {
        return None;
    }
    let (i, instance) = match inst {
        None => (0, &state.bot.instances[0]),
        Some(id) => state.bot.instance(id)?,
    };
    instance.enabled.then_some((i as u16, instance))
}

async fn v1_first(
    State(s): State<Shared>,
    Path(bot): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_message(body).await;
    message(&s, Version::V1, &bot, None, &headers, body).await
}

async fn v1_instance(
    State(s): State<Shared>,
    Path((bot, inst)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_message(body).await;
    message(&s, Version::V1, &bot, Some(&inst), &headers, body).await
}

async fn v2_first(
    State(s): State<Shared>,
    Path(bot): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_message(body).await;
    message(&s, Version::V2, &bot, None, &headers, body).await
}

async fn v2_instance(
    State(s): State<Shared>,
    Path((bot, inst)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = read_message(body).await;
    message(&s, Version::V2, &bot, Some(&inst), &headers, body).await
}

/// The most a message body may be (the platform publishes no limit; a gap).
const MESSAGE_LIMIT: usize = 2 * 1024 * 1024;
/// How much of an oversized body is still read (and dropped) before answering 413.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Why a message body could not be had.
#[derive(Debug)]
pub enum BodyError {
    /// Over [`MESSAGE_LIMIT`].
    TooLarge,
    /// The client stopped sending mid-body.
    Broken,
}

/// The message body, up to [`MESSAGE_LIMIT`]. A body over it is still read to its end (up
/// to [`DRAIN_LIMIT`], within 10 s) and dropped: a client still sending is not cut off
/// mid-write (a broken pipe before it can read anything) and reads the 413 envelope.
pub async fn read_message<B>(body: B) -> Result<Bytes, BodyError>
where
    B: hyper::body::Body<Data = Bytes>,
{
    use futures_util::StreamExt as _;
    use http_body_util::BodyExt as _;
    let stream = body.into_data_stream();
    tokio::pin!(stream);
    // Most bodies come in one chunk: kept as it is, without a copy or an allocation; a
    // second chunk starts a buffer.
    let mut first: Option<Bytes> = None;
    let mut rest: Option<bytes::BytesMut> = None;
    let mut seen = 0u64;
    let mut over = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(n) => n,
            Err(_) if over => return Err(BodyError::TooLarge),
            Err(_) => return Err(BodyError::Broken),
        };
        let Some(chunk) = next else { break };
        let Ok(chunk) = chunk else {
            return Err(if over {
                BodyError::TooLarge
            } else {
                BodyError::Broken
            });
        };
        seen += chunk.len() as u64;
        if over || seen > MESSAGE_LIMIT as u64 {
            over = true;
            first = None;
            rest = None;
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        match (&first, &mut rest) {
            (None, _) => first = Some(chunk),
            (Some(f), None) => {
                let mut buf = bytes::BytesMut::with_capacity(f.len() + chunk.len());
                buf.extend_from_slice(f);
                buf.extend_from_slice(&chunk);
                rest = Some(buf);
            }
            (Some(_), Some(buf)) => buf.extend_from_slice(&chunk),
        }
    }
    if over {
        return Err(BodyError::TooLarge);
    }
    Ok(match rest {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// A request decoded far enough to run a turn.
struct Decoded<'a> {
    user: &'a str,
    first_name: Option<&'a str>,
    new_session: bool,
    identity_checked: bool,
    input: Input<'a>,
}

enum Parsed {
    V1(v1::Request),
    V2(v2::Request),
}

impl Parsed {
    fn decode(&self) -> Result<Decoded<'_>, ErrorKind> {
        match self {
            Parsed::V1(r) => {
                let input = match r.form_submission() {
                    Some(fd) => Input::FormData(
                        serde_json::from_value(fd.clone())
                            .map_err(|_| ErrorKind::InvalidPayload)?,
                    ),
                    None => Input::Text {
                        text: &r.message.text,
                        attachments: r.all_attachments(),
                    },
                };
                Ok(Decoded {
                    user: &r.from.id,
                    first_name: r
                        .from
                        .user_info
                        .as_ref()
                        .and_then(|u| u.first_name.as_deref()),
                    new_session: r.is_new_session(),
                    identity_checked: false,
                    input,
                })
            }
            Parsed::V2(r) => Ok(Decoded {
                user: &r.from.id,
                first_name: r
                    .from
                    .user_info
                    .as_ref()
                    .and_then(|u| u.first_name.as_deref()),
                new_session: r.is_new_session(),
                identity_checked: true,
                input: r.input().map_err(|e| {
                    tracing::debug!(error = %e, "invalid V2 message");
                    ErrorKind::InvalidPayload
                })?,
            }),
        }
    }
}

/// A V1 or V2 message to the bot's first instance or a named one.
pub async fn message(
    state: &Shared,
    version: Version,
    bot: &str,
    inst: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BodyError>,
) -> Response {
    let response = answer(state, version, bot, inst, headers, body).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        let bare = resolve(state, bot, inst).is_some_and(|(_, i)| i.faults.bare_errors);
        if bare && version == Version::V2 {
            return without_envelope_tags(response).await;
        }
    }
    response
}

/// The `bare_errors` fault: the error body without `_v` and `_t`.
async fn without_envelope_tags(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.remove("_v");
        o.remove("_t");
    }
    let mut r = json(parts.status, &v);
    for (k, val) in &parts.headers {
        if k != axum::http::header::CONTENT_LENGTH {
            r.headers_mut().insert(k, val.clone());
        }
    }
    r
}

async fn answer(
    state: &Shared,
    version: Version,
    bot: &str,
    inst: Option<&str>,
    headers: &HeaderMap,
    body: Result<Bytes, BodyError>,
) -> Response {
    let arrived = Instant::now();
    let Some((idx, instance)) = resolve(state, bot, inst) else {
        return error(version, ErrorKind::NotFound);
    };
    let verified = match authenticate(state, headers) {
        Ok(ok) => ok,
        Err(e) => return auth_error(version, &e),
    };
    // A body over the limit (2 MiB) gets the documented envelope, not axum's plain text.
    let body = match body {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return error(version, ErrorKind::TooLarge),
        Err(BodyError::Broken) => return error(version, ErrorKind::InvalidPayload),
    };
    if let Some(limit) = instance.rate_limit {
        if !state.take_token(idx, &state.bot.apps[verified.app].client_id, limit) {
            return error(version, ErrorKind::TooManyRequests);
        }
    }
    let faults = &instance.faults;
    let (injected, latency) = if faults.is_quiet() {
        (Injected::None, Duration::ZERO)
    } else {
        let mut rng = rand::rng();
        (faults.draw(&mut rng), faults.latency(&mut rng))
    };
    match injected {
        Injected::Drop => return dropped(),
        Injected::Status(code) => {
            crate::common::pause_until(arrived + latency).await;
            return error(version, injected_kind(code));
        }
        Injected::None | Injected::Malformed => {}
    }
    let parsed = match version {
        Version::V1 => serde_json::from_slice(&body).map(Parsed::V1),
        Version::V2 => serde_json::from_slice(&body).map(Parsed::V2),
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(error = %e, "undecodable request body");
            return error(version, ErrorKind::InvalidPayload);
        }
    };
    let d = match parsed.decode() {
        Ok(d) => d,
        Err(kind) => return error(version, kind),
    };
    if d.identity_checked {
        if let Some(identity) = verified.identity.as_deref() {
            if identity != d.user {
                return auth_error(version, &JwtError::IdentityMismatch);
            }
        }
    }
    let attachment_names = match &d.input {
        Input::Text { attachments, .. } => attachments
            .iter()
            .map(|a| attachment_name(state, a))
            .collect(),
        _ => Vec::new(),
    };
    let ctx = UserContext {
        user_id: d.user,
        first_name: d.first_name,
        new_session: d.new_session,
        attachment_names,
    };
    let turn = state.sessions.converse(&state.bot, idx, &ctx, &d.input);
    let user = d.user.to_string();
    drop(parsed);

    let response = match instance.mode {
        Mode::Async => {
            delivery::spawn(state.clone(), idx, version, user, turn);
            let ack_delay = instance.faults.async_ack_delay.sample(&mut rand::rng());
            crate::common::pause_until(arrived + latency + ack_delay).await;
            match version {
                Version::V1 => json(StatusCode::OK, &serde_json::json!({})),
                Version::V2 => json(StatusCode::OK, &v2::Response::async_ack(ids::trace_id())),
            }
        }
        Mode::Sync if version == Version::V2 && instance.polling => {
            let body = start_poll_chain(state, Owner::of(&verified), idx, &user, turn, arrived);
            if latency > instance.sync_timeout {
                return timed_out(state, version, instance.sync_timeout).await;
            }
            crate::common::pause_until(arrived + latency).await;
            json(StatusCode::OK, &body)
        }
        Mode::Sync => {
            let work = latency + turn.total_delay();
            if work > instance.sync_timeout {
                return timed_out(state, version, instance.sync_timeout).await;
            }
            crate::common::pause_until(arrived + work).await;
            match version {
                Version::V1 => json(StatusCode::OK, &v1_body(state, &turn.segments, None)),
                Version::V2 => json(StatusCode::OK, &v2_body(state, &turn.segments, &user)),
            }
        }
    };
    if injected == Injected::Malformed {
        return corrupt(response).await;
    }
    response
}

async fn timed_out(state: &SimState, version: Version, budget: Duration) -> Response {
    tokio::time::sleep(budget).await;
    state
        .metrics
        .sync_timeouts
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    error(version, ErrorKind::TimedOut)
}

async fn corrupt(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    Response::from_parts(parts, Body::from(faults::corrupt(&bytes)))
}

fn injected_kind(code: u16) -> ErrorKind {
    match code {
        400 => ErrorKind::InvalidPayload,
        401 => ErrorKind::InvalidToken,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::TooManyRequests,
        504 => ErrorKind::TimedOut,
        other => ErrorKind::Internal(other),
    }
}

fn attachment_name(state: &SimState, a: &crate::protocol::Attachment) -> String {
    if let Some(n) = &a.file_name {
        return n.clone();
    }
    if let Some(id) = &a.file_id {
        if let Some(meta) = state.files.lock().ok().and_then(|f| f.get(id).cloned()) {
            return meta.name;
        }
        return id.clone();
    }
    a.url.clone().unwrap_or_default()
}

/// Answers the segments that are ready now and parks the rest under a new pollId.
fn start_poll_chain(
    state: &SimState,
    owner: Owner,
    instance: u16,
    user: &str,
    turn: Turn,
    arrived: Instant,
) -> v2::Response {
    let mut at = arrived;
    let mut pending: std::collections::VecDeque<(Instant, Segment)> = turn
        .segments
        .into_iter()
        .map(|s| {
            at += s.delay;
            (at, s)
        })
        .collect();
    let now = Instant::now();
    let mut ready = Vec::new();
    while pending.front().is_some_and(|(t, _)| *t <= now) {
        ready.extend(pending.pop_front().map(|(_, s)| s));
    }
    let mut body = v2_body(state, &ready, user);
    if !pending.is_empty() {
        let id = ids::poll_id();
        body.poll_id = Some(id.clone());
        let entry = PollEntry {
            owner,
            instance,
            user: user.to_string(),
            segments: pending,
            created: now,
        };
        state
            .polls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry);
    }
    body
}

async fn poll(
    State(state): State<Shared>,
    Path((bot, poll_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    poll_answer(&state, &bot, &poll_id, &headers).await
}

/// The next batch of a pollId's messages, or that they are not ready yet.
pub async fn poll_answer(
    state: &Shared,
    bot: &str,
    poll_id: &str,
    headers: &HeaderMap,
) -> Response {
    if bot != state.bot.id {
        return error(Version::V2, ErrorKind::NotFound);
    }
    let token = match authenticate(state, headers) {
        Ok(t) => t,
        Err(e) => return auth_error(Version::V2, &e),
    };
    let now = Instant::now();
    let (body, instance) = {
        let mut polls = state.polls.lock().unwrap_or_else(|p| p.into_inner());
        // A batch is its owner's: anyone else is told there is nothing, and the batch stays.
        if !polls.get(poll_id).is_some_and(|e| e.owner.admits(&token)) {
            drop(polls);
            return error(Version::V2, ErrorKind::NoDataFound);
        }
        let Some(mut entry) = polls.remove(poll_id) else {
            drop(polls);
            return error(Version::V2, ErrorKind::NoDataFound);
        };
        let instance = entry.instance;
        if entry.segments.front().is_some_and(|(t, _)| *t > now) {
            polls.insert(poll_id.to_string(), entry);
            (v2::Response::in_progress(poll_id.to_string()), instance)
        } else {
            let one_batch = state.bot.instances[instance as usize].faults.poll_one_batch;
            let mut ready = Vec::new();
            while entry.segments.front().is_some_and(|(t, _)| *t <= now) {
                ready.extend(entry.segments.pop_front().map(|(_, s)| s));
                if one_batch && ready.iter().any(|s: &Segment| !s.messages.is_empty()) {
                    break;
                }
            }
            let mut body = v2_body(state, &ready, &entry.user);
            if !entry.segments.is_empty() {
                let id = ids::poll_id();
                body.poll_id = Some(id.clone());
                entry.created = now;
                polls.insert(id, entry);
            } else if state.bot.instances[instance as usize].faults.poll_redeliver {
                // The `poll_redeliver` fault: the same pollId answers the same messages again.
                entry.segments = ready.into_iter().map(|s| (now, s)).collect();
                polls.insert(poll_id.to_string(), entry);
            }
            (body, instance)
        }
    };
    let faults = &state.bot.instances[instance as usize].faults;
    if !faults.latency.is_zero() {
        let latency = faults.latency(&mut rand::rng());
        crate::common::pause_until(now + latency).await;
    }
    json(StatusCode::OK, &body)
}
