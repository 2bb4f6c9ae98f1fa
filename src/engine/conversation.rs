//! The conversation executor: runs one scenario for one simulated user, turn by turn, and
//! records every timing and outcome. `hookbench test` runs it once per scenario (and data row);
//! the load engine runs many copies of it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::assertions::{evaluate, evaluate_brief, render_json};
use super::reply::{short, Body, Reply};
use super::results::{AssertionResult, Failure, ScenarioResult, StepResult, StepStatus, Timing};
use crate::client::http::{Exchange, TransportKind};
use crate::client::{Bearer, HttpClient, Receiver, Subscription, Url};
use crate::common::pause;
use crate::protocol::jwt::{ClaimsTemplate, Signer};
use crate::protocol::v2::Event;
use crate::protocol::{Endpoints, ErrorEnvelope, Version};
use crate::scenario::template::Template;
use crate::scenario::{
    Action, CaptureSource, CheckKind, Count, Mode, Poll, Scenario, Step, UploadMethod,
};

/// A target resolved for running: URLs, credentials, timing rules and the receiver.
#[derive(Debug, Clone)]
pub struct Target {
    /// Protocol version.
    pub version: Version,
    /// Sync or async.
    pub mode: Mode,
    /// Host and bot.
    pub endpoints: Endpoints,
    /// `None` for the first channel instance.
    pub instance: Option<String>,
    /// Signs users' tokens.
    pub signer: Arc<Signer>,
    /// The claims of a user's token.
    pub claims: ClaimsTemplate,
    /// A fresh token per request (`jti`) rather than one per conversation.
    pub token_per_request: bool,
    /// Sync budget.
    pub timeout: Duration,
    /// V2 poll loop.
    pub poll: Poll,
    /// Async: end a turn this long after the last delivery.
    pub quiet: Duration,
    /// Async: never wait longer.
    pub max_wait: Duration,
    /// Async deliveries.
    pub receiver: Option<Receiver>,
    /// Connection pool.
    pub http: HttpClient,
    /// The message URL (from the endpoints, version and instance).
    pub message_url: Url,
}

impl Target {
    /// The message URL.
    pub fn message_url(&self) -> &str {
        self.message_url.as_str()
    }
}

/// What a simulated user keeps between its conversations: its token and the storage of its
/// variables (emptied of every value but the built-ins at each start, so nothing captured
/// leaks into the next conversation).
#[derive(Debug, Default)]
pub struct UserState {
    tokens: TokenCache,
    vars: HashMap<String, String>,
}

/// Variables every conversation sets.
const BUILTINS: [&str; 5] = ["vu", "iteration", "run", "scenario", "user"];

/// Sets a variable, reusing the key's and the old value's storage.
fn set_var(vars: &mut HashMap<String, String>, key: &str, value: impl std::fmt::Display) {
    use std::fmt::Write;
    match vars.get_mut(key) {
        Some(v) => {
            v.clear();
            let _ = write!(v, "{value}");
        }
        None => {
            vars.insert(key.to_string(), value.to_string());
        }
    }
}

/// A user's signed token, kept across the user's conversations as a client caching its JWT
/// would: renewed when the user changes or half its lifetime has passed. Tokens with a `jti`
/// are never reused.
#[derive(Debug, Default)]
pub struct TokenCache {
    user: String,
    bearer: Option<Bearer>,
    renew_at: Option<Instant>,
}

impl TokenCache {
    fn get(&self, user: &str) -> Option<Bearer> {
        let fresh = self.renew_at.is_none_or(|at| Instant::now() < at);
        self.bearer.clone().filter(|_| fresh && self.user == user)
    }
}

/// How a conversation went.
#[derive(Debug)]
pub struct Outcome {
    /// The user's id.
    pub user: String,
    /// No step failed.
    pub passed: bool,
    /// When it began.
    pub started: Instant,
}

/// A turn's message request.
struct Outgoing<'a> {
    url: &'a Url,
    auth: &'a Bearer,
    body: Bytes,
}

/// A step's `message` object: text and events are written straight from their parts, the
/// rest is built as a tree.
enum Msg {
    /// V2 `{"type": kind, "val": val}`.
    V2 { kind: &'static str, val: String },
    /// V1 `{"text": text}`.
    V1 { text: String },
    /// Anything else.
    Tree(Value),
}

impl Msg {
    fn into_tree(self) -> Value {
        match self {
            Msg::V2 { kind, val } => json!({"type": kind, "val": val}),
            Msg::V1 { text } => json!({ "text": text }),
            Msg::Tree(v) => v,
        }
    }
}

impl Serialize for Msg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Msg::V2 { kind, val } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", kind)?;
                m.serialize_entry("val", val)?;
                m.end()
            }
            Msg::V1 { text } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("text", text)?;
                m.end()
            }
            Msg::Tree(v) => v.serialize(s),
        }
    }
}

/// A request body, written without building a tree.
#[derive(Serialize)]
struct Outbound<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Value>,
    message: Msg,
    from: OutFrom<'a>,
    to: OutTo<'a>,
    #[serde(rename = "metaTags", skip_serializing_if = "Option::is_none")]
    meta_tags: Option<Value>,
    #[serde(rename = "customData", skip_serializing_if = "Option::is_none")]
    custom_data: Option<Value>,
    #[serde(
        rename = "interactiveLanguage",
        skip_serializing_if = "Option::is_none"
    )]
    language: Option<&'a str>,
    /// V1 level tags sit at the top of the body.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    level_tags: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct OutFrom<'a> {
    id: &'a str,
    #[serde(rename = "userInfo", skip_serializing_if = "Map::is_empty")]
    user_info: Map<String, Value>,
}

#[derive(Serialize)]
struct OutTo<'a> {
    id: &'a str,
}

/// State carried from turn to turn.
struct State<'c> {
    vars: &'c mut HashMap<String, String>,
    /// Write expected and actual for checks that hold too.
    explain: bool,
    user: String,
    tokens: &'c mut TokenCache,
    form: Option<Value>,
    subscription: Option<Subscription>,
}

/// Runs a scenario for one user.
#[derive(Debug, Clone, Copy)]
pub struct Conversation<'a> {
    /// The plan.
    pub scenario: &'a Scenario,
    /// Where it runs.
    pub target: &'a Target,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn us(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

impl Conversation<'_> {
    /// Runs every step; stops at the first failed step (the rest are skipped).
    pub async fn run(&self, vu: u64, iteration: u64, row: Option<usize>) -> ScenarioResult {
        let mut carry = UserState::default();
        let mut steps = Vec::with_capacity(self.scenario.steps.len());
        let outcome = self
            .steps(vu, iteration, row, &mut carry, true, &mut |_, r| {
                steps.push(r)
            })
            .await;
        steps.extend(self.scenario.steps[steps.len()..].iter().map(skipped));
        ScenarioResult {
            name: self.scenario.name.clone(),
            file: self.scenario.file.display().to_string(),
            row: row.map(|r| r + 1),
            user: outcome.user,
            passed: outcome.passed,
            duration_ms: ms(outcome.started.elapsed()),
            steps,
            setup_error: None,
        }
    }

    /// Runs the steps up to the first failure for a user that keeps `carry` between its
    /// conversations, handing each step's result to `on_step` as soon as it is known (the
    /// load engine records metrics there and keeps nothing else). Checks that hold are not
    /// explained (no expected and actual text).
    pub async fn drive(
        &self,
        vu: u64,
        iteration: u64,
        row: Option<usize>,
        carry: &mut UserState,
        on_step: &mut (dyn FnMut(&Step, StepResult) + Send),
    ) -> Outcome {
        self.steps(vu, iteration, row, carry, false, on_step).await
    }

    async fn steps(
        &self,
        vu: u64,
        iteration: u64,
        row: Option<usize>,
        carry: &mut UserState,
        explain: bool,
        on_step: &mut (dyn FnMut(&Step, StepResult) + Send),
    ) -> Outcome {
        let started = Instant::now();
        let UserState { tokens, vars } = carry;
        if vars.len() > BUILTINS.len() {
            vars.retain(|k, _| BUILTINS.contains(&k.as_str()));
        }
        // Unset (empty) until the user's id is rendered, as in a first conversation.
        set_var(vars, "user", "");
        set_var(vars, "vu", vu);
        set_var(vars, "iteration", iteration);
        set_var(vars, "run", format_args!("{:08x}", rand::random::<u32>()));
        set_var(vars, "scenario", &self.scenario.name);
        if let (Some(data), Some(r)) = (&self.scenario.data, row) {
            for (c, v) in data.columns.iter().zip(&data.rows[r]) {
                vars.insert(c.clone(), v.clone());
            }
        }
        for (name, t) in &self.scenario.vars {
            let v = render(t, vars);
            vars.insert(name.clone(), v);
        }
        let user = render(&self.scenario.user.id, vars);
        set_var(vars, "user", &user);
        let subscription = self
            .target
            .receiver
            .as_ref()
            .filter(|_| self.target.mode == Mode::Async)
            .map(|r| r.subscribe(&user));
        let mut state = State {
            vars,
            user,
            tokens,
            explain,
            form: None,
            subscription,
        };
        for step in &self.scenario.steps {
            let r = self.step(step, &mut state).await;
            let failed = r.status == StepStatus::Failed;
            on_step(step, r);
            if failed {
                return Outcome {
                    user: state.user,
                    passed: false,
                    started,
                };
            }
        }
        Outcome {
            user: state.user,
            passed: true,
            started,
        }
    }

    fn token(&self, state: &mut State<'_>) -> Result<Bearer, Failure> {
        let t = self.target;
        let reusable = !t.token_per_request && !t.claims.jti;
        if reusable {
            if let Some(b) = state.tokens.get(&state.user) {
                return Ok(b);
            }
        }
        let signed = t
            .signer
            .sign(&t.claims.for_user(&state.user))
            .map_err(|e| Failure::Decode {
                message: format!("cannot sign a token: {e}"),
            })?;
        let bearer = Bearer::new(&signed).map_err(transport)?;
        if reusable {
            *state.tokens = TokenCache {
                user: state.user.clone(),
                bearer: Some(bearer.clone()),
                renew_at: t.claims.expires_in.map(|d| Instant::now() + d / 2),
            };
        }
        Ok(bearer)
    }

    async fn step(&self, step: &Step, state: &mut State<'_>) -> StepResult {
        let mut result = StepResult {
            status: StepStatus::Passed,
            ..skipped(step)
        };
        if let Some(think) = step.think {
            let wait = think.sample(&mut rand::rng());
            pause(wait).await;
        }
        if let Action::Think(d) = &step.action {
            let wait = d.sample(&mut rand::rng());
            pause(wait).await;
            return result;
        }
        let token = match self.token(state) {
            Ok(t) => t,
            Err(f) => return fail(result, f),
        };
        let message = match self.message(step, state, &token, &mut result).await {
            Ok(m) => m,
            Err(f) => return fail(result, f),
        };
        let body = self.body(step, state, message);
        let url = &self.target.message_url;
        let out = Outgoing {
            url,
            auth: &token,
            body: body.clone(),
        };
        let mut reply = Reply {
            converged: true,
            trees: step.reads_trees(),
            ..Default::default()
        };
        let failure = match self.target.mode {
            Mode::Sync => self.sync_turn(out, &mut reply, &mut result).await,
            Mode::Async => {
                self.async_turn(out, step, state, &mut reply, &mut result)
                    .await
            }
        };
        reply.finish(self.target.version);
        if reply.form.is_some() {
            state.form = reply.form.clone();
        }
        result.http_status = reply.status;
        result.latency_ms = ms(reply.latency);
        result.polls = reply.polls;
        result.in_progress = reply.in_progress;
        // A protocol error is the turn's answer when the step checks the status (negative tests).
        let checks_status = step
            .expect
            .iter()
            .any(|c| matches!(c.kind, CheckKind::Status(_)));
        let failure = match failure {
            Some(Failure::Protocol { .. }) if checks_status => None,
            other => other,
        };
        if failure.is_none() {
            let vars = &*state.vars;
            let lookup = |n: &str| vars.get(n).cloned();
            result.assertions = step
                .expect
                .iter()
                .map(|c| match state.explain {
                    true => evaluate(c, &reply, &lookup),
                    false => evaluate_brief(c, &reply, &lookup),
                })
                .collect();
            for cap in &step.capture {
                match capture(&cap.source, &reply) {
                    Some(v) => {
                        state.vars.insert(cap.name.clone(), v);
                    }
                    None => result.assertions.push(AssertionResult {
                        check: format!("capture {}", cap.name).into(),
                        line: step.pos.line,
                        passed: false,
                        expected: "a value to capture".into(),
                        actual: "nothing matched".into(),
                    }),
                }
            }
        }
        result.texts = std::mem::take(&mut reply.texts);
        let first_failed =
            result
                .assertions
                .iter()
                .find(|a| !a.passed)
                .map(|a| Failure::Assertion {
                    check: a.check.to_string(),
                    expected: a.expected.clone(),
                    actual: a.actual.clone(),
                });
        if let Some(f) = failure.or(first_failed) {
            return fail(result, f);
        }
        result
    }

    /// The `message` object for this step (uploads happen here).
    async fn message(
        &self,
        step: &Step,
        state: &State<'_>,
        token: &Bearer,
        result: &mut StepResult,
    ) -> Result<Msg, Failure> {
        let vars = &*state.vars;
        let v2 = self.target.version == Version::V2;
        Ok(match &step.action {
            Action::Send(t) => {
                let text = render(t, vars);
                if v2 {
                    Msg::V2 {
                        kind: "text",
                        val: text,
                    }
                } else {
                    Msg::V1 { text }
                }
            }
            Action::Event(e) => {
                if !v2 {
                    return Err(usage(format!(
                        "{} is a V2 event; V1 has only text messages",
                        e.as_str()
                    )));
                }
                Msg::V2 {
                    kind: "event",
                    val: e.as_str().to_string(),
                }
            }
            Action::Template(t) => {
                let val = render_json(t, &|n| vars.get(n).cloned());
                if v2 {
                    Msg::Tree(json!({"type": "template", "val": val}))
                } else {
                    Msg::V1 {
                        text: val.to_string(),
                    }
                }
            }
            Action::Form(fields) => {
                let Some(form) = &state.form else {
                    return Err(usage(
                        "no form to fill: the bot has not sent one in this conversation".into(),
                    ));
                };
                let components = form
                    .get("components")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut data = Vec::new();
                for (name, t) in fields {
                    let comp = components.iter().find(|c| {
                        [c.get("key"), c.get("displayName"), c.get("id")]
                            .iter()
                            .any(|v| v.and_then(Value::as_str) == Some(name.as_str()))
                    });
                    let Some(comp) = comp else {
                        let known: Vec<&str> = components
                            .iter()
                            .filter_map(|c| c.get("key").and_then(Value::as_str))
                            .collect();
                        return Err(usage(format!(
                            "the form has no field `{name}` (fields: {})",
                            known.join(", ")
                        )));
                    };
                    data.push(json!({"componentId": comp.get("id").cloned().unwrap_or(Value::Null), "input": render(t, vars)}));
                }
                let submission = json!({"formId": form.get("id").cloned().unwrap_or(Value::Null), "data": data, "meta": {}});
                Msg::Tree(if v2 {
                    json!({"type": "formData", "val": submission})
                } else {
                    json!({"text": "", "formData": submission})
                })
            }
            Action::Upload {
                path,
                text,
                file_type,
                method,
            } => {
                if !v2 {
                    return Err(usage("file uploads are a V2 feature".into()));
                }
                let started = Instant::now();
                let file_id = self.upload(path, *method, token).await?;
                result.timings.push(Timing {
                    event: "upload",
                    at_us: us(started.elapsed()),
                });
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Msg::Tree(
                    json!({"type": "text", "val": render(text, vars), "attachments": [{"fileId": file_id, "fileName": name, "fileType": file_type}]}),
                )
            }
            Action::Think(_) => Msg::Tree(Value::Null),
        })
    }

    fn body(&self, step: &Step, state: &State<'_>, mut message: Msg) -> Bytes {
        let vars = &*state.vars;
        let lookup = |n: &str| vars.get(n).cloned();
        let new_session =
            step.new_session || matches!(step.action, Action::Event(Event::OnConnect));
        if let Some(att) = &step.attachments {
            let mut tree = message.into_tree();
            if let Some(m) = tree.as_object_mut() {
                m.insert("attachments".into(), render_json(att, &lookup));
            }
            message = Msg::Tree(tree);
        }
        let user = &self.scenario.user;
        let mut user_info = Map::new();
        for (key, t) in [
            ("firstName", &user.first_name),
            ("lastName", &user.last_name),
            ("email", &user.email),
        ] {
            if let Some(t) = t {
                user_info.insert(key.into(), Value::String(render(t, vars)));
            }
        }
        let tags = step.tags.as_ref().map(|t| render_json(t, &lookup));
        let (meta_tags, level_tags) = match self.target.version {
            Version::V2 => (tags, None),
            Version::V1 => (None, tags.and_then(|t| t.as_object().cloned())),
        };
        let out = Outbound {
            session: new_session.then(|| json!({"new": true})),
            message,
            from: OutFrom {
                id: &state.user,
                user_info,
            },
            to: OutTo {
                id: &self.target.endpoints.bot_id,
            },
            meta_tags,
            custom_data: step.custom_data.as_ref().map(|cd| render_json(cd, &lookup)),
            language: step.language.as_deref(),
            level_tags,
        };
        serde_json::to_vec(&out).unwrap_or_default().into()
    }

    async fn upload(
        &self,
        path: &std::path::Path,
        method: UploadMethod,
        auth: &Bearer,
    ) -> Result<String, Failure> {
        let data = crate::common::read_bytes_limited(path, crate::common::MAX_UPLOAD_BYTES)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        let ep = &self.target.endpoints;
        let inst = self.target.instance.as_deref();
        let http = self.target.http.raw();
        let auth = auth.header();
        let call = |req: reqwest::RequestBuilder| async move {
            let ex = self
                .target
                .http
                .exchange(req.timeout(self.target.timeout))
                .await
                .map_err(transport)?;
            if ex.status != 200 {
                return Err(protocol_failure(&ex));
            }
            serde_json::from_slice::<Value>(&ex.body).map_err(|e| Failure::Decode {
                message: format!("upload answer: {e}"),
            })
        };
        let name = path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let ext = path
            .extension()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file_id = |answer: Value, what: &str| {
            answer
                .get("fileId")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| Failure::Decode {
                    message: format!("no fileId in the {what} answer"),
                })
        };
        let chunk_size = match method {
            UploadMethod::Chunked(size) => size,
            UploadMethod::OneShot => {
                let form = reqwest::multipart::Form::new()
                    .text("fileExtension", ext.clone())
                    .text("filename", name.clone())
                    .text("fileContext", "workflows")
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(data).file_name(format!("{name}.{ext}")),
                    );
                let answer = call(
                    http.post(ep.upload_file(inst))
                        .header("authorization", &auth)
                        .multipart(form),
                )
                .await?;
                return file_id(answer, "one-shot upload");
            }
        };
        let tok = call(
            http.post(ep.upload_token(inst))
                .header("authorization", &auth),
        )
        .await?;
        let ft = tok
            .get("fileToken")
            .and_then(Value::as_str)
            .ok_or_else(|| Failure::Decode {
                message: "no fileToken in the token answer".into(),
            })?
            .to_string();
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[][..]]
        } else {
            data.chunks(chunk_size).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let form = reqwest::multipart::Form::new()
                .text("chunkNo", i.to_string())
                .text("fileToken", ft.clone())
                .part(
                    "chunk",
                    reqwest::multipart::Part::bytes(chunk.to_vec())
                        .file_name(format!("{name}.{ext}")),
                );
            call(
                http.post(ep.upload_chunk(inst, &ft))
                    .header("authorization", &auth)
                    .multipart(form),
            )
            .await?;
        }
        let form = reqwest::multipart::Form::new()
            .text("totalChunks", chunks.len().to_string())
            .text("fileExtension", ext)
            .text("filename", name)
            .text("fileContext", "workflows")
            .text("thumbnailUpload", "false");
        let merged = call(
            http.put(ep.upload_merge(inst, &ft))
                .header("authorization", &auth)
                .multipart(form),
        )
        .await?;
        file_id(merged, "merge")
    }

    async fn sync_turn(
        &self,
        out: Outgoing<'_>,
        reply: &mut Reply,
        result: &mut StepResult,
    ) -> Option<Failure> {
        let t = self.target;
        let v = t.version;
        // The turn's one clock: every latency and budget figure of the turn is read from it.
        let started = Instant::now();
        let ex = match t
            .http
            .post_json(
                out.url,
                out.auth,
                out.body,
                t.timeout + Duration::from_secs(1),
            )
            .await
        {
            Ok(ex) => ex,
            Err(e) if e.kind == TransportKind::TimedOut => {
                return Some(budget(
                    reply,
                    started,
                    Some(t.timeout),
                    "no answer within the sync budget",
                ));
            }
            Err(e) => {
                reply.latency = started.elapsed();
                return Some(transport(e));
            }
        };
        let sent = ex.sent;
        result.timings.push(Timing {
            event: "first_byte",
            at_us: us(ex.first_byte),
        });
        result.timings.push(Timing {
            event: "body",
            at_us: us(ex.total),
        });
        result.first_byte_ms = Some(ms(ex.first_byte));
        reply.status = Some(ex.status);
        reply.latency = ex.total;
        let body = match decode_answer(&ex, v, reply.trees) {
            Ok(b) => b,
            Err((body, f)) => {
                if let Some(b) = body {
                    reply.push(Body::Tree(b), v);
                }
                if ex.status == 504 {
                    // The platform's own budget, not this run's: say only what it took.
                    return Some(budget(
                        reply,
                        sent,
                        None,
                        "the platform timed the request out (504)",
                    ));
                }
                return Some(f);
            }
        };
        if ex.total > t.timeout {
            reply.push(body, v);
            reply.latency = ex.total;
            return Some(Failure::Budget {
                limit_ms: Some(ms(t.timeout)),
                elapsed_ms: ms(ex.total),
                message: "sync request over its budget",
            });
        }
        let mut poll_id = (v == Version::V2).then(|| body.poll_id()).flatten();
        reply.push(body, v);
        if poll_id.is_some() {
            reply.converged = false;
        }
        while let Some(id) = poll_id.take() {
            if sent.elapsed() > t.poll.max_wait {
                return Some(budget(
                    reply,
                    sent,
                    Some(t.poll.max_wait),
                    "polling did not converge",
                ));
            }
            pause(t.poll.interval.wait(reply.polls)).await;
            let poll_url = match Url::parse(&t.endpoints.poll(&id)) {
                Ok(u) => u,
                Err(e) => return Some(transport(e)),
            };
            let ex = match t.http.get(&poll_url, out.auth, t.timeout).await {
                Ok(ex) => ex,
                Err(e) => {
                    reply.latency = sent.elapsed();
                    return Some(transport(e));
                }
            };
            reply.polls += 1;
            result.timings.push(Timing {
                event: "poll",
                at_us: us(sent.elapsed()),
            });
            let body = match decode_answer(&ex, v, reply.trees) {
                Ok(b) => b,
                Err((_, f)) => {
                    reply.latency = sent.elapsed();
                    return Some(f);
                }
            };
            if body.in_progress() {
                reply.in_progress += 1;
                poll_id = body.poll_id().or(Some(id));
                continue;
            }
            poll_id = body.poll_id();
            reply.push(body, v);
            reply.latency = sent.elapsed();
        }
        reply.converged = true;
        None
    }

    async fn async_turn(
        &self,
        out: Outgoing<'_>,
        step: &Step,
        state: &mut State<'_>,
        reply: &mut Reply,
        result: &mut StepResult,
    ) -> Option<Failure> {
        let t = self.target;
        let Some(sub) = state.subscription.as_mut() else {
            return Some(usage("async mode needs the POST_URL receiver".into()));
        };
        // Deliveries of an earlier turn that came after it ended: out of order with this one.
        let late = sub.drain().len();
        if late > 0 {
            tracing::debug!(late, "deliveries from an earlier turn arrived late");
            result.reordered += late as u32;
        }
        let ex = match t
            .http
            .post_json(out.url, out.auth, out.body, t.timeout)
            .await
        {
            Ok(ex) => ex,
            Err(e) => return Some(transport(e)),
        };
        reply.status = Some(ex.status);
        result.first_byte_ms = Some(ms(ex.first_byte));
        result.timings.push(Timing {
            event: "ack",
            at_us: us(ex.total),
        });
        if let Err((body, f)) = decode_answer(&ex, t.version, reply.trees) {
            if let Some(b) = body {
                reply.push(Body::Tree(b), t.version);
            }
            return Some(f);
        }
        let expected = step.expect.iter().find_map(|c| match (&c.kind, c.negate) {
            (CheckKind::Messages(Count::Eq(n) | Count::AtLeast(n)), false) => Some(*n),
            _ => None,
        });
        let deadline = tokio::time::Instant::from_std(ex.sent + t.max_wait);
        let mut order = DeliveryOrder::default();
        // Once the turn looks complete, wait only briefly for stragglers: 250 ms once the task
        // end, the last-message marker or the expected count is in, 100 ms once the marker and
        // the task end both are (a message they overtook is still counted, as reordered).
        let brief = t.quiet.min(Duration::from_millis(250));
        let settle = t.quiet.min(Duration::from_millis(100));
        let mut quiet = t.quiet;
        loop {
            let until = match reply.received {
                0 => deadline,
                _ => deadline.min(tokio::time::Instant::now() + quiet),
            };
            let Some(d) = sub.next_until(until).await else {
                break;
            };
            result.deliveries += 1;
            result.timings.push(Timing {
                event: "delivery",
                at_us: us(d.at.duration_since(ex.sent)),
            });
            match order.see(&d.body) {
                Seen::Duplicate => {
                    result.duplicates += 1;
                    continue;
                }
                Seen::OutOfOrder => result.reordered += 1,
                Seen::InOrder => {}
            }
            reply.latency = d.at.duration_since(ex.sent);
            reply.push(Body::Tree(d.body), t.version);
            if order.complete() {
                quiet = settle;
            } else if order.task_ended
                || order.end_of_message
                || expected.is_some_and(|n| order.messages >= n)
            {
                quiet = brief;
            }
        }
        if reply.received == 0 {
            return Some(budget(
                reply,
                ex.sent,
                Some(t.max_wait),
                "no async delivery arrived",
            ));
        }
        None
    }
}

/// A broken budget, measured once: the turn's latency and the failure's elapsed time are the
/// same reading of the turn's clock.
fn budget(
    reply: &mut Reply,
    since: Instant,
    limit: Option<Duration>,
    message: &'static str,
) -> Failure {
    let took = since.elapsed();
    reply.latency = took;
    Failure::Budget {
        limit_ms: limit.map(ms),
        elapsed_ms: ms(took),
        message,
    }
}

/// What one async delivery was, against the turn so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A copy of one already received.
    Duplicate,
    /// Arrived after a message the bot sent later (by `createdOn`), or after the task end.
    OutOfOrder,
    /// As the bot sent it.
    InOrder,
}

/// The order of one async turn's deliveries, judged against what the bot sent: messages by
/// their `createdOn` (a message created before one already received arrived out of order),
/// and the task end, which the bot sends last (a message after it arrived out of order).
#[derive(Debug, Default)]
struct DeliveryOrder {
    seen: HashSet<String>,
    newest: Option<String>,
    messages: usize,
    task_ended: bool,
    end_of_message: bool,
}

impl DeliveryOrder {
    fn see(&mut self, body: &Value) -> Seen {
        let first = body.pointer("/data/0");
        let key = first
            .and_then(|m| m.get("messageId"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        if !self.seen.insert(key) {
            return Seen::Duplicate;
        }
        let count = body
            .get("data")
            .and_then(Value::as_array)
            .map(Vec::len)
            .unwrap_or_else(|| usize::from(body.get("text").is_some()));
        let mut out_of_order = count > 0 && self.task_ended;
        if let Some(c) = first
            .and_then(|m| m.get("createdOn"))
            .and_then(Value::as_str)
        {
            // ISO-8601 UTC with milliseconds orders as text.
            match &self.newest {
                Some(n) if n.as_str() > c => out_of_order = true,
                _ => self.newest = Some(c.to_string()),
            }
        }
        self.messages += count;
        self.end_of_message |= body.get("data").and_then(Value::as_array).is_some_and(|d| {
            d.iter()
                .any(|m| m.get("endOfMessage") == Some(&Value::Bool(true)))
        });
        self.task_ended |= body.get("endOfTask").and_then(Value::as_bool) == Some(true);
        if out_of_order {
            Seen::OutOfOrder
        } else {
            Seen::InOrder
        }
    }

    /// The turn's last message (marked `endOfMessage`) and its task end have both arrived.
    /// Without the marker a turn ends by quiet time or deadline, never at the task end alone:
    /// a message the task end overtook may still be on its way.
    fn complete(&self) -> bool {
        self.task_ended && self.end_of_message
    }
}

/// Reads a 200 JSON answer as far as the step needs; anything else becomes a classified
/// failure (with the envelope, when there is one, kept for checks).
fn decode_answer(
    ex: &Exchange,
    version: Version,
    trees: bool,
) -> Result<Body, (Option<Value>, Failure)> {
    if ex.status != 200 {
        return Err((serde_json::from_slice(&ex.body).ok(), protocol_failure(ex)));
    }
    Body::parse(&ex.body, version, trees).map_err(|message| (None, Failure::Decode { message }))
}

fn protocol_failure(ex: &Exchange) -> Failure {
    match serde_json::from_slice::<ErrorEnvelope>(&ex.body) {
        Ok(env) => Failure::Protocol {
            status: ex.status,
            code: env.errors.first().map(|e| e.code),
            message: env.first_msg().unwrap_or("").to_string(),
        },
        Err(_) => Failure::Protocol {
            status: ex.status,
            code: None,
            message: format!(
                "unexpected answer: {}",
                short(&String::from_utf8_lossy(&ex.body))
            ),
        },
    }
}

fn transport(e: crate::client::TransportError) -> Failure {
    Failure::Transport {
        kind: e.kind,
        message: e.message,
    }
}

fn usage(message: String) -> Failure {
    Failure::Protocol {
        status: 0,
        code: None,
        message,
    }
}

fn fail(mut r: StepResult, f: Failure) -> StepResult {
    r.status = StepStatus::Failed;
    r.failure = Some(f);
    r
}

/// A step's result before it runs (and as reported when it never does).
fn skipped(step: &Step) -> StepResult {
    StepResult {
        index: step.index,
        label: step.label.clone(),
        file: step.shown_file.clone(),
        line: step.pos.line,
        status: StepStatus::Skipped,
        http_status: None,
        latency_ms: 0.0,
        first_byte_ms: None,
        polls: 0,
        in_progress: 0,
        deliveries: 0,
        duplicates: 0,
        reordered: 0,
        texts: Vec::new(),
        assertions: Vec::new(),
        failure: None,
        reproduce: None,
        timings: Vec::new(),
    }
}

/// Renders a template with the conversation's variables.
pub fn render(t: &Template, vars: &HashMap<String, String>) -> String {
    t.render(|n| vars.get(n).map(String::as_str))
}

fn capture(source: &CaptureSource, reply: &Reply) -> Option<String> {
    match source {
        CaptureSource::JsonPath(p) => p.query(&reply.merged).first().map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        }),
        CaptureSource::Regex(r) => reply.texts.iter().find_map(|t| {
            r.captures(t).map(|c| {
                c.get(1)
                    .or_else(|| c.get(0))
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default()
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u32, last: bool) -> Value {
        serde_json::json!({"data": [{"type": "text", "val": format!("m{n}"),
            "createdOn": format!("2026-12-01T00:00:00.{n:03}Z"), "messageId": format!("ms-{n}"),
            "endOfMessage": last.then_some(true)}], "_v": "v2"})
    }

    #[test]
    fn reordering_is_judged_by_what_the_bot_sent_not_by_arrival() {
        let mut order = DeliveryOrder::default();
        let arrived: Vec<Seen> = [2, 1, 4, 3, 5]
            .into_iter()
            .map(|n| order.see(&message(n, n == 5)))
            .collect();
        use Seen::{InOrder as I, OutOfOrder as O};
        assert_eq!(arrived, [I, O, I, O, I]);
        assert_eq!(order.see(&message(4, false)), Seen::Duplicate);
        assert_eq!(order.messages, 5);
        assert!(!order.complete(), "no task end yet");
    }

    #[test]
    fn a_task_end_that_overtakes_the_last_message_does_not_complete_the_turn() {
        let end = serde_json::json!({"data": [], "endOfTask": true, "endReason": "Fulfilled"});
        let mut order = DeliveryOrder::default();
        assert_eq!(order.see(&message(1, false)), Seen::InOrder);
        assert_eq!(order.see(&end), Seen::InOrder);
        assert!(!order.complete(), "the last message is still on its way");
        assert_eq!(order.see(&message(2, true)), Seen::OutOfOrder);
        assert!(order.complete());
        assert_eq!(order.see(&end), Seen::Duplicate);
    }

    #[test]
    fn a_cached_token_serves_only_its_user_and_only_until_renewal() {
        let b = Bearer::new("h.p.s").unwrap();
        let mut c = TokenCache {
            user: "u1".into(),
            bearer: Some(b),
            renew_at: Some(Instant::now() + Duration::from_secs(60)),
        };
        assert!(c.get("u1").is_some());
        assert!(c.get("u2").is_none());
        c.renew_at = Some(Instant::now() - Duration::from_millis(1));
        assert!(c.get("u1").is_none());
        c.renew_at = None;
        assert!(c.get("u1").is_some(), "a token without expiry is kept");
        assert!(TokenCache::default().get("").is_none());
    }
}
