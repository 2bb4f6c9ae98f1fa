//! The Webhook channel wire protocol (V1 and V2), as both the harness and the simulator speak
//! it: typed requests and responses, the error envelope, JWT, endpoint URLs and id shapes.
//!
//! Decoding is lenient where real clients differ (each case is listed in PROTOCOL.md and noted
//! on the field); encoding is strict and always valid JSON.

pub mod common;
pub mod error;
pub mod ids;
pub mod jwt;
pub mod reply;
pub mod template;
pub mod urls;
pub mod v1;
pub mod v2;

pub use common::{Attachment, From, MetaTags, Session, Tag, TaskEnd, To, UserInfo};
pub use error::{ErrorEnvelope, ErrorItem, ErrorKind};
pub use urls::{Endpoints, Version, WebhookUrl};

/// The platform's sync request budget: a sync call that runs longer is answered 504.
pub const SYNC_BUDGET: std::time::Duration = std::time::Duration::from_secs(15);

/// The value of `_v` in every V2 body.
pub const V2_TAG: &str = "v2";
