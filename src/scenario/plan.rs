//! The validated, runnable form of a scenario. Nothing here can be invalid: every value was
//! checked by the validator, which is the only way to build one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::Value;

use super::node::Pos;
use super::template::Template;
use crate::common::Delay;
use crate::protocol::jwt::{Alg, AppClaim};
use crate::protocol::v2::Event;
use crate::protocol::Version;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A scenario ready to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `name:` (or the file stem).
    pub name: String,
    /// Where it came from.
    pub file: PathBuf,
    /// The channel to talk to.
    pub target: Target,
    /// How tokens are made; `None` against the embedded simulator means its demo credentials.
    pub auth: Option<Auth>,
    /// Who the simulated user is.
    pub user: User,
    /// `vars:` in file order.
    pub vars: Vec<(String, Template)>,
    /// `data:` rows.
    pub data: Option<Data>,
    /// The conversation.
    pub steps: Vec<Step>,
    /// `load:` for `hookbench run`.
    pub load: Option<Load>,
    /// `thresholds:` for `hookbench run`.
    pub thresholds: Vec<super::threshold::Threshold>,
}

/// Sync or async.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Replies come in the response (and by polling in V2).
    #[default]
    Sync,
    /// Replies are POSTed to the receiver.
    Async,
}

/// `target:`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The webhook URL; `None` means the embedded simulator.
    pub url: Option<String>,
    /// V1 or V2 as written (`version:` or the URL's form); `None`: the target URL's, else V2.
    pub version: Option<Version>,
    /// Sync or async; `None`: sync, or the embedded instance's own mode.
    pub mode: Option<Mode>,
    /// Which channel instance (`default` is the first); applies when the URL names none.
    pub instance: Option<String>,
    /// The sync budget.
    pub timeout: Duration,
    /// V2 polling.
    pub poll: Poll,
    /// Async receiver.
    pub asynch: AsyncCfg,
    /// Behave like a browser client (`browser:`): this origin, and a CORS pre-flight before the
    /// first request to each URL, as the web SDK's requests cost in production.
    pub browser: Option<String>,
}

/// How the V2 poll loop waits between polls.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PollInterval {
    /// The same wait each time (web SDK: 1 s).
    Fixed(Duration),
    /// Right after the previous answer (iOS SDK), but never sooner than [`POLL_FLOOR`].
    Immediate,
    /// Doubling from `initial` up to `max`.
    Exponential {
        /// First wait.
        initial: Duration,
        /// Cap.
        max: Duration,
    },
}

/// The least gap between the answer to one poll and the next poll of the same turn, whatever
/// the interval says: a turn never polls more than 100 times a second (a loop with no wait
/// made 22,647 polls in 1.2 s against a local target). Polls of one turn are never concurrent:
/// each waits for the previous answer.
pub const POLL_FLOOR: Duration = Duration::from_millis(10);

impl PollInterval {
    /// The wait before poll number `n` (0-based), at least [`POLL_FLOOR`].
    pub fn wait(&self, n: u32) -> Duration {
        let d = match *self {
            PollInterval::Fixed(d) => d,
            PollInterval::Immediate => Duration::ZERO,
            PollInterval::Exponential { initial, max } => {
                initial.saturating_mul(1u32 << n.min(20)).min(max)
            }
        };
        d.max(POLL_FLOOR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_poll_interval_goes_below_the_floor() {
        assert_eq!(PollInterval::Immediate.wait(0), POLL_FLOOR);
        assert_eq!(PollInterval::Fixed(Duration::ZERO).wait(3), POLL_FLOOR);
        let ms = Duration::from_millis;
        let exp = PollInterval::Exponential {
            initial: ms(1),
            max: ms(40),
        };
        assert_eq!(exp.wait(0), POLL_FLOOR);
        assert_eq!(exp.wait(4), ms(16));
        assert_eq!(exp.wait(9), ms(40));
        assert_eq!(PollInterval::Fixed(ms(250)).wait(0), ms(250));
    }
}

/// `target.poll`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Poll {
    /// Wait between polls.
    pub interval: PollInterval,
    /// Give up after this long.
    pub max_wait: Duration,
}

/// `target.async`.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncCfg {
    /// Where the receiver listens.
    pub listen: SocketAddr,
    /// What the channel's POST_URL is set to (its path is where deliveries are accepted).
    pub public_url: Option<String>,
    /// A turn ends this long after the last delivery.
    pub quiet: Duration,
    /// A turn never waits longer than this.
    pub max_wait: Duration,
}

/// `auth:`.
#[derive(Debug, Clone)]
pub struct Auth {
    /// Client id.
    pub client_id: String,
    /// Client secret (HS algorithms).
    pub client_secret: Option<Secret>,
    /// Private key (RS algorithms).
    pub private_key_file: Option<PathBuf>,
    /// Algorithm.
    pub algorithm: Alg,
    /// Which claim carries the client id.
    pub app_claim: AppClaim,
    /// Put `userIdentity` in the token.
    pub user_identity: bool,
    /// Token lifetime.
    pub expires_in: Option<Duration>,
    /// Add a fresh `jti` to each token.
    pub jti: bool,
    /// Encrypt each signed token as a JWE to the bot's public key.
    pub jwe: Option<JwePlan>,
}

/// `auth.jwe`: how tokens are encrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct JwePlan {
    /// Where the bot's public key comes from.
    pub key: JweKeySource,
    /// Key management.
    pub alg: crate::protocol::jwt::jwe::KeyAlg,
    /// Content encryption.
    pub enc: crate::protocol::jwt::jwe::ContentEnc,
}

/// Where `auth.jwe` finds the public key.
#[derive(Debug, Clone, PartialEq)]
pub enum JweKeySource {
    /// A PEM file.
    File(PathBuf),
    /// A URL answering the PEM.
    Url(String),
    /// The target's own: the embedded simulator's key, or what a hookbench simulator serves
    /// at `/api/public/bot/{botId}/jwe/publickey`.
    Target,
}

/// `user:`.
#[derive(Debug, Clone)]
pub struct User {
    /// `from.id`.
    pub id: Template,
    /// `userInfo.firstName`.
    pub first_name: Option<Template>,
    /// `userInfo.lastName`.
    pub last_name: Option<Template>,
    /// `userInfo.email`.
    pub email: Option<Template>,
}

/// `data:` loaded.
#[derive(Debug, Clone)]
pub struct Data {
    /// The CSV file, or the scenario itself for rows written inline.
    pub path: PathBuf,
    /// Header.
    pub columns: Vec<String>,
    /// Rows, each as long as the header.
    pub rows: Vec<Vec<String>>,
}

/// One step.
#[derive(Debug, Clone)]
pub struct Step {
    /// 0-based index in the flattened conversation.
    pub index: usize,
    /// The file it came from (differs for included steps).
    pub file: PathBuf,
    /// Where it starts.
    pub pos: Pos,
    /// Display name: `send transfer`, `event ON_CONNECT`, or `name:`.
    pub label: Arc<str>,
    /// The file as reports show it.
    pub shown_file: Arc<str>,
    /// What it does.
    pub action: Action,
    /// Checks on the bot's reply.
    pub expect: Vec<Check>,
    /// Variables taken from the reply.
    pub capture: Vec<Capture>,
    /// Wait before the step.
    pub think: Option<Delay>,
    /// `session.new: true`.
    pub new_session: bool,
    /// Attachments (JSON, strings templated).
    pub attachments: Option<Value>,
    /// Tags (V2 `metaTags`; V1 level tags).
    pub tags: Option<Value>,
    /// `customData`.
    pub custom_data: Option<Value>,
    /// `interactiveLanguage`.
    pub language: Option<String>,
}

impl Step {
    /// Some check or capture reads whole bodies, message values or the merged document
    /// (schema, JSONPath, template checks; JSONPath captures); the rest read what a lean pass
    /// over each body collects.
    pub fn reads_trees(&self) -> bool {
        self.expect.iter().any(|c| {
            matches!(
                c.kind,
                CheckKind::Schema(_) | CheckKind::JsonPath { .. } | CheckKind::Template { .. }
            )
        }) || self
            .capture
            .iter()
            .any(|c| matches!(c.source, CaptureSource::JsonPath(_)))
    }
}

/// What a step sends.
#[derive(Debug, Clone)]
pub enum Action {
    /// A text message.
    Send(Template),
    /// An event.
    Event(Event),
    /// A template object (strings inside are templates).
    Template(Value),
    /// Values for the form the bot last sent, by field key or label.
    Form(Vec<(String, Template)>),
    /// A file through the upload API, then a message referencing it.
    Upload {
        /// The file.
        path: PathBuf,
        /// The message text (non-empty).
        text: Template,
        /// `fileType`.
        file_type: String,
        /// Which API carries the file.
        method: UploadMethod,
    },
    /// Only wait.
    Think(Delay),
    /// A proactive notification to this conversation's user (`notifyV2`, async instances):
    /// the turn waits for its delivery at the POST_URL receiver, then for the job's status.
    Notify {
        /// The message (`content.value`; `{name}` placeholders are filled by the platform
        /// from `parameters`).
        message: Template,
        /// `content.type`: text, template or script.
        kind: String,
        /// `identities[0].parameters`.
        parameters: Vec<(String, Template)>,
        /// `webhookInstanceName` (default: the target's instance).
        instance: Option<String>,
    },
}

/// How a file reaches the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadMethod {
    /// A file token, the file in chunks of this many bytes, then a merge.
    Chunked(usize),
    /// The whole file in one request (`…/api/attachments/file/{botId}/{channelType}`).
    OneShot,
}

/// Which messages a text check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// At least one message matches.
    Any,
    /// Every message matches.
    All,
    /// The n-th (negative: from the end).
    Nth(i64),
}

/// A text test.
#[derive(Debug, Clone)]
pub enum TextTest {
    /// Substring.
    Contains(Template),
    /// Whole text.
    Equals(Template),
    /// Regex.
    Matches(Regex),
    /// Equal to one of these.
    AnyOf(Vec<Template>),
}

/// A JSONPath test.
#[derive(Debug, Clone)]
pub enum PathTest {
    /// Some node exists (or, false, none does).
    Exists(bool),
    /// The first node equals (strings templated).
    Equals(Value),
    /// The first node, as text, matches.
    Matches(Regex),
    /// This many nodes.
    Count(usize),
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Exactly.
    Eq(usize),
    /// At least.
    AtLeast(usize),
    /// At most.
    AtMost(usize),
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Count::Eq(n) => write!(f, "{n}"),
            Count::AtLeast(n) => write!(f, "at least {n}"),
            Count::AtMost(n) => write!(f, "at most {n}"),
        }
    }
}

impl Count {
    /// True when `n` satisfies it.
    pub fn holds(self, n: usize) -> bool {
        match self {
            Count::Eq(x) => n == x,
            Count::AtLeast(x) => n >= x,
            Count::AtMost(x) => n <= x,
        }
    }
}

/// A JSON Schema to check every body of the turn against.
#[derive(Debug, Clone)]
pub struct SchemaRef {
    /// `v2.response` or a file path.
    pub name: String,
    /// The compiled schema.
    pub validator: Arc<jsonschema::Validator>,
}

/// What a check tests.
#[derive(Debug, Clone)]
pub enum CheckKind {
    /// HTTP status of the request (one of).
    Status(Vec<u16>),
    /// Every body validates.
    Schema(SchemaRef),
    /// Message texts.
    Text(Which, TextTest),
    /// A JSONPath over the merged reply.
    JsonPath {
        /// As written.
        source: String,
        /// Compiled.
        path: serde_json_path::JsonPath,
        /// The test.
        test: PathTest,
    },
    /// Number of bot messages.
    Messages(Count),
    /// A template message.
    Template {
        /// `payload.template_type`.
        template_type: Option<String>,
        /// Number of buttons.
        buttons: Option<Count>,
    },
    /// Task end.
    EndOfTask {
        /// Whether a task must (true) or must not (false) end.
        ended: bool,
        /// `endReason`.
        reason: Option<String>,
        /// `completedTaskName`.
        task: Option<String>,
    },
    /// Turn latency.
    Latency(Duration),
    /// V2 poll convergence.
    Poll {
        /// The poll loop reached a final body.
        converged: Option<bool>,
        /// At most this many polls.
        max_polls: Option<u32>,
        /// Final message within this long of the request.
        within: Option<Duration>,
    },
}

/// One assertion.
#[derive(Debug, Clone)]
pub struct Check {
    /// Readable form, e.g. `text contains "Welcome"`.
    pub label: Arc<str>,
    /// Where it is.
    pub pos: Pos,
    /// Wrapped in `not:`.
    pub negate: bool,
    /// The test.
    pub kind: CheckKind,
}

/// Where a capture reads from.
#[derive(Debug, Clone)]
pub enum CaptureSource {
    /// The first node of a JSONPath over the merged reply.
    JsonPath(serde_json_path::JsonPath),
    /// The first regex group (or whole match) over the message texts.
    Regex(Regex),
}

/// `capture:` entry.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Variable name.
    pub name: String,
    /// Source.
    pub source: CaptureSource,
}

/// One stage of a ramp: reach `target` over `over` (linearly), or hold (`target: None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// Users (closed model) or arrivals per second (open model); `None` holds the current value.
    pub target: Option<f64>,
    /// How long the stage lasts.
    pub over: Duration,
}

/// How load is generated.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadModel {
    /// N users, each running the conversation again and again.
    Closed {
        /// Users at the start (before stages).
        users: u64,
        /// Ramps.
        stages: Vec<Stage>,
    },
    /// New conversations arrive at a rate, whatever the target's speed.
    Open {
        /// Arrivals per second at the start.
        rate: f64,
        /// Ramps of the rate.
        stages: Vec<Stage>,
        /// Exponential spacing instead of even.
        poisson: bool,
        /// Starts beyond this many concurrent conversations are dropped (and counted).
        max_concurrency: Option<u64>,
    },
    /// The arrival rate steps up until a threshold breaks.
    Capacity {
        /// First rate (per second).
        start: f64,
        /// Added each step.
        step: f64,
        /// Length of each step.
        every: Duration,
        /// Never beyond this rate.
        max: f64,
        /// Exponential spacing.
        poisson: bool,
        /// Concurrency cap.
        max_concurrency: Option<u64>,
    },
}

/// `load:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// The model.
    pub model: LoadModel,
    /// Stop starting conversations after this long (default: the stages' total, else 30 s).
    pub duration: Option<Duration>,
    /// Stop after this many conversations in all.
    pub iterations: Option<u64>,
    /// How long in-flight conversations may finish after the stop.
    pub grace: Duration,
    /// Each user (closed) or conversation (open) on connections of its own, instead of one
    /// keep-alive pool shared by all.
    pub connection_per_user: bool,
    /// At most this many connections in the shared pool (a client's pool size); requests
    /// beyond it wait for a free one. Default: what the file-descriptor limit allows.
    pub max_connections: Option<u64>,
    /// Without thresholds, any failed turn fails the run (the default gate); `false` leaves
    /// only the run's own gates (it ran, it was not interrupted).
    pub default_gate: bool,
    /// Speak HTTP/2 (h2c, prior knowledge) to plain-text targets instead of HTTP/1.1.
    pub http2: bool,
    /// Which part of a run split over machines this process runs (see [`super::shard`]).
    pub shard: super::shard::Shard,
    /// Wait until this wall-clock time (Unix seconds) before starting, so shards started at
    /// different moments begin together.
    pub start_at: Option<f64>,
    /// The run's id, the same in every shard (generated when not given).
    pub run_id: Option<String>,
}

impl Default for Load {
    fn default() -> Self {
        Load {
            model: LoadModel::Closed {
                users: 1,
                stages: Vec::new(),
            },
            duration: None,
            iterations: None,
            grace: Duration::from_secs(30),
            connection_per_user: false,
            max_connections: None,
            default_gate: true,
            http2: false,
            shard: super::shard::Shard::WHOLE,
            start_at: None,
            run_id: None,
        }
    }
}
