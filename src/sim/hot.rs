//! The hot routes (V1 and V2 messages, V2 polls) answered without the router: the same
//! handlers, counting and CORS headers as through [`super::server::router`], without its
//! per-request boxing, extension maps and copies (axum's routing and middleware made about 45 of
//! the 74 allocations of a message request and a tenth of its CPU).
//!
//! Anything that is not plainly one of these routes (another method, a percent-encoded segment,
//! an empty segment) goes to the router, which stays the one definition of every other answer.
//! A test sends the same requests both ways and compares the answers.

use std::sync::Arc;

use axum::http::{header, HeaderValue, Method, Request};
use axum::response::Response;
use bytes::Bytes;

use super::metrics::Route;
use super::server::{counted, message, poll_answer, read_message};
use super::state::SimState;
use crate::protocol::Version;

/// A request for one of the hot routes, its path segments borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hot<'a> {
    /// `POST /chatbot/hooks/{bot}[/hookInstance/{inst}]` (V1) or
    /// `POST /chatbot/v2/webhook/{bot}[/hookInstance/{inst}]` (V2).
    Message {
        /// The protocol version the URL names.
        version: Version,
        /// The bot id.
        bot: &'a str,
        /// The instance id, when the URL names one.
        inst: Option<&'a str>,
    },
    /// `GET /chatbot/v2/webhook/{bot}/poll/{poll}`.
    Poll {
        /// The bot id.
        bot: &'a str,
        /// The pollId.
        poll: &'a str,
    },
}

/// The hot route a request is for, if it is plainly one.
pub fn route<'a>(method: &Method, path: &'a str) -> Option<Hot<'a>> {
    // Percent-decoding is the router's (its `Path` extractor decodes segments).
    if path.contains('%') {
        return None;
    }
    if *method == Method::POST {
        if let Some(rest) = path.strip_prefix("/chatbot/v2/webhook/") {
            return message_route(Version::V2, rest);
        }
        if let Some(rest) = path.strip_prefix("/chatbot/hooks/") {
            return message_route(Version::V1, rest);
        }
    } else if *method == Method::GET {
        let rest = path.strip_prefix("/chatbot/v2/webhook/")?;
        let mut parts = rest.split('/');
        if let (Some(bot), Some("poll"), Some(poll), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        {
            if !bot.is_empty() && !poll.is_empty() {
                return Some(Hot::Poll { bot, poll });
            }
        }
    }
    None
}

fn message_route(version: Version, rest: &str) -> Option<Hot<'_>> {
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(bot), None, _, _) if !bot.is_empty() => Some(Hot::Message {
            version,
            bot,
            inst: None,
        }),
        (Some(bot), Some("hookInstance"), Some(inst), None)
            if !bot.is_empty() && !inst.is_empty() =>
        {
            Some(Hot::Message {
                version,
                bot,
                inst: Some(inst),
            })
        }
        _ => None,
    }
}

/// Answers `req` when it is for a hot route; hands it back untouched otherwise.
pub async fn answer<B>(state: &Arc<SimState>, req: Request<B>) -> Result<Response, Request<B>>
where
    B: hyper::body::Body<Data = Bytes>,
{
    let (parts, body) = req.into_parts();
    let (kind, response) = match route(&parts.method, parts.uri.path()) {
        Some(Hot::Message { version, bot, inst }) => {
            let body = read_message(body).await;
            let kind = match version {
                Version::V1 => Route::V1Message,
                Version::V2 => Route::V2Message,
            };
            (
                kind,
                message(state, version, bot, inst, &parts.headers, body).await,
            )
        }
        Some(Hot::Poll { bot, poll }) => (
            Route::Poll,
            poll_answer(state, bot, poll, &parts.headers).await,
        ),
        None => return Err(Request::from_parts(parts, body)),
    };
    counted(state, kind, &response);
    Ok(with_cors(response))
}

/// The headers the router's CORS layer adds to an answer that is not a pre-flight: any origin,
/// and `Vary` on what a pre-flight asks (added to any `Vary` the answer has).
fn with_cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.append(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Version::{V1, V2};

    #[test]
    fn only_plain_message_and_poll_urls_are_hot() {
        let post = Method::POST;
        let get = Method::GET;
        let m = |version, bot, inst| Some(Hot::Message { version, bot, inst });
        assert_eq!(
            route(&post, "/chatbot/v2/webhook/st-1"),
            m(V2, "st-1", None)
        );
        assert_eq!(
            route(&post, "/chatbot/v2/webhook/st-1/hookInstance/i-2"),
            m(V2, "st-1", Some("i-2"))
        );
        assert_eq!(route(&post, "/chatbot/hooks/st-1"), m(V1, "st-1", None));
        assert_eq!(
            route(&post, "/chatbot/hooks/st-1/hookInstance/i-2"),
            m(V1, "st-1", Some("i-2"))
        );
        assert_eq!(
            route(&get, "/chatbot/v2/webhook/st-1/poll/p-3"),
            Some(Hot::Poll {
                bot: "st-1",
                poll: "p-3"
            })
        );
        for (method, path) in [
            (&get, "/chatbot/v2/webhook/st-1"),
            (&Method::OPTIONS, "/chatbot/v2/webhook/st-1"),
            (&Method::HEAD, "/chatbot/v2/webhook/st-1/poll/p-3"),
            (&post, "/chatbot/v2/webhook/st-1/poll/p-3"),
            (&post, "/chatbot/v2/webhook/"),
            (&post, "/chatbot/v2/webhook/st-1/"),
            (&post, "/chatbot/v2/webhook//hookInstance/i"),
            (&post, "/chatbot/v2/webhook/st-1/hookInstance/"),
            (&post, "/chatbot/v2/webhook/st-1/hookInstance/i/x"),
            (&post, "/chatbot/v2/webhook/st%2D1"),
            (&get, "/chatbot/v2/webhook/st-1/poll/"),
            (&get, "/chatbot/v2/webhook/st-1/poll/p/x"),
            (&post, "/chatbot/v3/webhook/st-1"),
        ] {
            assert_eq!(route(method, path), None, "{method} {path}");
        }
    }

    /// The same requests through the router and through the hot path, each against its own
    /// fresh simulator: the same status, headers and body (ids and times aside).
    #[tokio::test]
    async fn the_hot_path_answers_as_the_router_does() {
        use crate::protocol::jwt::{Alg, AppClaim, ClaimsTemplate, Signer};
        use crate::sim::bot::Bot;
        use tower::ServiceExt;

        let bot = Bot::demo();
        let app = &bot.apps[0];
        let template = ClaimsTemplate {
            client_id: app.client_id.clone(),
            app_claim: AppClaim::AppId,
            user_identity: true,
            expires_in: Some(std::time::Duration::from_secs(3600)),
            jti: false,
            extra: serde_json::Map::new(),
        };
        // The demo bot's first app (scenarios/bots/demo.bot.yaml).
        let secret = b"demo-secret-hookbench-0123456789abcdef";
        let signer = Signer::hmac(Alg::HS256, secret).expect("signer");
        let bearer = signer.bearer_for(&template, "u-1").expect("token");
        let id = bot.id.clone();
        let v2 = format!("/chatbot/v2/webhook/{id}");
        let v1 = format!("/chatbot/hooks/{id}");
        let v2_body =
            r#"{"message":{"type":"text","val":"balance"},"from":{"id":"u-1"},"to":{"id":"x"}}"#;
        let v1_body = r#"{"message":{"text":"balance"},"from":{"id":"u-1"},"to":{"id":"x"}}"#;
        // (method, path, Authorization, body, Origin)
        type Case<'a> = (Method, String, Option<&'a str>, &'a str, Option<&'a str>);
        let cases: Vec<Case> = vec![
            (
                Method::POST,
                v2.clone(),
                Some(&bearer),
                v2_body,
                Some("https://app.example"),
            ),
            (Method::POST, v2.clone(), Some(&bearer), "balance", None),
            (
                Method::POST,
                format!("{v2}/hookInstance/ivrInst-nopoll"),
                Some(&bearer),
                v2_body,
                None,
            ),
            (
                Method::POST,
                format!("{v2}/hookInstance/nope"),
                Some(&bearer),
                v2_body,
                None,
            ),
            (Method::POST, v2.clone(), None, v2_body, None),
            (
                Method::POST,
                v2.clone(),
                Some("bearer x.y.z"),
                v2_body,
                None,
            ),
            (
                Method::POST,
                "/chatbot/v2/webhook/st-other".into(),
                Some(&bearer),
                v2_body,
                None,
            ),
            (Method::POST, v1.clone(), Some(&bearer), v1_body, None),
            (
                Method::POST,
                format!("{v1}/hookInstance/ivrInst-nopoll"),
                Some(&bearer),
                v1_body,
                None,
            ),
            (
                Method::GET,
                format!("{v2}/poll/p-unknown"),
                Some(&bearer),
                "",
                None,
            ),
            (Method::GET, format!("{v2}/poll/p-unknown"), None, "", None),
            (
                Method::GET,
                "/chatbot/v2/webhook/st-other/poll/p".into(),
                Some(&bearer),
                "",
                None,
            ),
        ];
        let (routed, hot) = (
            Arc::new(SimState::new(Bot::demo())),
            Arc::new(SimState::new(Bot::demo())),
        );
        for (method, path, auth, body, origin) in cases {
            let request = || {
                let mut r = Request::builder().method(method.clone()).uri(&path);
                if let Some(a) = auth {
                    r = r.header(header::AUTHORIZATION, a);
                }
                if let Some(o) = origin {
                    r = r.header(header::ORIGIN, o);
                }
                r.header(header::CONTENT_TYPE, "application/json")
                    .body(axum::body::Body::from(body.to_string()))
                    .expect("request")
            };
            let by_router = super::super::server::router(routed.clone())
                .oneshot(request())
                .await
                .expect("infallible");
            let by_hot = answer(&hot, request())
                .await
                .unwrap_or_else(|_| panic!("{method} {path} is hot"));
            let (a, b) = (comparable(by_router).await, comparable(by_hot).await);
            assert_eq!(a, b, "{method} {path}");
        }
        let counts = |s: &SimState| s.metrics.render(0, 0);
        assert_eq!(counts(&routed), counts(&hot));
    }

    /// Status, headers but the body's length, and the body with ids and times masked.
    async fn comparable(r: Response) -> (u16, Vec<(String, String)>, serde_json::Value) {
        let (parts, body) = r.into_parts();
        let mut headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter(|(k, _)| *k != header::CONTENT_LENGTH)
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").to_string()))
            .collect();
        headers.sort();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        mask(&mut v);
        (parts.status.as_u16(), headers, v)
    }

    fn mask(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if ["_t", "createdOn", "messageId", "pollId"].contains(&k.as_str()) {
                        *x = serde_json::Value::Null;
                    } else {
                        mask(x);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(mask),
            _ => {}
        }
    }
}
