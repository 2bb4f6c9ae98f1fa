//! The bodies the simulator's bot sends: V2 `data` items and responses, V1 responses, with
//! templates encoded as the bot's settings say. Used by sync answers, polls and async
//! deliveries alike.

use serde_json::Value;

use super::bot::TemplateEncoding;
use super::conversation::{Out, Segment};
use super::state::SimState;
use crate::protocol::template::escape_html;
use crate::protocol::v2::DataItem;
use crate::protocol::{ids, v1, v2, TaskEnd};

fn encode_template(v: &Value, enc: TemplateEncoding) -> Value {
    match enc {
        TemplateEncoding::Object => v.clone(),
        TemplateEncoding::String => Value::String(v.to_string()),
        TemplateEncoding::Escaped => Value::String(escape_html(&v.to_string())),
    }
}

/// One V2 data item for a bot output.
pub fn v2_item(state: &SimState, out: &Out, created_on: &str) -> DataItem {
    let (kind, val, event_type, description) = match out {
        Out::Text(t) => ("text", Value::String(t.clone()), None, None),
        Out::Template(v) => (
            "text",
            encode_template(v, state.bot.settings.v2_templates),
            None,
            None,
        ),
        Out::Form(f) => ("form", f.to_json(), None, None),
        Out::Event {
            event_type,
            description,
        } => (
            "event",
            Value::String("SESSION_CLOSURE".into()),
            Some(event_type.to_string()),
            Some(description.to_string()),
        ),
    };
    let is_event = kind == "event";
    DataItem {
        kind: kind.to_string(),
        val,
        created_on: (!is_event).then(|| created_on.to_string()),
        message_id: (!is_event).then(ids::message_id),
        event_type,
        description,
        end_of_message: None,
        partial_message: None,
    }
}

fn last_task_end(segments: &[Segment]) -> Option<&TaskEnd> {
    segments.iter().rev().find_map(|s| s.task_end.as_ref())
}

/// A V2 body with the messages of `segments`.
pub fn v2_body(state: &SimState, segments: &[Segment], user: &str) -> v2::Response {
    v2_body_at(state, segments, user, &ids::created_on_now())
}

/// A V2 body whose messages carry `created_on`.
pub fn v2_body_at(
    state: &SimState,
    segments: &[Segment],
    user: &str,
    created_on: &str,
) -> v2::Response {
    let data = segments
        .iter()
        .flat_map(|s| s.messages.iter())
        .map(|m| v2_item(state, m, created_on))
        .collect();
    let mut body = v2::Response::messages(data);
    body.to = Some(user.to_string());
    body.from = Some(state.bot.id.clone());
    if let Some(end) = last_task_end(segments) {
        body.set_task_end(end);
    }
    body
}

/// A V1 body: `text` is a string for one message, an array for several; forms go in `form`.
pub fn v1_body(state: &SimState, segments: &[Segment], to: Option<&str>) -> v1::Response {
    let mut texts = Vec::new();
    let mut form = None;
    for m in segments.iter().flat_map(|s| s.messages.iter()) {
        match m {
            Out::Text(t) => texts.push(Value::String(t.clone())),
            Out::Template(v) => texts.push(encode_template(v, state.bot.settings.v1_templates)),
            Out::Form(f) => form = Some(f.to_json()),
            Out::Event { description, .. } => texts.push(Value::String(description.to_string())),
        }
    }
    let text = match texts.len() {
        0 => None,
        1 => texts.pop(),
        _ => Some(Value::Array(texts)),
    };
    let mut body = v1::Response {
        to: to.map(str::to_string),
        from: to.map(|_| state.bot.id.clone()),
        text,
        form,
        ..Default::default()
    };
    if let Some(end) = last_task_end(segments) {
        body.set_task_end(end);
    }
    body
}
