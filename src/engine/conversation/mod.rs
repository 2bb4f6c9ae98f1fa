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
    /// Behave like a browser from this origin: a CORS pre-flight per new URL.
    pub browser: Option<Arc<str>>,
    /// Encrypts each signed token as a JWE (`auth.jwe`).
    pub jwe: Option<Arc<crate::protocol::jwt::jwe::Encrypter>>,
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
    /// URLs this user (as a browser) has a cached CORS pre-flight for.
    preflighted: std::collections::HashSet<String>,
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
    /// A proactive notification: POSTed with the token in the `auth` header.
    notify: bool,
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
    preflighted: &'c mut std::collections::HashSet<String>,
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
        let UserState {
            tokens,
            vars,
            preflighted,
        } = carry;
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
            preflighted,
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
        let mut header =
            t.signer
                .bearer_for(&t.claims, &state.user)
                .map_err(|e| Failure::Decode {
                    message: format!("cannot sign a token: {e}"),
                })?;
        if let Some(jwe) = &t.jwe {
            // The signed token travels encrypted; like signing, once per cached token.
            let signed = header.get(7..).unwrap_or_default();
            header = jwe
                .encrypt(signed)
                .map(|e| format!("bearer {e}"))
                .map_err(|e| Failure::Decode {
                    message: format!("cannot encrypt a token: {e}"),
                })?;
        }
        let bearer = Bearer::from_header(header).map_err(transport)?;
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
        let (body, notify_url) = if let Action::Notify {
            message,
            kind,
            parameters,
            instance,
        } = &step.action
        {
            match self.notify_request(state, message, kind, parameters, instance.as_deref()) {
                Ok((body, url)) => (body, Some(url)),
                Err(f) => return fail(result, f),
            }
        } else {
            let message = match self.message(step, state, &token, &mut result).await {
                Ok(m) => m,
                Err(f) => return fail(result, f),
            };
            (self.body(step, state, message), None)
        };
        let url = notify_url.as_ref().unwrap_or(&self.target.message_url);
        let out = Outgoing {
            url,
            auth: &token,
            body: body.clone(),
            notify: notify_url.is_some(),
        };
        let mut reply = Reply {
            converged: true,
            trees: step.reads_trees(),
            ..Default::default()
        };
        // A browser pre-flights its own requests; notifications are server-to-server.
        if !out.notify {
            if let Some(f) = self
                .preflight(out.url, "POST", state.preflighted, &mut result)
                .await
            {
                return fail(result, f);
            }
        }
        let failure = match self.target.mode {
            Mode::Sync => {
                self.sync_turn(out, state.preflighted, &mut reply, &mut result)
                    .await
            }
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
        result.polls += reply.polls;
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
            // A notification is not a message: `step` builds its request.
            Action::Notify { .. } | Action::Think(_) => Msg::Tree(Value::Null),
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

mod channel;
mod turns;
mod upload;

#[cfg(test)]
mod tests {
    use super::*;

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
