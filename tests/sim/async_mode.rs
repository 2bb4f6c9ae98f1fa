//! Async mode: immediate acks, one POST per message plus a task-end POST, retries, duplicates.

use std::time::{Duration, Instant};

use hookbench::protocol::Version;
use hookbench::sim::SimConfig;
use serde_json::json;

use crate::common::{test_bot, texts, Harness, Receiver};

async fn harness(receiver: &Receiver, demo: bool) -> Harness {
    let mut config = if demo {
        SimConfig::demo()
    } else {
        SimConfig::new(test_bot())
    };
    config.post_url = Some(receiver.url.clone());
    Harness::with(config).await
}

#[tokio::test]
async fn v2_async_acks_then_posts_each_message_and_the_task_end() {
    let rx = Receiver::start(0).await;
    let h = harness(&rx, true).await;
    let started = Instant::now();
    let r = h.v2_text("ivrInst-async", "a1", "balance").await;
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    assert_eq!(r.body["_v"], "v2");
    assert!(r.body["traceId"]
        .as_str()
        .unwrap()
        .starts_with("RTM-TRACE-"));
    assert!(r.body.get("data").is_none());
    let got = rx.wait_for(3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    for d in &got[..2] {
        assert_eq!(d["to"], "a1");
        assert_eq!(d["_v"], "v2");
        assert_eq!(d["data"].as_array().unwrap().len(), 1);
        assert!(d.get("endOfTask").is_none());
        assert!(d["data"][0]["createdOn"].is_string());
    }
    assert_eq!(
        texts(&got[0]),
        ["The balance in your Salary account ending with 3984 is $54,883."]
    );
    // The turn's first message was sent mid-flow, its second is the last.
    assert_eq!(got[0]["data"][0]["partialMessage"], true, "{got:?}");
    assert!(got[0]["data"][0].get("endOfMessage").is_none());
    assert_eq!(got[1]["data"][0]["endOfMessage"], true, "{got:?}");
    assert!(got[1]["data"][0].get("partialMessage").is_none());
    let end = &got[2];
    assert_eq!(end["endOfTask"], true);
    assert_eq!(end["completedTaskName"], "Show Balance");
    assert_eq!(end["data"], json!([]));
}

#[tokio::test]
async fn v1_async_acks_with_an_empty_object() {
    let rx = Receiver::start(0).await;
    let h = harness(&rx, true).await;
    let r = h.v1_text("ivrInst-async", "a2", "hello").await;
    assert_eq!(r.body, json!({}));
    let got = rx.wait_for(1).await;
    assert_eq!(got[0]["to"], "a2");
    assert_eq!(got[0]["from"], h.sim.state.bot.id);
    assert_eq!(got[0]["text"], "Sorry, I didn't understand that.");
}

#[tokio::test]
async fn async_service_nodes_delay_later_messages() {
    let rx = Receiver::start(0).await;
    let h = harness(&rx, false).await;
    let started = Instant::now();
    h.v2_text("ivrInst-async", "a3", "chain").await;
    let got = rx.wait_for(4).await;
    assert!(started.elapsed() >= Duration::from_millis(600));
    let all: Vec<String> = got.iter().flat_map(texts).collect();
    assert_eq!(all, ["first", "second", "third"]);
    assert_eq!(got[3]["endOfTask"], true);
}

#[tokio::test]
async fn failed_deliveries_are_retried() {
    let rx = Receiver::start(2).await;
    let h = harness(&rx, false).await;
    h.v2_text("ivrInst-async", "a4", "quick").await;
    let got = rx.wait_for(2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(rx.pending_failures(), 0);
    let metrics = h
        .http
        .get(format!("{}/metrics", h.sim.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hookbench_sim_async_retries_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookbench_sim_async_deliveries_total 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn duplicate_fault_posts_everything_twice() {
    let rx = Receiver::start(0).await;
    let h = harness(&rx, false).await;
    h.v2_text("ivrInst-asyncdup", "a5", "quick").await;
    let got = rx.wait_for(4).await;
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[0]["data"][0]["messageId"],
        got[1]["data"][0]["messageId"]
    );
}

#[tokio::test]
async fn async_without_post_url_is_counted_undeliverable() {
    let h = Harness::test_bot().await;
    let r = h
        .post(
            Version::V2,
            "ivrInst-async",
            "a6",
            json!({"message": {"type": "text", "val": "quick"}, "from": {"id": "a6"}}),
        )
        .await;
    assert_eq!(r.body["status"], "ok");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        h.sim
            .state
            .metrics
            .async_undeliverable
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

/// Proactive notifications: a job for three identities reaches POST_URL three times and its
/// status shows three successes; the documented body rules and the `auth` header hold.
#[tokio::test]
async fn a_notification_to_three_identities_is_delivered_three_times() {
    let rx = Receiver::start(0).await;
    let h = harness(&rx, true).await;
    let bot = h.sim.state.bot.id.clone();
    let url = format!("{}/api/public/bot/{bot}/notifyV2", h.sim.base_url());
    let token = h.token("notifier");
    let send = |body: serde_json::Value, header: &'static str| {
        h.http
            .post(&url)
            .header(header, token.clone())
            .json(&body)
            .send()
    };
    let body = json!({
        "channel": "ivr", "webhookInstanceName": "ivrInst-async", "userIdentityType": "resolve",
        "content": {"type": "text", "value": "Hello {name}!"},
        "identities": [
            {"email": "a@example.com", "parameters": {"name": "Ada"}},
            {"email": "b@example.com", "customMessage": "Your card is ready"},
            {"email": "c@example.com", "parameters": {"name": "Cy"}},
        ],
    });
    let r = send(body.clone(), "auth").await.unwrap();
    assert_eq!(r.status(), 200);
    let job: serde_json::Value = r.json().await.unwrap();
    assert_eq!(job["status"], "IN_PROGRESS");
    assert!(job["_id"].as_str().unwrap().starts_with("ds-"));
    let got = rx.wait_for(3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let mut texts: Vec<String> = got.iter().flat_map(texts).collect();
    texts.sort();
    assert_eq!(texts, ["Hello Ada!", "Hello Cy!", "Your card is ready"]);
    assert!(got.iter().all(|d| d["data"][0]["endOfMessage"] == true));
    let status_url = format!("{url}/status/{}", job["_id"].as_str().unwrap());
    let mut status = serde_json::Value::Null;
    for _ in 0..50 {
        status = h
            .http
            .get(&status_url)
            .header("auth", token.clone())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] != "IN_PROGRESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status["status"], "SUCCESS", "{status}");
    assert_eq!(status["count"], 3);
    let logs = status["statusLogs"].as_array().unwrap();
    assert!(logs
        .iter()
        .all(|l| l["status"] == "SUCCESS"
            && l["comments"] == "Notification has been sent successfully"));
    assert_eq!(logs[0]["channelId"], "a@example.com");

    // `message` is accepted for `content`; the JWT goes in `auth`, not `Authorization`.
    let mut alias = body.clone();
    let content = alias.as_object_mut().unwrap().remove("content").unwrap();
    alias["message"] = content;
    assert_eq!(send(alias, "auth").await.unwrap().status(), 200);
    assert_eq!(
        send(body.clone(), "authorization").await.unwrap().status(),
        401
    );
    // Refused with 400: an extra property, too many identities or parameters, a sync
    // instance, a long parameter.
    let refused = |mutate: &dyn Fn(&mut serde_json::Value)| {
        let mut b = body.clone();
        mutate(&mut b);
        b
    };
    let cases = [
        refused(&|b| b["extra"] = json!(1)),
        refused(&|b| b["identities"] = json!(vec![json!({"email": "x@y"}); 1001])),
        refused(&|b| b["identities"] = json!([])),
        refused(&|b| b["webhookInstanceName"] = json!("default")),
        refused(&|b| b["identities"][0]["parameters"]["name"] = json!("x".repeat(201))),
        refused(&|b| {
            let many: serde_json::Map<String, serde_json::Value> =
                (0..21).map(|i| (format!("p{i}"), json!("v"))).collect();
            b["identities"][0]["parameters"] = serde_json::Value::Object(many);
        }),
        refused(&|b| b["content"]["type"] = json!("video")),
    ];
    for case in cases {
        let r = send(case.clone(), "auth").await.unwrap();
        assert_eq!(r.status(), 400, "{case}");
        assert!(r.headers().contains_key("x-hookbench-invalid"));
    }
}
