//! V2 bodies: requests with typed messages, sync and poll responses, async acks and deliveries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{lenient_bool, Attachment, From, MetaTags, Session, TaskEnd, To};

/// A V2 request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// `session.new`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// The message: `{"type", "val", "attachments"?}`.
    pub message: Message,
    /// The user.
    pub from: From,
    /// The bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<To>,
    /// Language; the docs' table spells it `InteractiveLanguage`: both are accepted.
    #[serde(
        default,
        rename = "interactiveLanguage",
        alias = "InteractiveLanguage",
        skip_serializing_if = "Option::is_none"
    )]
    pub interactive_language: Option<String>,
    /// User, session and message tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_tags: Option<MetaTags>,
    /// Boolean or string in the wild.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_bool"
    )]
    pub merge_identity: Option<bool>,
    /// `"rtm"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_channel_for_response: Option<String>,
    /// Passed through to the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<Value>,
    /// Lenient: the Android SDK puts attachments at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
}

/// V2 `message` as it travels. [`Request::input`] gives its typed meaning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `text`, `template`, `event` or `formData`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Depends on `type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<Value>,
    /// Attachments (need a non-empty `val`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    /// Lenient: the older shape puts the form submission here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_data: Option<Value>,
}

/// The events a client can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    /// Opens a conversation and returns the welcome message.
    OnConnect,
    /// Closes the user's session.
    SessionClosure,
}

impl Event {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::OnConnect => "ON_CONNECT",
            Event::SessionClosure => "SESSION_CLOSURE",
        }
    }
}

/// A digital form submission: `{"formId", "data": [{"componentId", "input"}], "meta"}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormData {
    /// `frm-…`.
    pub form_id: String,
    /// One entry per field.
    #[serde(default)]
    pub data: Vec<FormInput>,
    /// Passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// One form field's value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormInput {
    /// `fct-…`.
    pub component_id: String,
    /// What the user entered (any JSON; usually a string).
    pub input: Value,
}

/// What the user sent, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<'a> {
    /// A text message, possibly with attachments.
    Text {
        /// The text.
        text: &'a str,
        /// Attachments from `message` or the top level.
        attachments: &'a [Attachment],
    },
    /// A template object (e.g. a button postback).
    Template(&'a Value),
    /// An event.
    Event(Event),
    /// A form submission.
    FormData(FormData),
}

/// Why a V2 message could not be understood (answered 400 `Invalid Request Payload`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// `type` is not one of the four.
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    /// `val` missing or of the wrong JSON type.
    #[error("message.val must be {0}")]
    BadVal(&'static str),
    /// An event other than ON_CONNECT or SESSION_CLOSURE.
    #[error("unknown event `{0}`")]
    BadEvent(String),
    /// Attachments with an empty text.
    #[error("message.val must not be empty when attachments are set")]
    EmptyValWithAttachments,
    /// A form submission that does not have the documented shape.
    #[error("invalid formData: {0}")]
    BadFormData(String),
}

impl Request {
    /// A text message from `user`.
    pub fn text(user: impl Into<String>, text: impl Into<String>) -> Self {
        Self::with_message(user, "text", Value::String(text.into()))
    }

    /// An event from `user`; ON_CONNECT also sets `session.new`.
    pub fn event(user: impl Into<String>, event: Event) -> Self {
        let mut r = Self::with_message(user, "event", Value::String(event.as_str().to_string()));
        if event == Event::OnConnect {
            r.session = Some(Session { new: Some(true) });
        }
        r
    }

    /// A message of any type.
    pub fn with_message(user: impl Into<String>, kind: &str, val: Value) -> Self {
        Self {
            message: Message {
                kind: kind.to_string(),
                val: Some(val),
                ..Default::default()
            },
            from: From {
                id: user.into(),
                user_info: None,
            },
            ..Default::default()
        }
    }

    /// True when `session.new` is set.
    pub fn is_new_session(&self) -> bool {
        self.session.as_ref().and_then(|s| s.new).unwrap_or(false)
    }

    /// The message's meaning, checked as the platform checks it.
    pub fn input(&self) -> Result<Input<'_>, PayloadError> {
        let m = &self.message;
        match m.kind.as_str() {
            "text" => {
                let text = match &m.val {
                    Some(Value::String(s)) => s.as_str(),
                    None | Some(Value::Null) => "",
                    Some(_) => return Err(PayloadError::BadVal("a string for type text")),
                };
                let attachments = m
                    .attachments
                    .as_deref()
                    .or(self.attachments.as_deref())
                    .unwrap_or(&[]);
                if !attachments.is_empty() && text.trim().is_empty() {
                    return Err(PayloadError::EmptyValWithAttachments);
                }
                if attachments.is_empty() && m.val.is_none() {
                    return Err(PayloadError::BadVal("a string for type text"));
                }
                Ok(Input::Text { text, attachments })
            }
            "template" => match &m.val {
                Some(v @ Value::Object(_)) => Ok(Input::Template(v)),
                _ => Err(PayloadError::BadVal("an object for type template")),
            },
            "event" => match &m.val {
                Some(Value::String(s)) => match s.as_str() {
                    "ON_CONNECT" => Ok(Input::Event(Event::OnConnect)),
                    "SESSION_CLOSURE" => Ok(Input::Event(Event::SessionClosure)),
                    other => Err(PayloadError::BadEvent(other.to_string())),
                },
                _ => Err(PayloadError::BadVal("an event name for type event")),
            },
            "formData" => {
                let raw = m
                    .val
                    .as_ref()
                    .filter(|v| !v.is_null())
                    .or(m.form_data.as_ref())
                    .ok_or(PayloadError::BadVal("an object for type formData"))?;
                let form: FormData = serde_json::from_value(raw.clone())
                    .map_err(|e| PayloadError::BadFormData(e.to_string()))?;
                Ok(Input::FormData(form))
            }
            other => Err(PayloadError::UnknownType(other.to_string())),
        }
    }
}

/// One bot message in `data`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataItem {
    /// `text` or `event`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A string, an object (templates, forms), or an escaped JSON string.
    #[serde(default)]
    pub val: Value,
    /// ISO-8601 UTC with milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_on: Option<String>,
    /// `ms-<uuid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Event items: `SESSION_CLOSURE_SUCCESS` or `SESSION_CLOSURE_IGNORED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Event items: a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Async deliveries: set on the last message of a turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_message: Option<bool>,
    /// Async deliveries: set on the messages of a turn sent mid-flow, before its last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_message: Option<bool>,
}

/// A V2 response body: sync answers, poll answers, async acks and async deliveries all share it.
///
/// - messages: `data` present, `status` absent (a `pollId` means more will follow);
/// - in progress: `status: "Inprogress"` with the same `pollId`;
/// - async ack: `status: "ok"` with `traceId`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `Inprogress` while polling, `ok` for an async ack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Bot messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<DataItem>>,
    /// Always `"v2"`.
    #[serde(rename = "_v", default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// Present when more messages are to be polled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_id: Option<String>,
    /// Async acks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// True when a task ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_of_task: Option<bool>,
    /// Why the task ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_reason: Option<String>,
    /// `dg-<uuid>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_task_id: Option<String>,
    /// The task's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_task_name: Option<String>,
}

/// The exact casing of the in-progress status.
pub const STATUS_IN_PROGRESS: &str = "Inprogress";

impl Response {
    /// A body with messages.
    pub fn messages(data: Vec<DataItem>) -> Self {
        Self {
            data: Some(data),
            v: Some(super::V2_TAG.to_string()),
            ..Default::default()
        }
    }

    /// `{"status":"Inprogress","pollId":…,"_v":"v2"}`.
    pub fn in_progress(poll_id: String) -> Self {
        Self {
            status: Some(STATUS_IN_PROGRESS.to_string()),
            poll_id: Some(poll_id),
            v: Some(super::V2_TAG.to_string()),
            ..Default::default()
        }
    }

    /// The async ack: `{"status":"ok","_v":"v2","traceId":…}`.
    pub fn async_ack(trace_id: String) -> Self {
        Self {
            status: Some("ok".to_string()),
            v: Some(super::V2_TAG.to_string()),
            trace_id: Some(trace_id),
            ..Default::default()
        }
    }

    /// True for `status: "Inprogress"`.
    pub fn is_in_progress(&self) -> bool {
        self.status.as_deref() == Some(STATUS_IN_PROGRESS)
    }

    /// True when this body completes the turn: messages present, no status, no further pollId.
    pub fn is_final(&self) -> bool {
        self.status.is_none() && self.poll_id.is_none()
    }

    /// The messages, or none.
    pub fn items(&self) -> &[DataItem] {
        self.data.as_deref().unwrap_or(&[])
    }
}

crate::protocol::common::task_fields!(Response);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_inputs() {
        let r = Request::text("u", "hi");
        assert!(matches!(r.input(), Ok(Input::Text { text: "hi", .. })));
        let r = Request::event("u", Event::OnConnect);
        assert!(r.is_new_session());
        assert_eq!(r.input(), Ok(Input::Event(Event::OnConnect)));
        let bad = Request::with_message("u", "event", json!("SOMETHING"));
        assert_eq!(bad.input(), Err(PayloadError::BadEvent("SOMETHING".into())));
        let bad = Request::with_message("u", "video", json!("x"));
        assert!(matches!(bad.input(), Err(PayloadError::UnknownType(_))));
    }

    #[test]
    fn attachments_need_text_and_may_be_top_level() {
        let mut r = Request::text("u", "");
        r.attachments = Some(vec![Attachment {
            file_id: Some("a".into()),
            ..Default::default()
        }]);
        assert_eq!(r.input(), Err(PayloadError::EmptyValWithAttachments));
        r.message.val = Some(json!("see file"));
        match r.input().unwrap() {
            Input::Text { attachments, .. } => assert_eq!(attachments.len(), 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn form_data_both_shapes() {
        let form = json!({"formId": "frm-1", "data": [{"componentId": "fct-1", "input": "Ada"}]});
        let new: Request = serde_json::from_value(json!({
            "message": {"type": "formData", "val": form.clone()}, "from": {"id": "u"}}))
        .unwrap();
        let old: Request = serde_json::from_value(json!({
            "message": {"type": "formData", "formData": form}, "from": {"id": "u"}}))
        .unwrap();
        assert_eq!(new.input(), old.input());
        assert!(matches!(new.input(), Ok(Input::FormData(f)) if f.data[0].input == "Ada"));
    }

    #[test]
    fn interactive_language_both_spellings() {
        for key in ["interactiveLanguage", "InteractiveLanguage"] {
            let r: Request = serde_json::from_value(json!({
                "message": {"type": "text", "val": "x"}, "from": {"id": "u"}, key: "de"}))
            .unwrap();
            assert_eq!(r.interactive_language.as_deref(), Some("de"));
        }
    }

    #[test]
    fn response_shapes() {
        let p = Response::in_progress("a".repeat(32));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"status": "Inprogress", "pollId": "a".repeat(32), "_v": "v2"})
        );
        assert!(p.is_in_progress());
        let ack = serde_json::to_value(Response::async_ack("RTM-TRACE-ABC".into())).unwrap();
        assert_eq!(
            ack,
            json!({"status": "ok", "_v": "v2", "traceId": "RTM-TRACE-ABC"})
        );
    }
}
