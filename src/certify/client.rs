//! Certifying a client: the plan a client follows (ordinary user messages, with what it will
//! meet at each step), the recorder that watches it through the simulator's observer hook and
//! injects each step's condition, and the judging function of every client check, run on
//! what was recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::catalogue::Profile;
use super::probe::{Exchange, Judged, Mismatch, Miss};
use crate::protocol::{ErrorKind, Version};
use crate::sim::observe::{Observer, Seen};

/// What the simulator does at a step instead of answering at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inject {
    /// The first try is refused 401, as for an expired token.
    ExpiredToken,
    /// The first try is answered 429.
    TooManyRequests,
    /// The first try is answered 503.
    Unavailable,
}

impl Inject {
    fn status(self) -> u16 {
        match self {
            Inject::ExpiredToken => 401,
            Inject::TooManyRequests => 429,
            Inject::Unavailable => 503,
        }
    }

    fn response(self, version: Version) -> Response {
        let kind = match self {
            Inject::ExpiredToken => ErrorKind::InvalidToken,
            Inject::TooManyRequests => ErrorKind::TooManyRequests,
            Inject::Unavailable => ErrorKind::Internal(503),
        };
        let mut r = crate::sim::answer::error(version, kind);
        if self == Inject::ExpiredToken {
            r.headers_mut().insert(
                crate::sim::answer::AUTH_ERROR_HEADER,
                http::HeaderValue::from_static("expired"),
            );
        }
        r
    }
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    /// 1-based.
    pub n: usize,
    /// Where to send it.
    pub url: String,
    /// V1 or V2 body.
    pub version: &'static str,
    /// A user message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub say: Option<String>,
    /// An event (`ON_CONNECT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A conformant client may skip it.
    pub optional: bool,
    /// What the client meets at this step.
    pub meets: String,
    /// The condition injected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inject: Option<Inject>,
    #[serde(skip)]
    path: String,
}

/// The plan printed for a client.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The profile.
    pub profile: Profile,
    /// For people.
    pub how: String,
    /// The steps, in order.
    pub steps: Vec<PlanStep>,
}

/// The URLs a plan sends to.
#[derive(Debug, Clone)]
pub struct PlanUrls {
    /// V1, first instance.
    pub v1: String,
    /// V2, sync with polling.
    pub v2_poll: String,
    /// V2, sync without polling.
    pub v2_nopoll: String,
    /// V2, async (present when the client gave its POST_URL).
    pub v2_async: Option<String>,
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

/// Builds a plan's steps.
#[derive(Default)]
struct Steps(Vec<PlanStep>);

impl Steps {
    fn add(
        &mut self,
        url: &str,
        version: &'static str,
        what: (Option<&str>, Option<&str>),
        optional: bool,
        meets: &str,
        inject: Option<Inject>,
    ) {
        self.0.push(PlanStep {
            n: self.0.len() + 1,
            url: url.to_string(),
            version,
            say: what.0.map(str::to_string),
            event: what.1.map(str::to_string),
            optional,
            meets: meets.to_string(),
            inject,
            path: path_of(url),
        });
    }

    fn say(&mut self, url: &str, version: &'static str, text: &str, meets: &str) {
        self.add(url, version, (Some(text), None), false, meets, None);
    }

    fn transfer(&mut self, url: &str, version: &'static str, last: &str) {
        self.say(url, version, "transfer", "a question: how much");
        self.say(url, version, "100", "a question: to which account");
        self.say(url, version, "savings", last);
    }

    fn v1(&mut self, u: &PlanUrls) {
        self.say(&u.v1, "v1", "balance", "two messages and the task end");
        self.transfer(
            &u.v1,
            "v1",
            "a 1-2 s service node inside the request, then the task end",
        );
    }

    fn poll(&mut self, u: &PlanUrls) {
        let url = &u.v2_poll;
        self.add(
            url,
            "v2",
            (None, Some("ON_CONNECT")),
            true,
            "the welcome (send with session.new: true; optional)",
            None,
        );
        self.say(url, "v2", "balance", "two messages and the task end");
        self.transfer(url, "v2", "a message and a pollId; the first poll of it answers `Inprogress` (whenever it comes), later polls the rest and the task end");
        self.say(url, "v2", "statement", "chained pollIds: a message and a pollId (its first poll answers `Inprogress`), then a message with a new pollId, then the rest");
    }

    fn nopoll(&mut self, u: &PlanUrls) {
        self.say(
            &u.v2_nopoll,
            "v2",
            "balance",
            "two messages and the task end",
        );
        self.transfer(
            &u.v2_nopoll,
            "v2",
            "one answer after a 1-2 s service node (polling is off)",
        );
    }

    fn asynchronous(&mut self, url: &str) {
        self.say(url, "v2", "balance", "an acknowledgement; the messages arrive at your POST_URL, each twice and out of order, then the task end");
        self.transfer(url, "v2", "the messages at your POST_URL");
    }

    fn auth(&mut self, u: &PlanUrls) {
        let url = &u.v2_poll;
        for (inject, meets) in [
            (Inject::ExpiredToken, "401 Invalid Access token on the first try, as for an expired token: sign a new token and send again"),
            (Inject::TooManyRequests, "429 Too Many requests on the first try"),
            (Inject::Unavailable, "503 on the first try"),
        ] {
            self.add(url, "v2", (Some("balance"), None), false, meets, Some(inject));
        }
    }
}

/// The plan of a client profile (`None`: no client plan for it, e.g. `upload`, or an async
/// profile without the client's POST_URL).
pub fn plan(profile: Profile, urls: &PlanUrls) -> Option<Plan> {
    let mut steps = Steps::default();
    match profile {
        Profile::V1Sync => steps.v1(urls),
        Profile::V2Poll => steps.poll(urls),
        Profile::V2NoPoll => steps.nopoll(urls),
        Profile::V2Async => steps.asynchronous(urls.v2_async.as_deref()?),
        Profile::Auth => steps.auth(urls),
        Profile::Full => {
            steps.v1(urls);
            steps.poll(urls);
            steps.nopoll(urls);
            steps.asynchronous(urls.v2_async.as_deref()?);
            steps.auth(urls);
        }
        Profile::Upload => return None,
    }
    Some(Plan {
        profile,
        how: "Send each step as an ordinary message (or event) to its url, as one user (any from.id, the same throughout), with your normal token, in order; follow your normal behaviour for what each step meets. Optional steps may be skipped.".into(),
        steps: steps.0,
    })
}

/// A request as recorded.
#[derive(Debug, Clone)]
pub struct Rec {
    /// Arrival order.
    pub n: u64,
    /// Arrival.
    pub at: Instant,
    /// Arrival, Unix seconds.
    pub unix: f64,
    /// When the answer was ready.
    pub end: Option<Instant>,
    /// Method.
    pub method: String,
    /// Path.
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// The Authorization header: scheme ok, alg, claims, and a fingerprint of the token.
    pub auth: Option<Token>,
    /// Content-Type.
    pub content_type: Option<String>,
    /// The JSON body.
    pub body: Option<Value>,
    /// `from.id`.
    pub from: Option<String>,
    /// The text or event sent.
    pub said: Option<String>,
    /// The plan step it performed or tried.
    pub step: Option<usize>,
    /// The status injected instead of answering.
    pub injected: Option<u16>,
    /// The status answered.
    pub status: Option<u16>,
    /// The JSON answer.
    pub response: Option<Value>,
    /// Not a step of the plan: the closest expected one.
    pub unexpected: Option<String>,
}

/// What a request is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A V1 message.
    V1,
    /// A V2 message.
    V2,
    /// A V2 poll of this pollId.
    Poll(String),
    /// Anything else (uploads, pre-flights, metrics).
    Other,
}

/// A token as recorded: never the token itself.
#[derive(Debug, Clone)]
pub struct Token {
    /// `bearer` in some case.
    pub bearer: bool,
    /// The header's `alg`.
    pub alg: Option<String>,
    /// The claims.
    pub claims: serde_json::Map<String, Value>,
    /// A digest of the token, to tell tokens apart.
    pub fingerprint: String,
}

fn token(header: &str) -> Token {
    let (scheme, tok) = header.trim().split_once(' ').unwrap_or((header, ""));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = tok.trim().split('.');
    let mut part = || {
        parts
            .next()
            .and_then(|p| b64.decode(p.trim_end_matches('=')).ok())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let head = part();
    let claims = part()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    Token {
        bearer: scheme.eq_ignore_ascii_case("bearer"),
        alg: head.and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_string)),
        claims,
        fingerprint: super::sign::sha256_hex(tok.trim().as_bytes())[..16].to_string(),
    }
}

/// A delivery to the client's POST_URL.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The body.
    pub body: Value,
    /// The receiver's status.
    pub status: Option<u16>,
    /// How long it took.
    pub elapsed: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// pollIds issued by answers to messages, whose first poll is answered `Inprogress` by
    /// the recorder (so every client meets it, whatever its poll interval), and whether that
    /// happened yet.
    first_polls: Vec<(String, bool)>,
    recs: Vec<Rec>,
    deliveries: Vec<Delivered>,
    cursor: usize,
    performed: Vec<Option<u64>>,
    injected: Vec<bool>,
    completed: Option<Instant>,
    last_request: Option<Instant>,
}

/// Watches a client through the simulator and injects its plan's conditions.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Set once the simulator's address (and so the plan's URLs) is known.
    plan: std::sync::OnceLock<Plan>,
    state: Mutex<State>,
}

impl Recorder {
    /// Starts following `plan` (once).
    pub fn follow(&self, plan: Plan) {
        let n = plan.steps.len();
        if self.plan.set(plan).is_ok() {
            let mut s = self.lock();
            s.performed = vec![None; n];
            s.injected = vec![false; n];
        }
    }

    fn plan(&self) -> Option<&Plan> {
        self.plan.get()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once every step was performed and the client has been quiet for `quiet`.
    pub fn finished(&self, quiet: Duration) -> bool {
        let s = self.lock();
        s.completed.is_some() && s.last_request.is_some_and(|t| t.elapsed() >= quiet)
    }

    /// What was recorded.
    pub fn recording(&self) -> Recording {
        let s = self.lock();
        Recording {
            plan: self.plan().cloned().unwrap_or(Plan {
                profile: Profile::Full,
                how: String::new(),
                steps: Vec::new(),
            }),
            recs: s.recs.clone(),
            deliveries: s.deliveries.clone(),
            performed: s.performed.clone(),
        }
    }
}

fn classify(method: &str, path: &str) -> Kind {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("POST", ["chatbot", "hooks", ..]) => Kind::V1,
        ("GET", ["chatbot", "v2", "webhook", _, "poll", id]) => Kind::Poll((*id).to_string()),
        ("POST", ["chatbot", "v2", "webhook", ..]) => Kind::V2,
        _ => Kind::Other,
    }
}

fn said(kind: &Kind, body: &Value) -> Option<String> {
    match kind {
        Kind::V1 => body
            .pointer("/message/text")
            .and_then(Value::as_str)
            .map(str::to_string),
        Kind::V2 => body
            .pointer("/message/val")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

impl PlanStep {
    fn matches(&self, r: &Rec) -> bool {
        let version_ok = matches!((self.version, &r.kind), ("v1", Kind::V1) | ("v2", Kind::V2));
        let want = self
            .say
            .as_deref()
            .or(self.event.as_deref())
            .unwrap_or_default();
        version_ok
            && r.path.trim_end_matches('/') == self.path.trim_end_matches('/')
            && r.said
                .as_deref()
                .is_some_and(|s| s.trim().eq_ignore_ascii_case(want))
    }

    fn describe(&self) -> String {
        match (&self.say, &self.event) {
            (Some(t), _) => format!("step {}: say {t:?} to {}", self.n, self.path),
            (_, Some(e)) => format!("step {}: event {e} to {}", self.n, self.path),
            _ => format!("step {}", self.n),
        }
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Observer for Recorder {
    fn request(&self, seen: &Seen<'_>) -> (u64, Option<Response>) {
        let kind = classify(seen.method.as_str(), seen.path);
        let body: Option<Value> = serde_json::from_slice(seen.body).ok();
        let header = |name: http::header::HeaderName| {
            seen.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut rec = Rec {
            n: 0,
            at: seen.at,
            unix: unix_now(),
            end: None,
            method: seen.method.to_string(),
            path: seen.path.to_string(),
            auth: header(http::header::AUTHORIZATION).map(|h| token(&h)),
            content_type: header(http::header::CONTENT_TYPE),
            from: body
                .as_ref()
                .and_then(|b| b.pointer("/from/id"))
                .and_then(Value::as_str)
                .map(str::to_string),
            said: body.as_ref().and_then(|b| said(&kind, b)),
            body,
            kind,
            step: None,
            injected: None,
            status: None,
            response: None,
            unexpected: None,
        };
        let mut s = self.lock();
        rec.n = s.recs.len() as u64;
        s.last_request = Some(seen.at);
        let mut answer = None;
        if let Kind::Poll(id) = &rec.kind {
            if let Some(entry) = s.first_polls.iter_mut().find(|(p, done)| p == id && !done) {
                entry.1 = true;
                let body = crate::protocol::v2::Response::in_progress(id.clone());
                answer = Some(crate::sim::answer::json(http::StatusCode::OK, &body));
            }
        }
        let plan = self.plan();
        if let (Some(plan), true) = (plan, matches!(rec.kind, Kind::V1 | Kind::V2)) {
            let mut i = s.cursor;
            let found = loop {
                let Some(step) = plan.steps.get(i) else {
                    break None;
                };
                if step.matches(&rec) {
                    break Some(i);
                }
                if !step.optional {
                    break None;
                }
                i += 1;
            };
            match found {
                Some(i) => {
                    rec.step = Some(i);
                    let step = &plan.steps[i];
                    s.cursor = i;
                    match step.inject.filter(|_| !s.injected[i]) {
                        Some(inject) => {
                            s.injected[i] = true;
                            rec.injected = Some(inject.status());
                            let version = if rec.kind == Kind::V1 {
                                Version::V1
                            } else {
                                Version::V2
                            };
                            answer = Some(inject.response(version));
                        }
                        None => {
                            s.performed[i] = Some(rec.n);
                            s.cursor = i + 1;
                            if s.cursor == plan.steps.len() {
                                s.completed = Some(seen.at);
                            }
                        }
                    }
                }
                None => {
                    // A retry of the step just performed is not unexpected.
                    let again = s.cursor > 0 && plan.steps[s.cursor - 1].matches(&rec);
                    if again {
                        rec.step = Some(s.cursor - 1);
                    } else {
                        rec.unexpected = Some(closest(plan, s.cursor, &rec));
                    }
                }
            }
        }
        let n = rec.n;
        s.recs.push(rec);
        (n, answer)
    }

    fn answered(&self, id: u64, status: u16, body: &[u8]) {
        let mut s = self.lock();
        let mut issued = None;
        if let Some(r) = s.recs.get_mut(id as usize) {
            r.status = Some(status);
            r.end = Some(Instant::now());
            r.response = serde_json::from_slice(body).ok();
            if r.kind == Kind::V2 && status == 200 {
                issued = r
                    .response
                    .as_ref()
                    .and_then(|b| b.get("pollId"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
        }
        if let Some(p) = issued {
            s.first_polls.push((p, false));
        }
    }

    fn delivered(&self, body: &[u8], status: Option<u16>, elapsed: Duration) {
        let body = serde_json::from_slice(body).unwrap_or(Value::Null);
        self.lock().deliveries.push(Delivered {
            body,
            status,
            elapsed,
        });
    }
}

/// How to certify a client.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// The profile.
    pub profile: Profile,
    /// The product.
    pub product: super::Product,
    /// Where the simulator listens.
    pub listen: std::net::SocketAddr,
    /// The client's POST_URL (async profiles).
    pub post_url: Option<String>,
    /// When to stop waiting for the plan.
    pub timeout: Duration,
    /// How long the client must be quiet after the last step before grading (trailing polls).
    pub quiet: Duration,
}

/// A simulator in certification mode, waiting for the client to follow its plan.
#[derive(Debug)]
pub struct ClientSession {
    sim: crate::sim::RunningSim,
    recorder: Arc<Recorder>,
    client_id: String,
    started: String,
    /// The first line `certify client` prints: the simulator's configuration (as `sim
    /// --print-config json`) plus `plan`.
    pub announcement: Value,
}

impl ClientSession {
    /// Starts `bot` in certification mode: every request recorded, each plan step's condition
    /// injected, polls answering one service node's messages at a time (so chained pollIds
    /// come whatever the client's poll interval), async messages delivered twice and out of
    /// order.
    pub async fn start(run: &ClientRun, mut bot: crate::sim::Bot) -> Result<ClientSession, String> {
        for i in bot.instances.iter_mut() {
            match i.mode {
                crate::sim::Mode::Async => {
                    i.faults.async_duplicate_rate = 1.0;
                    i.faults.async_reorder_rate = 1.0;
                }
                crate::sim::Mode::Sync => i.faults.poll_one_batch = true,
            }
        }
        let recorder = Arc::new(Recorder::default());
        let mut config = crate::sim::SimConfig::new(bot);
        config.post_url = run.post_url.clone();
        config.observer = Some(recorder.clone());
        let sim = crate::sim::RunningSim::start_isolated(config, run.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", run.listen))?;
        let info = sim.info();
        let pick = |mode: crate::sim::Mode, polling: bool| {
            info.instances.iter().find(|i| {
                i.mode == mode && (mode == crate::sim::Mode::Async || i.polling == polling)
            })
        };
        let (Some(poll), Some(nopoll)) = (
            pick(crate::sim::Mode::Sync, true),
            pick(crate::sim::Mode::Sync, false),
        ) else {
            sim.shutdown().await;
            return Err(
                "the bot needs a sync instance with polling on and one with polling off".into(),
            );
        };
        let urls = PlanUrls {
            v1: poll.v1_url.clone(),
            v2_poll: poll.v2_url.clone(),
            v2_nopoll: nopoll.v2_url.clone(),
            v2_async: run
                .post_url
                .as_ref()
                .and(pick(crate::sim::Mode::Async, false))
                .map(|i| i.v2_url.clone()),
        };
        let Some(plan) = plan(run.profile, &urls) else {
            sim.shutdown().await;
            return Err(match run.profile {
                Profile::Upload => "no client plan for the upload profile yet".into(),
                _ => format!(
                    "profile {} needs --post-url: where your client receives async messages",
                    run.profile.as_str()
                ),
            });
        };
        let mut announcement = serde_json::to_value(&info).unwrap_or_default();
        announcement["plan"] = serde_json::to_value(&plan).unwrap_or_default();
        recorder.follow(plan);
        Ok(ClientSession {
            client_id: info.client_id,
            sim,
            recorder,
            started: super::now_rfc3339(),
            announcement,
        })
    }

    /// The simulator's base URL.
    pub fn base_url(&self) -> String {
        self.sim.base_url()
    }

    /// Waits until the plan is done and the client quiet, the timeout, or `stop` (Ctrl-C),
    /// grades the client with the profile's checks (steps never performed fail as missing),
    /// and stops the simulator.
    pub async fn finish(
        self,
        run: &ClientRun,
        stop: impl std::future::Future<Output = ()>,
    ) -> super::Certification {
        let deadline = Instant::now() + run.timeout;
        let wait = async {
            while !self.recorder.finished(run.quiet) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            () = wait => {},
            () = stop => {},
        }
        let rec = self.recorder.recording();
        let target = format!(
            "client under test, against the simulator at {}",
            self.sim.base_url()
        );
        self.sim.shutdown().await;
        let expect = Expect {
            client_id: self.client_id.clone(),
        };
        let checks = super::catalogue::select(super::catalogue::Side::Client, run.profile)
            .map(|check| {
                let t = Instant::now();
                let (mut judged, mut ns) = judge(check.id, &rec, &expect).unwrap_or((
                    Err(Miss::Skipped("no judge for this check".into())),
                    Vec::new(),
                ));
                // A mismatch names a request by its place in the check's evidence.
                if let Err(Miss::Failed(m)) = &mut judged {
                    if let Some(n) = m.exchange {
                        let n = n as u64;
                        let pos = ns.iter().position(|&x| x == n).unwrap_or_else(|| {
                            ns.push(n);
                            ns.len() - 1
                        });
                        m.exchange = Some(pos);
                    }
                }
                super::result_of(check, judged, rec.evidence(&ns), t.elapsed())
            })
            .collect();
        super::Certification::new(
            super::catalogue::Side::Client,
            run.profile,
            run.product.clone(),
            target,
            self.started,
            checks,
        )
    }
}

/// The expected step closest to an unexpected message (Pact-style "did you mean").
fn closest(plan: &Plan, cursor: usize, r: &Rec) -> String {
    let said = r.said.clone().unwrap_or_default().to_lowercase();
    let best = plan.steps.iter().skip(cursor).min_by_key(|s| {
        let want = s
            .say
            .as_deref()
            .or(s.event.as_deref())
            .unwrap_or_default()
            .to_lowercase();
        let distance = strsim_levenshtein(&said, &want);
        (usize::from(s.path != r.path), distance)
    });
    match best {
        Some(s) => format!("closest expected: {}", s.describe()),
        None => "the plan was already done".into(),
    }
}

fn strsim_levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Everything a client check judges.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The plan.
    pub plan: Plan,
    /// Every request, in arrival order.
    pub recs: Vec<Rec>,
    /// Every delivery to POST_URL.
    pub deliveries: Vec<Delivered>,
    /// For each step, the request that performed it.
    pub performed: Vec<Option<u64>>,
}

/// The app's client id, for CL-AUTH-02.
#[derive(Debug, Clone)]
pub struct Expect {
    /// The client id.
    pub client_id: String,
}

fn miss(r: &Rec, field: &str, expected: impl Into<String>, actual: impl Into<String>) -> Miss {
    Miss::Failed(Mismatch {
        exchange: Some(r.n as usize),
        field: field.into(),
        expected: expected.into(),
        actual: actual.into(),
    })
}

fn general(field: &str, expected: impl Into<String>, actual: impl Into<String>) -> Miss {
    Miss::Failed(Mismatch {
        exchange: None,
        field: field.into(),
        expected: expected.into(),
        actual: actual.into(),
    })
}

impl Recording {
    fn channel(&self) -> impl Iterator<Item = &Rec> {
        self.recs.iter().filter(|r| r.kind != Kind::Other)
    }

    fn messages(&self) -> impl Iterator<Item = &Rec> {
        self.recs
            .iter()
            .filter(|r| matches!(r.kind, Kind::V1 | Kind::V2))
    }

    /// The plan's user: the `from.id` of the first performed step.
    fn user(&self) -> Option<&str> {
        self.performed
            .iter()
            .flatten()
            .next()
            .and_then(|&n| self.recs[n as usize].from.as_deref())
    }

    /// The polls of the plan's user, by the token's user or (polls have no body) by order.
    fn polls(&self) -> Vec<&Rec> {
        let user = self.user();
        self.recs
            .iter()
            .filter(|r| matches!(r.kind, Kind::Poll(_)))
            .filter(|r| {
                let sub = r.auth.as_ref().and_then(|t| {
                    t.claims
                        .get("userIdentity")
                        .or_else(|| t.claims.get("sub"))
                        .and_then(Value::as_str)
                });
                sub.is_none() || user.is_none() || sub == user
            })
            .collect()
    }

    /// The pollIds the channel issued, with the instant of the answer that issued each.
    fn issued(&self) -> Vec<(String, Instant)> {
        self.recs
            .iter()
            .filter(|r| r.status == Some(200) && r.injected.is_none())
            .filter_map(|r| {
                let id = r.response.as_ref()?.get("pollId")?.as_str()?;
                let in_progress = r.response.as_ref()?.get("status").and_then(Value::as_str)
                    == Some("Inprogress");
                (!in_progress).then(|| (id.to_string(), r.end.unwrap_or(r.at)))
            })
            .collect()
    }

    /// Evidence: these requests as exchanges (tokens described, never copied).
    pub fn evidence(&self, ns: &[u64]) -> Vec<Exchange> {
        ns.iter()
            .filter_map(|&n| self.recs.get(n as usize))
            .map(|r| Exchange {
                method: r.method.clone(),
                url: r.path.clone(),
                request_headers: r
                    .auth
                    .iter()
                    .map(|t| {
                        let names: Vec<&str> = t.claims.keys().map(String::as_str).collect();
                        (
                            "authorization".to_string(),
                            format!(
                                "{} <token {} redacted: alg {}, claims {}>",
                                if t.bearer { "bearer" } else { "(not bearer)" },
                                t.fingerprint,
                                t.alg.as_deref().unwrap_or("?"),
                                names.join(", ")
                            ),
                        )
                    })
                    .chain(
                        r.content_type
                            .iter()
                            .map(|c| ("content-type".to_string(), c.clone())),
                    )
                    .collect(),
                request_body: r.body.as_ref().map(|b| cut(&b.to_string())),
                status: r.status,
                response_headers: Vec::new(),
                response_body: r.response.as_ref().map(|b| cut(&b.to_string())),
                elapsed_ms: r
                    .end
                    .map_or(0.0, |e| e.duration_since(r.at).as_secs_f64() * 1e3),
                error: r
                    .injected
                    .map(|s| format!("injected {s} (the plan's condition)"))
                    .or_else(|| {
                        r.unexpected
                            .clone()
                            .map(|c| format!("not a step of the plan; {c}"))
                    }),
            })
            .collect()
    }
}

fn cut(s: &str) -> String {
    if s.len() <= 4096 {
        return s.to_string();
    }
    let mut end = 4096;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// A client check's judgement: the result and the requests it rests on.
pub type Judgement = (Judged, Vec<u64>);

/// The judge of a client check.
pub fn judge(id: &str, rec: &Recording, expect: &Expect) -> Option<Judgement> {
    let j = match id {
        "CL-PLAN-01" => plan_followed(rec),
        "CL-AUTH-01" => each(rec.channel(), |r| {
            let alg = r.auth.as_ref().and_then(|t| t.alg.as_deref());
            match alg {
                Some("HS256" | "HS512" | "RS256" | "RS512") => Ok(()),
                other => Err(miss(
                    r,
                    "token alg",
                    "HS256, HS512, RS256 or RS512",
                    other.unwrap_or("no token"),
                )),
            }
        }),
        "CL-AUTH-02" => each(rec.channel().filter(|r| r.auth.is_some()), |r| {
            let c = &r.auth.as_ref().expect("filtered").claims;
            let app = c
                .get("appId")
                .or_else(|| c.get("iss"))
                .and_then(Value::as_str);
            if app == Some(expect.client_id.as_str()) {
                Ok(())
            } else {
                Err(miss(
                    r,
                    "token appId/iss",
                    expect.client_id.clone(),
                    app.unwrap_or("absent"),
                ))
            }
        }),
        "CL-AUTH-03" => each(rec.messages().filter(|r| r.kind == Kind::V2), |r| {
            let c = r.auth.as_ref().map(|t| &t.claims);
            for claim in ["sub", "userIdentity"] {
                let v = c.and_then(|c| c.get(claim)).and_then(Value::as_str);
                if v.is_some() && v != r.from.as_deref() {
                    return Err(miss(
                        r,
                        &format!("token {claim}"),
                        format!("from.id {:?}", r.from.as_deref().unwrap_or("")),
                        v.unwrap_or_default(),
                    ));
                }
            }
            Ok(())
        }),
        "CL-AUTH-04" => each(rec.channel().filter(|r| r.auth.is_some()), |r| {
            let c = &r.auth.as_ref().expect("filtered").claims;
            let iat = c.get("iat").and_then(Value::as_f64);
            match (c.get("exp").and_then(Value::as_f64), iat) {
                (Some(exp), Some(iat)) if exp - iat <= 86_400.0 => Ok(()),
                (Some(exp), None) if exp - r.unix <= 86_400.0 => Ok(()),
                (exp, iat) => Err(miss(
                    r,
                    "token exp",
                    "present, at most 24 h after iat",
                    format!("exp {exp:?}, iat {iat:?}"),
                )),
            }
        }),
        "CL-AUTH-05" => each(rec.channel().filter(|r| r.auth.is_some()), |r| {
            let exp = r
                .auth
                .as_ref()
                .and_then(|t| t.claims.get("exp"))
                .and_then(Value::as_f64);
            match exp {
                Some(e) if e + 5.0 < r.unix => Err(miss(
                    r,
                    "token exp",
                    format!("after the request ({:.0})", r.unix),
                    format!("{e:.0}"),
                )),
                _ => Ok(()),
            }
        }),
        "CL-AUTH-06" => each(rec.channel(), |r| match &r.auth {
            Some(t) if t.bearer => Ok(()),
            Some(_) => Err(miss(r, "authorization", "bearer <token>", "another scheme")),
            None => Err(miss(r, "authorization", "bearer <token>", "absent")),
        }),
        "CL-AUTH-07" => retried(rec, Inject::ExpiredToken, |first, again| {
            let (a, b) = (first.auth.as_ref(), again.auth.as_ref());
            if a.map(|t| &t.fingerprint) == b.map(|t| &t.fingerprint) {
                return Err(miss(
                    again,
                    "authorization",
                    "a new token after the 401",
                    "the refused token again",
                ));
            }
            Ok(())
        }),
        "CL-BODY-01" => each(rec.messages().filter(|r| r.kind == Kind::V1), |r| {
            let b = r.body.as_ref();
            let text = b
                .and_then(|b| b.pointer("/message/text"))
                .is_some_and(Value::is_string);
            let from = b
                .and_then(|b| b.pointer("/from/id"))
                .is_some_and(Value::is_string);
            if text && from {
                Ok(())
            } else {
                Err(miss(
                    r,
                    "body",
                    "message.text and from.id strings",
                    r.body
                        .as_ref()
                        .map_or("not JSON".into(), |b| cut(&b.to_string())),
                ))
            }
        }),
        "CL-BODY-02" => each(rec.messages().filter(|r| r.kind == Kind::V2), |r| {
            let decoded = r.body.as_ref().and_then(|b| {
                serde_json::from_value::<crate::protocol::v2::Request>(b.clone()).ok()
            });
            match decoded.map(|d| d.input().map(|_| ())) {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(miss(r, "message", "a valid V2 message", e.to_string())),
                None => Err(miss(
                    r,
                    "body",
                    "a V2 request (message, from.id)",
                    r.body
                        .as_ref()
                        .map_or("not JSON".into(), |b| cut(&b.to_string())),
                )),
            }
        }),
        "CL-BODY-03" => {
            let user = rec.user().map(str::to_string);
            let performed: Vec<&Rec> = rec
                .performed
                .iter()
                .flatten()
                .map(|&n| &rec.recs[n as usize])
                .collect();
            each(performed.into_iter(), |r| {
                if r.from == user {
                    Ok(())
                } else {
                    Err(miss(
                        r,
                        "from.id",
                        format!(
                            "{:?} (the plan's first step)",
                            user.as_deref().unwrap_or("")
                        ),
                        r.from.clone().unwrap_or_default(),
                    ))
                }
            })
        }
        "CL-BODY-04" => each(rec.messages(), |r| {
            let ct = r
                .content_type
                .as_deref()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if ct.starts_with("application/json") {
                Ok(())
            } else {
                Err(miss(
                    r,
                    "content-type",
                    "application/json",
                    r.content_type.clone().unwrap_or_else(|| "absent".into()),
                ))
            }
        }),
        "CL-POLL-01" => one_in_flight(rec),
        "CL-POLL-02" => poll_rate(rec),
        "CL-POLL-03" => no_reuse(rec),
        "CL-POLL-04" => chained(rec),
        "CL-POLL-05" => waited_out(rec),
        "CL-POLL-06" => {
            let issued: Vec<String> = rec.issued().into_iter().map(|(id, _)| id).collect();
            each(rec.polls().into_iter(), |r| match &r.kind {
                Kind::Poll(id) if issued.contains(id) => Ok(()),
                Kind::Poll(id) => Err(miss(r, "pollId", "one the channel issued", id.clone())),
                _ => Ok(()),
            })
        }
        "CL-POLL-07" => prompt(rec),
        "CL-ERR-01" => retried(rec, Inject::TooManyRequests, paused),
        "CL-ERR-02" => retried(rec, Inject::Unavailable, paused),
        "CL-ASYNC-01" => deliveries(rec, |d| {
            let ok = d.status.is_some_and(|s| (200..300).contains(&s))
                && d.elapsed <= Duration::from_secs(2);
            ok.then_some(())
                .ok_or_else(|| format!("status {:?} after {} ms", d.status, d.elapsed.as_millis()))
        }),
        "CL-ASYNC-02" => duplicates(rec),
        "CL-ASYNC-03" => {
            let steps = rec.plan.steps.len();
            let done = rec.performed.iter().filter(|p| p.is_some()).count();
            let j = if steps > 1 && done == steps {
                Ok(())
            } else {
                Err(general(
                    "steps",
                    format!("all {steps} steps after the duplicated deliveries"),
                    format!("{done} performed"),
                ))
            };
            (j, rec.performed.iter().flatten().copied().collect())
        }
        _ => return None,
    };
    Some(j)
}

/// Judges every request of `rs`; fails on the first that breaks the rule.
fn each<'a>(rs: impl Iterator<Item = &'a Rec>, rule: impl Fn(&Rec) -> Judged) -> Judgement {
    let mut seen = Vec::new();
    for r in rs {
        seen.push(r.n);
        if let Err(m) = rule(r) {
            return (Err(m), vec![r.n]);
        }
    }
    if seen.is_empty() {
        return (
            Err(general("requests", "at least one request to judge", "none")),
            seen,
        );
    }
    seen.truncate(20);
    (Ok(()), seen)
}

fn plan_followed(rec: &Recording) -> Judgement {
    let unexpected: Vec<u64> = rec
        .recs
        .iter()
        .filter(|r| r.unexpected.is_some())
        .map(|r| r.n)
        .collect();
    for (i, step) in rec.plan.steps.iter().enumerate() {
        if rec.performed[i].is_none() && !step.optional {
            let near = unexpected.first().map(|&n| &rec.recs[n as usize]);
            let actual = match near {
                Some(r) => format!(
                    "never performed; the client sent {:?} to {} instead ({})",
                    r.said.as_deref().unwrap_or(""),
                    r.path,
                    r.unexpected.as_deref().unwrap_or("")
                ),
                None => "never performed".to_string(),
            };
            return (
                Err(general(
                    &format!("step {}", step.n),
                    step.describe(),
                    actual,
                )),
                unexpected.into_iter().take(5).collect(),
            );
        }
    }
    (Ok(()), rec.performed.iter().flatten().copied().collect())
}

/// The tries of the step where `inject` was injected: the refused one and those after it.
fn retried(rec: &Recording, inject: Inject, rule: impl Fn(&Rec, &Rec) -> Judged) -> Judgement {
    let Some(i) = rec.plan.steps.iter().position(|s| s.inject == Some(inject)) else {
        return (
            Err(Miss::Skipped("the plan has no such step".into())),
            Vec::new(),
        );
    };
    let tries: Vec<&Rec> = rec.recs.iter().filter(|r| r.step == Some(i)).collect();
    let ns: Vec<u64> = tries.iter().map(|r| r.n).collect();
    let Some(first) = tries.iter().find(|r| r.injected.is_some()) else {
        return (
            Err(general(
                &format!("step {}", i + 1),
                "the step, refused once as planned",
                "never sent",
            )),
            ns,
        );
    };
    let Some(again) = tries.iter().find(|r| r.n > first.n) else {
        return (
            Err(miss(
                first,
                "retry",
                format!("the step sent again after the {}", inject.status()),
                "no retry",
            )),
            ns,
        );
    };
    if tries.len() > 3 {
        return (
            Err(miss(
                tries[3],
                "tries",
                "at most 3",
                tries.len().to_string(),
            )),
            ns,
        );
    }
    (rule(first, again), ns)
}

fn paused(first: &Rec, again: &Rec) -> Judged {
    let gap = again.at.duration_since(first.end.unwrap_or(first.at));
    if gap >= Duration::from_millis(200) {
        return Ok(());
    }
    Err(miss(
        again,
        "pause before the retry",
        "at least 200 ms",
        format!("{} ms", gap.as_millis()),
    ))
}

fn one_in_flight(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    let ns: Vec<u64> = polls.iter().map(|r| r.n).take(20).collect();
    for w in polls.windows(2) {
        let (a, b) = (w[0], w[1]);
        if a.end.is_none_or(|end| b.at < end) {
            return (
                Err(miss(
                    b,
                    "poll",
                    "sent after the previous poll's answer",
                    "sent while another poll was outstanding",
                )),
                vec![a.n, b.n],
            );
        }
    }
    if polls.is_empty() {
        return (
            Err(general(
                "polls",
                "the polls of the plan's polled steps",
                "none",
            )),
            ns,
        );
    }
    (Ok(()), ns)
}

fn poll_rate(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    for (i, p) in polls.iter().enumerate() {
        let within: Vec<&&Rec> = polls[i..]
            .iter()
            .take_while(|q| q.at.duration_since(p.at) < Duration::from_secs(1))
            .collect();
        if within.len() > 20 {
            return (
                Err(miss(
                    within[20],
                    "polls in one second",
                    "at most 20",
                    format!("{} or more", within.len()),
                )),
                within.iter().take(21).map(|r| r.n).collect(),
            );
        }
    }
    if polls.is_empty() {
        return (
            Err(general(
                "polls",
                "the polls of the plan's polled steps",
                "none",
            )),
            Vec::new(),
        );
    }
    (Ok(()), polls.iter().map(|r| r.n).take(20).collect())
}

/// Answers that consume a pollId: its batch (no `Inprogress`) or `No data found`.
fn consumed(r: &Rec) -> bool {
    match r.status {
        Some(200) => {
            r.response
                .as_ref()
                .and_then(|b| b.get("status"))
                .and_then(Value::as_str)
                != Some("Inprogress")
        }
        Some(400) => true,
        _ => false,
    }
}

fn no_reuse(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    let mut done: Vec<(&str, u64)> = Vec::new();
    for r in &polls {
        let Kind::Poll(id) = &r.kind else { continue };
        if let Some((_, by)) = done.iter().find(|(d, _)| *d == id.as_str()) {
            return (
                Err(miss(
                    r,
                    "pollId",
                    "not one already consumed",
                    format!("{id}, consumed by request #{}", by + 1),
                )),
                vec![*by, r.n],
            );
        }
        if consumed(r) {
            done.push((id.as_str(), r.n));
        }
    }
    if polls.is_empty() {
        return (
            Err(general(
                "polls",
                "the polls of the plan's polled steps",
                "none",
            )),
            Vec::new(),
        );
    }
    (Ok(()), polls.iter().map(|r| r.n).take(20).collect())
}

fn chained(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    // pollIds issued by a poll answer (the chain), each must be polled later.
    let mut chain = Vec::new();
    for r in &polls {
        if let Some(next) = r
            .response
            .as_ref()
            .and_then(|b| b.get("pollId"))
            .and_then(Value::as_str)
        {
            if consumed(r) {
                chain.push((next.to_string(), *r));
            }
        }
    }
    if chain.is_empty() {
        return (
            Err(general(
                "pollId",
                "a chained pollId (the plan's `statement` step)",
                "no poll answer carried one",
            )),
            polls.iter().map(|r| r.n).take(20).collect(),
        );
    }
    for (id, by) in &chain {
        let followed = polls
            .iter()
            .any(|r| r.n > by.n && r.kind == Kind::Poll(id.clone()));
        if !followed {
            return (
                Err(miss(
                    by,
                    "pollId",
                    format!("{id} polled next"),
                    "never polled",
                )),
                vec![by.n],
            );
        }
    }
    (Ok(()), chain.iter().map(|(_, r)| r.n).collect())
}

fn waited_out(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    let in_progress: Vec<&&Rec> = polls
        .iter()
        .filter(|r| {
            r.response
                .as_ref()
                .and_then(|b| b.get("status"))
                .and_then(Value::as_str)
                == Some("Inprogress")
        })
        .collect();
    if in_progress.is_empty() {
        return (
            Err(general(
                "polls",
                "at least one `Inprogress` answer (the plan's `savings` step)",
                "none: the client polled only after the node finished",
            )),
            polls.iter().map(|r| r.n).take(20).collect(),
        );
    }
    for r in &in_progress {
        let Kind::Poll(id) = &r.kind else { continue };
        let delivered = polls.iter().any(|q| {
            q.n > r.n && q.kind == Kind::Poll(id.clone()) && q.status == Some(200) && consumed(q)
        });
        if !delivered {
            return (
                Err(miss(
                    r,
                    "pollId",
                    format!("{id} polled until its batch came"),
                    "given up after Inprogress",
                )),
                vec![r.n],
            );
        }
    }
    (Ok(()), in_progress.iter().map(|r| r.n).take(20).collect())
}

fn prompt(rec: &Recording) -> Judgement {
    let polls = rec.polls();
    let issued = rec.issued();
    if issued.is_empty() {
        return (
            Err(general(
                "pollId",
                "pollIds issued by the plan's polled steps",
                "none",
            )),
            Vec::new(),
        );
    }
    for (id, at) in &issued {
        let first = polls
            .iter()
            .find(|r| r.kind == Kind::Poll(id.clone()) && r.at >= *at);
        match first {
            Some(r) if r.at.duration_since(*at) <= Duration::from_secs(5) => {}
            Some(r) => {
                return (
                    Err(miss(
                        r,
                        "first poll",
                        format!("within 5 s of {id}'s issue"),
                        format!("{} ms", r.at.duration_since(*at).as_millis()),
                    )),
                    vec![r.n],
                )
            }
            None => {
                return (
                    Err(general("pollId", format!("{id} polled"), "never polled")),
                    Vec::new(),
                )
            }
        }
    }
    (Ok(()), polls.iter().map(|r| r.n).take(20).collect())
}

fn deliveries(rec: &Recording, rule: impl Fn(&Delivered) -> Result<(), String>) -> Judgement {
    if rec.deliveries.is_empty() {
        return (
            Err(general(
                "deliveries",
                "deliveries to POST_URL (the plan's async steps)",
                "none",
            )),
            Vec::new(),
        );
    }
    for (i, d) in rec.deliveries.iter().enumerate() {
        if let Err(actual) = rule(d) {
            return (
                Err(general(
                    &format!("delivery {}", i + 1),
                    "2xx within 2 s",
                    actual,
                )),
                Vec::new(),
            );
        }
    }
    (Ok(()), Vec::new())
}

fn duplicates(rec: &Recording) -> Judgement {
    let mut seen: Vec<(&Value, Option<u16>)> = Vec::new();
    let mut twice = 0;
    for d in &rec.deliveries {
        if let Some((_, first)) = seen.iter().find(|(b, _)| **b == d.body) {
            twice += 1;
            let ok = |s: Option<u16>| s.is_some_and(|s| (200..300).contains(&s));
            if !ok(*first) || !ok(d.status) {
                return (
                    Err(general(
                        "duplicate delivery",
                        "2xx both times",
                        format!("{first:?} then {:?}", d.status),
                    )),
                    Vec::new(),
                );
            }
        } else {
            seen.push((&d.body, d.status));
        }
    }
    if twice == 0 {
        return (
            Err(general(
                "deliveries",
                "a duplicated delivery",
                "none was made (no async step performed?)",
            )),
            Vec::new(),
        );
    }
    (Ok(()), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certify::catalogue::{Side, CHECKS};

    fn urls() -> PlanUrls {
        PlanUrls {
            v1: "http://h/chatbot/hooks/st-1".into(),
            v2_poll: "http://h/chatbot/v2/webhook/st-1".into(),
            v2_nopoll: "http://h/chatbot/v2/webhook/st-1/hookInstance/b".into(),
            v2_async: Some("http://h/chatbot/v2/webhook/st-1/hookInstance/c".into()),
        }
    }

    #[test]
    fn every_client_check_has_a_judge() {
        let rec = Recording {
            plan: plan(Profile::Full, &urls()).unwrap(),
            recs: Vec::new(),
            deliveries: Vec::new(),
            performed: Vec::new(),
        };
        let expect = Expect {
            client_id: "cs-1".into(),
        };
        for c in CHECKS.iter().filter(|c| c.side == Side::Client) {
            let mut rec = rec.clone();
            rec.performed = vec![None; rec.plan.steps.len()];
            let (j, _) =
                judge(c.id, &rec, &expect).unwrap_or_else(|| panic!("{} has no judge", c.id));
            // With nothing recorded, nothing passes.
            assert!(j.is_err(), "{} passed on an empty recording", c.id);
        }
    }

    #[test]
    fn plans_number_their_steps_and_only_on_connect_is_optional() {
        for p in [
            Profile::V1Sync,
            Profile::V2Poll,
            Profile::V2NoPoll,
            Profile::V2Async,
            Profile::Auth,
            Profile::Full,
        ] {
            let plan = plan(p, &urls()).unwrap();
            for (i, s) in plan.steps.iter().enumerate() {
                assert_eq!(s.n, i + 1);
                assert_eq!(s.optional, s.event.as_deref() == Some("ON_CONNECT"));
            }
        }
        assert!(plan(Profile::Upload, &urls()).is_none());
        let mut no_async = urls();
        no_async.v2_async = None;
        assert!(plan(Profile::V2Async, &no_async).is_none());
    }

    #[test]
    fn tokens_are_described_without_being_kept() {
        let t = token("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.");
        assert!(t.bearer);
        assert_eq!(t.alg.as_deref(), Some("none"));
        assert_eq!(t.claims["sub"], "u");
        assert_eq!(t.fingerprint.len(), 16);
        assert_eq!(strsim_levenshtein("balance", "balanse"), 1);
    }
}
