//! Helpers for the simulator's integration tests: a simulator on port 0, signed tokens, a
//! POST_URL receiver, and small HTTP helpers.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use hookbench::protocol::jwt::{Alg, AppClaim, Claims, ClaimsTemplate, Signer};
use hookbench::protocol::Version;
use hookbench::sim::{Bot, RunningSim, SimConfig};
use serde_json::{json, Map, Value};

pub const TEST_BOT: &str = include_str!("test.bot.yaml");

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

pub fn test_bot() -> Bot {
    Bot::from_yaml(TEST_BOT, "test.bot.yaml", Some(fixtures())).unwrap()
}

/// A running simulator with a client and credentials for its first app.
pub struct Harness {
    pub sim: RunningSim,
    pub http: reqwest::Client,
    pub client_id: String,
    pub secret: String,
}

impl Harness {
    pub async fn demo() -> Self {
        Self::with(SimConfig::demo()).await
    }

    pub async fn test_bot() -> Self {
        Self::with(SimConfig::new(test_bot())).await
    }

    pub async fn with(config: SimConfig) -> Self {
        let sim = RunningSim::start(config, localhost()).await.unwrap();
        let info = sim.info();
        Self {
            http: reqwest::Client::new(),
            client_id: info.client_id,
            secret: info.client_secret.unwrap(),
            sim,
        }
    }

    pub fn claims(&self, user: &str) -> Claims {
        ClaimsTemplate {
            client_id: self.client_id.clone(),
            app_claim: AppClaim::AppId,
            user_identity: true,
            expires_in: Some(Duration::from_secs(600)),
            jti: false,
            extra: Map::new(),
        }
        .for_user(user)
    }

    pub fn token(&self, user: &str) -> String {
        self.sign(&self.claims(user))
    }

    pub fn sign(&self, claims: &Claims) -> String {
        Signer::hmac(Alg::HS256, self.secret.as_bytes())
            .unwrap()
            .sign(claims)
            .unwrap()
    }

    pub fn url(&self, version: Version, instance: &str) -> String {
        self.sim.url(version, instance)
    }

    /// POSTs a body with a token for `user`; returns status, headers and the parsed body.
    pub async fn post(&self, version: Version, instance: &str, user: &str, body: Value) -> Reply {
        let token = self.token(user);
        self.post_with(
            &self.url(version, instance),
            Some(&format!("bearer {token}")),
            body.to_string(),
        )
        .await
    }

    pub async fn post_with(&self, url: &str, auth: Option<&str>, body: String) -> Reply {
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        Reply::from(req.send().await.unwrap()).await
    }

    pub async fn v2_text(&self, instance: &str, user: &str, text: &str) -> Reply {
        self.post(
            Version::V2,
            instance,
            user,
            json!({"message": {"type": "text", "val": text}, "from": {"id": user}}),
        )
        .await
    }

    pub async fn v1_text(&self, instance: &str, user: &str, text: &str) -> Reply {
        self.post(
            Version::V1,
            instance,
            user,
            json!({"message": {"text": text}, "from": {"id": user}}),
        )
        .await
    }

    pub async fn poll(&self, user: &str, poll_id: &str) -> Reply {
        let url = self.sim.endpoints().poll(poll_id);
        let resp = self
            .http
            .get(url)
            .header("authorization", format!("bearer {}", self.token(user)))
            .send()
            .await
            .unwrap();
        Reply::from(resp).await
    }

    /// Polls until the body has no pollId, at `interval`; returns every body seen.
    pub async fn poll_to_end(&self, user: &str, first: &Reply, interval: Duration) -> Vec<Value> {
        let mut seen = Vec::new();
        let mut poll_id = first.body["pollId"].as_str().map(str::to_string);
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(id) = poll_id {
            assert!(
                Instant::now() < deadline,
                "polling did not converge: {seen:?}"
            );
            tokio::time::sleep(interval).await;
            let r = self.poll(user, &id).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            poll_id = r.body["pollId"].as_str().map(str::to_string);
            seen.push(r.body);
        }
        seen
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl Reply {
    pub async fn from(resp: reqwest::Response) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let raw = resp.text().await.unwrap();
        let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            raw,
        }
    }

    /// Every `data[].val` that is a string.
    pub fn texts(&self) -> Vec<String> {
        texts(&self.body)
    }

    pub fn error_msg(&self) -> &str {
        self.body["errors"][0]["msg"].as_str().unwrap_or("")
    }
}

pub fn texts(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["val"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

type ReceiverState = (Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>);

/// A POST_URL receiver that keeps every delivery; it can refuse the first N with a 500.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Value>>>,
    fail_first: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Self {
        let got = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(AtomicUsize::new(fail_first));
        let state = (got.clone(), fail.clone());
        let app = Router::new().route(
            "/hook",
            post(
                |State((got, fail)): State<ReceiverState>, body: String| async move {
                    if fail
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    got.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                    StatusCode::OK
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app.with_state(state)).await.unwrap() });
        Self {
            url: format!("http://{addr}/hook"),
            got,
            fail_first: fail,
        }
    }

    /// Waits until `n` deliveries arrived (or 10 s pass) and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pending_failures(&self) -> usize {
        self.fail_first.load(Ordering::SeqCst)
    }
}
