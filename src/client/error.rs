//! Transport failures, classified (refused, reset, timed out, TLS, DNS) from whatever the
//! HTTP stack reports: what both the connection pool and the exchanges build on.

use serde::Serialize;

/// What kind of transport failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// Nothing listens there.
    Refused,
    /// The connection was reset or closed mid-exchange.
    Reset,
    /// No answer in time.
    TimedOut,
    /// TLS handshake or certificate failure.
    Tls,
    /// Name resolution failed.
    Dns,
    /// Anything else.
    Other,
}

/// A transport failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct TransportError {
    /// The class.
    pub kind: TransportKind,
    /// The underlying error, in one line.
    pub message: String,
}

/// An error and its sources, in one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Sorts a reqwest error into a transport class.
pub fn classify(e: reqwest::Error) -> TransportError {
    let mut t = classify_text(&chain(&e), e.is_connect());
    if e.is_timeout() {
        t.kind = TransportKind::TimedOut;
    }
    t
}

/// Sorts an error text into a transport class.
pub(crate) fn classify_text(text: &str, connect: bool) -> TransportError {
    let text = text.to_string();
    let lower = text.to_lowercase();
    let kind = if lower.contains("timed out") {
        TransportKind::TimedOut
    } else if lower.contains("connection refused") || (connect && lower.contains("refused")) {
        TransportKind::Refused
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        TransportKind::Tls
    } else if lower.contains("dns") || lower.contains("resolve") {
        TransportKind::Dns
    } else if lower.contains("reset")
        || lower.contains("closed")
        || lower.contains("incomplete")
        || lower.contains("broken pipe")
        || lower.contains("error sending request")
        || lower.contains("eof")
        || lower.contains("end of file")
    {
        TransportKind::Reset
    } else {
        TransportKind::Other
    };
    TransportError {
        kind,
        message: text,
    }
}

/// Classifies a hyper error (with its sources).
pub fn classify_hyper(e: &hyper::Error, connect: bool) -> TransportError {
    let mut t = classify_text(&chain(e), connect);
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        t.kind = TransportKind::Reset;
    } else if e.is_timeout() {
        t.kind = TransportKind::TimedOut;
    }
    t
}
