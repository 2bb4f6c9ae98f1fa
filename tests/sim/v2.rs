//! V2 sync behaviour of the demo bot: welcome, tasks, polling, forms, templates, closure.

use std::time::{Duration, Instant};

use hookbench::protocol::{ids, Version};
use serde_json::json;

use crate::common::{texts, Harness};

#[tokio::test]
async fn on_connect_welcomes_with_v2_items() {
    let h = Harness::demo().await;
    let r = h
        .post(
            Version::V2,
            "default",
            "ada",
            json!({
                "session": {"new": true}, "message": {"type": "event", "val": "ON_CONNECT"},
                "from": {"id": "ada", "userInfo": {"firstName": "Ada"}}, "to": {"id": "bot"}
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["_v"], "v2");
    let item = &r.body["data"][0];
    assert!(item["val"]
        .as_str()
        .unwrap()
        .contains("Welcome to Demo Bank"));
    assert_eq!(item["type"], "text");
    let mid = item["messageId"].as_str().unwrap();
    assert!(mid.starts_with("ms-") && mid.len() == 39, "{mid}");
    let created = item["createdOn"].as_str().unwrap();
    assert!(
        created.len() == 24 && created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );
    assert!(r.body.get("endOfTask").is_none());
}

#[tokio::test]
async fn balance_ends_its_task_with_two_messages() {
    let h = Harness::demo().await;
    let r = h.v2_text("default", "u1", "what is my balance").await;
    assert_eq!(r.texts().len(), 2, "{}", r.raw);
    assert_eq!(r.body["endOfTask"], true);
    assert_eq!(r.body["endReason"], "Fulfilled");
    assert_eq!(r.body["completedTaskName"], "Show Balance");
    assert!(r.body["completedTaskId"]
        .as_str()
        .unwrap()
        .starts_with("dg-"));
    assert!(r.body.get("pollId").is_none());
}

#[tokio::test]
async fn transfer_polls_once_per_batch_then_no_data_found() {
    let h = Harness::demo().await;
    assert_eq!(
        h.v2_text("default", "u2", "transfer").await.texts(),
        ["How much would you like to transfer?"]
    );
    assert_eq!(
        h.v2_text("default", "u2", "250").await.texts(),
        ["To which account?"]
    );
    let started = Instant::now();
    let r = h.v2_text("default", "u2", "savings").await;
    assert_eq!(r.texts(), ["Processing your transfer…"]);
    assert!(r.body.get("endOfTask").is_none());
    let poll_id = r.body["pollId"].as_str().unwrap().to_string();
    assert!(ids::is_poll_id(&poll_id), "{poll_id}");

    let early = h.poll("u2", &poll_id).await;
    assert_eq!(early.status, 200);
    assert_eq!(
        early.body,
        json!({"status": "Inprogress", "pollId": poll_id, "_v": "v2"})
    );

    let bodies = h.poll_to_end("u2", &r, Duration::from_millis(250)).await;
    let last = bodies.last().unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    let done: Vec<_> = bodies
        .iter()
        .filter(|b| b.get("status").is_none())
        .collect();
    assert_eq!(done.len(), 1, "{bodies:?}");
    assert_eq!(texts(last), ["Transferred 250 to savings."]);
    assert_eq!(last["completedTaskName"], "Transfer Funds");
    assert_eq!(last["endReason"], "Fulfilled");

    let again = h.poll("u2", &poll_id).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.error_msg(), "No data found");
    let unknown = h.poll("u2", &ids::poll_id()).await;
    assert_eq!(
        (unknown.status, unknown.error_msg()),
        (400, "No data found")
    );
}

#[tokio::test]
async fn a_second_service_node_gets_a_new_poll_id() {
    let h = Harness::test_bot().await;
    let r = h.v2_text("default", "u", "chain").await;
    assert_eq!(r.texts(), ["first"]);
    let p1 = r.body["pollId"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(380)).await;
    let second = h.poll("u", &p1).await;
    assert_eq!(texts(&second.body), ["second"], "{}", second.raw);
    let p2 = second.body["pollId"].as_str().unwrap().to_string();
    assert_ne!(p1, p2);
    assert!(second.body.get("endOfTask").is_none());
    tokio::time::sleep(Duration::from_millis(380)).await;
    let third = h.poll("u", &p2).await;
    assert_eq!(texts(&third.body), ["third"]);
    assert!(third.body.get("pollId").is_none());
    assert_eq!(third.body["endOfTask"], true);
}

#[tokio::test]
async fn polling_off_answers_everything_at_once() {
    let h = Harness::demo().await;
    h.v2_text("ivrInst-nopoll", "u3", "transfer").await;
    h.v2_text("ivrInst-nopoll", "u3", "100").await;
    let started = Instant::now();
    let r = h.v2_text("ivrInst-nopoll", "u3", "checking").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_millis(2800),
        "{took:?}"
    );
    assert_eq!(
        r.texts(),
        ["Processing your transfer…", "Transferred 100 to checking."]
    );
    assert!(r.body.get("pollId").is_none());
    assert_eq!(r.body["completedTaskName"], "Transfer Funds");
}

#[tokio::test]
async fn slow_service_is_carried_by_polling_when_on() {
    let h = Harness::demo().await;
    let r = h.v2_text("default", "u4", "slow").await;
    assert_eq!(r.status, 200);
    let id = r.body["pollId"].as_str().unwrap();
    assert!(h.poll("u4", id).await.body["status"] == "Inprogress");
}

#[tokio::test]
async fn over_budget_sync_turn_is_a_504_envelope() {
    let h = Harness::test_bot().await;
    let started = Instant::now();
    let r = h.v2_text("ivrInst-short", "u", "long").await;
    assert_eq!(r.status, 504, "{}", r.raw);
    assert_eq!(r.error_msg(), "The request has been timed-out");
    assert_eq!(r.body["_v"], "v2");
    assert!(r.body["_t"].as_str().unwrap().starts_with("RTM-TRACE-"));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(900),
        "{took:?}"
    );
    let v1 = h.v1_text("ivrInst-short", "u9", "long").await;
    assert_eq!(v1.status, 504);
    assert!(v1.body.get("_v").is_none());
}

#[tokio::test]
async fn menu_is_a_button_template_object() {
    let h = Harness::demo().await;
    let r = h.v2_text("default", "u5", "menu").await;
    let val = &r.body["data"][0]["val"];
    assert_eq!(val["payload"]["template_type"], "button");
    assert_eq!(val["payload"]["buttons"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn template_postback_selects_a_dialog() {
    let h = Harness::demo().await;
    let r = h
        .post(Version::V2, "default", "u6", json!({
            "message": {"type": "template", "val": {"type": "postback", "payload": "balance"}}, "from": {"id": "u6"}
        }))
        .await;
    assert_eq!(r.body["completedTaskName"], "Show Balance", "{}", r.raw);
}

#[tokio::test]
async fn form_submission_in_both_shapes() {
    for (user, shape) in [("f1", "val"), ("f2", "formData")] {
        let h = Harness::demo().await;
        let r = h.v2_text("default", user, "show me the form").await;
        assert_eq!(r.texts(), ["Please fill in your details."]);
        let form = r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "form")
            .unwrap()["val"]
            .clone();
        let form_id = form["formDef"]["id"].as_str().unwrap().to_string();
        let component = form["formDef"]["components"][0].clone();
        assert_eq!(component["key"], "name");
        let submission =
            json!({"formId": form_id, "data": [{"componentId": component["id"], "input": "Ada"}]});
        let message = if shape == "val" {
            json!({"type": "formData", "val": submission})
        } else {
            json!({"type": "formData", "formData": submission})
        };
        let r = h
            .post(
                Version::V2,
                "default",
                user,
                json!({"message": message, "from": {"id": user}}),
            )
            .await;
        assert_eq!(r.texts(), ["Thanks, Ada"], "{}", r.raw);
        assert_eq!(r.body["completedTaskName"], "Contact Form");
    }
}

#[tokio::test]
async fn session_closure_success_then_ignored() {
    let h = Harness::demo().await;
    h.v2_text("default", "c1", "hello").await;
    let close =
        json!({"message": {"type": "event", "val": "SESSION_CLOSURE"}, "from": {"id": "c1"}});
    let r = h.post(Version::V2, "default", "c1", close.clone()).await;
    assert_eq!(
        r.body["data"][0],
        json!({"type": "event", "val": "SESSION_CLOSURE", "eventType": "SESSION_CLOSURE_SUCCESS", "description": "session closed successfully"})
    );
    let r = h.post(Version::V2, "default", "c1", close).await;
    assert_eq!(r.body["data"][0]["eventType"], "SESSION_CLOSURE_IGNORED");
    assert_eq!(
        r.body["data"][0]["description"],
        "Active session doesn't exist"
    );
}

#[tokio::test]
async fn session_new_resets_a_pending_question() {
    let h = Harness::demo().await;
    h.v2_text("default", "n1", "transfer").await;
    let r = h
        .post(Version::V2, "default", "n1", json!({
            "session": {"new": true}, "message": {"type": "text", "val": "balance"}, "from": {"id": "n1"}
        }))
        .await;
    assert_eq!(r.body["completedTaskName"], "Show Balance");
}

#[tokio::test]
async fn unknown_text_falls_back_without_task_end() {
    let h = Harness::demo().await;
    let r = h
        .v2_text("default", "z", "what is the meaning of life")
        .await;
    assert_eq!(r.texts(), ["Sorry, I didn't understand that."]);
    assert!(r.body.get("endOfTask").is_none());
}

#[tokio::test]
async fn a_failing_service_interrupts_the_task() {
    let h = Harness::test_bot().await;
    let r = h.v2_text("default", "q", "flaky").await;
    let bodies = h.poll_to_end("q", &r, Duration::from_millis(30)).await;
    let last = bodies.last().unwrap();
    assert_eq!(texts(last), ["backend down"]);
    assert_eq!(last["endReason"], "Interrupted");
}

#[tokio::test]
async fn sessions_are_separate_per_instance() {
    let h = Harness::demo().await;
    h.v2_text("default", "same", "transfer").await;
    let other = h.v2_text("ivrInst-nopoll", "same", "100").await;
    assert_eq!(other.texts(), ["Sorry, I didn't understand that."]);
    let first = h.v2_text("default", "same", "100").await;
    assert_eq!(first.texts(), ["To which account?"]);
}

#[tokio::test]
async fn a_poll_id_belongs_to_the_user_whose_message_started_it() {
    let h = Harness::demo().await;
    for text in ["transfer", "250"] {
        h.v2_text("default", "owner", text).await;
    }
    let r = h.v2_text("default", "owner", "savings").await;
    let poll_id = r.body["pollId"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    // Another user's valid token: the documented error, and the batch stays the owner's.
    let other = h.poll("mallory", &poll_id).await;
    assert_eq!((other.status, other.error_msg()), (400, "No data found"));
    assert!(!other.raw.contains("Transferred"), "{}", other.raw);
    let own = h.poll("owner", &poll_id).await;
    assert_eq!(own.status, 200, "{}", own.raw);
    assert_eq!(texts(&own.body), ["Transferred 250 to savings."]);
}
