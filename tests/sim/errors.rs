//! Every error row of PROTOCOL.md section 5 (400, 404, 429; 401 and 504 have their own files)
//! and the fault injection settings.

use std::time::{Duration, Instant};

use hookbench::protocol::Version;
use serde_json::{json, Value};

use crate::common::Harness;

async fn post_raw(
    h: &Harness,
    version: Version,
    instance: &str,
    body: &str,
) -> crate::common::Reply {
    let token = h.token("u");
    h.post_with(
        &h.url(version, instance),
        Some(&format!("bearer {token}")),
        body.to_string(),
    )
    .await
}

#[tokio::test]
async fn invalid_payload_rows() {
    let h = Harness::test_bot().await;
    let v2_rows: &[(&str, Value)] = &[
        ("missing message", json!({"from": {"id": "u"}})),
        (
            "missing from",
            json!({"message": {"type": "text", "val": "x"}}),
        ),
        (
            "missing from.id",
            json!({"message": {"type": "text", "val": "x"}, "from": {}}),
        ),
        (
            "bad event",
            json!({"message": {"type": "event", "val": "ON_DISCONNECT"}, "from": {"id": "u"}}),
        ),
        (
            "unknown type",
            json!({"message": {"type": "video", "val": "x"}, "from": {"id": "u"}}),
        ),
        (
            "text not a string",
            json!({"message": {"type": "text", "val": {"a": 1}}, "from": {"id": "u"}}),
        ),
        (
            "attachments with empty val",
            json!({"message": {"type": "text", "val": "", "attachments": [{"fileId": "abc"}]}, "from": {"id": "u"}}),
        ),
        (
            "template not an object",
            json!({"message": {"type": "template", "val": "x"}, "from": {"id": "u"}}),
        ),
        (
            "formData without formId",
            json!({"message": {"type": "formData", "val": {"data": []}}, "from": {"id": "u"}}),
        ),
    ];
    for (what, body) in v2_rows {
        let r = post_raw(&h, Version::V2, "default", &body.to_string()).await;
        assert_eq!(r.status, 400, "{what}: {}", r.raw);
        assert_eq!(r.error_msg(), "Invalid Request Payload", "{what}");
        assert_eq!(r.body["_v"], "v2", "{what}");
    }
    for (what, body) in [("not JSON", "{not json"), ("empty", ""), ("array", "[]")] {
        let r = post_raw(&h, Version::V2, "default", body).await;
        assert_eq!(
            (r.status, r.error_msg()),
            (400, "Invalid Request Payload"),
            "{what}"
        );
    }
    let r = post_raw(
        &h,
        Version::V1,
        "default",
        r#"{"message":{},"from":{"id":"u"}}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!({"errors": [{"msg": "Invalid Request Payload", "code": 400}]})
    );
}

#[tokio::test]
async fn unknown_bot_instance_or_disabled_channel_is_404() {
    let h = Harness::test_bot().await;
    let token = h.token("u");
    let body = json!({"message": {"type": "text", "val": "x"}, "from": {"id": "u"}}).to_string();
    let base = h.sim.base_url();
    for url in [
        format!("{base}/chatbot/v2/webhook/st-unknown"),
        h.sim.endpoints().message(Version::V2, Some("ivrInst-nope")),
        h.url(Version::V2, "ivrInst-off"),
    ] {
        let r = h
            .post_with(&url, Some(&format!("bearer {token}")), body.clone())
            .await;
        assert_eq!(r.status, 404, "{url}");
        assert_eq!(r.error_msg(), "Not Found");
    }
    let r = h
        .post_with(&format!("{base}/chatbot/hooks/st-unknown"), None, body)
        .await;
    assert_eq!(r.status, 404);
    assert!(r.body.get("_v").is_none());
}

#[tokio::test]
async fn rate_limit_is_a_per_app_token_bucket() {
    let h = Harness::test_bot().await;
    for _ in 0..3 {
        assert_eq!(h.v2_text("ivrInst-limited", "u", "quick").await.status, 200);
    }
    let r = h.v2_text("ivrInst-limited", "u", "quick").await;
    assert_eq!((r.status, r.error_msg()), (429, "Too Many requests"));
    // Another instance has its own bucket.
    assert_eq!(h.v2_text("default", "u", "quick").await.status, 200);
}

#[tokio::test]
async fn injected_error_status() {
    let h = Harness::test_bot().await;
    let r = h.v2_text("ivrInst-e503", "u", "quick").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body["errors"][0]["code"], 503);
}

#[tokio::test]
async fn dropped_connection_gives_no_response() {
    let h = Harness::test_bot().await;
    let token = h.token("u");
    let err = h
        .http
        .post(h.url(Version::V2, "ivrInst-drop"))
        .header("authorization", format!("bearer {token}"))
        .body(json!({"message": {"type": "text", "val": "quick"}, "from": {"id": "u"}}).to_string())
        .send()
        .await
        .unwrap_err();
    assert!(
        err.is_request() || err.is_connect() || err.to_string().contains("connection"),
        "{err}"
    );
    assert_eq!(
        h.sim
            .state
            .metrics
            .dropped_connections
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn malformed_body_fault() {
    let h = Harness::test_bot().await;
    let r = h.v2_text("ivrInst-badjson", "u", "quick").await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.raw).is_err(), "{}", r.raw);
}

#[tokio::test]
async fn latency_fault_delays_answers() {
    let h = Harness::test_bot().await;
    let started = Instant::now();
    let r = h.v2_text("ivrInst-slow", "u", "quick").await;
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn a_message_body_over_the_limit_gets_the_json_envelope() {
    let h = Harness::demo().await;
    let big = format!(
        r#"{{"message":{{"type":"text","val":"{}"}},"from":{{"id":"u"}}}}"#,
        "x".repeat(3 * 1024 * 1024)
    );
    let token = h.token("u");
    let r = h
        .post_with(
            &h.url(Version::V2, "default"),
            Some(&format!("bearer {token}")),
            big,
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.raw);
    assert_eq!(r.body["errors"][0]["code"], 413, "{}", r.raw);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}
