//! Certifying a client: the plan a client follows (ordinary user messages, with what it will
//! meet at each step), the recorder that watches it through the simulator's observer hook and
//! injects each step's condition, and the judging function of every client check, run on
//! what was recorded.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use super::catalogue::Profile;
use super::probe::{Exchange, Judged, Mismatch, Miss};
use crate::protocol::{ErrorKind, Version};
use crate::sim::observe::{Observer, Seen};

mod judges;
mod judges_poll;
mod recorder;

pub use judges::{judge, Expect, Judgement, Recording};
use judges_poll::*;
pub use recorder::{Delivered, Kind, Rec, Recorder, Token};

/// What the simulator does at a step instead of answering at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Inject {
    /// The first try is refused 401, as for an expired token.
    ExpiredToken,
    /// The first try is answered 429.
    TooManyRequests,
    /// The first try is answered 503.
    Unavailable,
    /// The first try is answered 504 (the sync budget passed).
    TimedOut,
}

impl Inject {
    fn status(self) -> u16 {
        match self {
            Inject::ExpiredToken => 401,
            Inject::TooManyRequests => 429,
            Inject::Unavailable => 503,
            Inject::TimedOut => 504,
        }
    }

    fn response(self, version: Version) -> Response {
        let kind = match self {
            Inject::ExpiredToken => ErrorKind::InvalidToken,
            Inject::TooManyRequests => ErrorKind::TooManyRequests,
            Inject::Unavailable => ErrorKind::Internal(503),
            Inject::TimedOut => ErrorKind::TimedOut,
        };
        let mut r = crate::sim::answer::error(version, kind);
        if self == Inject::ExpiredToken {
            r.headers_mut().insert(
                crate::sim::answer::AUTH_ERROR_HEADER,
                http::HeaderValue::from_static("expired"),
            );
        }
        r
    }
}

/// One step of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    /// 1-based.
    pub n: usize,
    /// Where to send it.
    pub url: String,
    /// V1 or V2 body.
    pub version: &'static str,
    /// A user message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub say: Option<String>,
    /// An event (`ON_CONNECT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// A conformant client may skip it.
    pub optional: bool,
    /// What the client meets at this step.
    pub meets: String,
    /// The condition injected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inject: Option<Inject>,
    /// Upload a file through the upload API (token at `url`, chunks, merge).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub upload: bool,
    /// The pollId this step's answer carries never completes: every poll of it answers
    /// `Inprogress`, and the client is to give up.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hold: bool,
    #[serde(skip)]
    path: String,
}

/// The plan printed for a client.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The profile.
    pub profile: Profile,
    /// For people.
    pub how: String,
    /// The steps, in order.
    pub steps: Vec<PlanStep>,
}

/// The URLs a plan sends to.
#[derive(Debug, Clone)]
pub struct PlanUrls {
    /// V1, first instance.
    pub v1: String,
    /// V2, sync with polling.
    pub v2_poll: String,
    /// V2, sync without polling.
    pub v2_nopoll: String,
    /// V2, async (present when the client gave its POST_URL).
    pub v2_async: Option<String>,
    /// The upload API's token URL for the polling instance.
    pub upload_token: String,
}

fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
}

/// Builds a plan's steps.
#[derive(Default)]
struct Steps(Vec<PlanStep>);

impl Steps {
    fn add(
        &mut self,
        url: &str,
        version: &'static str,
        what: (Option<&str>, Option<&str>),
        optional: bool,
        meets: &str,
        inject: Option<Inject>,
    ) {
        self.0.push(PlanStep {
            n: self.0.len() + 1,
            url: url.to_string(),
            version,
            say: what.0.map(str::to_string),
            event: what.1.map(str::to_string),
            optional,
            meets: meets.to_string(),
            inject,
            upload: false,
            hold: false,
            path: path_of(url),
        });
    }

    fn upload(&mut self, u: &PlanUrls) {
        self.say(&u.upload_token, "v2", "", "a fileToken; then send the file in chunks of at most 2 MiB numbered from 0, and merge (PUT …/token/{fileToken}) with totalChunks");
        if let Some(step) = self.0.last_mut() {
            step.say = None;
            step.upload = true;
        }
        self.say(&u.v2_poll, "v2", "here is the document", "send with attachments: [{fileId, fileName, fileType}] naming the merged file; answered \"Received <file name>.\"");
    }

    fn say(&mut self, url: &str, version: &'static str, text: &str, meets: &str) {
        self.add(url, version, (Some(text), None), false, meets, None);
    }

    fn transfer(&mut self, url: &str, version: &'static str, last: &str) {
        self.say(url, version, "transfer", "a question: how much");
        self.say(url, version, "100", "a question: to which account");
        self.say(url, version, "savings", last);
    }

    fn v1(&mut self, u: &PlanUrls) {
        self.say(&u.v1, "v1", "balance", "two messages and the task end");
        self.transfer(
            &u.v1,
            "v1",
            "a 1-2 s service node inside the request, then the task end",
        );
    }

    fn poll(&mut self, u: &PlanUrls) {
        let url = &u.v2_poll;
        self.add(
            url,
            "v2",
            (None, Some("ON_CONNECT")),
            true,
            "the welcome (send with session.new: true; optional)",
            None,
        );
        self.say(url, "v2", "balance", "two messages and the task end");
        self.transfer(url, "v2", "a message and a pollId; the first poll of it answers `Inprogress` (whenever it comes), later polls the rest and the task end");
        self.say(url, "v2", "statement", "chained pollIds: a message and a pollId (its first poll answers `Inprogress`), then a message with a new pollId, then the rest");
        self.say(url, "v2", "slow", "a pollId that never completes (every poll answers `Inprogress`): give up polling it within 20 s");
        if let Some(step) = self.0.last_mut() {
            step.hold = true;
        }
    }

    fn nopoll(&mut self, u: &PlanUrls) {
        self.say(
            &u.v2_nopoll,
            "v2",
            "balance",
            "two messages and the task end",
        );
        self.transfer(
            &u.v2_nopoll,
            "v2",
            "one answer after a 1-2 s service node (polling is off)",
        );
    }

    fn asynchronous(&mut self, url: &str) {
        self.say(url, "v2", "balance", "an acknowledgement; the messages arrive at your POST_URL, each twice and out of order, then the task end");
        self.transfer(url, "v2", "the messages at your POST_URL");
    }

    fn auth(&mut self, u: &PlanUrls) {
        let url = &u.v2_poll;
        for (inject, meets) in [
            (Inject::ExpiredToken, "401 Invalid Access token on the first try, as for an expired token: sign a new token and send again"),
            (Inject::TooManyRequests, "429 Too Many requests on the first try"),
            (Inject::Unavailable, "503 on the first try"),
            (
                Inject::TimedOut,
                "504 The request has been timed-out on the first try",
            ),
        ] {
            self.add(url, "v2", (Some("balance"), None), false, meets, Some(inject));
        }
    }
}

/// The plan of a client profile (`None` for an async profile without the client's POST_URL).
pub fn plan(profile: Profile, urls: &PlanUrls) -> Option<Plan> {
    let mut steps = Steps::default();
    match profile {
        Profile::V1Sync => steps.v1(urls),
        Profile::V2Poll => steps.poll(urls),
        Profile::V2NoPoll => steps.nopoll(urls),
        Profile::V2Async => steps.asynchronous(urls.v2_async.as_deref()?),
        Profile::Auth => steps.auth(urls),
        Profile::Upload => steps.upload(urls),
        Profile::Full => {
            steps.v1(urls);
            steps.poll(urls);
            steps.nopoll(urls);
            steps.asynchronous(urls.v2_async.as_deref()?);
            steps.auth(urls);
            steps.upload(urls);
        }
    }
    Some(Plan {
        profile,
        how: "Send each step as an ordinary message (or event) to its url, as one user (any from.id, the same throughout), with your normal token, in order; follow your normal behaviour for what each step meets. Optional steps may be skipped.".into(),
        steps: steps.0,
    })
}

/// How to certify a client.
#[derive(Debug, Clone)]
pub struct ClientRun {
    /// The profile.
    pub profile: Profile,
    /// The product.
    pub product: super::Product,
    /// Where the simulator listens.
    pub listen: std::net::SocketAddr,
    /// The client's POST_URL (async profiles).
    pub post_url: Option<String>,
    /// When to stop waiting for the plan.
    pub timeout: Duration,
    /// How long the client must be quiet after the last step before grading (trailing polls).
    pub quiet: Duration,
}

/// A simulator in certification mode, waiting for the client to follow its plan.
#[derive(Debug)]
pub struct ClientSession {
    sim: crate::sim::RunningSim,
    recorder: Arc<Recorder>,
    client_id: String,
    started: String,
    /// The first line `certify client` prints: the simulator's configuration (as `sim
    /// --print-config json`) plus `plan`.
    pub announcement: Value,
}

impl ClientSession {
    /// Starts `bot` in certification mode: every request recorded, each plan step's condition
    /// injected, polls answering one service node's messages at a time (so chained pollIds
    /// come whatever the client's poll interval), async messages delivered twice and out of
    /// order.
    pub async fn start(run: &ClientRun, mut bot: crate::sim::Bot) -> Result<ClientSession, String> {
        for i in bot.instances.iter_mut() {
            match i.mode {
                crate::sim::Mode::Async => {
                    i.faults.async_duplicate_rate = 1.0;
                    i.faults.async_reorder_rate = 1.0;
                }
                crate::sim::Mode::Sync => i.faults.poll_one_batch = true,
            }
        }
        let recorder = Arc::new(Recorder::default());
        let mut config = crate::sim::SimConfig::new(bot);
        config.post_url = run.post_url.clone();
        config.observer = Some(recorder.clone());
        let sim = crate::sim::RunningSim::start_isolated(config, run.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", run.listen))?;
        let info = sim.info();
        let pick = |mode: crate::sim::Mode, polling: bool| {
            info.instances.iter().find(|i| {
                i.mode == mode && (mode == crate::sim::Mode::Async || i.polling == polling)
            })
        };
        let (Some(poll), Some(nopoll)) = (
            pick(crate::sim::Mode::Sync, true),
            pick(crate::sim::Mode::Sync, false),
        ) else {
            sim.shutdown().await;
            return Err(
                "the bot needs a sync instance with polling on and one with polling off".into(),
            );
        };
        let urls = PlanUrls {
            v1: poll.v1_url.clone(),
            v2_poll: poll.v2_url.clone(),
            v2_nopoll: nopoll.v2_url.clone(),
            upload_token: crate::protocol::urls::Endpoints::new(&info.base_url, &info.bot_id)
                .upload_token(None),
            v2_async: run
                .post_url
                .as_ref()
                .and(pick(crate::sim::Mode::Async, false))
                .map(|i| i.v2_url.clone()),
        };
        let Some(plan) = plan(run.profile, &urls) else {
            sim.shutdown().await;
            return Err(format!(
                "profile {} needs --post-url: where your client receives async messages",
                run.profile.as_str()
            ));
        };
        let mut announcement = serde_json::to_value(&info).unwrap_or_default();
        announcement["plan"] = serde_json::to_value(&plan).unwrap_or_default();
        recorder.follow(plan);
        Ok(ClientSession {
            client_id: info.client_id,
            sim,
            recorder,
            started: super::now_rfc3339(),
            announcement,
        })
    }

    /// The simulator's base URL.
    pub fn base_url(&self) -> String {
        self.sim.base_url()
    }

    /// Waits until the plan is done and the client quiet, the timeout, or `stop` (Ctrl-C),
    /// grades the client with the profile's checks (steps never performed fail as missing),
    /// and stops the simulator.
    pub async fn finish(
        self,
        run: &ClientRun,
        stop: impl std::future::Future<Output = ()>,
    ) -> super::Certification {
        let deadline = Instant::now() + run.timeout;
        let wait = async {
            while !self.recorder.finished(run.quiet) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            () = wait => {},
            () = stop => {},
        }
        let rec = self.recorder.recording();
        let target = format!(
            "client under test, against the simulator at {}",
            self.sim.base_url()
        );
        self.sim.shutdown().await;
        let expect = Expect {
            client_id: self.client_id.clone(),
        };
        let checks = super::catalogue::select(super::catalogue::Side::Client, run.profile)
            .map(|check| {
                let t = Instant::now();
                let (mut judged, mut ns) = judge(check.id, &rec, &expect).unwrap_or((
                    Err(Miss::Skipped("no judge for this check".into())),
                    Vec::new(),
                ));
                // A mismatch names a request by its place in the check's evidence.
                if let Err(Miss::Failed(m)) = &mut judged {
                    if let Some(n) = m.exchange {
                        let n = n as u64;
                        let pos = ns.iter().position(|&x| x == n).unwrap_or_else(|| {
                            ns.push(n);
                            ns.len() - 1
                        });
                        m.exchange = Some(pos);
                    }
                }
                let mut evidence = rec.evidence(&ns);
                if check.id.starts_with("CL-ASYNC") {
                    evidence.extend(rec.delivery_evidence());
                }
                super::result_of(check, judged, evidence, t.elapsed())
            })
            .collect();
        super::Certification::new(
            super::catalogue::Side::Client,
            run.profile,
            run.product.clone(),
            target,
            self.started,
            checks,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::recorder::token;
    use super::*;
    use crate::certify::catalogue::{Side, CHECKS};

    fn urls() -> PlanUrls {
        PlanUrls {
            v1: "http://h/chatbot/hooks/st-1".into(),
            v2_poll: "http://h/chatbot/v2/webhook/st-1".into(),
            v2_nopoll: "http://h/chatbot/v2/webhook/st-1/hookInstance/b".into(),
            v2_async: Some("http://h/chatbot/v2/webhook/st-1/hookInstance/c".into()),
            upload_token: "http://h/api/attachments/st-1/ivr/token".into(),
        }
    }

    #[test]
    fn every_client_check_has_a_judge() {
        let rec = Recording {
            plan: plan(Profile::Full, &urls()).unwrap(),
            recs: Vec::new(),
            deliveries: Vec::new(),
            performed: Vec::new(),
            held: Vec::new(),
        };
        let expect = Expect {
            client_id: "cs-1".into(),
        };
        for c in CHECKS.iter().filter(|c| c.side == Side::Client) {
            let mut rec = rec.clone();
            rec.performed = vec![None; rec.plan.steps.len()];
            let (j, _) =
                judge(c.id, &rec, &expect).unwrap_or_else(|| panic!("{} has no judge", c.id));
            // With nothing recorded, nothing passes.
            assert!(j.is_err(), "{} passed on an empty recording", c.id);
        }
    }

    #[test]
    fn plans_number_their_steps_and_only_on_connect_is_optional() {
        for p in Profile::ALL {
            let plan = plan(p, &urls()).unwrap();
            for (i, s) in plan.steps.iter().enumerate() {
                assert_eq!(s.n, i + 1);
                assert_eq!(s.optional, s.event.as_deref() == Some("ON_CONNECT"));
            }
        }
        let mut no_async = urls();
        no_async.v2_async = None;
        assert!(plan(Profile::V2Async, &no_async).is_none());
    }

    #[test]
    fn tokens_are_described_without_being_kept() {
        let t = token("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0.");
        assert!(t.bearer);
        assert_eq!(t.alg.as_deref(), Some("none"));
        assert_eq!(t.claims["sub"], "u");
        assert_eq!(t.fingerprint.len(), 16);
    }
}
