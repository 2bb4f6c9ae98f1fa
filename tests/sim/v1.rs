//! V1 behaviour: text shapes, escaped templates, forms, minimal third-party bodies.

use hookbench::protocol::template;
use hookbench::protocol::Version;
use serde_json::json;

use crate::common::Harness;

#[tokio::test]
async fn minimal_body_and_text_array() {
    let h = Harness::demo().await;
    let token = h.token("u1");
    let r = h
        .post_with(
            &h.url(Version::V1, "default"),
            Some(&format!("Bearer {token}")),
            r#"{"message":{"text":"balance"},"from":{"id":"u1"}}"#.into(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    let text = r.body["text"].as_array().unwrap();
    assert_eq!(text.len(), 2);
    assert_eq!(r.body["endOfTask"], true);
    assert_eq!(r.body["completedTaskName"], "Show Balance");
    assert!(r.body.get("_v").is_none());
}

#[tokio::test]
async fn single_message_is_a_string() {
    let h = Harness::demo().await;
    let r = h.v1_text("default", "u2", "blah").await;
    assert_eq!(r.body["text"], "Sorry, I didn't understand that.");
}

#[tokio::test]
async fn templates_are_html_escaped_json_strings() {
    let h = Harness::demo().await;
    let r = h.v1_text("default", "u3", "menu").await;
    let raw = r.body["text"].as_str().unwrap();
    assert!(raw.contains("&quot;template_type&quot;"), "{raw}");
    let decoded = template::decode(&r.body["text"]).unwrap();
    assert_eq!(decoded["payload"]["template_type"], "button");
}

#[tokio::test]
async fn v1_form_comes_in_form_and_is_submitted_with_form_data() {
    let h = Harness::demo().await;
    let r = h.v1_text("default", "u4", "form").await;
    assert_eq!(r.body["text"], "Please fill in your details.");
    let form = &r.body["form"];
    assert!(form["formInitialization"]["valueMap"].is_object());
    let form_id = form["formDef"]["id"].as_str().unwrap();
    let cid = form["formDef"]["components"][0]["id"].as_str().unwrap();
    let r = h
        .post(Version::V1, "default", "u4", json!({
            "message": {"text": "submit", "formData": {"formId": form_id, "data": [{"componentId": cid, "input": "Grace"}]}},
            "from": {"id": "u4"}
        }))
        .await;
    assert_eq!(r.body["text"], "Thanks, Grace", "{}", r.raw);
}

#[tokio::test]
async fn v1_transfer_runs_the_service_inside_the_request() {
    let h = Harness::demo().await;
    h.v1_text("default", "u5", "transfer").await;
    h.v1_text("default", "u5", "10").await;
    let r = h.v1_text("default", "u5", "savings").await;
    assert_eq!(
        r.body["text"],
        json!(["Processing your transfer…", "Transferred 10 to savings."])
    );
    assert!(r.body.get("pollId").is_none());
}

#[tokio::test]
async fn lenient_v1_fields_are_accepted() {
    let h = Harness::demo().await;
    let r = h
        .post(Version::V1, "default", "42", json!({
            "session": {"new": "true"}, "message": {"text": "balance"}, "from": {"id": 42, "userInfo": {"firstName": ""}},
            "to": {"id": "st-x"}, "mergeIdentity": "true", "preferredChannelForResponse": "rtm",
            "userLevelTags": [{"name": "tier", "value": "gold"}], "customData": {"k": 1}
        }))
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["completedTaskName"], "Show Balance");
}
