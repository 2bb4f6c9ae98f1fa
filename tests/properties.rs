//! Property tests: protocol types survive a JSON round trip, and no request body, however
//! mangled, makes the simulator panic or answer anything but 200 or 400.

use std::sync::Arc;

use axum::body::Body;
use hookbench::engine::reply::{Body as ReplyBody, Reply};
use hookbench::protocol::jwt::{Alg, AppClaim, ClaimsTemplate, Signer};
use hookbench::protocol::Version;
use hookbench::protocol::{v1, v2, Attachment, From, MetaTags, Session, Tag, UserInfo};
use hookbench::sim::{server, Bot, SimState};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 {}\"'&<>é€\\\\]{0,24}"
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

fn from() -> impl Strategy<Value = From> {
    (text(), opt((opt(text()), opt(text()), opt(text())))).prop_map(|(id, info)| From {
        id,
        user_info: info.map(|(f, l, e)| UserInfo {
            first_name: f,
            last_name: l,
            email: e,
        }),
    })
}

fn attachments() -> impl Strategy<Value = Option<Vec<Attachment>>> {
    opt(proptest::collection::vec(
        (opt(text()), opt(text()), opt(text()), opt(text())).prop_map(
            |(url, file_id, file_type, file_name)| Attachment {
                url,
                file_id,
                file_type,
                file_name,
            },
        ),
        0..3,
    ))
}

fn tags() -> impl Strategy<Value = Option<Vec<Tag>>> {
    opt(proptest::collection::vec(
        (text(), text()).prop_map(|(name, v)| Tag {
            name,
            value: Value::String(v),
        }),
        0..3,
    ))
}

fn v2_request() -> impl Strategy<Value = v2::Request> {
    let message = prop_oneof![
        text().prop_map(|t| ("text".to_string(), json!(t))),
        Just(("event".to_string(), json!("ON_CONNECT"))),
        Just(("event".to_string(), json!("SESSION_CLOSURE"))),
        text().prop_map(|t| (
            "template".to_string(),
            json!({"type": "postback", "payload": t})
        )),
        text().prop_map(|t| (
            "formData".to_string(),
            json!({"formId": "frm-1", "data": [{"componentId": "fct-1", "input": t}]})
        )),
    ];
    (
        message,
        attachments(),
        from(),
        opt(any::<bool>()),
        opt(text()),
        opt(any::<bool>()),
        tags(),
        attachments(),
    )
        .prop_map(
            |((kind, val), att, from, new, lang, merge, tags, top)| v2::Request {
                session: new.map(|n| Session { new: Some(n) }),
                message: v2::Message {
                    kind,
                    val: Some(val),
                    attachments: att,
                    form_data: None,
                },
                from,
                to: None,
                interactive_language: lang,
                meta_tags: tags.map(|t| MetaTags {
                    user_level_tags: Some(t),
                    ..Default::default()
                }),
                merge_identity: merge,
                preferred_channel_for_response: None,
                custom_data: None,
                attachments: top,
            },
        )
}

fn v2_response() -> impl Strategy<Value = v2::Response> {
    let item =
        (text(), opt(text()), opt(text())).prop_map(|(val, created_on, message_id)| v2::DataItem {
            kind: "text".into(),
            val: Value::String(val),
            created_on,
            message_id,
            event_type: None,
            description: None,
            end_of_message: None,
            partial_message: None,
        });
    (
        opt(proptest::collection::vec(item, 0..4)),
        opt(text()),
        opt(text()),
        opt(any::<bool>()),
        opt(text()),
    )
        .prop_map(|(data, poll_id, status, end, reason)| v2::Response {
            data,
            poll_id,
            status,
            end_of_task: end,
            end_reason: reason,
            v: Some("v2".into()),
            ..Default::default()
        })
}

fn v1_request() -> impl Strategy<Value = v1::Request> {
    (
        text(),
        attachments(),
        from(),
        opt(any::<bool>()),
        tags(),
        opt(any::<bool>()),
    )
        .prop_map(|(t, att, from, new, tags, merge)| v1::Request {
            session: new.map(|n| Session { new: Some(n) }),
            message: v1::Message {
                text: t,
                attachments: att,
                form_data: None,
            },
            from,
            user_level_tags: tags,
            merge_identity: merge,
            ..Default::default()
        })
}

fn v1_response() -> impl Strategy<Value = v1::Response> {
    let text_shape = prop_oneof![
        text().prop_map(Value::String),
        proptest::collection::vec(text().prop_map(Value::String), 0..3).prop_map(Value::Array),
        text().prop_map(|t| json!({"type": "template", "payload": {"text": t}})),
    ];
    (
        opt(text_shape),
        opt(any::<bool>()),
        opt(text()),
        opt(text()),
    )
        .prop_map(|(text, end, reason, name)| v1::Response {
            text,
            end_of_task: end,
            end_reason: reason,
            completed_task_name: name,
            ..Default::default()
        })
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
    v: &T,
) {
    let json = serde_json::to_string(v).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, v, "{json}");
}

/// Bytes that break a body in the ways a target might: invalid UTF-8 (a lone continuation
/// byte, a truncated sequence, an encoded surrogate, 0xFF), lone surrogate escapes, stray
/// quotes and backslashes.
fn damage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(vec![0xff]),
        Just(vec![0x80]),
        Just(vec![0xc3]),
        Just(vec![0xed, 0xa0, 0x80]),
        Just(b"\\ud800".to_vec()),
        Just(b"\\udc00\\ud800".to_vec()),
        Just(b"\\u00".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(vec![0x00]),
    ]
}

/// The lean and the whole reader take the same bodies and read the same things from them.
fn readers_agree(bytes: &[u8], version: Version) -> Result<(), TestCaseError> {
    let whole = ReplyBody::parse(bytes, version, true);
    let lean = ReplyBody::parse(bytes, version, false);
    prop_assert_eq!(
        whole.is_ok(),
        lean.is_ok(),
        "{:?} / {:?} on {}",
        whole.as_ref().err(),
        lean.as_ref().err(),
        String::from_utf8_lossy(bytes)
    );
    if let (Ok(whole), Ok(lean)) = (whole, lean) {
        prop_assert_eq!(whole.poll_id(), lean.poll_id());
        prop_assert_eq!(whole.in_progress(), lean.in_progress());
        let (mut a, mut b) = (Reply::default(), Reply::default());
        a.push(whole, version);
        b.push(lean, version);
        prop_assert_eq!(a.texts, b.texts);
        prop_assert_eq!(a.message_count, b.message_count);
        prop_assert_eq!(a.task_end, b.task_end);
        prop_assert_eq!(a.form, b.form);
    }
    Ok(())
}

proptest! {
    #[test]
    fn v2_requests_round_trip(r in v2_request()) { round_trip(&r); }

    #[test]
    fn v2_responses_round_trip(r in v2_response()) { round_trip(&r); }

    #[test]
    fn v1_requests_round_trip(r in v1_request()) { round_trip(&r); }

    #[test]
    fn v1_responses_round_trip(r in v1_response()) { round_trip(&r); }
}

struct InProcess {
    rt: tokio::runtime::Runtime,
    router: axum::Router,
    token: String,
    bot_id: String,
}

impl InProcess {
    fn new() -> Self {
        let bot = Bot::demo();
        let app = &bot.apps[0];
        let signer =
            Signer::hmac(Alg::HS256, app.client_secret.as_ref().unwrap().as_bytes()).unwrap();
        let claims = ClaimsTemplate {
            client_id: app.client_id.clone(),
            app_claim: AppClaim::AppId,
            user_identity: false,
            expires_in: None,
            jti: false,
            extra: Default::default(),
        }
        .for_user("fuzz");
        let token = signer.sign(&claims).unwrap();
        let bot_id = bot.id.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let router = rt.block_on(async { server::router(Arc::new(SimState::new(bot))) });
        Self {
            rt,
            router,
            token,
            bot_id,
        }
    }

    fn status(&self, path: &str, body: Vec<u8>) -> u16 {
        let req = http::Request::post(path)
            .header("authorization", format!("bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        self.rt
            .block_on(self.router.clone().oneshot(req))
            .unwrap()
            .status()
            .as_u16()
    }
}

/// Arbitrary JSON whose object keys are mostly `keys` and whose strings are often `words`,
/// so that generated documents reach the code that reads those keys.
fn json_like(
    keys: &'static [&'static str],
    words: &'static [&'static str],
    size: u32,
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        text().prop_map(Value::String),
        proptest::sample::select(words).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, size * 8, size, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(keys).prop_map(str::to_string),
                    text()
                ],
                inner,
                0..size as usize
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON shaped like request bodies.
fn any_json() -> impl Strategy<Value = Value> {
    json_like(
        &["message", "from", "id", "type", "val", "text"],
        &["message", "from", "type", "val", "text"],
        4,
    )
}

/// JSON shaped like bot replies: their keys and the values that change how they are read.
fn reply_json() -> impl Strategy<Value = Value> {
    json_like(
        &[
            "data",
            "text",
            "type",
            "val",
            "payload",
            "form",
            "formDef",
            "endOfTask",
            "endReason",
            "completedTaskName",
            "pollId",
            "status",
        ],
        &[
            "form",
            "event",
            "text",
            "template",
            "Inprogress",
            "Fulfilled",
            "{\"payload\":{\"text\":\"t\"}}",
            "{&quot;text&quot;:&quot;e&quot;}",
        ],
        5,
    )
}

fn mangled_body() -> impl Strategy<Value = Vec<u8>> {
    let valid = prop_oneof![
        Just(json!({"message": {"type": "text", "val": "balance"}, "from": {"id": "fuzz"}})),
        Just(json!({"message": {"text": "menu"}, "from": {"id": "fuzz"}})),
        Just(
            json!({"message": {"type": "formData", "val": {"formId": "x", "data": [{"componentId": "y", "input": 1}]}}, "from": {"id": "fuzz"}})
        ),
        Just(
            json!({"session": {"new": true}, "message": {"type": "event", "val": "ON_CONNECT"}, "from": {"id": "fuzz"}})
        ),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        (valid.clone(), any::<proptest::sample::Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut bytes = serde_json::to_vec(&v).unwrap();
            let at = i.index(bytes.len());
            bytes[at] = b;
            bytes
        }),
        (valid, any::<proptest::sample::Index>()).prop_map(|(v, i)| {
            let bytes = serde_json::to_vec(&v).unwrap();
            bytes[..i.index(bytes.len())].to_vec()
        }),
        any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bodies_never_panic_the_server(body in mangled_body()) {
        thread_local!(static SIM: InProcess = InProcess::new());
        SIM.with(|sim| {
            for path in [format!("/chatbot/v2/webhook/{}", sim.bot_id), format!("/chatbot/hooks/{}", sim.bot_id)] {
                let status = sim.status(&path, body.clone());
                prop_assert!(status == 200 || status == 400, "status {} for {:?}", status, String::from_utf8_lossy(&body));
            }
            Ok(())
        })?;
    }
}

fn yaml_text() -> impl Strategy<Value = String> {
    let valid = Just(
        "name: x\ntarget: {version: v2, poll: {interval: 1s}}\nvars: {a: '1'}\nsteps:\n  - event: ON_CONNECT\n  - send: \"{{a}}\"\n    expect:\n      - text: {contains: hi}\n      - jsonpath: {path: \"$.data[0]\", exists: true}\n      - not: {messages: 2}\n    capture: {c: \"$.data[0].val\"}\n".to_string(),
    );
    prop_oneof![
        "[ -~\n]{0,200}",
        (
            valid.clone(),
            any::<proptest::sample::Index>(),
            "[ -~\n]{0,6}"
        )
            .prop_map(|(v, i, ins)| {
                let at = i.index(v.len());
                let at = (0..=at).rev().find(|p| v.is_char_boundary(*p)).unwrap_or(0);
                format!("{}{}{}", &v[..at], ins, &v[at..])
            }),
        (valid, any::<proptest::sample::Index>())
            .prop_map(|(v, i)| v[..i.index(v.len())].to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_yaml_never_panics_the_validator(text in yaml_text()) {
        let _ = hookbench::scenario::parse_str(&text, std::path::Path::new("fuzz.yaml"), &|_| None);
    }

    #[test]
    fn arbitrary_reply_bodies_never_panic_the_checks(bodies in proptest::collection::vec(reply_json(), 0..4), v1 in any::<bool>()) {
        let scenario = hookbench::scenario::parse_str(
            "steps:\n  - send: x\n    expect:\n      - status: 200\n      - not: {status: [200, 404]}\n      - messages: 2\n      - not: {end_of_task: {task: Show Balance}}\n      - end_of_task: false\n      - schema: v2.response\n      - text: {nth: -1, contains: a}\n      - jsonpath: {path: \"$.data[*].val\", count: 1}\n      - messages: {min: 1}\n      - template: {type: button, buttons: 3}\n      - end_of_task: {reason: Fulfilled}\n      - latency: 1s\n      - poll: {converged: true, max_polls: 2, within: 1s}\n",
            std::path::Path::new("p.yaml"),
            &|_| None,
        )
        .unwrap();
        let version = if v1 { Version::V1 } else { Version::V2 };
        for trees in [true, false] {
            let mut reply = Reply { status: Some(200), trees, ..Default::default() };
            for b in &bodies {
                if let Ok(body) = ReplyBody::parse(b.to_string().as_bytes(), version, trees) {
                    reply.push(body, version);
                }
            }
            reply.finish(version);
            for check in &scenario.steps[0].expect {
                let full = hookbench::engine::assertions::evaluate(check, &reply, &|_| None);
                let brief = hookbench::engine::assertions::evaluate_brief(check, &reply, &|_| None);
                prop_assert_eq!(full.passed, brief.passed, "{}", check.label);
                if !full.passed {
                    prop_assert_eq!(&full, &brief);
                }
            }
        }
    }

    #[test]
    fn lean_and_whole_reading_of_a_body_agree(body in reply_json(), v1 in any::<bool>()) {
        let version = if v1 { Version::V1 } else { Version::V2 };
        readers_agree(body.to_string().as_bytes(), version)?;
    }

    #[test]
    fn lean_and_whole_reading_agree_on_damaged_bytes(
        body in reply_json(),
        cuts in proptest::collection::vec((any::<proptest::sample::Index>(), damage()), 1..4),
        v1 in any::<bool>(),
    ) {
        let version = if v1 { Version::V1 } else { Version::V2 };
        let mut bytes = body.to_string().into_bytes();
        for (at, bad) in cuts {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, bad);
        }
        readers_agree(&bytes, version)?;
    }
}
