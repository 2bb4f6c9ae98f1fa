//! The bot's whole reply to one turn, assembled from every body: the sync answer plus each
//! polled batch, or every async delivery. Checks look at this.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::protocol::template;
use crate::protocol::{TaskEnd, Version};

/// A turn's reply.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// HTTP status of the message request.
    pub status: Option<u16>,
    /// Every body with content, in arrival order (not `Inprogress` answers).
    pub bodies: Vec<Value>,
    /// One document for JSONPath: the last body with `data` (V2) or `text` (V1) holding every
    /// message of the turn and the task fields.
    pub merged: Value,
    /// Each bot message's value.
    pub messages: Vec<Value>,
    /// Each bot message's text (templates: their `payload.text`).
    pub texts: Vec<String>,
    /// Task fields, when a task ended.
    pub task_end: Option<TaskEnd>,
    /// The last form the bot sent (`formDef`).
    pub form: Option<Value>,
    /// Request sent to final message.
    pub latency: Duration,
    /// Polls made.
    pub polls: u32,
    /// `Inprogress` answers.
    pub in_progress: u32,
    /// The poll loop reached a final body (true for turns without polling).
    pub converged: bool,
    /// Leave `merged` empty: no JSONPath check or capture will read it (saves a copy of every
    /// message on the load engine's hot path).
    pub skip_merged: bool,
}

fn task_from(body: &Value) -> Option<TaskEnd> {
    (body.get("endOfTask").and_then(Value::as_bool) == Some(true)).then(|| TaskEnd {
        reason: body
            .get("endReason")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        task_id: body
            .get("completedTaskId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        task_name: body
            .get("completedTaskName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

impl Reply {
    /// Collects messages, texts, task fields and forms from `bodies`.
    pub fn assemble(&mut self, version: Version) {
        let mut items = Vec::new();
        for body in &self.bodies {
            if let Some(t) = task_from(body) {
                self.task_end = Some(t);
            }
            match version {
                Version::V2 => {
                    for item in body
                        .get("data")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if !self.skip_merged {
                            items.push(item.clone());
                        }
                        let val = item.get("val").cloned().unwrap_or(Value::Null);
                        match item.get("type").and_then(Value::as_str) {
                            Some("form") => {
                                self.form = val.get("formDef").cloned().or(Some(val.clone()))
                            }
                            Some("event") => {}
                            _ => {
                                if let Some(t) = template::text_of(&val) {
                                    self.texts.push(t);
                                }
                            }
                        }
                        self.messages.push(val);
                    }
                }
                Version::V1 => {
                    let parsed: crate::protocol::v1::Response =
                        serde_json::from_value(body.clone()).unwrap_or_default();
                    for m in parsed.messages() {
                        if !self.skip_merged {
                            items.push(m.clone());
                        }
                        if let Some(t) = template::text_of(m) {
                            self.texts.push(t);
                        }
                        self.messages.push(m.clone());
                    }
                    if let Some(f) = body.get("form") {
                        self.form = f.get("formDef").cloned().or(Some(f.clone()));
                    }
                }
            }
        }
        if self.skip_merged {
            return;
        }
        let mut merged: Map<String, Value> = self
            .bodies
            .last()
            .and_then(|b| b.as_object().cloned())
            .unwrap_or_default();
        if !self.bodies.is_empty() && !merged.contains_key("errors") {
            let key = if version == Version::V2 {
                "data"
            } else {
                "text"
            };
            merged.insert(key.into(), Value::Array(items));
            merged.remove("pollId");
            if let Some(t) = &self.task_end {
                merged.insert("endOfTask".into(), Value::Bool(true));
                merged.insert("endReason".into(), Value::String(t.reason.clone()));
                merged.insert("completedTaskId".into(), Value::String(t.task_id.clone()));
                merged.insert(
                    "completedTaskName".into(),
                    Value::String(t.task_name.clone()),
                );
            }
        }
        self.merged = Value::Object(merged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn polled_batches_merge_into_one_document() {
        let mut r = Reply {
            bodies: vec![
                json!({"data": [{"type": "text", "val": "a"}], "_v": "v2", "pollId": "x"}),
                json!({"data": [{"type": "text", "val": {"type": "template", "payload": {"text": "b"}}}], "_v": "v2", "endOfTask": true, "endReason": "Fulfilled"}),
            ],
            ..Default::default()
        };
        r.assemble(Version::V2);
        assert_eq!(r.texts, ["a", "b"]);
        assert_eq!(r.merged["data"].as_array().unwrap().len(), 2);
        assert!(r.merged.get("pollId").is_none());
        assert_eq!(r.task_end.unwrap().reason, "Fulfilled");
    }

    #[test]
    fn skipping_the_merged_document_keeps_everything_else() {
        let mut r = Reply {
            bodies: vec![
                json!({"data": [{"type": "text", "val": "a"}], "_v": "v2", "endOfTask": true}),
            ],
            skip_merged: true,
            ..Default::default()
        };
        r.assemble(Version::V2);
        assert_eq!(r.texts, ["a"]);
        assert_eq!(r.messages.len(), 1);
        assert!(r.task_end.is_some());
        assert_eq!(r.merged, Value::Null);
    }

    #[test]
    fn v1_text_shapes_and_forms() {
        let mut r = Reply {
            bodies: vec![json!({"text": ["x", "y"], "form": {"formDef": {"id": "frm-1"}}})],
            ..Default::default()
        };
        r.assemble(Version::V1);
        assert_eq!(r.texts, ["x", "y"]);
        assert_eq!(r.form.unwrap()["id"], "frm-1");
    }
}
