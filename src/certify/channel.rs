//! The judging function of every channel check. A judge talks to the target through
//! [`Ctx`] (which records every exchange) and returns `Ok` or the first mismatch. The bot
//! behind the target must answer the certification utterances (`docs/conformance.md`: the
//! demo bot does).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde_json::{json, Value};

use super::probe::{
    is_created_on, is_hex, is_prefixed_uuid, Auth, Body, Evidence, Judged, Miss, Prober, Req, Resp,
};
use crate::client::Receiver;
use crate::protocol::jwt::{Alg, AppClaim, Claims, ClaimsTemplate, NumericDate, Signer};
use crate::protocol::urls::Endpoints;

/// Where the checks send their requests.
#[derive(Debug, Clone)]
pub struct ChannelTarget {
    /// Base URL and bot id (polls, uploads, the unknown-bot check).
    pub endpoints: Endpoints,
    /// V1 message URL.
    pub v1: Option<String>,
    /// V2 message URL of a sync instance with polling on.
    pub v2_poll: Option<String>,
    /// V2 message URL of a sync instance with polling off.
    pub v2_nopoll: Option<String>,
    /// V2 message URL of an async instance whose POST_URL reaches `receiver`.
    pub v2_async: Option<String>,
    /// The upload API's channel type (`ivr` for the first instance).
    pub upload_channel: Option<String>,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret (HS256/HS512).
    pub client_secret: String,
}

/// What a judge works with.
#[derive(Debug)]
pub struct Ctx {
    /// The target.
    pub target: ChannelTarget,
    /// Requests.
    pub prober: Prober,
    /// The POST_URL receiver for async checks.
    pub receiver: Option<Receiver>,
    /// Makes user ids unique to this run.
    pub run: String,
}

/// A judging function.
pub type Judge =
    for<'a> fn(&'a Ctx, &'a mut Evidence) -> Pin<Box<dyn Future<Output = Judged> + Send + 'a>>;

impl Ctx {
    /// A user id unique to this run and check.
    fn user(&self, check: &str) -> String {
        format!("cert-{}-{}", self.run, check.to_lowercase())
    }

    fn template(&self, app_claim: AppClaim) -> ClaimsTemplate {
        ClaimsTemplate {
            client_id: self.target.client_id.clone(),
            app_claim,
            user_identity: true,
            expires_in: Some(Duration::from_secs(3600)),
            jti: false,
            extra: serde_json::Map::new(),
        }
    }

    fn signed(
        &self,
        alg: Alg,
        secret: &str,
        app_claim: AppClaim,
        user: &str,
    ) -> Result<Auth, Miss> {
        let signer = Signer::hmac(alg, secret.as_bytes())
            .map_err(|e| Miss::Skipped(format!("cannot sign a token: {e}")))?;
        let token = signer
            .sign_for(&self.template(app_claim), user)
            .map_err(|e| Miss::Skipped(format!("cannot sign a token: {e}")))?;
        Ok(Auth::Header(format!("bearer {token}")))
    }

    /// A valid HS256 token for `user`.
    fn auth(&self, user: &str) -> Result<Auth, Miss> {
        self.signed(
            Alg::HS256,
            &self.target.client_secret,
            AppClaim::AppId,
            user,
        )
    }

    fn need<'a>(url: &'a Option<String>, what: &str) -> Result<&'a str, Miss> {
        url.as_deref()
            .ok_or_else(|| Miss::Skipped(format!("no {what} was given")))
    }

    /// The V2 sync URL: polling on if given, else polling off.
    fn v2_sync(&self) -> Result<&str, Miss> {
        self.target
            .v2_poll
            .as_deref()
            .or(self.target.v2_nopoll.as_deref())
            .ok_or_else(|| Miss::Skipped("no V2 sync URL was given".into()))
    }

    fn body(&self, user: &str, message: Value) -> Value {
        json!({"message": message, "from": {"id": user}, "to": {"id": self.target.endpoints.bot_id}})
    }

    /// A V2 text turn.
    async fn say(
        &self,
        ev: &mut Evidence,
        url: &str,
        user: &str,
        text: &str,
    ) -> Result<Resp, Miss> {
        let body = self.body(user, json!({"type": "text", "val": text}));
        self.prober
            .send(ev, Req::post(url, self.auth(user)?, body))
            .await
    }

    /// A V2 turn with any message and session flag.
    async fn send(
        &self,
        ev: &mut Evidence,
        url: &str,
        user: &str,
        mut body: Value,
    ) -> Result<Resp, Miss> {
        body["from"] = json!({"id": user});
        self.prober
            .send(ev, Req::post(url, self.auth(user)?, body))
            .await
    }

    async fn poll(&self, ev: &mut Evidence, user: &str, poll_id: &str) -> Result<Resp, Miss> {
        let url = self.target.endpoints.poll(poll_id);
        self.prober.send(ev, Req::get(url, self.auth(user)?)).await
    }

    /// Polls until the answer is not `Inprogress` (at most 15 s, every 100 ms).
    async fn poll_done(&self, ev: &mut Evidence, user: &str, poll_id: &str) -> Result<Resp, Miss> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.poll(ev, user, poll_id).await?;
            if r.str_at("/status") != Some("Inprogress") {
                return Ok(r);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(r.miss("/status", "a final answer within 15 s", "still Inprogress"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `transfer` up to the service node: the answer that should carry a pollId (or, with
    /// polling off, the whole flow).
    async fn slow_turn(&self, ev: &mut Evidence, url: &str, user: &str) -> Result<Resp, Miss> {
        let r = self.say(ev, url, user, "transfer").await?;
        r.status_is(200)?;
        let r = self.say(ev, url, user, "100").await?;
        r.status_is(200)?;
        let r = self.say(ev, url, user, "savings").await?;
        r.status_is(200)?;
        Ok(r)
    }
}

fn boxed<'a>(
    f: impl Future<Output = Judged> + Send + 'a,
) -> Pin<Box<dyn Future<Output = Judged> + Send + 'a>> {
    Box::pin(f)
}

macro_rules! judges {
    ($($id:literal => $f:ident),* $(,)?) => {
        /// The ids that have a judge.
        pub const JUDGED: &[&str] = &[$($id),*];

        /// The judge of a channel check.
        pub fn judge(id: &str) -> Option<Judge> {
            match id {
                $($id => Some(|c, e| boxed($f(c, e))),)*
                _ => None,
            }
        }
    };
}

judges! {
    "CH-V1-01" => v1_text,
    "CH-V1-02" => v1_task,
    "CH-V1-03" => v1_minimal,
    "CH-V1-04" => v1_missing_text,
    "CH-V1-05" => v1_session_new,
    "CH-V2-01" => v2_shape,
    "CH-V2-02" => v2_task,
    "CH-V2-03" => v2_on_connect,
    "CH-V2-04" => v2_closure,
    "CH-V2-05" => v2_closure_ignored,
    "CH-V2-06" => v2_template,
    "CH-V2-07" => v2_form,
    "CH-V2-08" => v2_invalid,
    "CH-V2-09" => v2_attachments_need_text,
    "CH-V2-10" => v2_order,
    "CH-V2-POLL-01" => poll_issued,
    "CH-V2-POLL-02" => poll_in_progress,
    "CH-V2-POLL-03" => poll_final,
    "CH-V2-POLL-04" => poll_once,
    "CH-V2-POLL-05" => poll_unknown,
    "CH-V2-POLL-06" => poll_chained,
    "CH-V2-POLL-07" => poll_owner,
    "CH-V2-NOPOLL-01" => nopoll_whole,
    "CH-V2-NOPOLL-02" => nopoll_budget,
    "CH-V2-ASYNC-01" => async_ack,
    "CH-V2-ASYNC-02" => async_ack_fast,
    "CH-V2-ASYNC-03" => async_deliveries,
    "CH-V2-ASYNC-04" => async_task,
    "CH-V2-ASYNC-05" => async_end_of_message,
    "CH-AUTH-01" => auth_missing,
    "CH-AUTH-02" => auth_bad_signature,
    "CH-AUTH-03" => auth_none,
    "CH-AUTH-04" => auth_expired,
    "CH-AUTH-05" => auth_identity,
    "CH-AUTH-06" => auth_iss,
    "CH-AUTH-07" => auth_hs512,
    "CH-AUTH-08" => auth_scheme,
    "CH-ERR-01" => err_unknown_bot,
    "CH-ERR-02" => err_too_large,
    "CH-CORS-01" => cors,
    "CH-UP-01" => upload_token,
    "CH-UP-02" => upload_chunks,
    "CH-UP-03" => upload_message,
    "CH-UP-04" => upload_too_large,
}

// ---- V1 ----

async fn v1_turn(c: &Ctx, ev: &mut Evidence, user: &str, body: Value) -> Result<Resp, Miss> {
    let url = Ctx::need(&c.target.v1, "V1 URL")?;
    c.prober.send(ev, Req::post(url, c.auth(user)?, body)).await
}

async fn v1_text(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-01");
    let r = v1_turn(
        c,
        ev,
        &user,
        json!({"message": {"text": "balance"}, "from": {"id": user}}),
    )
    .await?;
    r.status_is(200)?;
    match r.at("/text") {
        Some(Value::String(_) | Value::Object(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(|i| i.is_string() || i.is_object()) => Ok(()),
        other => Err(r.miss(
            "/text",
            "a string, an object, or an array of them",
            other.map_or("absent".into(), |v| v.to_string()),
        )),
    }
}

/// The task fields of a task end.
fn task_fields(r: &Resp, task: &str) -> Judged {
    match r.at("/endOfTask") {
        Some(Value::Bool(true)) => {}
        other => {
            return Err(r.miss(
                "/endOfTask",
                "true",
                other.map_or("absent".into(), |v| v.to_string()),
            ))
        }
    }
    r.str_matches("/endReason", "Fulfilled, Interrupted or Cancelled", |s| {
        matches!(s, "Fulfilled" | "Interrupted" | "Cancelled")
    })?;
    r.str_matches("/completedTaskId", "dg-<uuid>", |s| {
        is_prefixed_uuid(s, "dg-")
    })?;
    r.str_matches("/completedTaskName", &format!("{task:?} (any case)"), |s| {
        s.eq_ignore_ascii_case(task)
    })
}

async fn v1_task(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-02");
    let r = v1_turn(
        c,
        ev,
        &user,
        json!({"message": {"text": "balance"}, "from": {"id": user}}),
    )
    .await?;
    r.status_is(200)?;
    task_fields(&r, "Show Balance")
}

async fn v1_minimal(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-03");
    let r = v1_turn(
        c,
        ev,
        &user,
        json!({"message": {"text": "hi"}, "from": {"id": user}}),
    )
    .await?;
    r.status_is(200)?;
    if r.at("/text").is_none() {
        return Err(r.miss("/text", "present", "absent"));
    }
    Ok(())
}

async fn v1_missing_text(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-04");
    let r = v1_turn(c, ev, &user, json!({"message": {}, "from": {"id": user}})).await?;
    r.envelope(400, "Invalid Request Payload", false)
}

async fn v1_session_new(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-05");
    let first = v1_turn(
        c,
        ev,
        &user,
        json!({"message": {"text": "transfer"}, "from": {"id": user}}),
    )
    .await?;
    first.status_is(200)?;
    // A new session: `balance` is a new request, not the amount the transfer asked for.
    let r = v1_turn(
        c,
        ev,
        &user,
        json!({"session": {"new": true}, "message": {"text": "balance"}, "from": {"id": user}}),
    )
    .await?;
    r.status_is(200)?;
    task_fields(&r, "Show Balance")
}

// ---- V2 sync ----

fn data_items(r: &Resp) -> Result<&Vec<Value>, Miss> {
    r.at("/data")
        .and_then(Value::as_array)
        .ok_or_else(|| r.miss("/data", "an array", r.status_text()))
}

async fn v2_shape(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-01");
    let r = c.say(ev, c.v2_sync()?, &user, "balance").await?;
    r.status_is(200)?;
    r.str_is("/_v", "v2")?;
    r.str_is("/to", &user)?;
    r.str_is("/from", &c.target.endpoints.bot_id)?;
    let items = data_items(&r)?;
    if items.is_empty() {
        return Err(r.miss("/data", "at least one message", "[]"));
    }
    for i in 0..items.len() {
        r.str_matches(&format!("/data/{i}/type"), "a message type", |s| {
            !s.is_empty()
        })?;
        if r.at(&format!("/data/{i}/val")).is_none() {
            return Err(r.miss(&format!("/data/{i}/val"), "present", "absent"));
        }
        r.str_matches(
            &format!("/data/{i}/createdOn"),
            "ISO-8601 UTC with milliseconds",
            is_created_on,
        )?;
        r.str_matches(&format!("/data/{i}/messageId"), "ms-<uuid>", |s| {
            is_prefixed_uuid(s, "ms-")
        })?;
    }
    Ok(())
}

async fn v2_task(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-02");
    let r = c.say(ev, c.v2_sync()?, &user, "balance").await?;
    r.status_is(200)?;
    task_fields(&r, "Show Balance")
}

async fn v2_on_connect(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-03");
    let body = json!({"session": {"new": true}, "message": {"type": "event", "val": "ON_CONNECT"}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, c.v2_sync()?, &user, body).await?;
    r.status_is(200)?;
    if r.texts().is_empty() {
        return Err(r.miss("/data", "the welcome message(s)", r.status_text()));
    }
    Ok(())
}

fn closure_body(c: &Ctx) -> Value {
    json!({"message": {"type": "event", "val": "SESSION_CLOSURE"}, "to": {"id": c.target.endpoints.bot_id}})
}

async fn v2_closure(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-04");
    let url = c.v2_sync()?;
    c.say(ev, url, &user, "balance").await?.status_is(200)?;
    let r = c.send(ev, url, &user, closure_body(c)).await?;
    r.status_is(200)?;
    r.str_is("/data/0/type", "event")?;
    r.str_is("/data/0/val", "SESSION_CLOSURE")?;
    r.str_is("/data/0/eventType", "SESSION_CLOSURE_SUCCESS")
}

async fn v2_closure_ignored(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-05");
    let r = c.send(ev, c.v2_sync()?, &user, closure_body(c)).await?;
    r.status_is(200)?;
    r.str_is("/data/0/type", "event")?;
    r.str_is("/data/0/eventType", "SESSION_CLOSURE_IGNORED")
}

async fn v2_template(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-06");
    let r = c.say(ev, c.v2_sync()?, &user, "menu").await?;
    r.status_is(200)?;
    let items = data_items(&r)?;
    let is_template = |v: &Value| match v {
        Value::Object(o) => o.get("type").and_then(Value::as_str) == Some("template"),
        Value::String(s) => serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|j| {
                j.get("type")
                    .and_then(Value::as_str)
                    .map(|t| t == "template")
            })
            .unwrap_or(false),
        _ => false,
    };
    if items.iter().any(|i| i.get("val").is_some_and(is_template)) {
        return Ok(());
    }
    Err(r.miss(
        "/data/*/val",
        "a template object ({\"type\":\"template\",…}) or its JSON text",
        r.status_text(),
    ))
}

async fn v2_form(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-07");
    let url = c.v2_sync()?;
    let r = c.say(ev, url, &user, "form").await?;
    r.status_is(200)?;
    let items = data_items(&r)?;
    let form = items
        .iter()
        .find_map(|i| {
            let v = i.get("val")?;
            let def = v
                .get("formDef")
                .or_else(|| v.get("payload").and_then(|p| p.get("formDef")))?;
            Some(def.clone())
        })
        .or_else(|| r.at("/form/formDef").cloned())
        .ok_or_else(|| r.miss("/data/*/val/formDef", "a form definition", r.status_text()))?;
    let form_id = form
        .get("id")
        .or_else(|| form.get("formId"))
        .and_then(Value::as_str)
        .ok_or_else(|| r.miss("formDef.id", "the form's id", form.to_string()))?
        .to_string();
    let field = form
        .pointer("/components/0/id")
        .or_else(|| form.pointer("/fields/0/id"))
        .and_then(Value::as_str)
        .unwrap_or("name")
        .to_string();
    let body = json!({"message": {"type": "formData", "val": {"formId": form_id, "data": [{"componentId": field, "input": "Ada"}], "meta": {}}}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, url, &user, body).await?;
    r.status_is(200)?;
    if r.texts().iter().any(|t| t.contains("Ada")) {
        return Ok(());
    }
    Err(r.miss(
        "/data/*/val",
        "the dialog continued with the submitted value (\"Ada\")",
        r.status_text(),
    ))
}

async fn v2_invalid(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-08");
    let body = json!({"message": {"type": "event", "val": "NOT_AN_EVENT"}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, c.v2_sync()?, &user, body).await?;
    r.envelope(400, "Invalid Request Payload", true)
}

async fn v2_attachments_need_text(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-09");
    let body = json!({"message": {"type": "text", "val": "", "attachments": [{"fileId": "0123456789abcdef01234567", "fileName": "a.png", "fileType": "image"}]}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, c.v2_sync()?, &user, body).await?;
    r.envelope(400, "Invalid Request Payload", true)
}

async fn v2_order(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-10");
    let r = c.say(ev, c.v2_sync()?, &user, "balance").await?;
    r.status_is(200)?;
    let stamps: Vec<&str> = data_items(&r)?
        .iter()
        .filter_map(|i| i.get("createdOn").and_then(Value::as_str))
        .collect();
    for (i, w) in stamps.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(r.miss(
                &format!("/data/{}/createdOn", i + 1),
                format!("not before {}", w[0]),
                w[1],
            ));
        }
    }
    Ok(())
}

// ---- V2 polling ----

fn poll_id(r: &Resp) -> Result<String, Miss> {
    r.str_matches("/pollId", "32 lowercase hex digits", |s| is_hex(s, 32))?;
    Ok(r.str_at("/pollId").unwrap_or_default().to_string())
}

async fn poll_issued(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-01");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let r = c.slow_turn(ev, url, &user).await?;
    poll_id(&r)?;
    data_items(&r)?;
    r.str_is("/_v", "v2")
}

async fn poll_in_progress(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-02");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let id = poll_id(&c.slow_turn(ev, url, &user).await?)?;
    let r = c.poll(ev, &user, &id).await?;
    r.status_is(200)?;
    r.str_is("/status", "Inprogress")?;
    r.str_is("/pollId", &id)?;
    r.str_is("/_v", "v2")
}

async fn poll_final(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-03");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let id = poll_id(&c.slow_turn(ev, url, &user).await?)?;
    let r = c.poll_done(ev, &user, &id).await?;
    r.status_is(200)?;
    r.absent("/status")?;
    if r.texts().is_empty() {
        return Err(r.miss("/data", "the rest of the messages", r.status_text()));
    }
    task_fields(&r, "Transfer Funds")
}

async fn poll_once(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-04");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let id = poll_id(&c.slow_turn(ev, url, &user).await?)?;
    c.poll_done(ev, &user, &id).await?.status_is(200)?;
    let again = c.poll(ev, &user, &id).await?;
    again.envelope(400, "No data found", false)
}

async fn poll_unknown(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-05");
    Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let r = c
        .poll(ev, &user, "0123456789abcdef0123456789abcdef")
        .await?;
    r.envelope(400, "No data found", false)
}

async fn poll_chained(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-06");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let r = c.say(ev, url, &user, "statement").await?;
    r.status_is(200)?;
    let first = poll_id(&r)?;
    let mid = c.poll_done(ev, &user, &first).await?;
    mid.status_is(200)?;
    if mid.texts().is_empty() {
        return Err(mid.miss(
            "/data",
            "the messages between the two service nodes",
            mid.status_text(),
        ));
    }
    let second = poll_id(&mid)?;
    if second == first {
        return Err(mid.miss(
            "/pollId",
            "a new pollId for the second service node",
            second,
        ));
    }
    let last = c.poll_done(ev, &user, &second).await?;
    last.status_is(200)?;
    last.absent("/pollId")?;
    task_fields(&last, "Monthly Statement")
}

async fn poll_owner(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-07");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let id = poll_id(&c.slow_turn(ev, url, &user).await?)?;
    let other = format!("{user}-other");
    let r = c.poll_done(ev, &other, &id).await?;
    if r.status != 200 && r.texts().is_empty() {
        return Ok(());
    }
    Err(r.miss(
        "status",
        "an error without the messages (the pollId is another user's)",
        r.status_text(),
    ))
}

// ---- V2 polling off ----

async fn nopoll_whole(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-NOPOLL-01");
    let url = Ctx::need(&c.target.v2_nopoll, "V2 URL with polling off")?;
    let r = c.slow_turn(ev, url, &user).await?;
    r.absent("/pollId")?;
    task_fields(&r, "Transfer Funds")
}

async fn nopoll_budget(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-NOPOLL-02");
    let url = Ctx::need(&c.target.v2_nopoll, "V2 URL with polling off")?;
    let r = c.say(ev, url, &user, "slow").await?;
    r.envelope(504, "The request has been timed-out", true)?;
    let s = r.elapsed.as_secs_f64();
    if !(14.0..=20.0).contains(&s) {
        return Err(r.miss("elapsed", "about 15 s (14-20 s)", format!("{s:.1} s")));
    }
    Ok(())
}

// ---- V2 async ----

struct AsyncTurn {
    ack: Resp,
    deliveries: Vec<Value>,
}

async fn async_turn(c: &Ctx, ev: &mut Evidence, check: &str) -> Result<AsyncTurn, Miss> {
    let url = Ctx::need(&c.target.v2_async, "V2 async URL")?;
    let receiver = c
        .receiver
        .as_ref()
        .ok_or_else(|| Miss::Skipped("no POST_URL receiver".into()))?;
    let user = c.user(check);
    let mut sub = receiver.subscribe(&user);
    let ack = c.say(ev, url, &user, "balance").await?;
    ack.status_is(200)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut deliveries = Vec::new();
    while let Some(d) = sub.next_until(deadline).await {
        let end = d.body.get("endOfTask").and_then(Value::as_bool) == Some(true);
        deliveries.push(d.body);
        if end {
            break;
        }
    }
    Ok(AsyncTurn { ack, deliveries })
}

async fn async_ack(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-01").await?;
    t.ack.str_is("/status", "ok")?;
    t.ack.str_is("/_v", "v2")?;
    t.ack.str_matches(
        "/traceId",
        "RTM-TRACE-<9 upper-case letters or digits>",
        super::probe::is_trace,
    )
}

async fn async_ack_fast(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-02").await?;
    let ms = t.ack.elapsed.as_secs_f64() * 1e3;
    if ms > 1000.0 {
        return Err(t
            .ack
            .miss("elapsed", "at most 1000 ms", format!("{ms:.0} ms")));
    }
    Ok(())
}

/// A mismatch about the deliveries (evidence lists them after the exchanges).
fn delivery_miss(field: String, expected: &str, actual: String) -> Miss {
    Miss::Failed(super::probe::Mismatch {
        exchange: None,
        field,
        expected: expected.into(),
        actual,
    })
}

fn record_deliveries(ev: &mut Evidence, deliveries: &[Value]) {
    for d in deliveries {
        ev.exchanges.push(super::probe::Exchange {
            method: "POST (received at POST_URL)".into(),
            url: String::new(),
            request_headers: Vec::new(),
            request_body: Some(d.to_string()),
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            elapsed_ms: 0.0,
            error: None,
        });
    }
}

async fn async_deliveries(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-03").await?;
    record_deliveries(ev, &t.deliveries);
    let messages: Vec<&Value> = t
        .deliveries
        .iter()
        .filter(|d| {
            d.get("data")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
        .collect();
    if messages.len() < 2 {
        return Err(delivery_miss(
            "deliveries".into(),
            "the turn's two messages, one POST each, within 10 s",
            format!("{} message POST(s)", messages.len()),
        ));
    }
    let mut last = String::new();
    for (i, d) in messages.iter().enumerate() {
        let items = d["data"].as_array().map_or(0, Vec::len);
        if items != 1 || d.get("_v").and_then(Value::as_str) != Some("v2") {
            return Err(delivery_miss(
                format!("delivery {i}"),
                "one data item and _v v2",
                d.to_string(),
            ));
        }
        let at = d
            .pointer("/data/0/createdOn")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if at < last.as_str() {
            return Err(delivery_miss(
                format!("delivery {i} /data/0/createdOn"),
                "not before the previous delivery's",
                at.to_string(),
            ));
        }
        last = at.to_string();
    }
    Ok(())
}

async fn async_task(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-04").await?;
    record_deliveries(ev, &t.deliveries);
    let Some(pos) = t
        .deliveries
        .iter()
        .position(|d| d.get("endOfTask").and_then(Value::as_bool) == Some(true))
    else {
        return Err(delivery_miss(
            "endOfTask".into(),
            "a POST with the task fields within 10 s",
            format!("{} POST(s), none with endOfTask", t.deliveries.len()),
        ));
    };
    let d = &t.deliveries[pos];
    if d.get("data")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(delivery_miss(
            format!("delivery {pos}"),
            "the task fields on their own, without messages",
            d.to_string(),
        ));
    }
    if pos + 1 != t.deliveries.len() || pos == 0 {
        return Err(delivery_miss(
            format!("delivery {pos}"),
            "after the turn's messages",
            format!("at position {pos} of {}", t.deliveries.len()),
        ));
    }
    Ok(())
}

async fn async_end_of_message(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-05").await?;
    record_deliveries(ev, &t.deliveries);
    let last = t
        .deliveries
        .iter()
        .rfind(|d| {
            d.get("data")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
        .ok_or_else(|| delivery_miss("deliveries".into(), "at least one message", "none".into()))?;
    if last
        .pointer("/data/0/endOfMessage")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Ok(());
    }
    Err(delivery_miss(
        "last message /data/0/endOfMessage".into(),
        "true",
        last.to_string(),
    ))
}

// ---- tokens and errors ----

async fn auth_refused(
    c: &Ctx,
    ev: &mut Evidence,
    check: &str,
    auth: Auth,
    user: Option<&str>,
) -> Judged {
    let me = c.user(check);
    let from = user.unwrap_or(&me);
    let body = json!({"message": {"type": "text", "val": "balance"}, "from": {"id": from}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c
        .prober
        .send(ev, Req::post(c.v2_sync()?, auth, body))
        .await?;
    r.envelope(401, "Invalid Access token", true)
}

async fn auth_accepted(c: &Ctx, ev: &mut Evidence, check: &str, auth: Auth) -> Judged {
    let user = c.user(check);
    let body = c.body(&user, json!({"type": "text", "val": "balance"}));
    let r = c
        .prober
        .send(ev, Req::post(c.v2_sync()?, auth, body))
        .await?;
    r.status_is(200)
}

async fn auth_missing(c: &Ctx, ev: &mut Evidence) -> Judged {
    auth_refused(c, ev, "CH-AUTH-01", Auth::None, None).await
}

async fn auth_bad_signature(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-02");
    let wrong = format!("{}-not-the-secret", c.target.client_secret);
    let auth = c.signed(Alg::HS256, &wrong, AppClaim::AppId, &user)?;
    auth_refused(c, ev, "CH-AUTH-02", auth, None).await
}

async fn auth_none(c: &Ctx, ev: &mut Evidence) -> Judged {
    use base64::Engine as _;
    let user = c.user("CH-AUTH-03");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = unix_now();
    let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = json!({"appId": c.target.client_id, "sub": user, "userIdentity": user, "iat": now, "exp": now + 3600});
    let token = format!("{header}.{}.", b64.encode(claims.to_string()));
    auth_refused(
        c,
        ev,
        "CH-AUTH-03",
        Auth::Header(format!("bearer {token}")),
        None,
    )
    .await
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn auth_expired(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-04");
    let now = unix_now() as f64;
    let claims = Claims {
        app_id: Some(c.target.client_id.clone()),
        sub: Some(user.clone()),
        user_identity: Some(user.clone()),
        iat: Some(NumericDate(now - 7200.0)),
        exp: Some(NumericDate(now - 3600.0)),
        ..Default::default()
    };
    let token = Signer::hmac(Alg::HS256, c.target.client_secret.as_bytes())
        .and_then(|s| s.sign(&claims))
        .map_err(|e| Miss::Skipped(format!("cannot sign a token: {e}")))?;
    auth_refused(
        c,
        ev,
        "CH-AUTH-04",
        Auth::Header(format!("bearer {token}")),
        None,
    )
    .await
}

async fn auth_identity(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-05");
    let auth = c.auth(&user)?;
    let someone = format!("{user}-someone-else");
    auth_refused(c, ev, "CH-AUTH-05", auth, Some(&someone)).await
}

async fn auth_iss(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-06");
    let auth = c.signed(Alg::HS256, &c.target.client_secret, AppClaim::Iss, &user)?;
    auth_accepted(c, ev, "CH-AUTH-06", auth).await
}

async fn auth_hs512(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-07");
    let auth = c.signed(Alg::HS512, &c.target.client_secret, AppClaim::AppId, &user)?;
    auth_accepted(c, ev, "CH-AUTH-07", auth).await
}

async fn auth_scheme(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-AUTH-08");
    for scheme in ["bearer", "Bearer"] {
        let Auth::Header(v) = c.auth(&user)? else {
            unreachable!("auth() always gives a header")
        };
        let token = v.split_once(' ').map_or("", |(_, t)| t);
        auth_accepted(
            c,
            ev,
            "CH-AUTH-08",
            Auth::Header(format!("{scheme} {token}")),
        )
        .await?;
    }
    Ok(())
}

async fn err_unknown_bot(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-ERR-01");
    let other = Endpoints::new(
        &c.target.endpoints.base,
        "st-00000000-0000-4000-8000-000000000000",
    );
    let url = other.message(crate::protocol::Version::V2, None);
    let r = c
        .prober
        .send(
            ev,
            Req::post(
                url,
                c.auth(&user)?,
                c.body(&user, json!({"type": "text", "val": "hi"})),
            ),
        )
        .await?;
    r.envelope(404, "Bot not found", true).or_else(|miss| {
        // The message of a 404 is not documented: status, code and envelope are what count.
        if r.status == 404
            && r.at("/errors/0/code").and_then(Value::as_u64) == Some(404)
            && r.str_at("/_v") == Some("v2")
        {
            Ok(())
        } else {
            Err(miss)
        }
    })
}

async fn err_too_large(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-ERR-02");
    let big = "x".repeat(3 * 1024 * 1024);
    let body = c.body(&user, json!({"type": "text", "val": big}));
    let mut req = Req::post(c.v2_sync()?, c.auth(&user)?, Value::Null);
    req.body = Body::Raw("application/json", body.to_string().into_bytes());
    let r = c.prober.send(ev, req).await?;
    r.status_is(413)?;
    if r.at("/errors/0/msg").and_then(Value::as_str).is_none() {
        return Err(r.miss("/errors/0/msg", "the error envelope", r.status_text()));
    }
    Ok(())
}

async fn cors(c: &Ctx, ev: &mut Evidence) -> Judged {
    let mut req = Req::get(c.v2_sync()?, Auth::None);
    req.method = http::Method::OPTIONS;
    req.headers = vec![
        ("origin", "https://widget.example.com".into()),
        ("access-control-request-method", "POST".into()),
        (
            "access-control-request-headers",
            "authorization,content-type".into(),
        ),
    ];
    let r = c.prober.send(ev, req).await?;
    if !(200..300).contains(&r.status) {
        return Err(r.miss("status", "2xx", r.status_text()));
    }
    let header = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let origin = header("access-control-allow-origin");
    if origin != "*" && origin != "https://widget.example.com" {
        return Err(r.miss("access-control-allow-origin", "* or the origin", origin));
    }
    if !header("access-control-allow-methods").contains("post")
        && header("access-control-allow-methods") != "*"
    {
        return Err(r.miss(
            "access-control-allow-methods",
            "POST",
            header("access-control-allow-methods"),
        ));
    }
    let allowed = header("access-control-allow-headers");
    let listed: Vec<&str> = allowed.split(',').map(str::trim).collect();
    for h in ["authorization", "content-type"] {
        if !listed.contains(&h) {
            return Err(r.miss(
                "access-control-allow-headers",
                "authorization and content-type named (`*` does not cover authorization)",
                allowed,
            ));
        }
    }
    Ok(())
}

// ---- upload ----

struct Upload {
    auth: Auth,
    token_url: String,
    channel: String,
}

fn upload(c: &Ctx, user: &str) -> Result<Upload, Miss> {
    let channel = Ctx::need(&c.target.upload_channel, "upload channel")?.to_string();
    let instance = (channel != "ivr").then_some(channel.as_str());
    Ok(Upload {
        auth: c.auth(user)?,
        token_url: c.target.endpoints.upload_token(instance),
        channel,
    })
}

async fn file_token(c: &Ctx, ev: &mut Evidence, u: &Upload) -> Result<(Resp, String), Miss> {
    let mut req = Req::get(&u.token_url, u.auth.clone());
    req.method = http::Method::POST;
    let r = c.prober.send(ev, req).await?;
    r.status_is(200)?;
    r.str_matches("/fileToken", "a file token", |s| !s.is_empty())?;
    let token = r.str_at("/fileToken").unwrap_or_default().to_string();
    Ok((r, token))
}

/// Uploads `data` in chunks of `size`; returns the merge answer.
async fn upload_file(
    c: &Ctx,
    ev: &mut Evidence,
    u: &Upload,
    data: &[u8],
    size: usize,
) -> Result<Resp, Miss> {
    let (_, token) = file_token(c, ev, u).await?;
    let instance = (u.channel != "ivr").then_some(u.channel.as_str());
    let chunks: Vec<&[u8]> = data.chunks(size).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let form = reqwest::multipart::Form::new()
            .text("chunkNo", i.to_string())
            .text("fileToken", token.clone())
            .part(
                "chunk",
                reqwest::multipart::Part::bytes(chunk.to_vec()).file_name("scan.png"),
            );
        let mut req = Req::get(
            c.target.endpoints.upload_chunk(instance, &token),
            u.auth.clone(),
        );
        req.method = http::Method::POST;
        req.body = Body::Form(
            form,
            format!(
                "chunkNo={i}, fileToken=<file token>, chunk=<{} bytes>",
                chunk.len()
            ),
        );
        let r = c.prober.send(ev, req).await?;
        r.status_is(200)?;
        let no = r
            .at("/chunkNo")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
        if no.as_deref() != Some(i.to_string().as_str()) {
            return Err(r.miss(
                "/chunkNo",
                i.to_string(),
                no.unwrap_or_else(|| "absent".into()),
            ));
        }
    }
    let form = reqwest::multipart::Form::new()
        .text("totalChunks", chunks.len().to_string())
        .text("fileExtension", "png")
        .text("filename", "scan")
        .text("fileContext", "workflows")
        .text("thumbnailUpload", "false");
    let mut req = Req::get(
        c.target.endpoints.upload_merge(instance, &token),
        u.auth.clone(),
    );
    req.method = http::Method::PUT;
    req.body = Body::Form(form, format!("totalChunks={}, fileExtension=png, filename=scan, fileContext=workflows, thumbnailUpload=false", chunks.len()));
    c.prober.send(ev, req).await
}

/// A small PNG-like payload: what is in it does not matter to the API.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

async fn upload_token(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-UP-01");
    let u = upload(c, &user)?;
    let (r, _) = file_token(c, ev, &u).await?;
    match r.at("/expiresOn") {
        Some(v) if v.is_number() || v.is_string() => Ok(()),
        other => Err(r.miss(
            "/expiresOn",
            "an expiry (epoch ms)",
            other.map_or("absent".into(), |v| v.to_string()),
        )),
    }
}

async fn upload_chunks(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-UP-02");
    let u = upload(c, &user)?;
    let r = upload_file(c, ev, &u, &payload(300 * 1024), 128 * 1024).await?;
    r.status_is(200)?;
    r.str_matches("/fileId", "24 hex digits", |s| is_hex(s, 24))
}

async fn upload_message(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-UP-03");
    let u = upload(c, &user)?;
    let merged = upload_file(c, ev, &u, &payload(4096), 4096).await?;
    merged.status_is(200)?;
    let file_id = merged.str_at("/fileId").unwrap_or_default().to_string();
    let body = json!({"message": {"type": "text", "val": "here is the document", "attachments": [{"fileId": file_id, "fileName": "scan.png", "fileType": "image"}]}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, c.v2_sync()?, &user, body).await?;
    r.status_is(200)?;
    if r.texts().is_empty() {
        return Err(r.miss(
            "/data",
            "an answer to the message with the file",
            r.status_text(),
        ));
    }
    Ok(())
}

async fn upload_too_large(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-UP-04");
    let u = upload(c, &user)?;
    // One chunk of 3 MiB: over the simulator's 2 MiB per chunk, and over what any client sends.
    let r = upload_file(c, ev, &u, &payload(3 * 1024 * 1024), 3 * 1024 * 1024).await;
    let r = match r {
        Ok(r) => r,
        Err(Miss::Failed(m)) if m.field == "status" && m.actual.starts_with("413") => return Ok(()),
        Err(other) => return Err(other),
    };
    Err(r.miss("status", "413 for the oversized chunk", r.status_text()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certify::catalogue::{Side, CHECKS};

    #[test]
    fn every_channel_check_has_a_judge_and_every_judge_a_check() {
        for c in CHECKS.iter().filter(|c| c.side == Side::Channel) {
            assert!(judge(c.id).is_some(), "{} has no judge", c.id);
        }
        for id in JUDGED {
            assert!(
                crate::certify::catalogue::find(id).is_some(),
                "{id} is judged but not catalogued"
            );
        }
        assert!(judge("CH-NOPE-01").is_none());
    }
}
