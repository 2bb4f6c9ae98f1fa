//! Timed HTTP exchanges with every transport failure classified.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::error::{chain, classify_hyper, classify_text};
pub use super::error::{classify, TransportError, TransportKind};
use super::pool::H1Pool;

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

impl Exchange {
    /// The exchange whose body has just been read in full.
    fn done(status: u16, body: Bytes, sent: Instant, first_byte: Duration) -> Self {
        Exchange {
            status,
            body,
            sent,
            first_byte,
            total: sent.elapsed(),
        }
    }
}

type Plain = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
>;

/// A URL parsed once for all the requests that go to it: for `http://` URLs, the parts hyper
/// sends (request target, `Host`) and the connection pool's key are ready.
#[derive(Debug, Clone)]
pub struct Url {
    text: String,
    plain: Option<Plain1>,
}

#[derive(Debug, Clone)]
struct Plain1 {
    /// Scheme, host and path (HTTP/2 `:authority` and `:path`).
    absolute: http::Uri,
    /// Path and query (the HTTP/1.1 request line).
    origin: http::Uri,
    /// The `Host` header.
    host: http::HeaderValue,
    /// `host:port` (port 80 when the URL names none).
    key: String,
}

impl Url {
    /// Parses `text`; `https://` URLs are left to reqwest, which parses them itself.
    pub fn parse(text: &str) -> Result<Url, TransportError> {
        let bad = |e: &dyn std::fmt::Display| TransportError {
            kind: TransportKind::Other,
            message: format!("bad URL {text}: {e}"),
        };
        let uri = text.parse::<http::Uri>().map_err(|e| bad(&e))?;
        let plain = match uri.scheme_str() {
            Some("http") => {
                let authority = uri.authority().ok_or_else(|| bad(&"no host"))?.clone();
                let origin = http::Uri::from_parts({
                    let mut p = http::uri::Parts::default();
                    p.path_and_query = uri.path_and_query().cloned();
                    p
                })
                .map_err(|e| bad(&e))?;
                let key = match authority.port_u16() {
                    Some(_) => authority.as_str().to_string(),
                    None => format!("{}:80", authority.host()),
                };
                let host = http::HeaderValue::from_str(authority.as_str()).map_err(|e| bad(&e))?;
                Some(Plain1 {
                    absolute: uri,
                    origin,
                    host,
                    key,
                })
            }
            Some("https") => None,
            _ => return Err(bad(&"not an http:// or https:// URL")),
        };
        Ok(Url {
            text: text.to_string(),
            plain,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn not_plain(&self) -> TransportError {
        TransportError {
            kind: TransportKind::Other,
            message: format!("{} is not a plain-text URL", self.text),
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A user's `Authorization: bearer …` header, built once per token and shared by its requests.
#[derive(Debug, Clone)]
pub struct Bearer(http::HeaderValue);

impl Bearer {
    /// The header for `token`.
    pub fn new(token: &str) -> Result<Self, TransportError> {
        Self::from_header(format!("bearer {token}"))
    }

    /// The header from its whole value (`bearer <token>`), taking the string as it is.
    pub fn from_header(value: String) -> Result<Self, TransportError> {
        let mut v = http::HeaderValue::try_from(value).map_err(|e| TransportError {
            kind: TransportKind::Other,
            message: format!("the token cannot go in a header: {e}"),
        })?;
        v.set_sensitive(true);
        Ok(Self(v))
    }

    /// The bare token, without its scheme (for headers such as the notification API's `auth`).
    pub fn token(&self) -> &str {
        let v = self.0.to_str().unwrap_or_default();
        v.split_once(' ').map_or(v, |(_, t)| t)
    }

    /// The header value.
    pub fn header(&self) -> http::HeaderValue {
        self.0.clone()
    }
}

/// Which HTTP version plain-text (`http://`) targets are spoken to with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 with keep-alive.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c): all users multiplexed over few connections.
    Http2,
}

/// An HTTP client for the channel (keep-alive pool shared by all users).
///
/// `http://` targets go straight to hyper: over HTTP/1.1 through [`H1Pool`], the load engine's
/// hot path, less than half the CPU per request of a full-featured client; over HTTP/2 through
/// hyper-util's multiplexing pool. `https://` targets and multipart uploads use reqwest with
/// rustls.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    h1: Arc<H1Pool>,
    h2: Option<Plain>,
    version: HttpVersion,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client with a keep-alive pool, HTTP/1.1 for plain-text targets.
    pub fn new() -> Self {
        Self::with_version(HttpVersion::Http1)
    }

    /// A client speaking `version` to plain-text targets.
    pub fn with_version(version: HttpVersion) -> Self {
        let inner = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .user_agent(concat!("hookbench/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            inner,
            h1: Arc::default(),
            h2: (version == HttpVersion::Http2).then(h2_pool),
            version,
        }
    }

    /// A client with its own plain-text connection pool and the same settings (one connection
    /// per user). HTTPS targets keep sharing one pool: a TLS client per user would cost a root
    /// store each.
    pub fn fresh(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            h1: Arc::new(H1Pool::with_limit(self.h1.limit())),
            h2: (self.version == HttpVersion::Http2).then(h2_pool),
            version: self.version,
        }
    }

    async fn plain(
        &self,
        method: http::Method,
        url: &Url,
        auth: &Bearer,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Exchange, TransportError> {
        use http_body_util::BodyExt;
        let Some(target) = &url.plain else {
            return Err(url.not_plain());
        };
        use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
        let has_body = body.is_some();
        // Built in place: the builder moves the whole request head through every call.
        let mut req = http::Request::new(http_body_util::Full::new(body.unwrap_or_default()));
        *req.method_mut() = method;
        let headers = req.headers_mut();
        headers.reserve(4);
        headers.insert(AUTHORIZATION, auth.header());
        headers.insert(
            USER_AGENT,
            http::HeaderValue::from_static(concat!("hookbench/", env!("CARGO_PKG_VERSION"))),
        );
        if has_body {
            headers.insert(
                CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
        }
        let sent = Instant::now();
        let exchange = async {
            let (resp, lent) = match &self.h2 {
                Some(h2) => {
                    *req.uri_mut() = target.absolute.clone();
                    (h2.request(req).await.map_err(classify_plain)?, None)
                }
                None => {
                    // HTTP/1.1 wants the path alone on the request line and the host in `Host`.
                    *req.uri_mut() = target.origin.clone();
                    req.headers_mut().insert(HOST, target.host.clone());
                    let (resp, lent) = self.h1.send(&target.key, req).await?;
                    (resp, Some(lent))
                }
            };
            let first_byte = sent.elapsed();
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| classify_hyper(&e, false))?
                .to_bytes();
            if let Some(lent) = lent {
                self.h1.put(&target.key, lent);
            }
            Ok(Exchange::done(status, body, sent, first_byte))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(TransportError {
                kind: TransportKind::TimedOut,
                message: format!("no answer within {timeout:?}"),
            }),
        }
    }

    /// The same client with its HTTP/1.1 pool capped at `max` open connections (the default
    /// follows the file-descriptor limit: [`super::pool::default_limit`]).
    pub fn with_connection_limit(mut self, max: usize) -> Self {
        self.h1 = Arc::new(H1Pool::with_limit(max));
        self
    }

    /// The HTTP/1.1 pool's cap on open connections.
    pub fn connection_limit(&self) -> usize {
        self.h1.limit()
    }

    /// Requests that waited for a connection because the pool was at its cap.
    pub fn connection_waits(&self) -> u64 {
        self.h1.waits()
    }

    /// The underlying client, for multipart uploads.
    pub fn raw(&self) -> &reqwest::Client {
        &self.inner
    }

    /// POSTs JSON.
    pub async fn post_json(
        &self,
        url: &Url,
        auth: &Bearer,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Exchange, TransportError> {
        if url.plain.is_some() {
            return self
                .plain(http::Method::POST, url, auth, Some(body), timeout)
                .await;
        }
        let req = self
            .inner
            .post(url.as_str())
            .header(http::header::AUTHORIZATION, auth.header())
            .header(http::header::CONTENT_TYPE, "application/json")
            .timeout(timeout)
            .body(body);
        self.exchange(req).await
    }

    /// GETs a URL (polls).
    pub async fn get(
        &self,
        url: &Url,
        auth: &Bearer,
        timeout: Duration,
    ) -> Result<Exchange, TransportError> {
        if url.plain.is_some() {
            return self
                .plain(http::Method::GET, url, auth, None, timeout)
                .await;
        }
        let req = self
            .inner
            .get(url.as_str())
            .header(http::header::AUTHORIZATION, auth.header())
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
        Ok(Exchange::done(status, body, sent, first_byte))
    }
}

fn h2_pool() -> Plain {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .http2_only(true)
        .build(connector)
}

fn classify_plain(e: hyper_util::client::legacy::Error) -> TransportError {
    classify_text(&chain(&e), e.is_connect())
}
