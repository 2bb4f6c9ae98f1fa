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
