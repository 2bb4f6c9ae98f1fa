//! V1 and V2 sync checks: answer shapes, task fields, events, templates, forms, invalid
//! payloads.

use super::*;

// ---- V1 ----

pub(super) async fn v1_turn(
    c: &Ctx,
    ev: &mut Evidence,
    user: &str,
    body: Value,
) -> Result<Resp, Miss> {
    let url = Ctx::need(&c.target.v1, "V1 URL")?;
    c.prober.send(ev, Req::post(url, c.auth(user)?, body)).await
}

/// A V1 text message from `user`, the minimal body.
async fn v1_say(c: &Ctx, ev: &mut Evidence, user: &str, text: &str) -> Result<Resp, Miss> {
    v1_turn(
        c,
        ev,
        user,
        json!({"message": {"text": text}, "from": {"id": user}}),
    )
    .await
}

pub(super) async fn v1_text(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-01");
    let r = v1_say(c, ev, &user, "balance").await?;
    r.status_is(200)?;
    match r.at("/text") {
        Some(Value::String(_) | Value::Object(_)) => Ok(()),
        Some(Value::Array(items)) if items.iter().all(|i| i.is_string() || i.is_object()) => Ok(()),
        other => Err(r.miss(
            "/text",
            "a string, an object, or an array of them",
            other.map_or("absent".into(), |v| v.to_string()),
        )),
    }
}

/// The task fields of a task end.
pub(super) fn task_fields(r: &Resp, task: &str) -> Judged {
    match r.at("/endOfTask") {
        Some(Value::Bool(true)) => {}
        other => {
            return Err(r.miss(
                "/endOfTask",
                "true",
                other.map_or("absent".into(), |v| v.to_string()),
            ))
        }
    }
    r.str_matches("/endReason", "Fulfilled, Interrupted or Cancelled", |s| {
        matches!(s, "Fulfilled" | "Interrupted" | "Cancelled")
    })?;
    r.str_matches("/completedTaskId", "dg-<uuid>", |s| {
        is_prefixed_uuid(s, "dg-")
    })?;
    r.str_matches("/completedTaskName", &format!("{task:?} (any case)"), |s| {
        s.eq_ignore_ascii_case(task)
    })
}

pub(super) async fn v1_task(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-02");
    let r = v1_say(c, ev, &user, "balance").await?;
    r.status_is(200)?;
    task_fields(&r, "Show Balance")
}

pub(super) async fn v1_minimal(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-03");
    let r = v1_say(c, ev, &user, "hi").await?;
    r.status_is(200)?;
    if r.at("/text").is_none() {
        return Err(r.miss("/text", "present", "absent"));
    }
    Ok(())
}

pub(super) async fn v1_missing_text(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-04");
    let r = v1_turn(c, ev, &user, json!({"message": {}, "from": {"id": user}})).await?;
    r.envelope(400, "Invalid Request Payload", false)
}

pub(super) async fn v1_session_new(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V1-05");
    let first = v1_say(c, ev, &user, "transfer").await?;
    first.status_is(200)?;
    // A new session: `balance` is a new request, not the amount the transfer asked for.
    let r = v1_turn(
        c,
        ev,
        &user,
        json!({"session": {"new": true}, "message": {"text": "balance"}, "from": {"id": user}}),
    )
    .await?;
    r.status_is(200)?;
    task_fields(&r, "Show Balance")
}

// ---- V2 sync ----

pub(super) fn data_items(r: &Resp) -> Result<&Vec<Value>, Miss> {
    r.at("/data")
        .and_then(Value::as_array)
        .ok_or_else(|| r.miss("/data", "an array", r.status_text()))
}

pub(super) async fn v2_shape(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-01");
    let r = c.say(ev, c.v2_sync()?, &user, "balance").await?;
    r.status_is(200)?;
    r.str_is("/_v", "v2")?;
    r.str_is("/to", &user)?;
    r.str_is("/from", &c.target.endpoints.bot_id)?;
    let items = data_items(&r)?;
    if items.is_empty() {
        return Err(r.miss("/data", "at least one message", "[]"));
    }
    for i in 0..items.len() {
        r.str_matches(&format!("/data/{i}/type"), "a message type", |s| {
            !s.is_empty()
        })?;
        if r.at(&format!("/data/{i}/val")).is_none() {
            return Err(r.miss(&format!("/data/{i}/val"), "present", "absent"));
        }
        r.str_matches(
            &format!("/data/{i}/createdOn"),
            "ISO-8601 UTC with milliseconds",
            is_created_on,
        )?;
        r.str_matches(&format!("/data/{i}/messageId"), "ms-<uuid>", |s| {
            is_prefixed_uuid(s, "ms-")
        })?;
    }
    Ok(())
}

pub(super) async fn v2_task(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-02");
    let r = c.say(ev, c.v2_sync()?, &user, "balance").await?;
    r.status_is(200)?;
    task_fields(&r, "Show Balance")
}

pub(super) async fn v2_on_connect(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-03");
    let body = json!({"session": {"new": true}, "message": {"type": "event", "val": "ON_CONNECT"}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, c.v2_sync()?, &user, body).await?;
    r.status_is(200)?;
    if r.texts().is_empty() {
        return Err(r.miss("/data", "the welcome message(s)", r.status_text()));
    }
    Ok(())
}

pub(super) fn closure_body(c: &Ctx) -> Value {
    json!({"message": {"type": "event", "val": "SESSION_CLOSURE"}, "to": {"id": c.target.endpoints.bot_id}})
}

pub(super) async fn v2_closure(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-04");
    let url = c.v2_sync()?;
    c.say(ev, url, &user, "balance").await?.status_is(200)?;
    let r = c.send(ev, url, &user, closure_body(c)).await?;
    r.status_is(200)?;
    r.str_is("/data/0/type", "event")?;
    r.str_is("/data/0/val", "SESSION_CLOSURE")?;
    r.str_is("/data/0/eventType", "SESSION_CLOSURE_SUCCESS")
}

pub(super) async fn v2_closure_ignored(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-05");
    let r = c.send(ev, c.v2_sync()?, &user, closure_body(c)).await?;
    r.status_is(200)?;
    r.str_is("/data/0/type", "event")?;
    r.str_is("/data/0/eventType", "SESSION_CLOSURE_IGNORED")
}

pub(super) async fn v2_template(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-06");
    let r = c.say(ev, c.v2_sync()?, &user, "menu").await?;
    r.status_is(200)?;
    let items = data_items(&r)?;
    let is_template = |v: &Value| match v {
        Value::Object(o) => o.get("type").and_then(Value::as_str) == Some("template"),
        Value::String(s) => serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|j| {
                j.get("type")
                    .and_then(Value::as_str)
                    .map(|t| t == "template")
            })
            .unwrap_or(false),
        _ => false,
    };
    if items.iter().any(|i| i.get("val").is_some_and(is_template)) {
        return Ok(());
    }
    Err(r.miss(
        "/data/*/val",
        "a template object ({\"type\":\"template\",…}) or its JSON text",
        r.status_text(),
    ))
}

pub(super) async fn v2_form(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-07");
    let url = c.v2_sync()?;
    let r = c.say(ev, url, &user, "form").await?;
    r.status_is(200)?;
    let items = data_items(&r)?;
    let form = items
        .iter()
        .find_map(|i| {
            let v = i.get("val")?;
            let def = v
                .get("formDef")
                .or_else(|| v.get("payload").and_then(|p| p.get("formDef")))?;
            Some(def.clone())
        })
        .or_else(|| r.at("/form/formDef").cloned())
        .ok_or_else(|| r.miss("/data/*/val/formDef", "a form definition", r.status_text()))?;
    let form_id = form
        .get("id")
        .or_else(|| form.get("formId"))
        .and_then(Value::as_str)
        .ok_or_else(|| r.miss("formDef.id", "the form's id", form.to_string()))?
        .to_string();
    let field = form
        .pointer("/components/0/id")
        .or_else(|| form.pointer("/fields/0/id"))
        .and_then(Value::as_str)
        .unwrap_or("name")
        .to_string();
    let body = json!({"message": {"type": "formData", "val": {"formId": form_id, "data": [{"componentId": field, "input": "Ada"}], "meta": {}}}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, url, &user, body).await?;
    r.status_is(200)?;
    if r.texts().iter().any(|t| t.contains("Ada")) {
        return Ok(());
    }
    Err(r.miss(
        "/data/*/val",
        "the dialog continued with the submitted value (\"Ada\")",
        r.status_text(),
    ))
}

pub(super) async fn v2_invalid(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-08");
    let body = json!({"message": {"type": "event", "val": "NOT_AN_EVENT"}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, c.v2_sync()?, &user, body).await?;
    r.envelope(400, "Invalid Request Payload", true)
}

pub(super) async fn v2_attachments_need_text(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-09");
    let body = json!({"message": {"type": "text", "val": "", "attachments": [{"fileId": "0123456789abcdef01234567", "fileName": "a.png", "fileType": "image"}]}, "to": {"id": c.target.endpoints.bot_id}});
    let r = c.send(ev, c.v2_sync()?, &user, body).await?;
    r.envelope(400, "Invalid Request Payload", true)
}

pub(super) async fn v2_order(c: &Ctx, ev: &mut Evidence) -> Judged {
    let user = c.user("CH-V2-10");
    let r = c.say(ev, c.v2_sync()?, &user, "balance").await?;
    r.status_is(200)?;
    let stamps: Vec<&str> = data_items(&r)?
        .iter()
        .filter_map(|i| i.get("createdOn").and_then(Value::as_str))
        .collect();
    for (i, w) in stamps.windows(2).enumerate() {
        if w[1] < w[0] {
            return Err(r.miss(
                &format!("/data/{}/createdOn", i + 1),
                format!("not before {}", w[0]),
                w[1],
            ));
        }
    }
    Ok(())
}
