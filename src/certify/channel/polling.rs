//! V2 polling (pollIds, Inprogress, single delivery, chains, ownership), polling off (one
//! answer, the 15-second budget) and async (the acknowledgement, deliveries to POST_URL).

use super::*;

// ---- V2 polling ----

pub(super) fn poll_id(r: &Resp) -> Result<String, Miss> {
    r.str_matches("/pollId", "32 lowercase hex digits", |s| is_hex(s, 32))?;
    Ok(r.str_at("/pollId").unwrap_or_default().to_string())
}

pub(super) async fn poll_issued(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-01");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let r = c.slow_turn(ev, url, &user).await?;
    poll_id(&r)?;
    data_items(&r)?;
    r.str_is("/_v", "v2")
}

pub(super) async fn poll_in_progress(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-02");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let id = poll_id(&c.slow_turn(ev, url, &user).await?)?;
    let r = c.poll(ev, &user, &id).await?;
    r.status_is(200)?;
    r.str_is("/status", "Inprogress")?;
    r.str_is("/pollId", &id)?;
    r.str_is("/_v", "v2")
}

pub(super) async fn poll_final(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-03");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let id = poll_id(&c.slow_turn(ev, url, &user).await?)?;
    let r = c.poll_done(ev, &user, &id).await?;
    r.status_is(200)?;
    r.absent("/status")?;
    if r.texts().is_empty() {
        return Err(r.miss("/data", "the rest of the messages", r.status_text()));
    }
    task_fields(&r, "Transfer Funds")
}

pub(super) async fn poll_once(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-04");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let id = poll_id(&c.slow_turn(ev, url, &user).await?)?;
    c.poll_done(ev, &user, &id).await?.status_is(200)?;
    let again = c.poll(ev, &user, &id).await?;
    again.envelope(400, "No data found", false)
}

pub(super) async fn poll_unknown(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-05");
    Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let r = c
        .poll(ev, &user, "0123456789abcdef0123456789abcdef")
        .await?;
    r.envelope(400, "No data found", false)
}

pub(super) async fn poll_chained(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-06");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let r = c.say(ev, url, &user, "statement").await?;
    r.status_is(200)?;
    let first = poll_id(&r)?;
    let mid = c.poll_done(ev, &user, &first).await?;
    mid.status_is(200)?;
    if mid.texts().is_empty() {
        return Err(mid.miss(
            "/data",
            "the messages between the two service nodes",
            mid.status_text(),
        ));
    }
    let second = poll_id(&mid)?;
    if second == first {
        return Err(mid.miss(
            "/pollId",
            "a new pollId for the second service node",
            second,
        ));
    }
    let last = c.poll_done(ev, &user, &second).await?;
    last.status_is(200)?;
    last.absent("/pollId")?;
    task_fields(&last, "Monthly Statement")
}

pub(super) async fn poll_owner(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-POLL-07");
    let url = Ctx::need(&c.target.v2_poll, "V2 URL with polling on")?;
    let id = poll_id(&c.slow_turn(ev, url, &user).await?)?;
    let other = format!("{user}-other");
    let r = c.poll_done(ev, &other, &id).await?;
    if r.status != 200 && r.texts().is_empty() {
        return Ok(());
    }
    Err(r.miss(
        "status",
        "an error without the messages (the pollId is another user's)",
        r.status_text(),
    ))
}

// ---- V2 polling off ----

pub(super) async fn nopoll_whole(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-NOPOLL-01");
    let url = Ctx::need(&c.target.v2_nopoll, "V2 URL with polling off")?;
    let r = c.slow_turn(ev, url, &user).await?;
    r.absent("/pollId")?;
    task_fields(&r, "Transfer Funds")
}

pub(super) async fn nopoll_budget(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-NOPOLL-02");
    let url = Ctx::need(&c.target.v2_nopoll, "V2 URL with polling off")?;
    let r = c.say(ev, url, &user, "slow").await?;
    r.envelope(504, "The request has been timed-out", true)?;
    let s = r.elapsed.as_secs_f64();
    if !(14.0..=20.0).contains(&s) {
        return Err(r.miss("elapsed", "about 15 s (14-20 s)", format!("{s:.1} s")));
    }
    Ok(())
}

// ---- V2 async ----

pub(super) struct AsyncTurn {
    ack: Resp,
    deliveries: Vec<Value>,
}

pub(super) async fn async_turn(c: &Ctx, ev: &mut Evidence, check: &str) -> Result<AsyncTurn, Miss> {
    let url = Ctx::need(&c.target.v2_async, "V2 async URL")?;
    let receiver = c
        .receiver
        .as_ref()
        .ok_or_else(|| Miss::Skipped("no POST_URL receiver".into()))?;
    let user = c.user(check);
    let mut sub = receiver.subscribe(&user);
    let ack = c.say(ev, url, &user, "balance").await?;
    ack.status_is(200)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut deliveries = Vec::new();
    while let Some(d) = sub.next_until(deadline).await {
        let end = d.body.get("endOfTask").and_then(Value::as_bool) == Some(true);
        deliveries.push(d.body);
        if end {
            break;
        }
    }
    Ok(AsyncTurn { ack, deliveries })
}

pub(super) async fn async_ack(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-01").await?;
    t.ack.str_is("/status", "ok")?;
    t.ack.str_is("/_v", "v2")?;
    t.ack.str_matches(
        "/traceId",
        "RTM-TRACE-<9 upper-case letters or digits>",
        crate::certify::probe::is_trace,
    )
}

pub(super) async fn async_ack_fast(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-02").await?;
    let ms = t.ack.elapsed.as_secs_f64() * 1e3;
    if ms > 1000.0 {
        return Err(t
            .ack
            .miss("elapsed", "at most 1000 ms", format!("{ms:.0} ms")));
    }
    Ok(())
}

/// A mismatch about the deliveries (evidence lists them after the exchanges).
pub(super) fn delivery_miss(field: String, expected: &str, actual: String) -> Miss {
    Miss::Failed(crate::certify::probe::Mismatch {
        exchange: None,
        field,
        expected: expected.into(),
        actual,
    })
}

pub(super) fn record_deliveries(ev: &mut Evidence, deliveries: &[Value]) {
    for d in deliveries {
        ev.exchanges.push(crate::certify::probe::Exchange {
            method: "POST (received at POST_URL)".into(),
            url: String::new(),
            request_headers: Vec::new(),
            request_body: Some(d.to_string()),
            status: None,
            response_headers: Vec::new(),
            response_body: None,
            elapsed_ms: 0.0,
            error: None,
        });
    }
}

pub(super) async fn async_deliveries(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-03").await?;
    record_deliveries(ev, &t.deliveries);
    let messages: Vec<&Value> = t
        .deliveries
        .iter()
        .filter(|d| {
            d.get("data")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
        .collect();
    if messages.len() < 2 {
        return Err(delivery_miss(
            "deliveries".into(),
            "the turn's two messages, one POST each, within 10 s",
            format!("{} message POST(s)", messages.len()),
        ));
    }
    let mut last = String::new();
    for (i, d) in messages.iter().enumerate() {
        let items = d["data"].as_array().map_or(0, Vec::len);
        if items != 1 || d.get("_v").and_then(Value::as_str) != Some("v2") {
            return Err(delivery_miss(
                format!("delivery {i}"),
                "one data item and _v v2",
                d.to_string(),
            ));
        }
        let at = d
            .pointer("/data/0/createdOn")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if at < last.as_str() {
            return Err(delivery_miss(
                format!("delivery {i} /data/0/createdOn"),
                "not before the previous delivery's",
                at.to_string(),
            ));
        }
        last = at.to_string();
    }
    Ok(())
}

pub(super) async fn async_task(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-04").await?;
    record_deliveries(ev, &t.deliveries);
    let Some(pos) = t
        .deliveries
        .iter()
        .position(|d| d.get("endOfTask").and_then(Value::as_bool) == Some(true))
    else {
        return Err(delivery_miss(
            "endOfTask".into(),
            "a POST with the task fields within 10 s",
            format!("{} POST(s), none with endOfTask", t.deliveries.len()),
        ));
    };
    let d = &t.deliveries[pos];
    if d.get("data")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(delivery_miss(
            format!("delivery {pos}"),
            "the task fields on their own, without messages",
            d.to_string(),
        ));
    }
    if pos + 1 != t.deliveries.len() || pos == 0 {
        return Err(delivery_miss(
            format!("delivery {pos}"),
            "after the turn's messages",
            format!("at position {pos} of {}", t.deliveries.len()),
        ));
    }
    Ok(())
}

pub(super) async fn async_end_of_message(c: &Ctx, ev: &mut Evidence) -> Judged {
    let t = async_turn(c, ev, "CH-V2-ASYNC-05").await?;
    record_deliveries(ev, &t.deliveries);
    let last = t
        .deliveries
        .iter()
        .rfind(|d| {
            d.get("data")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        })
        .ok_or_else(|| delivery_miss("deliveries".into(), "at least one message", "none".into()))?;
    if last
        .pointer("/data/0/endOfMessage")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Ok(());
    }
    Err(delivery_miss(
        "last message /data/0/endOfMessage".into(),
        "true",
        last.to_string(),
    ))
}
