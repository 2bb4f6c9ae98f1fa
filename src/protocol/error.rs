//! The error envelope: `{"errors":[{"msg":…,"code":…}],"_v":"v2","_t":"RTM-TRACE-…"}`.

use serde::{Deserialize, Deserializer, Serialize};

use super::ids;

/// The documented error messages (PROTOCOL.md section 5), and the simulator's own for gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: missing or ill-typed field, bad event value, attachments with an empty `val`.
    InvalidPayload,
    /// 400: poll of a delivered or unknown pollId.
    NoDataFound,
    /// 401: no or bad token, wrong signature, unknown app, expired, identity mismatch, replay.
    InvalidToken,
    /// 404: unknown bot, unknown or disabled channel instance (a gap: simulator's choice).
    NotFound,
    /// 413: an upload over the file or chunk limit (a gap: simulator's choice).
    TooLarge,
    /// 429: rate limit.
    TooManyRequests,
    /// 504: a sync request passed its budget.
    TimedOut,
    /// Another status injected by the simulator's fault settings (500, 502, 503, …), with its
    /// standard reason phrase as the message.
    Internal(u16),
}

impl ErrorKind {
    /// HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidPayload | ErrorKind::NoDataFound => 400,
            ErrorKind::InvalidToken => 401,
            ErrorKind::NotFound => 404,
            ErrorKind::TooLarge => 413,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::TimedOut => 504,
            ErrorKind::Internal(code) => code,
        }
    }

    /// `errors[0].msg`, exactly as the platform spells it.
    pub fn message(self) -> &'static str {
        match self {
            ErrorKind::InvalidPayload => "Invalid Request Payload",
            ErrorKind::NoDataFound => "No data found",
            ErrorKind::InvalidToken => "Invalid Access token",
            ErrorKind::NotFound => "Not Found",
            ErrorKind::TooLarge => "File size exceeds the limit",
            ErrorKind::TooManyRequests => "Too Many requests",
            ErrorKind::TimedOut => "The request has been timed-out",
            ErrorKind::Internal(code) => http::StatusCode::from_u16(code)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error"),
        }
    }
}

/// One entry of `errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorItem {
    /// Human-readable message (`Invalid Access token`).
    pub msg: String,
    /// The HTTP-like code; some bodies carry it as a string.
    #[serde(deserialize_with = "code_lenient")]
    pub code: u16,
}

/// The error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// At least one error.
    pub errors: Vec<ErrorItem>,
    /// `"v2"` on V2 routes.
    #[serde(rename = "_v", default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// Trace id on V2 routes.
    #[serde(rename = "_t", default, skip_serializing_if = "Option::is_none")]
    pub t: Option<String>,
}

impl ErrorEnvelope {
    /// The V1 envelope: no `_v`/`_t` (a gap in the docs).
    pub fn v1(kind: ErrorKind) -> Self {
        Self {
            errors: vec![ErrorItem {
                msg: kind.message().to_string(),
                code: kind.status(),
            }],
            v: None,
            t: None,
        }
    }

    /// The V2 envelope, with a fresh trace id.
    pub fn v2(kind: ErrorKind) -> Self {
        Self {
            v: Some(super::V2_TAG.to_string()),
            t: Some(ids::trace_id()),
            ..Self::v1(kind)
        }
    }

    /// The first error's message, if any.
    pub fn first_msg(&self) -> Option<&str> {
        self.errors.first().map(|e| e.msg.as_str())
    }
}

fn code_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|v| u16::try_from(v).ok())
            .ok_or_else(|| serde::de::Error::custom("code out of range")),
        serde_json::Value::String(s) => s.trim().parse().map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!("bad code {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_envelope_shape() {
        let e = ErrorEnvelope::v2(ErrorKind::InvalidToken);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["errors"][0]["msg"], "Invalid Access token");
        assert_eq!(v["errors"][0]["code"], 401);
        assert_eq!(v["_v"], "v2");
        assert!(v["_t"].as_str().unwrap().starts_with("RTM-TRACE-"));
        let v1 = serde_json::to_value(ErrorEnvelope::v1(ErrorKind::NoDataFound)).unwrap();
        assert_eq!(
            v1,
            serde_json::json!({"errors":[{"msg":"No data found","code":400}]})
        );
    }

    #[test]
    fn injected_statuses_carry_their_own_reason() {
        assert_eq!(ErrorKind::Internal(503).message(), "Service Unavailable");
        assert_eq!(ErrorKind::Internal(500).message(), "Internal Server Error");
        assert_eq!(ErrorKind::Internal(502).message(), "Bad Gateway");
        assert_eq!(ErrorKind::Internal(599).message(), "Error");
    }

    #[test]
    fn string_codes_are_read() {
        let e: ErrorEnvelope =
            serde_json::from_str(r#"{"errors":[{"msg":"x","code":"429"}]}"#).unwrap();
        assert_eq!(e.errors[0].code, 429);
    }
}
