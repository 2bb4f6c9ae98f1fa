//! Fields shared by V1 and V2 bodies.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// `session`: `new: true` starts a new conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// Start a new conversation (drops any state the bot kept for the user).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_bool"
    )]
    pub new: Option<bool>,
}

/// `from`: the user. `id` is required; some clients send it as a number.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct From {
    /// The user's id: identifies the conversation together with bot and channel instance.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// Optional profile fields.
    #[serde(default, rename = "userInfo", skip_serializing_if = "Option::is_none")]
    pub user_info: Option<UserInfo>,
}

/// `from.userInfo`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// E-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `to`: the bot (V1 `{"id": "st-…"}`; V2 may add `groupInfo`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct To {
    /// The bot id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Group chat details, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_info: Option<Value>,
}

/// A message attachment: a URL, or a file uploaded through the attachments API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// A link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The id the upload API returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// `image`, `txt`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// One tag: `{"name": …, "value": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag name.
    pub name: String,
    /// Tag value (any JSON, usually a string).
    pub value: Value,
}

/// V2 `metaTags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaTags {
    /// Tags kept on the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_level_tags: Option<Vec<Tag>>,
    /// Tags kept for the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_level_tags: Option<Vec<Tag>>,
    /// Tags on this message only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_level_tags: Option<Vec<Tag>>,
}

/// The task fields a response carries when a dialog task ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEnd {
    /// `Fulfilled`, `Interrupted` or `Cancelled`.
    pub reason: String,
    /// `dg-<uuid>`.
    pub task_id: String,
    /// The dialog's name.
    pub task_name: String,
}

/// Accepts `true`, `false`, `"true"`, `"false"` (any case), as real clients send both
/// (`mergeIdentity`, `session.new`).
pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match Option::<B>::deserialize(d)? {
        None => Ok(None),
        Some(B::Bool(b)) => Ok(Some(b)),
        Some(B::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" | "" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom(format!(
                "expected a boolean or \"true\"/\"false\", got {s:?}"
            ))),
        },
    }
}

/// Accepts a string or a number and keeps it as a string.
pub fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, got {other}"
        ))),
    }
}

/// `set_task_end`/`task_end` for a response type with the four task fields (`endOfTask`,
/// `endReason`, `completedTaskId`, `completedTaskName`), which V1 and V2 bodies share.
macro_rules! task_fields {
    ($ty:ty) => {
        impl $ty {
            /// Sets the task fields.
            pub fn set_task_end(&mut self, end: &TaskEnd) {
                self.end_of_task = Some(true);
                self.end_reason = Some(end.reason.clone());
                self.completed_task_id = Some(end.task_id.clone());
                self.completed_task_name = Some(end.task_name.clone());
            }

            /// The task fields, when `endOfTask` is true.
            pub fn task_end(&self) -> Option<TaskEnd> {
                (self.end_of_task == Some(true)).then(|| TaskEnd {
                    reason: self.end_reason.clone().unwrap_or_default(),
                    task_id: self.completed_task_id.clone().unwrap_or_default(),
                    task_name: self.completed_task_name.clone().unwrap_or_default(),
                })
            }
        }
    };
}
pub(crate) use task_fields;
