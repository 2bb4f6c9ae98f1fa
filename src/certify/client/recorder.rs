//! The recorder: every request of the client under test, what it said, its token described,
//! the plan step it performed (each step's condition injected on its first try), and every
//! delivery to its POST_URL.

use super::*;

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
    /// Multipart fields (uploads): name and text; file parts as `<N bytes>`.
    pub form: Vec<(String, String)>,
    /// The size of the file part of an upload request (`chunk` or `file`).
    pub part_len: Option<usize>,
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
    /// An upload token request.
    UploadToken,
    /// A chunk for this file token.
    Chunk(String),
    /// The merge of this file token.
    Merge(String),
    /// A one-shot upload.
    OneShot,
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

pub(super) fn token(header: &str) -> Token {
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
        fingerprint: crate::certify::sign::sha256_hex(tok.trim().as_bytes())[..16].to_string(),
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
pub(super) struct State {
    /// pollIds issued by answers to messages, whose first poll is answered `Inprogress` by
    /// the recorder (so every client meets it, whatever its poll interval), and whether that
    /// happened yet.
    first_polls: Vec<(String, bool)>,
    /// pollIds of the plan's never-completing step: every poll answers `Inprogress`.
    held: Vec<String>,
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

    pub(super) fn plan(&self) -> Option<&Plan> {
        self.plan.get()
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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
            held: s.held.clone(),
        }
    }
}

pub(super) fn classify(method: &str, path: &str) -> Kind {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("POST", ["chatbot", "hooks", ..]) => Kind::V1,
        ("GET", ["chatbot", "v2", "webhook", _, "poll", id]) => Kind::Poll((*id).to_string()),
        ("POST", ["chatbot", "v2", "webhook", ..]) => Kind::V2,
        ("POST", ["api", "attachments", _, _, "token"]) => Kind::UploadToken,
        ("POST", ["api", "attachments", _, _, "token", ft, "chunk"]) => {
            Kind::Chunk((*ft).to_string())
        }
        (
            "PUT",
            ["api", "attachments", _, _, "token", ft]
            | ["api", "attachments", _, _, "token", ft, "chunk"],
        ) => Kind::Merge((*ft).to_string()),
        ("POST", ["api", "attachments", "file", _, _]) => Kind::OneShot,
        _ => Kind::Other,
    }
}

/// The fields of a `multipart/form-data` body: name and bytes (enough to judge uploads).
pub(super) fn form_fields(content_type: Option<&str>, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let Some(boundary) = content_type
        .and_then(|c| {
            c.split(';')
                .find_map(|p| p.trim().strip_prefix("boundary="))
        })
        .map(|b| format!("--{}", b.trim_matches('"')))
    else {
        return Vec::new();
    };
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    let mut out = Vec::new();
    let mut at = match find(body, boundary.as_bytes(), 0) {
        Some(i) => i + boundary.len(),
        None => return out,
    };
    while let Some(next) = find(body, boundary.as_bytes(), at) {
        let part = &body[at..next];
        if let Some(split) = find(part, b"\r\n\r\n", 0) {
            let head = String::from_utf8_lossy(&part[..split]);
            let name = head
                .split(';')
                .find_map(|p| p.trim().strip_prefix("name="))
                .map(|n| {
                    n.split(['\r', '\n'])
                        .next()
                        .unwrap_or(n)
                        .trim_matches('"')
                        .to_string()
                });
            let mut content = &part[split + 4..];
            if content.ends_with(b"\r\n") {
                content = &content[..content.len() - 2];
            }
            if let Some(name) = name {
                out.push((name, content.to_vec()));
            }
        }
        at = next + boundary.len();
    }
    out
}

pub(super) fn said(kind: &Kind, body: &Value) -> Option<String> {
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
    pub(super) fn matches(&self, r: &Rec) -> bool {
        if self.upload {
            // Done by the merge (the chunks and the token come before it).
            return matches!(r.kind, Kind::Merge(_));
        }
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

    pub(super) fn describe(&self) -> String {
        if self.upload {
            return format!(
                "step {}: upload a file (token, chunks, merge) at {}",
                self.n, self.path
            );
        }
        match (&self.say, &self.event) {
            (Some(t), _) => format!("step {}: say {t:?} to {}", self.n, self.path),
            (_, Some(e)) => format!("step {}: event {e} to {}", self.n, self.path),
            _ => format!("step {}", self.n),
        }
    }
}

pub(super) fn unix_now() -> f64 {
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
        let uploading = matches!(
            kind,
            Kind::UploadToken | Kind::Chunk(_) | Kind::Merge(_) | Kind::OneShot
        );
        let fields = if uploading {
            form_fields(header(http::header::CONTENT_TYPE).as_deref(), seen.body)
        } else {
            Vec::new()
        };
        let part_len = fields
            .iter()
            .find(|(n, _)| n == "chunk" || n == "file")
            .map(|(_, v)| v.len());
        let form = fields
            .into_iter()
            .map(|(n, v)| {
                let shown = if n == "chunk" || n == "file" {
                    format!("<{} bytes>", v.len())
                } else {
                    String::from_utf8_lossy(&v).chars().take(200).collect()
                };
                (n, shown)
            })
            .collect();
        let mut rec = Rec {
            form,
            part_len,
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
            if s.held.contains(id) {
                let body = crate::protocol::v2::Response::in_progress(id.clone());
                answer = Some(crate::sim::answer::json(http::StatusCode::OK, &body));
            } else if let Some(entry) = s.first_polls.iter_mut().find(|(p, done)| p == id && !done)
            {
                entry.1 = true;
                let body = crate::protocol::v2::Response::in_progress(id.clone());
                answer = Some(crate::sim::answer::json(http::StatusCode::OK, &body));
            }
        }
        let plan = self.plan();
        let steps_kind = matches!(rec.kind, Kind::V1 | Kind::V2 | Kind::Merge(_));
        if let (Some(plan), true) = (plan, steps_kind) {
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
        let mut hold = false;
        let plan = self.plan();
        if let Some(r) = s.recs.get_mut(id as usize) {
            hold = r
                .step
                .and_then(|i| plan.and_then(|p| p.steps.get(i)))
                .is_some_and(|st| st.hold);
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
        match issued {
            Some(p) if hold => s.held.push(p),
            Some(p) => s.first_polls.push((p, false)),
            None => {}
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

/// The expected step closest to an unexpected message (Pact-style "did you mean").
pub(super) fn closest(plan: &Plan, cursor: usize, r: &Rec) -> String {
    let said = r.said.clone().unwrap_or_default().to_lowercase();
    let best = plan.steps.iter().skip(cursor).min_by_key(|s| {
        let want = s
            .say
            .as_deref()
            .or(s.event.as_deref())
            .unwrap_or_default()
            .to_lowercase();
        let distance = crate::common::diag::levenshtein(&said, &want);
        (usize::from(s.path != r.path), distance)
    });
    match best {
        Some(s) => format!("closest expected: {}", s.describe()),
        None => "the plan was already done".into(),
    }
}

/// A finding about one recorded request.
pub(super) fn miss(
    r: &Rec,
    field: &str,
    expected: impl Into<String>,
    actual: impl Into<String>,
) -> Miss {
    Miss::Failed(Mismatch {
        exchange: Some(r.n as usize),
        field: field.into(),
        expected: expected.into(),
        actual: actual.into(),
    })
}

/// A finding about the recording as a whole.
pub(super) fn general(field: &str, expected: impl Into<String>, actual: impl Into<String>) -> Miss {
    Miss::Failed(Mismatch {
        exchange: None,
        field: field.into(),
        expected: expected.into(),
        actual: actual.into(),
    })
}
