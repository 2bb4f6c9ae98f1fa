//! Bot definition files (`*.bot.yaml`): what a simulated bot says and how its channel instances
//! behave. Parsed into raw structs that reject unknown keys, then validated into a [`Bot`] that
//! the simulator runs; every error names the file, line, column and YAML path.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

use super::faults::{Faults, RawFaults};
use crate::common::diag::Diag;
use crate::common::node::Pos;
use crate::common::{Delay, DurationSpec};
use crate::protocol::ids;
use crate::protocol::jwt::{Alg, VerifyKey, VerifyPolicy};
use crate::protocol::{TaskEnd, SYNC_BUDGET};

/// What is wrong with a bot definition: every error found, each with its file, line, column,
/// YAML path and source line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotError(pub Vec<Diag>);

impl std::fmt::Display for BotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}\n")?;
        }
        write!(
            f,
            "{} found",
            crate::common::count(self.0.len() as u64, "error", "errors")
        )
    }
}

impl std::error::Error for BotError {}

// ---------------------------------------------------------------------------------------------
// Raw file format.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBot {
    bot: RawBotInfo,
    apps: Vec<Spanned<RawApp>>,
    instances: Vec<Spanned<RawInstance>>,
    #[serde(default)]
    settings: RawSettings,
    welcome: RawSays,
    #[serde(default)]
    fallback: Option<RawSays>,
    #[serde(default)]
    dialogs: Vec<Spanned<RawDialog>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBotInfo {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    jwe_private_key: Option<String>,
    #[serde(default)]
    jwe_private_key_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    public_key: Option<String>,
    #[serde(default)]
    public_key_file: Option<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    require: Vec<String>,
    #[serde(default = "yes")]
    allow_anonymous: bool,
    #[serde(default)]
    leeway: Option<DurationSpec>,
    #[serde(default)]
    jwe: JweMode,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    id: String,
    #[serde(default)]
    mode: Mode,
    #[serde(default = "yes")]
    polling: bool,
    #[serde(default)]
    post_url: Option<String>,
    #[serde(default)]
    sync_timeout: Option<DurationSpec>,
    #[serde(default)]
    rate_limit: Option<RawRateLimit>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    faults: RawFaults,
    #[serde(default)]
    delivery: RawDelivery,
    #[serde(default)]
    proactive_notifications: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    requests: u32,
    per: DurationSpec,
    #[serde(default)]
    burst: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    #[serde(default)]
    attempts: Option<u32>,
    #[serde(default)]
    backoff: Option<DurationSpec>,
    #[serde(default)]
    max_backoff: Option<DurationSpec>,
    #[serde(default)]
    timeout: Option<DurationSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    session_idle: Option<DurationSpec>,
    #[serde(default)]
    poll_ttl: Option<DurationSpec>,
    #[serde(default)]
    connection_idle: Option<DurationSpec>,
    #[serde(default)]
    max_file_bytes: Option<u64>,
    #[serde(default)]
    max_chunk_bytes: Option<u64>,
    #[serde(default)]
    v1_templates: Option<TemplateEncoding>,
    #[serde(default)]
    v2_templates: Option<TemplateEncoding>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSays {
    One(RawSay),
    Many(Vec<RawSay>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSay {
    Text(String),
    Template { template: Value },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDialog {
    name: String,
    #[serde(rename = "match")]
    matcher: RawMatch,
    steps: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatch {
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    regex: Option<Spanned<String>>,
    #[serde(default)]
    attachment: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum RawStep {
    Say(RawSay),
    Ask(RawAsk),
    Form(RawForm),
    Service(RawService),
    End(EndReason),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsk {
    prompt: String,
    slot: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForm {
    name: String,
    prompt: String,
    fields: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    key: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    r#type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawService {
    Delay(Delay),
    Full {
        delay: Delay,
        #[serde(default)]
        fail_rate: Option<f64>,
        #[serde(default)]
        on_failure: Option<String>,
    },
}

// ---------------------------------------------------------------------------------------------
// The validated bot.

/// Sync or async channel mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Answers in the response (V2: with polling when enabled).
    #[default]
    Sync,
    /// Acks at once, then POSTs every message to POST_URL.
    Async,
}

/// How a template travels inside a message value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateEncoding {
    /// A JSON object.
    Object,
    /// A JSON string holding the object.
    String,
    /// An HTML-entity-escaped JSON string (what V1 clients see in the wild).
    Escaped,
}

/// `endReason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum EndReason {
    /// The task completed.
    Fulfilled,
    /// The task was interrupted (also used when a service fails).
    Interrupted,
    /// The user cancelled.
    Cancelled,
}

impl EndReason {
    /// As written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fulfilled => "Fulfilled",
            EndReason::Interrupted => "Interrupted",
            EndReason::Cancelled => "Cancelled",
        }
    }
}

/// A registered app (client id with its keys and token rules).
#[derive(Debug, Clone)]
pub struct App {
    /// `cs-…`.
    pub client_id: String,
    /// Verifies HS tokens.
    pub secret: Option<VerifyKey>,
    /// Verifies RS tokens.
    pub public_key: Option<VerifyKey>,
    /// Token rules.
    pub policy: VerifyPolicy,
    /// Kept for `--print-config`.
    pub client_secret: Option<String>,
    /// The "Enforce JWE Encryption" setting.
    pub jwe: JweMode,
}

/// Whether an app takes JWE-encrypted tokens (encrypted to the bot's public key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JweMode {
    /// Plain signed JWTs only; a JWE is refused.
    #[default]
    Off,
    /// Either.
    Optional,
    /// JWEs only; a plain JWT is refused.
    Required,
}

/// A token bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size.
    pub burst: f64,
}

/// Retries of async deliveries to POST_URL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryPolicy {
    /// Tries in all, including the first.
    pub attempts: u32,
    /// First wait between tries; doubles each time.
    pub backoff: Duration,
    /// Cap on the wait.
    pub max_backoff: Duration,
    /// Per-try timeout.
    pub timeout: Duration,
}

/// A channel instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// `default`, `ivrInst-…`.
    pub id: String,
    /// True for the first instance, served without `/hookInstance/{id}`.
    pub first: bool,
    /// Sync or async.
    pub mode: Mode,
    /// V2 sync polling.
    pub polling: bool,
    /// Where async messages go.
    pub post_url: Option<String>,
    /// Sync budget (15 s by default).
    pub sync_timeout: Duration,
    /// Per-app token bucket.
    pub rate_limit: Option<RateLimit>,
    /// Disabled instances answer 404.
    pub enabled: bool,
    /// Fault and latency injection.
    pub faults: Faults,
    /// Async delivery retries.
    pub delivery: DeliveryPolicy,
    /// The channel's "Proactive Notifications" toggle (async V2 instances only).
    pub proactive_notifications: bool,
}

impl Instance {
    /// `channelType` for the upload API.
    pub fn channel_type(&self) -> &str {
        if self.first {
            "ivr"
        } else {
            &self.id
        }
    }
}

/// Something the bot says.
#[derive(Debug, Clone, PartialEq)]
pub enum Say {
    /// Text; `{slot}` placeholders are filled in.
    Text(String),
    /// A template object; strings inside it are filled in too.
    Template(Value),
}

/// A digital form.
#[derive(Debug, Clone, PartialEq)]
pub struct Form {
    /// `frm-…`, stable for the form's name.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Text sent with the form.
    pub prompt: String,
    /// Fields.
    pub fields: Vec<FormField>,
}

/// A form field; its `key` becomes a slot when the form is submitted.
#[derive(Debug, Clone, PartialEq)]
pub struct FormField {
    /// `fct-…`, stable for form and key.
    pub id: String,
    /// Slot name.
    pub key: String,
    /// Display label.
    pub label: String,
    /// Component type (`textField`).
    pub kind: String,
}

impl Form {
    /// `{"formDef": …, "formInitialization": …}` as V1 sends it in `form` and V2 in a data item.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "formDef": {
                "id": self.id,
                "name": self.name,
                "components": self.fields.iter().map(|f| serde_json::json!({
                    "id": f.id, "key": f.key, "displayName": f.label, "type": f.kind
                })).collect::<Vec<_>>(),
            },
            "formInitialization": { "valueMap": {} }
        })
    }
}

/// One step of a dialog.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send a message.
    Say(Say),
    /// Send the prompt, wait for the next user message, keep it in `slot`.
    Ask {
        /// Text sent.
        prompt: String,
        /// Slot filled by the answer.
        slot: String,
    },
    /// Send a form and wait for its submission.
    Form(Arc<Form>),
    /// A service node: a delay, possibly failing.
    Service {
        /// How long it runs.
        delay: Delay,
        /// Probability it fails (0..=1).
        fail_rate: f64,
        /// Said when it fails; the task then ends `Interrupted`.
        on_failure: String,
    },
    /// End the task.
    End(EndReason),
}

/// How a dialog is chosen.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// Any of these words (case-insensitive) in the text.
    pub keywords: Vec<String>,
    /// Or this pattern.
    pub regex: Option<Regex>,
    /// Only messages with attachments.
    pub attachment: bool,
}

impl Matcher {
    /// True when the message selects this dialog.
    pub fn matches(&self, text_lower: &str, has_attachments: bool) -> bool {
        if self.attachment && !has_attachments {
            return false;
        }
        let by_text = self
            .keywords
            .iter()
            .any(|k| text_lower.contains(k.as_str()))
            || self.regex.as_ref().is_some_and(|r| r.is_match(text_lower));
        by_text || (self.attachment && self.keywords.is_empty() && self.regex.is_none())
    }
}

/// A dialog task.
#[derive(Debug, Clone)]
pub struct Dialog {
    /// Also `completedTaskName`.
    pub name: String,
    /// `completedTaskId`: `dg-…`, stable for the name.
    pub task_id: String,
    /// Selection.
    pub matcher: Matcher,
    /// What it does.
    pub steps: Vec<Step>,
}

impl Dialog {
    /// The task fields for an end with `reason`.
    pub fn task_end(&self, reason: EndReason) -> TaskEnd {
        TaskEnd {
            reason: reason.as_str().to_string(),
            task_id: self.task_id.clone(),
            task_name: self.name.clone(),
        }
    }
}

/// Settings that are gaps in the public documentation, with their defaults.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sessions idle longer than this are dropped (15 min).
    pub session_idle: Duration,
    /// Undelivered poll batches are dropped after this (5 min).
    pub poll_ttl: Duration,
    /// A connection that has not sent a whole request head within this long, whether new or
    /// kept alive between requests, is closed (60 s): idle and slowloris connections do not
    /// stay open for ever.
    pub connection_idle: Duration,
    /// Largest uploaded file (25 MiB).
    pub max_file_bytes: u64,
    /// Largest chunk (2 MiB).
    pub max_chunk_bytes: u64,
    /// Templates in V1 `text` (HTML-escaped JSON strings).
    pub v1_templates: TemplateEncoding,
    /// Templates in V2 `data[].val` (objects).
    pub v2_templates: TemplateEncoding,
}

/// A validated bot definition.
#[derive(Debug, Clone)]
pub struct Bot {
    /// `st-…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Registered apps.
    pub apps: Vec<App>,
    /// Channel instances; the first is served without `/hookInstance/`.
    pub instances: Vec<Instance>,
    /// Gap settings.
    pub settings: Settings,
    /// The ON_CONNECT answer.
    pub welcome: Vec<Say>,
    /// What the bot says when nothing matches.
    pub fallback: Vec<Say>,
    /// Dialogs, tried in order.
    pub dialogs: Vec<Dialog>,
    /// The bot's key pair for JWE (`bot.jwe_private_key`): tokens are encrypted to its public
    /// half.
    pub jwe_key: Option<Arc<JweKey>>,
}

/// The bot's JWE private key, never printed.
pub struct JweKey(pub rsa::RsaPrivateKey);

impl std::fmt::Debug for JweKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JweKey(<redacted>)")
    }
}

impl Bot {
    /// The JWE public key as SPKI PEM, when the bot has a key pair.
    pub fn jwe_public_pem(&self) -> Option<String> {
        self.jwe_key
            .as_deref()
            .map(|k| crate::protocol::jwt::jwe::public_pem(&k.0))
    }
}

impl Bot {
    /// Reads and validates a bot file.
    pub fn from_file(path: &Path) -> Result<Bot, BotError> {
        let text =
            crate::common::read_limited(path, crate::common::MAX_SOURCE_BYTES).map_err(|e| {
                BotError(vec![Diag::at(
                    path,
                    "",
                    Pos::default(),
                    "",
                    format!("cannot read the bot file: {e}"),
                    None,
                )])
            })?;
        Bot::from_yaml(&text, &path.display().to_string(), path.parent())
    }

    /// The built-in demo bot (`scenarios/bots/demo.bot.yaml`).
    pub fn demo() -> Bot {
        Bot::from_yaml(DEMO_BOT, "<demo.bot.yaml>", None).expect("the embedded demo bot is valid")
    }

    /// Parses and validates bot YAML; `base_dir` resolves `public_key_file`.
    ///
    /// Every error is reported at once: the file's shape (keys, kinds of values, ranges) is
    /// checked on its positioned tree first, then each app, instance and dialog is validated
    /// on its own.
    pub fn from_yaml(text: &str, file: &str, base_dir: Option<&Path>) -> Result<Bot, BotError> {
        let path = Path::new(file);
        let diag = |pos: Pos, message: String| Diag::at(path, text, pos, "", message, None);
        let root =
            crate::common::node::parse(text).map_err(|e| BotError(vec![diag(e.pos, e.message)]))?;
        let shape = super::bot_check::check(&root, path, text);
        if !shape.is_empty() {
            return Err(BotError(shape));
        }
        let raw: RawBot = serde_saphyr::from_str_with_options(text, crate::common::yaml_options())
            .map_err(|e| {
                let loc = e.location();
                let pos = Pos {
                    line: loc.map(|l| l.line()).unwrap_or(0),
                    column: loc.map(|l| l.column()).unwrap_or(0),
                };
                BotError(vec![diag(pos, serde_message(&e.to_string()))])
            })?;
        Validator {
            file: path,
            text,
            base_dir,
        }
        .bot(raw)
    }

    /// The instance by id.
    pub fn instance(&self, id: &str) -> Option<(usize, &Instance)> {
        self.instances.iter().enumerate().find(|(_, i)| i.id == id)
    }

    /// The instance whose upload `channelType` this is.
    pub fn instance_by_channel(&self, channel: &str) -> Option<(usize, &Instance)> {
        self.instances
            .iter()
            .enumerate()
            .find(|(_, i)| i.channel_type() == channel)
    }

    /// The app by client id.
    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id == client_id)
    }
}

/// The demo bot's definition, embedded so `hookbench sim` works anywhere.
pub const DEMO_BOT: &str = include_str!("../../../scenarios/bots/demo.bot.yaml");

mod validate;
use validate::{serde_message, Validator};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_bot_is_valid_and_complete() {
        let bot = Bot::demo();
        let ids: Vec<_> = bot.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "default",
                "ivrInst-nopoll",
                "ivrInst-async",
                "ivrInst-limited"
            ]
        );
        assert!(bot.instances[0].first && bot.instances[0].polling);
        assert!(!bot.instances[1].polling);
        assert_eq!(bot.instances[2].mode, Mode::Async);
        assert!(bot.instances[3].rate_limit.is_some());
        // An HS app (printed by --print-config) and a key-pair app.
        assert!(bot.apps[0].client_secret.is_some());
        assert!(bot.apps[1].public_key.is_some() && bot.apps[1].client_secret.is_none());
        // And an app that takes JWE-encrypted tokens only, with the bot's key pair.
        assert_eq!(bot.apps[2].jwe, JweMode::Required);
        assert!(bot.jwe_public_pem().is_some());
        for name in [
            "Show Balance",
            "Transfer Funds",
            "Menu",
            "Contact Form",
            "Monthly Statement",
            "Slow Report",
        ] {
            assert!(bot.dialogs.iter().any(|d| d.name == name), "{name}");
        }
    }

    #[test]
    fn unknown_key_points_at_line_and_column() {
        let yaml = "bot: {id: st-1}\napps:\n  - client_id: cs-1\n    client_secrt: x\ninstances: [{id: a}]\nwelcome: hi\n";
        let e = Bot::from_yaml(yaml, "x.bot.yaml", None).unwrap_err();
        let d = &e.0[0];
        assert_eq!(
            (d.pos.line, d.file.to_str()),
            (4, Some("x.bot.yaml")),
            "{e}"
        );
        assert!(d.message.contains("client_secrt"), "{e}");
    }

    #[test]
    fn bad_regex_is_located() {
        let yaml = "bot: {id: st-1}\napps: [{client_id: cs-1, client_secret: s}]\ninstances: [{id: a}]\nwelcome: hi\ndialogs:\n  - name: x\n    match: {regex: \"(\"}\n    steps: [{say: hi}]\n";
        let e = Bot::from_yaml(yaml, "x.bot.yaml", None).unwrap_err();
        let d = &e.0[0];
        assert_eq!(d.path, "dialogs[0].match.regex");
        assert_eq!(d.pos.line, 7, "{e}");
        assert!(e.to_string().contains("--> x.bot.yaml:7:"), "{e}");
        assert!(!e.to_string().contains("error: error"), "{e}");
    }

    #[test]
    fn semantic_errors_of_every_item_are_reported_together() {
        let yaml = "bot: {id: st-1}
apps: [{client_id: cs-1}]
instances:
  - {id: a, post_url: ftp://x}
  - {id: a}
welcome: hi
dialogs:
  - name: x
    match: {regex: \"(\"}
    steps: [{say: hi}]
";
        let e = Bot::from_yaml(yaml, "x.bot.yaml", None).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "apps[0]",
                "instances[0].post_url",
                "instances[1].id",
                "dialogs[0].match.regex"
            ],
            "{e}"
        );
    }
}
