//! Proactive notifications (the channel's async mode with the "Proactive Notifications"
//! toggle on): `POST /api/public/bot/{botId}/notifyV2` with the JWT in an `auth` header starts
//! a job that delivers one message per identity to the instance's POST_URL;
//! `GET …/notifyV2/status/{id}` shows each identity's outcome.
//!
//! The request body is checked as documented: `channel: "ivr"`, `webhookInstanceName` naming
//! an async instance with notifications on, `content` or `message` (the docs' samples and
//! table disagree: both are accepted) `{type: text|template|script, value}`, 1–1000
//! `identities` `{email, customMessage?, parameters?}` with at most 20 parameters of at most
//! 200 characters, and no other property (400 otherwise, the reason in the
//! `x-hookbench-invalid` header). The published limits, 600 calls a minute and 18,000 an hour
//! per bot over rolling windows, answer 429. What is POSTed to POST_URL is not documented
//! ([gap]): the V2 async delivery shape, with `endOfMessage`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::answer::{auth_error, error, json, verify_token};
use super::bot::Mode;
use super::state::{Job, Log, Owner, SimState, MAX_JOBS};
pub use super::state::{PER_HOUR, PER_MINUTE};
use crate::protocol::jwt::JwtError;
use crate::protocol::{ids, ErrorKind, Version};

type Shared = Arc<SimState>;

/// Identities in one call.
pub const MAX_IDENTITIES: usize = 1000;
/// Parameters of one identity.
pub const MAX_PARAMETERS: usize = 20;
/// Characters of one parameter's value.
pub const MAX_PARAMETER_CHARS: usize = 200;
/// The routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/api/public/bot/{bot}/notifyV2", post(notify))
        .route("/api/public/bot/{bot}/notifyV2/status/{id}", get(status))
}

/// The `auth` header's token (a bare JWT; `bearer <JWT>` is accepted too).
fn authenticate(
    state: &SimState,
    headers: &HeaderMap,
) -> Result<super::state::VerifiedToken, JwtError> {
    let value = headers
        .get("auth")
        .ok_or(JwtError::Missing)?
        .to_str()
        .map_err(|_| JwtError::Malformed("non-ASCII header".into()))?
        .trim();
    let token = match value.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => value,
    };
    verify_token(state, token)
}

/// The caller of a notification route: a known bot and a valid token in `auth`.
fn admit(
    state: &SimState,
    bot: &str,
    headers: &HeaderMap,
) -> Result<super::state::VerifiedToken, Box<Response>> {
    if bot != state.bot.id {
        return Err(Box::new(error(Version::V2, ErrorKind::NotFound)));
    }
    authenticate(state, headers).map_err(|e| Box::new(auth_error(Version::V2, &e)))
}

fn invalid(why: String) -> Response {
    let mut r = error(Version::V2, ErrorKind::InvalidPayload);
    if let Ok(v) = HeaderValue::from_str(&why.replace(['\r', '\n'], " ")) {
        r.headers_mut().insert("x-hookbench-invalid", v);
    }
    r
}

/// What one call asks for, checked.
struct Request {
    instance: u16,
    kind: String,
    value: Value,
    identities: Vec<(String, Option<String>, Map<String, Value>)>,
}

/// Why a notification request is refused: a 400 whose reason goes in `x-hookbench-invalid`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

impl From<&str> for Refused {
    fn from(s: &str) -> Self {
        Refused(s.to_string())
    }
}

impl From<String> for Refused {
    fn from(s: String) -> Self {
        Refused(s)
    }
}

fn only(o: &Map<String, Value>, keys: &[&str], what: &str) -> Result<(), Refused> {
    match o.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(k) => Err(Refused(format!(
            "{what}: `{k}` is not a property it takes ({})",
            keys.join(", ")
        ))),
        None => Ok(()),
    }
}

fn read(state: &SimState, body: &Value) -> Result<Request, Refused> {
    let o = body.as_object().ok_or("the body is not a JSON object")?;
    only(
        o,
        &[
            "channel",
            "webhookInstanceName",
            "userIdentityType",
            "content",
            "message",
            "identities",
        ],
        "body",
    )?;
    if o.get("channel").and_then(Value::as_str) != Some("ivr") {
        return Err("`channel` must be \"ivr\" (the webhook channel)".into());
    }
    if let Some(t) = o.get("userIdentityType") {
        t.as_str().ok_or("`userIdentityType` is not a string")?;
    }
    let name = o
        .get("webhookInstanceName")
        .and_then(Value::as_str)
        .ok_or("`webhookInstanceName` is missing")?;
    let (index, inst) = state
        .bot
        .instances
        .iter()
        .enumerate()
        .find(|(_, i)| i.id == name && i.enabled)
        .ok_or_else(|| format!("no channel instance `{name}`"))?;
    if inst.mode != Mode::Async || !inst.proactive_notifications {
        return Err(Refused(format!(
            "instance `{name}` does not take proactive notifications (an async instance with the toggle on does)"
        )));
    }
    let content = match (o.get("content"), o.get("message")) {
        (Some(_), Some(_)) => return Err("give `content` or `message`, not both".into()),
        (Some(c), None) | (None, Some(c)) => c,
        (None, None) => return Err("`content` (or `message`) is missing".into()),
    };
    let c = content.as_object().ok_or("`content` is not an object")?;
    only(c, &["type", "value"], "content")?;
    let kind = c
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| ["text", "template", "script"].contains(t))
        .ok_or("`content.type` is text, template or script")?
        .to_string();
    let value = c
        .get("value")
        .cloned()
        .ok_or("`content.value` is missing")?;
    let list = o
        .get("identities")
        .and_then(Value::as_array)
        .ok_or("`identities` is missing or not a list")?;
    if list.is_empty() || list.len() > MAX_IDENTITIES {
        return Err(Refused(format!(
            "`identities` holds {} (from 1 to {MAX_IDENTITIES})",
            list.len()
        )));
    }
    let mut identities = Vec::with_capacity(list.len());
    for (i, id) in list.iter().enumerate() {
        let what = format!("identities[{i}]");
        let e = id.as_object().ok_or(format!("{what} is not an object"))?;
        only(e, &["email", "customMessage", "parameters"], &what)?;
        let email = e
            .get("email")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(format!("{what}.email is missing"))?;
        let custom = match e.get("customMessage") {
            None => None,
            Some(v) => Some(
                v.as_str()
                    .ok_or(format!("{what}.customMessage is not a string"))?
                    .to_string(),
            ),
        };
        let params = match e.get("parameters") {
            None => Map::new(),
            Some(p) => p
                .as_object()
                .cloned()
                .ok_or(format!("{what}.parameters is not an object"))?,
        };
        if params.len() > MAX_PARAMETERS {
            return Err(Refused(format!(
                "{what}.parameters: {} (at most {MAX_PARAMETERS})",
                params.len()
            )));
        }
        for (k, v) in &params {
            let text = v
                .as_str()
                .ok_or(format!("{what}.parameters.{k} is not a string"))?;
            if text.chars().count() > MAX_PARAMETER_CHARS {
                return Err(Refused(format!(
                    "{what}.parameters.{k} is longer than {MAX_PARAMETER_CHARS} characters"
                )));
            }
        }
        identities.push((email.to_string(), custom, params));
    }
    Ok(Request {
        instance: index as u16,
        kind,
        value,
        identities,
    })
}

/// `{name}` placeholders filled from the identity's parameters.
fn fill(text: &str, params: &Map<String, Value>) -> String {
    let mut out = text.to_string();
    for (k, v) in params {
        if let Some(v) = v.as_str() {
            out = out.replace(&format!("{{{k}}}"), v);
        }
    }
    out
}

async fn notify(
    State(state): State<Shared>,
    Path(bot): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let caller = match admit(&state, &bot, &headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    if !state.notifications.admit(Instant::now()) {
        return error(Version::V2, ErrorKind::TooManyRequests);
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return invalid("the body is not JSON".into());
    };
    let req = match read(&state, &value) {
        Ok(r) => r,
        Err(why) => return invalid(why.0),
    };
    let id = format!("ds-{}", ids::uuid_v4());
    let created = ids::created_on_now();
    let count = req.identities.len();
    {
        let mut jobs = state
            .notifications
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *jobs;
        if order.len() >= MAX_JOBS {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
        map.insert(
            id.clone(),
            Job {
                owner: Owner::of(&caller),
                created: created.clone(),
                logs: req
                    .identities
                    .iter()
                    .map(|(email, ..)| Log {
                        email: email.clone(),
                        status: "IN_PROGRESS",
                        comments: "Notification is being sent",
                    })
                    .collect(),
            },
        );
        order.push_back(id.clone());
    }
    tokio::spawn(deliver(state.clone(), id.clone(), req));
    json(
        StatusCode::OK,
        &json!({
            "_id": id, "streamId": state.bot.id, "status": "IN_PROGRESS",
            "count": count, "createdOn": created,
        }),
    )
}

/// Delivers each identity's message to POST_URL and records the outcome.
async fn deliver(state: Shared, id: String, req: Request) {
    let inst = &state.bot.instances[req.instance as usize];
    for (k, (email, custom, params)) in req.identities.iter().enumerate() {
        let val = match (custom, &req.value) {
            (Some(c), _) => Value::String(fill(c, params)),
            (None, Value::String(s)) => Value::String(fill(s, params)),
            (None, other) => other.clone(),
        };
        let kind = if req.kind == "template" {
            "template"
        } else {
            "text"
        };
        let body = json!({
            "to": email, "from": state.bot.id, "_v": "v2",
            "data": [{
                "type": kind, "val": val, "createdOn": ids::created_on_now(),
                "messageId": ids::message_id(), "endOfMessage": true,
            }],
        });
        let sent = match inst.post_url.as_deref() {
            Some(url) => {
                let bytes = Bytes::from(body.to_string());
                super::delivery::post_with_retries(&state, url, bytes, inst.delivery).await
            }
            None => false,
        };
        let mut jobs = state
            .notifications
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(log) = jobs.0.get_mut(&id).and_then(|j| j.logs.get_mut(k)) {
            (log.status, log.comments) = if sent {
                ("SUCCESS", "Notification has been sent successfully")
            } else {
                (
                    "FAILURE",
                    "Notification could not be delivered to the POST_URL",
                )
            };
        }
    }
}

async fn status(
    State(state): State<Shared>,
    Path((bot, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let caller = match admit(&state, &bot, &headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let jobs = state
        .notifications
        .jobs
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    // Another app's job is as unknown as a job that never was.
    let Some(job) = jobs.0.get(&id).filter(|j| j.owner.app == caller.app) else {
        return error(Version::V2, ErrorKind::NotFound);
    };
    let logs: Vec<Value> = job
        .logs
        .iter()
        .map(|l| json!({"channelId": l.email, "status": l.status, "comments": l.comments}))
        .collect();
    let overall = if job.logs.iter().any(|l| l.status == "IN_PROGRESS") {
        "IN_PROGRESS"
    } else if job.logs.iter().all(|l| l.status == "SUCCESS") {
        "SUCCESS"
    } else if job.logs.iter().all(|l| l.status == "FAILURE") {
        "FAILURE"
    } else {
        "PARTIAL_SUCCESS"
    };
    json(
        StatusCode::OK,
        &json!({
            "_id": id, "statusLogs": logs, "count": logs.len(), "status": overall,
            "createdOn": job.created,
        }),
    )
}
