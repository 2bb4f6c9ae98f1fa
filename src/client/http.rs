//! Timed HTTP exchanges with every transport failure classified.

use std::time::{Duration, Instant};

use bytes::Bytes;
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

/// One request and its answer, with times measured from the send.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
    /// When the request was handed to the connection.
    pub sent: Instant,
    /// Until the response head arrived.
    pub first_byte: Duration,
    /// Until the whole body arrived.
    pub total: Duration,
}

/// An HTTP client for the channel (keep-alive pool shared by all users).
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with a keep-alive pool.
    pub fn new() -> Self {
        let inner = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("hookbench/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { inner }
    }

    /// The underlying client, for multipart uploads.
    pub fn raw(&self) -> &reqwest::Client {
        &self.inner
    }

    /// POSTs JSON.
    pub async fn post_json(
        &self,
        url: &str,
        token: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Exchange, TransportError> {
        let req = self
            .inner
            .post(url)
            .header(http::header::AUTHORIZATION, format!("bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body);
        self.exchange(req).await
    }

    /// GETs a URL (polls).
    pub async fn get(
        &self,
        url: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<Exchange, TransportError> {
        let req = self
            .inner
            .get(url)
            .header(http::header::AUTHORIZATION, format!("bearer {token}"))
            .timeout(timeout);
        self.exchange(req).await
    }

    /// Sends any prepared request, timed.
    pub async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<Exchange, TransportError> {
        let sent = Instant::now();
        let resp = req.send().await.map_err(classify)?;
        let first_byte = sent.elapsed();
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(classify)?;
        Ok(Exchange {
            status,
            body,
            sent,
            first_byte,
            total: sent.elapsed(),
        })
    }
}

/// Sorts a reqwest error into a transport class.
pub fn classify(e: reqwest::Error) -> TransportError {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let lower = text.to_lowercase();
    let kind = if e.is_timeout() || lower.contains("timed out") {
        TransportKind::TimedOut
    } else if lower.contains("connection refused") {
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
        || e.is_request()
        || e.is_body()
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
