//! The bot's whole reply to one turn, assembled from every body: the sync answer plus each
//! polled batch, or every async delivery. Checks look at this.

use std::borrow::Cow;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::protocol::template;
use crate::protocol::v2::STATUS_IN_PROGRESS;
use crate::protocol::{TaskEnd, Version};

/// A turn's reply.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// HTTP status of the message request.
    pub status: Option<u16>,
    /// Every body with content as a tree, in arrival order (not `Inprogress` answers); kept
    /// only with [`Reply::trees`].
    pub bodies: Vec<Value>,
    /// One document for JSONPath: the last body with `data` (V2) or `text` (V1) holding every
    /// message of the turn and the task fields (with [`Reply::trees`]).
    pub merged: Value,
    /// Each bot message's value (with [`Reply::trees`]).
    pub messages: Vec<Value>,
    /// How many bot messages.
    pub message_count: usize,
    /// Bodies with content received.
    pub received: usize,
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
    /// Keep whole bodies, message values and the merged document: some check or capture of
    /// the step reads them (schema, JSONPath, templates). Without it bodies are read lean,
    /// which spares the load engine's hot path a tree per answer.
    pub trees: bool,
}

/// One answer or delivery, read as far as its step needs.
#[derive(Debug, Clone)]
pub enum Body {
    /// The whole document.
    Tree(Value),
    /// What the executor and the lean checks read.
    Lean(Lean),
}

/// What a body says, read without building its tree.
#[derive(Debug, Clone, Default)]
pub struct Lean {
    poll_id: Option<String>,
    in_progress: bool,
    task_end: Option<TaskEnd>,
    texts: Vec<String>,
    count: usize,
    form: Option<Value>,
}

/// The fields the lean reader looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    data: Option<Vec<DataItem<'a>>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    form: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "endOfTask")]
    end_of_task: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "endReason")]
    end_reason: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "completedTaskId")]
    task_id: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "completedTaskName")]
    task_name: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "pollId")]
    poll_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    status: Option<&'a RawValue>,
}

/// An element of V2 `data`, read in the same pass as the body: an object's `type` and `val`
/// (other keys skipped), or nothing for any other JSON value. A repeated `type` or `val` is an
/// error, as for a derived struct, so such a body goes to the whole reader.
enum DataItem<'a> {
    Message {
        kind: Option<&'a RawValue>,
        val: Option<&'a RawValue>,
    },
    NotAnObject,
}

impl<'de: 'a, 'a> Deserialize<'de> for DataItem<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DataItemVisitor)
    }
}

struct DataItemVisitor;

/// A key of a `data` element, matched without copying it (escaped keys are unescaped first).
enum ItemKey {
    Type,
    Val,
    Other,
}

impl<'de> Deserialize<'de> for ItemKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl serde::de::Visitor<'_> for KeyVisitor {
            type Value = ItemKey;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, v: &str) -> Result<ItemKey, E> {
                Ok(match v {
                    "type" => ItemKey::Type,
                    "val" => ItemKey::Val,
                    _ => ItemKey::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

impl<'de> serde::de::Visitor<'de> for DataItemVisitor {
    type Value = DataItem<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        use serde::de::{Error, IgnoredAny};
        let (mut kind, mut val) = (None, None);
        while let Some(key) = m.next_key::<ItemKey>()? {
            let (slot, name) = match key {
                ItemKey::Type => (&mut kind, "type"),
                ItemKey::Val => (&mut val, "val"),
                ItemKey::Other => {
                    m.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.is_some() {
                return Err(A::Error::duplicate_field(name));
            }
            *slot = Some(m.next_value::<&'de RawValue>()?);
        }
        Ok(DataItem::Message { kind, val })
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        while s.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(DataItem::NotAnObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(DataItem::NotAnObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(DataItem::NotAnObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(DataItem::NotAnObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(DataItem::NotAnObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(DataItem::NotAnObject)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(DataItem::NotAnObject)
    }
}

/// A JSON string's value (`None` for anything else), borrowed when it has no escapes.
fn string(raw: Option<&RawValue>) -> Option<Cow<'_, str>> {
    let raw = raw?.get();
    if !raw.starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(raw) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
    }
}

fn tree(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

fn owned(raw: Option<&RawValue>) -> String {
    string(raw).map(Cow::into_owned).unwrap_or_default()
}

impl Lean {
    fn read(bytes: &[u8], version: Version) -> Option<Lean> {
        // A struct also reads from an array; only objects are bodies.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        // The lean reader skips what it does not read without checking it as strictly as the
        // whole reader does (UTF-8 in skipped strings, surrogate escapes). Such bodies are left
        // to the whole reader, so both take and refuse the same bodies.
        let text = std::str::from_utf8(bytes).ok()?;
        if has_surrogate_escape(text) {
            return None;
        }
        let f: Fields<'_> = serde_json::from_str(text).ok()?;
        let mut l = Lean {
            poll_id: string(f.poll_id).map(Cow::into_owned),
            in_progress: string(f.status).as_deref() == Some(STATUS_IN_PROGRESS),
            task_end: (f.end_of_task.map(RawValue::get) == Some("true")).then(|| TaskEnd {
                reason: owned(f.end_reason),
                task_id: owned(f.task_id),
                task_name: owned(f.task_name),
            }),
            ..Default::default()
        };
        match version {
            Version::V2 => {
                for item in f.data.iter().flatten() {
                    l.count += 1;
                    let DataItem::Message {
                        kind,
                        val: Some(val),
                    } = item
                    else {
                        continue;
                    };
                    match kind.map(RawValue::get) {
                        Some(r#""form""#) => {
                            let v = tree(val);
                            l.form = v.get("formDef").cloned().or(Some(v));
                        }
                        Some(r#""event""#) => {}
                        _ => l.texts.extend(text_of_raw(val)),
                    }
                }
            }
            Version::V1 => {
                let text = f.text.map(tree).unwrap_or(Value::Null);
                for m in v1_messages(&text) {
                    l.count += 1;
                    l.texts.extend(template::text_of(m));
                }
                if let Some(form) = f.form.map(tree) {
                    l.form = form.get("formDef").cloned().or(Some(form));
                }
            }
        }
        Some(l)
    }
}

/// True when `text` may hold a `\uD800`–`\uDFFF` escape (a surrogate, paired or not).
fn has_surrogate_escape(text: &str) -> bool {
    // A char pattern is searched with memchr; the two-byte string pattern was a tenth of a
    // microsecond per reply.
    text.match_indices('\\').any(|(i, _)| {
        let rest = &text.as_bytes()[i + 1..];
        if rest.first() != Some(&b'u') {
            return false;
        }
        let rest = &rest[1..];
        rest.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'd'))
            && rest
                .get(1)
                .is_some_and(|c| matches!(c.to_ascii_lowercase(), b'8'..=b'9' | b'a'..=b'f'))
    })
}

/// A message value's text without a tree for plain strings.
fn text_of_raw(val: &RawValue) -> Option<String> {
    match string(Some(val)) {
        Some(s) if !s.trim_start().starts_with('{') => Some(s.into_owned()),
        Some(s) => template::text_of(&Value::String(s.into_owned())),
        None => template::text_of(&tree(val)),
    }
}

fn v1_messages(text: &Value) -> Vec<&Value> {
    match text {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// Why a body is not the JSON object the protocol says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// At most 120 characters of `s`, marked when cut.
pub fn short(s: &str) -> String {
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s.to_string()
    }
}

impl Body {
    /// Reads a 200 answer: whole when `trees`, else lean (a body the lean reader does not take
    /// is read whole). The error is why it is not a JSON object.
    pub fn parse(bytes: &[u8], version: Version, trees: bool) -> Result<Body, DecodeError> {
        if !trees {
            if let Some(l) = Lean::read(bytes, version) {
                return Ok(Body::Lean(l));
            }
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) if v.is_object() => Ok(Body::Tree(v)),
            Ok(other) => Err(DecodeError(format!(
                "expected a JSON object, got {}",
                short(&other.to_string())
            ))),
            Err(e) => Err(DecodeError(format!(
                "{e} in {}",
                short(&String::from_utf8_lossy(bytes))
            ))),
        }
    }

    /// The V2 `pollId`, when there is one.
    pub fn poll_id(&self) -> Option<String> {
        match self {
            Body::Tree(v) => v.get("pollId").and_then(Value::as_str).map(str::to_string),
            Body::Lean(l) => l.poll_id.clone(),
        }
    }

    /// A poll answer saying the bot is still working (`status: Inprogress`).
    pub fn in_progress(&self) -> bool {
        match self {
            Body::Tree(v) => v.get("status").and_then(Value::as_str) == Some(STATUS_IN_PROGRESS),
            Body::Lean(l) => l.in_progress,
        }
    }
}

fn task_from(body: &Value) -> Option<TaskEnd> {
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (body.get("endOfTask").and_then(Value::as_bool) == Some(true)).then(|| TaskEnd {
        reason: field("endReason"),
        task_id: field("completedTaskId"),
        task_name: field("completedTaskName"),
    })
}

impl Reply {
    /// Adds a body: its messages, texts, task fields and form.
    pub fn push(&mut self, body: Body, version: Version) {
        self.received += 1;
        let body = match body {
            Body::Lean(l) => {
                self.message_count += l.count;
                self.texts.extend(l.texts);
                if l.task_end.is_some() {
                    self.task_end = l.task_end;
                }
                if l.form.is_some() {
                    self.form = l.form;
                }
                return;
            }
            Body::Tree(v) => v,
        };
        if let Some(t) = task_from(&body) {
            self.task_end = Some(t);
        }
        let messages: Vec<&Value> = match version {
            Version::V2 => body
                .get("data")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .collect(),
            Version::V1 => body.get("text").map(v1_messages).unwrap_or_default(),
        };
        self.message_count += messages.len();
        for item in messages {
            let (kind, val) = match version {
                Version::V2 => (
                    item.get("type").and_then(Value::as_str),
                    item.get("val").unwrap_or(&Value::Null),
                ),
                Version::V1 => (None, item),
            };
            match kind {
                Some("form") if !val.is_null() => {
                    self.form = val.get("formDef").cloned().or(Some(val.clone()))
                }
                Some("form") => {}
                Some("event") => {}
                _ => self.texts.extend(template::text_of(val)),
            }
            if self.trees {
                self.messages.push(val.clone());
            }
        }
        if version == Version::V1 {
            if let Some(f) = body.get("form").filter(|f| !f.is_null()) {
                self.form = f.get("formDef").cloned().or(Some(f.clone()));
            }
        }
        if self.trees {
            self.bodies.push(body);
        }
    }

    /// Builds the merged document once every body is in (with [`Reply::trees`]).
    pub fn finish(&mut self, version: Version) {
        if !self.trees {
            return;
        }
        let mut merged: Map<String, Value> = self
            .bodies
            .last()
            .and_then(|b| b.as_object().cloned())
            .unwrap_or_default();
        if !self.bodies.is_empty() && !merged.contains_key("errors") {
            let (key, items): (&str, Vec<Value>) = match version {
                Version::V2 => (
                    "data",
                    self.bodies
                        .iter()
                        .filter_map(|b| b.get("data").and_then(Value::as_array))
                        .flatten()
                        .cloned()
                        .collect(),
                ),
                Version::V1 => ("text", self.messages.clone()),
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

    fn both(body: &Value, version: Version) -> [Body; 2] {
        let bytes = body.to_string();
        [true, false].map(|trees| Body::parse(bytes.as_bytes(), version, trees).unwrap())
    }

    fn reply(bodies: &[Value], version: Version, trees: bool) -> Reply {
        let mut r = Reply {
            trees,
            ..Default::default()
        };
        for b in bodies {
            r.push(
                Body::parse(b.to_string().as_bytes(), version, trees).unwrap(),
                version,
            );
        }
        r.finish(version);
        r
    }

    #[test]
    fn polled_batches_merge_into_one_document() {
        let bodies = [
            json!({"data": [{"type": "text", "val": "a"}], "_v": "v2", "pollId": "x"}),
            json!({"data": [{"type": "text", "val": {"type": "template", "payload": {"text": "b"}}}], "_v": "v2", "endOfTask": true, "endReason": "Fulfilled"}),
        ];
        let r = reply(&bodies, Version::V2, true);
        assert_eq!(r.texts, ["a", "b"]);
        assert_eq!(r.merged["data"].as_array().unwrap().len(), 2);
        assert!(r.merged.get("pollId").is_none());
        assert_eq!(r.task_end.unwrap().reason, "Fulfilled");
        assert_eq!(
            (r.message_count, r.messages.len(), r.bodies.len()),
            (2, 2, 2)
        );
    }

    #[test]
    fn lean_and_whole_reading_agree() {
        let cases = [
            (
                json!({"data": [
                    {"type": "text", "val": "plain \"quoted\" text", "messageId": "ms-1"},
                    {"type": "text", "val": "{\"type\":\"template\",\"payload\":{\"text\":\"in a string\"}}"},
                    {"type": "text", "val": {"type": "template", "payload": {"template_type": "button", "text": "Pick"}}},
                    {"type": "form", "val": {"formDef": {"id": "frm-1"}}},
                    {"type": "event", "val": "SESSION_CLOSURE"},
                    {"type": "text"}
                ], "endOfTask": true, "endReason": "Fulfilled", "completedTaskId": "dg-1", "completedTaskName": "Show Balance", "pollId": "p-1"}),
                Version::V2,
            ),
            (
                json!({"status": "Inprogress", "pollId": "p-2"}),
                Version::V2,
            ),
            (json!({"endOfTask": "yes", "data": []}), Version::V2),
            (
                json!({"text": ["x", "{&quot;type&quot;:&quot;template&quot;,&quot;payload&quot;:{&quot;text&quot;:&quot;y&quot;}}"], "form": {"formDef": {"id": "frm-2"}}, "endOfTask": true}),
                Version::V1,
            ),
            (json!({"text": "only one"}), Version::V1),
        ];
        for (body, version) in cases {
            let [whole, lean] = both(&body, version);
            assert!(matches!(whole, Body::Tree(_)));
            assert!(matches!(lean, Body::Lean(_)), "{body}");
            assert_eq!(whole.poll_id(), lean.poll_id(), "{body}");
            assert_eq!(whole.in_progress(), lean.in_progress(), "{body}");
            let (mut a, mut b) = (Reply::default(), Reply::default());
            a.push(whole, version);
            b.push(lean, version);
            assert_eq!(a.texts, b.texts, "{body}");
            assert_eq!(a.message_count, b.message_count, "{body}");
            assert_eq!(a.task_end, b.task_end, "{body}");
            assert_eq!(a.form, b.form, "{body}");
        }
    }

    #[test]
    fn lean_reading_keeps_no_trees() {
        let body = json!({"data": [{"type": "text", "val": "a"}], "_v": "v2", "endOfTask": true});
        let r = reply(&[body], Version::V2, false);
        assert_eq!(r.texts, ["a"]);
        assert_eq!((r.message_count, r.received), (1, 1));
        assert!(r.messages.is_empty() && r.bodies.is_empty());
        assert!(r.task_end.is_some());
        assert_eq!(r.merged, Value::Null);
    }

    #[test]
    fn odd_bodies_fall_back_to_the_tree_or_fail_clearly() {
        // A duplicate key defeats the lean reader; the whole reader takes the last value.
        let dup = br#"{"data": [], "data": [{"type": "text", "val": "z"}]}"#;
        let b = Body::parse(dup, Version::V2, false).unwrap();
        assert!(matches!(b, Body::Tree(_)));
        // So does one inside a message (its last value is the message's for the whole reader).
        let dup = br#"{"data": [{"type": "text", "val": "a", "val": "b"}, 7, [1], null]}"#;
        let b = Body::parse(dup, Version::V2, false).unwrap();
        assert!(matches!(b, Body::Tree(_)));
        let mut r = Reply::default();
        r.push(b, Version::V2);
        assert_eq!((r.texts, r.message_count), (vec!["b".to_string()], 4));
        // Other values in `data` count as messages without a text, both ways.
        let odd = br#"{"data": [{"typ\u0065": "text", "val": "a"}, 7, [1], null, "s"]}"#;
        let lean = Body::parse(odd, Version::V2, false).unwrap();
        assert!(matches!(lean, Body::Lean(_)));
        let mut r = Reply::default();
        r.push(lean, Version::V2);
        assert_eq!((r.texts, r.message_count), (vec!["a".to_string()], 5));
        let e = Body::parse(b"[1, 2]", Version::V2, false).unwrap_err();
        assert!(e.0.starts_with("expected a JSON object, got [1,2]"), "{e}");
        let e = Body::parse(b"<html>", Version::V2, false).unwrap_err();
        assert!(e.0.contains("in <html>"), "{e}");
    }

    #[test]
    fn v1_text_shapes_and_forms() {
        let body = json!({"text": ["x", "y"], "form": {"formDef": {"id": "frm-1"}}});
        let r = reply(&[body], Version::V1, true);
        assert_eq!(r.texts, ["x", "y"]);
        assert_eq!(r.form.unwrap()["id"], "frm-1");
        assert_eq!(r.merged["text"], json!(["x", "y"]));
    }

    /// Regression cases of the fuzz target: bodies the lean reader took and the whole reader
    /// refused (invalid UTF-8 in a string, a lone surrogate escape in a skipped field). Both
    /// readers now refuse them alike.
    #[test]
    fn damaged_strings_are_refused_by_both_readers() {
        let cases: [&[u8]; 5] = [
            b"{\"data\":[{\"type\":\"text\",\"val\":\"ok\"}],\"traceId\":\"\xff\"}",
            b"{\"data\":[{\"type\":\"text\",\"val\":\"\xc3\"}]}",
            b"{\"data\":[],\"x\":\"\xed\xa0\x80\"}",
            br#"{"data":[{"type":"text","val":"a"}],"text":{"\ud800":1}}"#,
            br#"{"data":[{"type":"text","val":"\udc00"}]}"#,
        ];
        for bytes in cases {
            for v in [Version::V1, Version::V2] {
                let whole = Body::parse(bytes, v, true);
                let lean = Body::parse(bytes, v, false);
                assert!(
                    whole.is_err() && lean.is_err(),
                    "{:?}",
                    String::from_utf8_lossy(bytes)
                );
            }
        }
        // A paired surrogate escape is valid JSON: read whole, same texts either way.
        let pair = br#"{"data":[{"type":"text","val":"\ud83d\ude00"}]}"#;
        let lean = reply_bytes(pair, false);
        assert_eq!(lean, reply_bytes(pair, true));
        assert_eq!(lean, ["\u{1F600}"]);
    }

    fn reply_bytes(bytes: &[u8], trees: bool) -> Vec<String> {
        let mut r = Reply::default();
        r.push(Body::parse(bytes, Version::V2, trees).unwrap(), Version::V2);
        r.texts
    }
}
