//! How a channel check talks to the target: requests sent through the client layer, each
//! recorded as evidence (token and secrets redacted), and the vocabulary a judge uses to say
//! what did not match (request, field, expected, actual).

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::HttpClient;
use crate::protocol::jwt;
use crate::protocol::urls::redact_userinfo;

/// How much of a body the evidence keeps.
const BODY_LIMIT: usize = 4096;

/// One request and its answer, as the bundle shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Exchange {
    /// `POST`, `GET`, …
    pub method: String,
    /// The URL (any userinfo masked).
    pub url: String,
    /// Request headers; the token is described, never copied.
    pub request_headers: Vec<(String, String)>,
    /// The body, cut at 4 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// HTTP status, when an answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response headers.
    pub response_headers: Vec<(String, String)>,
    /// The answer's body, cut at 4 KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// From sending to the whole answer.
    pub elapsed_ms: f64,
    /// A transport failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One thing that did not match, in the exchange that showed it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mismatch {
    /// Index into the check's exchanges (none: not tied to one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<usize>,
    /// The field (a JSON pointer, `status`, a header name).
    pub field: String,
    /// What the requirement says.
    pub expected: String,
    /// What the target did.
    pub actual: String,
}

/// Why a check did not pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Miss {
    /// The target broke the rule.
    Failed(Mismatch),
    /// The check could not run here (a URL or credential it needs was not given).
    Skipped(String),
    /// The target could not be reached.
    Unreachable(String),
}

/// A judge's result.
pub type Judged = Result<(), Miss>;

/// The answer to one request.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Index of the exchange in the evidence.
    pub index: usize,
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Bytes,
    /// The body as JSON, when it is.
    pub json: Option<Value>,
    /// From sending to the whole answer.
    pub elapsed: Duration,
}

impl Resp {
    /// The JSON value at `pointer` (`/data/0/type`).
    pub fn at(&self, pointer: &str) -> Option<&Value> {
        self.json.as_ref().and_then(|j| j.pointer(pointer))
    }

    /// The string at `pointer`.
    pub fn str_at(&self, pointer: &str) -> Option<&str> {
        self.at(pointer).and_then(Value::as_str)
    }

    /// A failure at `field` of this answer.
    pub fn miss(
        &self,
        field: &str,
        expected: impl Into<String>,
        actual: impl Into<String>,
    ) -> Miss {
        Miss::Failed(Mismatch {
            exchange: Some(self.index),
            field: field.into(),
            expected: expected.into(),
            actual: actual.into(),
        })
    }

    /// Fails unless the status is `want`.
    pub fn status_is(&self, want: u16) -> Judged {
        if self.status == want {
            return Ok(());
        }
        Err(self.miss("status", want.to_string(), self.status_text()))
    }

    /// The status with the start of the body, for mismatches.
    pub fn status_text(&self) -> String {
        format!(
            "{} {}",
            self.status,
            cut(&String::from_utf8_lossy(&self.body), 160)
        )
    }

    /// Fails unless `pointer` holds the string `want`.
    pub fn str_is(&self, pointer: &str, want: &str) -> Judged {
        match self.str_at(pointer) {
            Some(v) if v == want => Ok(()),
            other => Err(self.miss(pointer, format!("{want:?}"), shown(other))),
        }
    }

    /// Fails unless `pointer` holds a string that `ok` accepts.
    pub fn str_matches(&self, pointer: &str, what: &str, ok: impl Fn(&str) -> bool) -> Judged {
        match self.str_at(pointer) {
            Some(v) if ok(v) => Ok(()),
            other => Err(self.miss(pointer, what, shown(other))),
        }
    }

    /// Fails unless `pointer` is absent.
    pub fn absent(&self, pointer: &str) -> Judged {
        match self.at(pointer) {
            None => Ok(()),
            Some(v) => Err(self.miss(pointer, "absent", cut(&v.to_string(), 160))),
        }
    }

    /// The texts of the `data` items (V2).
    pub fn texts(&self) -> Vec<String> {
        self.at("/data")
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("val").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails unless the answer is the documented error envelope with `status` and `msg`.
    pub fn envelope(&self, status: u16, msg: &str, v2: bool) -> Judged {
        self.status_is(status)?;
        self.str_is("/errors/0/msg", msg)?;
        match self.at("/errors/0/code").and_then(Value::as_u64) {
            Some(c) if c == u64::from(status) => {}
            other => {
                return Err(self.miss(
                    "/errors/0/code",
                    status.to_string(),
                    other.map_or("absent".into(), |c| c.to_string()),
                ))
            }
        }
        if v2 {
            self.str_is("/_v", "v2")?;
            self.str_matches(
                "/_t",
                "RTM-TRACE-<9 upper-case letters or digits>",
                is_trace,
            )?;
        }
        Ok(())
    }
}

/// `RTM-TRACE-` and nine upper-case letters or digits.
pub fn is_trace(s: &str) -> bool {
    s.strip_prefix("RTM-TRACE-").is_some_and(|t| {
        t.len() == 9
            && t.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// A `prefix-` and a UUID.
pub fn is_prefixed_uuid(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|u| uuid::Uuid::parse_str(u).is_ok())
}

/// `count` lowercase hex digits.
pub fn is_hex(s: &str, count: usize) -> bool {
    s.len() == count && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'))
}

/// ISO-8601 UTC with milliseconds: `2022-05-11T06:27:06.764Z`.
pub fn is_created_on(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[23] == b'Z'
        && b[19] == b'.'
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

fn shown(v: Option<&str>) -> String {
    v.map_or_else(|| "absent".into(), |s| format!("{s:?}"))
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No Authorization header.
    None,
    /// `Authorization: <value>` (a scheme and a token).
    Header(String),
}

/// A request body.
#[derive(Debug)]
pub enum Body {
    /// None.
    Empty,
    /// JSON.
    Json(Value),
    /// Bytes with a content type.
    Raw(&'static str, Vec<u8>),
    /// A multipart form, described for the evidence.
    Form(reqwest::multipart::Form, String),
}

/// One request to make.
#[derive(Debug)]
pub struct Req {
    /// Method.
    pub method: http::Method,
    /// URL.
    pub url: String,
    /// Authorization.
    pub auth: Auth,
    /// Body.
    pub body: Body,
    /// More headers.
    pub headers: Vec<(&'static str, String)>,
}

impl Req {
    /// A POST of JSON.
    pub fn post(url: impl Into<String>, auth: Auth, body: Value) -> Self {
        Req {
            method: http::Method::POST,
            url: url.into(),
            auth,
            body: Body::Json(body),
            headers: Vec::new(),
        }
    }

    /// A GET.
    pub fn get(url: impl Into<String>, auth: Auth) -> Self {
        Req {
            method: http::Method::GET,
            url: url.into(),
            auth,
            body: Body::Empty,
            headers: Vec::new(),
        }
    }
}

/// The requests of one check, in order.
#[derive(Debug, Default)]
pub struct Evidence {
    /// Every exchange.
    pub exchanges: Vec<Exchange>,
}

/// Sends requests for checks and records them.
#[derive(Debug, Clone)]
pub struct Prober {
    http: HttpClient,
    timeout: Duration,
}

impl Prober {
    /// Requests through `http`, each given at most `timeout`.
    pub fn new(http: HttpClient, timeout: Duration) -> Self {
        Self { http, timeout }
    }

    /// Sends `req`, records it in `ev` and returns the answer; a transport failure is
    /// [`Miss::Unreachable`] (recorded too).
    pub async fn send(&self, ev: &mut Evidence, req: Req) -> Result<Resp, Miss> {
        let raw = self.http.raw();
        let mut b = raw
            .request(req.method.clone(), &req.url)
            .timeout(self.timeout);
        let mut shown_headers = Vec::new();
        if let Auth::Header(v) = &req.auth {
            b = b.header(http::header::AUTHORIZATION, v);
            shown_headers.push(("authorization".into(), describe_auth(v)));
        }
        for (k, v) in &req.headers {
            b = b.header(*k, v);
            shown_headers.push(((*k).into(), v.clone()));
        }
        let shown_body = match req.body {
            Body::Empty => None,
            Body::Json(v) => {
                shown_headers.push(("content-type".into(), "application/json".into()));
                let text = v.to_string();
                let shown = cut(&text, BODY_LIMIT);
                b = b
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(text);
                Some(shown)
            }
            Body::Raw(ct, bytes) => {
                shown_headers.push(("content-type".into(), ct.into()));
                let shown = cut(&String::from_utf8_lossy(&bytes), BODY_LIMIT);
                b = b.header(http::header::CONTENT_TYPE, ct).body(bytes);
                Some(shown)
            }
            Body::Form(form, described) => {
                shown_headers.push(("content-type".into(), "multipart/form-data".into()));
                b = b.multipart(form);
                Some(described)
            }
        };
        let started = Instant::now();
        let sent = b.send().await;
        let mut record = Exchange {
            method: req.method.to_string(),
            url: redact_userinfo(&req.url),
            request_headers: shown_headers,
            request_body: shown_body,
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            elapsed_ms: 0.0,
            error: None,
        };
        let answer = match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                r.bytes().await.map(|body| (status, headers, body))
            }
            Err(e) => Err(e),
        };
        let elapsed = started.elapsed();
        record.elapsed_ms = elapsed.as_secs_f64() * 1e3;
        let index = ev.exchanges.len();
        match answer {
            Ok((status, headers, body)) => {
                record.status = Some(status);
                record.response_headers = headers
                    .iter()
                    .filter(|(k, _)| shown_response_header(k.as_str()))
                    .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                    .collect();
                record.response_body = Some(cut(&String::from_utf8_lossy(&body), BODY_LIMIT));
                ev.exchanges.push(record);
                let json = serde_json::from_slice(&body).ok();
                Ok(Resp {
                    index,
                    status,
                    headers,
                    body,
                    json,
                    elapsed,
                })
            }
            Err(e) => {
                let t = crate::client::error::classify(e);
                let message = t.to_string();
                record.error = Some(message.clone());
                ev.exchanges.push(record);
                if t.kind == crate::client::error::TransportKind::TimedOut {
                    return Err(Miss::Failed(Mismatch {
                        exchange: Some(index),
                        field: "answer".into(),
                        expected: format!("an answer within {:?}", self.timeout),
                        actual: message,
                    }));
                }
                Err(Miss::Unreachable(message))
            }
        }
    }
}

fn shown_response_header(name: &str) -> bool {
    name.starts_with("access-control-")
        || matches!(
            name,
            "content-type" | "retry-after" | "vary" | "x-hookbench-reason"
        )
}

/// The Authorization header as evidence shows it: the scheme, the algorithm and the claim
/// names, never the token.
pub fn describe_auth(value: &str) -> String {
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    match jwt::peek_header(token) {
        Some((alg, claims)) => format!(
            "{scheme} <token redacted: alg {alg}, claims {}>",
            claims.join(", ")
        ),
        None => format!("{scheme} <token redacted: {} bytes>", token.len()),
    }
}
