//! V1 bodies: `POST /chatbot/hooks/{botId}` requests, sync responses and async deliveries.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{lenient_bool, Attachment, From, Session, Tag, TaskEnd, To};

/// A V1 request. Required: `message.text` and `from.id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// `session.new`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Session>,
    /// The user's message.
    pub message: Message,
    /// The user.
    pub from: From,
    /// The bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<To>,
    /// Lenient: some clients put attachments at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    /// User-level tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_level_tags: Option<Vec<Tag>>,
    /// Session-level tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_level_tags: Option<Vec<Tag>>,
    /// Message-level tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_level_tags: Option<Vec<Tag>>,
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
    /// Lenient: a digital form submission, at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_data: Option<Value>,
}

/// V1 `message`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The user's text (required).
    pub text: String,
    /// Attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    /// Lenient: a digital form submission inside the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form_data: Option<Value>,
}

impl Request {
    /// The smallest valid request: `{"message":{"text":…},"from":{"id":…}}`.
    pub fn text(user: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            message: Message {
                text: text.into(),
                ..Default::default()
            },
            from: From {
                id: user.into(),
                user_info: None,
            },
            ..Default::default()
        }
    }

    /// Attachments from `message` or, failing that, from the top level.
    pub fn all_attachments(&self) -> &[Attachment] {
        self.message
            .attachments
            .as_deref()
            .or(self.attachments.as_deref())
            .unwrap_or(&[])
    }

    /// A form submission from `message.formData` or the top level.
    pub fn form_submission(&self) -> Option<&Value> {
        self.message.form_data.as_ref().or(self.form_data.as_ref())
    }

    /// True when `session.new` is set.
    pub fn is_new_session(&self) -> bool {
        self.session.as_ref().and_then(|s| s.new).unwrap_or(false)
    }
}

/// A V1 sync response, and the body of a V1 async delivery (which adds `to`/`from`).
///
/// `text` is a string, an object, or an array of strings or objects, one per bot message;
/// [`Response::messages`] gives the list whatever the shape.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The user (async deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The bot (async deliveries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Bot messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    /// A digital form: `{"formDef": {...}, "formInitialization": {...}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub form: Option<Value>,
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

impl Response {
    /// The bot messages, one per entry, whatever shape `text` had.
    pub fn messages(&self) -> Vec<&Value> {
        match &self.text {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().collect(),
            Some(other) => vec![other],
        }
    }
}

crate::protocol::common::task_fields!(Response);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minimal_third_party_body() {
        let r: Request =
            serde_json::from_str(r#"{"message":{"text":"hi"},"from":{"id":"u1"}}"#).unwrap();
        assert_eq!(r.message.text, "hi");
        assert_eq!(r.from.id, "u1");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"message":{"text":"hi"},"from":{"id":"u1"}})
        );
    }

    #[test]
    fn lenient_fields() {
        let r: Request = serde_json::from_value(json!({
            "session": {"new": "true"}, "message": {"text": "x"}, "from": {"id": 42},
            "attachments": [{"url": "https://example.com/a.png"}], "mergeIdentity": "false"
        }))
        .unwrap();
        assert!(r.is_new_session());
        assert_eq!(r.from.id, "42");
        assert_eq!(r.all_attachments().len(), 1);
        assert_eq!(r.merge_identity, Some(false));
    }

    #[test]
    fn missing_text_is_an_error() {
        assert!(
            serde_json::from_value::<Request>(json!({"message": {}, "from": {"id": "u"}})).is_err()
        );
        assert!(serde_json::from_value::<Request>(
            json!({"message": {"text": 3}, "from": {"id": "u"}})
        )
        .is_err());
    }

    #[test]
    fn text_shapes() {
        for (text, n) in [
            (json!("a"), 1),
            (json!(["a", {"type": "template"}]), 2),
            (json!({"k": 1}), 1),
        ] {
            let r: Response = serde_json::from_value(json!({ "text": text })).unwrap();
            assert_eq!(r.messages().len(), n);
        }
    }
}
