//! `hookbench test`: runs scenarios once each (once per data row), against the embedded
//! simulator or the given target, and gathers a [`TestReport`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conversation::{Conversation, Target};
use super::results::{ScenarioResult, TestReport};
use crate::client::{HttpClient, Receiver};
use crate::protocol::jwt::{Alg, AppClaim, ClaimsTemplate, Signer};
use crate::protocol::{Version, WebhookUrl};
use crate::scenario::{Mode, Scenario, Secret};
use crate::sim::{RunningSim, SimConfig};

/// Why a scenario's target could not be set up (exit code 2: the input or the machine, not
/// the target, is at fault).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An external target and no credentials.
    #[error("no credentials: give the scenario an `auth:` section, or --client-id/--client-secret (HOOKBENCH_CLIENT_ID/HOOKBENCH_CLIENT_SECRET)")]
    NoCredentials,
    /// A client id but no secret.
    #[error("no client secret: give --client-secret or HOOKBENCH_CLIENT_SECRET")]
    NoSecret,
    /// `auth:` lacks what its algorithm needs.
    #[error("auth needs `{0}`")]
    AuthIncomplete(&'static str),
    /// The target URL is not a webhook URL.
    #[error(transparent)]
    Url(#[from] crate::protocol::urls::UrlError),
    /// A key or secret that cannot sign.
    #[error("cannot sign tokens: {0}")]
    Key(#[from] crate::protocol::jwt::JwtError),
    /// A key file that cannot be read.
    #[error("cannot read {path}: {source}")]
    KeyFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The embedded simulator or a POST_URL receiver could not start.
    #[error("cannot start {what}: {source}")]
    Start {
        /// What.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The embedded simulator has no such instance.
    #[error("the embedded simulator has no instance `{id}` (instances: {known})")]
    UnknownInstance {
        /// The instance asked for.
        id: String,
        /// Those it has.
        known: String,
    },
    /// The message URL does not parse.
    #[error("{0}")]
    MessageUrl(String),
    /// `auth.jwe`'s public key cannot be had.
    #[error("auth.jwe: {0}")]
    Jwe(String),
}

/// Where scenarios without their own `target.url` go, and default credentials.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// A webhook URL; `None`: the embedded simulator.
    pub target: Option<String>,
    /// Client id for targets whose scenario has no `auth`.
    pub client_id: Option<String>,
    /// Client secret for targets whose scenario has no `auth`.
    pub client_secret: Option<Secret>,
}

/// What a suite keeps running between scenarios.
#[derive(Debug, Default)]
pub struct Environment {
    sim: Option<RunningSim>,
    embedded_receiver: Option<Receiver>,
    receivers: HashMap<(SocketAddr, Option<String>), Receiver>,
    http: HttpClient,
    bot: Option<crate::sim::Bot>,
}

impl Environment {
    /// An environment whose targets use this client (e.g. HTTP/2).
    pub fn with_client(http: HttpClient) -> Self {
        Self {
            http,
            ..Default::default()
        }
    }

    /// An environment whose embedded simulator serves `bot` instead of the demo bot.
    pub fn with_bot(mut self, bot: crate::sim::Bot) -> Self {
        self.bot = Some(bot);
        self
    }

    /// Starts (once) the embedded simulator with its receiver wired as POST_URL.
    async fn embedded(&mut self) -> Result<(&RunningSim, Receiver), SetupError> {
        if self.sim.is_none() {
            let localhost = SocketAddr::from(([127, 0, 0, 1], 0));
            let receiver =
                Receiver::start(localhost, None)
                    .await
                    .map_err(|source| SetupError::Start {
                        what: "the async receiver".into(),
                        source,
                    })?;
            let mut config = match self.bot.take() {
                Some(bot) => SimConfig::new(bot),
                None => SimConfig::demo(),
            };
            config.post_url = Some(receiver.url.clone());
            config.grace = Duration::from_millis(200);
            let sim = RunningSim::start_isolated(config, localhost)
                .await
                .map_err(|source| SetupError::Start {
                    what: "the embedded simulator".into(),
                    source,
                })?;
            self.sim = Some(sim);
            self.embedded_receiver = Some(receiver);
        }
        Ok((
            self.sim.as_ref().expect("started"),
            self.embedded_receiver.clone().expect("started"),
        ))
    }

    async fn receiver(
        &mut self,
        listen: SocketAddr,
        public_url: Option<&str>,
    ) -> Result<Receiver, SetupError> {
        let key = (listen, public_url.map(str::to_string));
        if let Some(r) = self.receivers.get(&key) {
            return Ok(r.clone());
        }
        let r = Receiver::start(listen, public_url)
            .await
            .map_err(|source| SetupError::Start {
                what: format!("the async receiver on {listen}"),
                source,
            })?;
        tracing::info!(url = %r.url, listen = %r.addr, "async receiver listening");
        self.receivers.insert(key, r.clone());
        Ok(r)
    }

    /// Async deliveries addressed to no user of this run (all receivers).
    pub fn unmatched_deliveries(&self) -> u64 {
        self.receivers
            .values()
            .chain(self.embedded_receiver.iter())
            .map(Receiver::unmatched)
            .sum()
    }

    /// Stops what was started.
    pub async fn shutdown(mut self) {
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
        for r in self.receivers.values().chain(self.embedded_receiver.iter()) {
            r.stop();
        }
    }

    /// Resolves a scenario's target.
    pub async fn resolve(
        &mut self,
        s: &Scenario,
        opts: &TestOptions,
    ) -> Result<Target, SetupError> {
        let t = &s.target;
        let url = t.url.clone().or_else(|| opts.target.clone());
        let http = self.http.clone();
        let (parsed, creds, mode, receiver) = match url {
            Some(url) => {
                let parsed = WebhookUrl::parse(&url)?;
                let creds = match &s.auth {
                    Some(a) => Creds::from_auth(a)?,
                    None => Creds::hs(
                        opts.client_id.clone().ok_or(SetupError::NoCredentials)?,
                        opts.client_secret.clone().ok_or(SetupError::NoSecret)?.0,
                    )?,
                };
                let mode = t.mode.unwrap_or(Mode::Sync);
                let receiver = match mode {
                    Mode::Async => Some(
                        self.receiver(t.asynch.listen, t.asynch.public_url.as_deref())
                            .await?,
                    ),
                    Mode::Sync => None,
                };
                (parsed, creds, mode, receiver)
            }
            None => {
                let (sim, receiver) = self.embedded().await?;
                let instance_id = t.instance.clone().unwrap_or_else(|| "default".into());
                let Some((_, inst)) = sim.state.bot.instance(&instance_id) else {
                    let known: Vec<&str> = sim
                        .state
                        .bot
                        .instances
                        .iter()
                        .map(|i| i.id.as_str())
                        .collect();
                    return Err(SetupError::UnknownInstance {
                        id: instance_id,
                        known: known.join(", "),
                    });
                };
                let mode = t.mode.unwrap_or(match inst.mode {
                    crate::sim::Mode::Sync => Mode::Sync,
                    crate::sim::Mode::Async => Mode::Async,
                });
                let info = sim.info();
                let parsed =
                    WebhookUrl::parse(&sim.url(t.version.unwrap_or(Version::V2), &instance_id))?;
                let creds = match &s.auth {
                    Some(a) => Creds::from_auth(a)?,
                    None => Creds::hs(info.client_id, info.client_secret.unwrap_or_default())?,
                };
                (parsed, creds, mode, Some(receiver))
            }
        };
        let version = t.version.unwrap_or(parsed.version);
        let instance = parsed
            .instance
            .clone()
            .or_else(|| t.instance.clone().filter(|i| i != "default"));
        let message_url =
            crate::client::Url::parse(&parsed.endpoints.message(version, instance.as_deref()))
                .map_err(|e| SetupError::MessageUrl(e.message))?;
        let jwe = match s.auth.as_ref().and_then(|a| a.jwe.as_ref()) {
            None => None,
            Some(plan) => Some(Arc::new(self.encrypter(plan, &parsed.endpoints).await?)),
        };
        Ok(Target {
            browser: t.browser.as_deref().map(Arc::from),
            jwe,
            message_url,
            version,
            mode,
            endpoints: parsed.endpoints,
            instance,
            signer: Arc::new(creds.signer),
            claims: creds.claims,
            token_per_request: creds.per_request,
            timeout: t.timeout,
            poll: t.poll,
            quiet: t.asynch.quiet,
            max_wait: t.asynch.max_wait,
            receiver,
            http,
        })
    }
}

impl Environment {
    /// The encrypter `auth.jwe` asks for, its public key read, fetched, or the target's.
    async fn encrypter(
        &self,
        plan: &crate::scenario::JwePlan,
        endpoints: &crate::protocol::urls::Endpoints,
    ) -> Result<crate::protocol::jwt::jwe::Encrypter, SetupError> {
        use crate::scenario::JweKeySource;
        let fetch = |url: String| async move {
            let r = reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| {
                    SetupError::Jwe(format!("cannot fetch the public key from {url}: {e}"))
                })?;
            if !r.status().is_success() {
                return Err(SetupError::Jwe(format!(
                    "{url} answered {} for the public key",
                    r.status()
                )));
            }
            r.text()
                .await
                .map_err(|e| SetupError::Jwe(format!("{url}: {e}")))
        };
        let pem = match &plan.key {
            JweKeySource::File(path) => {
                crate::common::read_limited(path, crate::common::MAX_KEY_BYTES).map_err(
                    |source| SetupError::KeyFile {
                        path: path.clone(),
                        source,
                    },
                )?
            }
            JweKeySource::Url(url) => fetch(url.clone()).await?,
            JweKeySource::Target => match self
                .sim
                .as_ref()
                .filter(|sim| sim.base_url() == endpoints.base)
            {
                Some(sim) => sim.state.bot.jwe_public_pem().ok_or_else(|| {
                    SetupError::Jwe("the embedded simulator's bot has no JWE key pair".into())
                })?,
                None => {
                    fetch(format!(
                        "{}/api/public/bot/{}/jwe/publickey",
                        endpoints.base, endpoints.bot_id
                    ))
                    .await?
                }
            },
        };
        let key = crate::protocol::jwt::jwe::public_key_from_pem(&pem)
            .map_err(|e| SetupError::Jwe(e.to_string()))?;
        Ok(crate::protocol::jwt::jwe::Encrypter {
            key,
            alg: plan.alg,
            enc: plan.enc,
        })
    }
}

struct Creds {
    signer: Signer,
    claims: ClaimsTemplate,
    per_request: bool,
}

impl Creds {
    fn hs(client_id: String, secret: String) -> Result<Creds, SetupError> {
        Ok(Creds {
            signer: Signer::hmac(Alg::HS256, secret.as_bytes())?,
            claims: ClaimsTemplate {
                client_id,
                app_claim: AppClaim::AppId,
                user_identity: true,
                expires_in: Some(Duration::from_secs(3600)),
                jti: false,
                extra: Default::default(),
            },
            per_request: false,
        })
    }

    fn from_auth(a: &crate::scenario::Auth) -> Result<Creds, SetupError> {
        let signer = if a.algorithm.is_hmac() {
            let secret = a
                .client_secret
                .as_ref()
                .ok_or(SetupError::AuthIncomplete("client_secret"))?;
            Signer::hmac(a.algorithm, secret.0.as_bytes())
        } else {
            let path = a
                .private_key_file
                .as_ref()
                .ok_or(SetupError::AuthIncomplete("private_key_file"))?;
            let pem = crate::common::read_bytes_limited(path, crate::common::MAX_KEY_BYTES)
                .map_err(|source| SetupError::KeyFile {
                    path: path.clone(),
                    source,
                })?;
            Signer::rsa_pem(a.algorithm, &pem)
        }?;
        Ok(Creds {
            signer,
            claims: ClaimsTemplate {
                client_id: a.client_id.clone(),
                app_claim: a.app_claim,
                user_identity: a.user_identity,
                expires_in: a.expires_in,
                jti: a.jti,
                extra: Default::default(),
            },
            per_request: a.jti,
        })
    }
}

/// One run of a scenario's conversation, for data row `row`: user 1, iteration row + 1.
async fn run_row(s: &Scenario, target: &Target, row: Option<usize>) -> ScenarioResult {
    Conversation {
        scenario: s,
        target,
    }
    .run(1, row.map(|r| r as u64 + 1).unwrap_or(1), row)
    .await
}

/// The result of a scenario whose target could not be set up.
fn setup_failed(s: &Scenario, row: Option<usize>, error: String) -> ScenarioResult {
    ScenarioResult {
        name: s.name.clone(),
        file: s.file.display().to_string(),
        row: row.map(|r| r + 1),
        user: String::new(),
        passed: false,
        duration_ms: 0.0,
        steps: Vec::new(),
        setup_error: Some(error),
    }
}

/// Quotes a word for a POSIX shell.
fn shell_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// Writes, on a failed run's failed step, the `hookbench replay` command that repeats the
/// conversation up to and including that step against the same target: the embedded
/// simulator (started anew by replay), the scenario's own `target.url`, or `--target`; with
/// credentials from where the run took them. Secrets are never written: a client secret
/// given on the command line is named by its environment variable.
fn set_reproducer(r: &mut ScenarioResult, s: &Scenario, row: Option<usize>, opts: &TestOptions) {
    let Some(step) = r
        .steps
        .iter_mut()
        .find(|st| st.status == super::results::StepStatus::Failed)
    else {
        return;
    };
    let mut cmd = format!(
        "hookbench replay {} --step {}",
        shell_word(&s.file.display().to_string()),
        step.index + 1
    );
    if let Some(row) = row {
        cmd.push_str(&format!(" --row {}", row + 1));
    }
    let mut note = None;
    if s.target.url.is_none() {
        if let Some(t) = &opts.target {
            let shown = crate::protocol::urls::redact_userinfo(t);
            cmd.push_str(&format!(" --target {}", shell_word(&shown)));
            if s.auth.is_none() {
                if let Some(id) = &opts.client_id {
                    cmd.push_str(&format!(" --client-id {}", shell_word(id)));
                }
                note = Some("the client secret from HOOKBENCH_CLIENT_SECRET, as in the run");
            }
        }
    }
    if let Some(n) = note {
        cmd.push_str(&format!("   # {n}"));
    }
    step.reproduce = Some(cmd);
}

/// Runs a scenario's conversation once, as `hookbench test` ran it (same user number and
/// iteration for `row`), against the embedded simulator or the given target: what
/// `hookbench replay` does with the scenario cut after the step to reproduce.
pub async fn replay(s: &Scenario, row: Option<usize>, opts: &TestOptions) -> ScenarioResult {
    let mut env = Environment::default();
    let r = match env.resolve(s, opts).await {
        Ok(target) => run_row(s, &target, row).await,
        Err(e) => setup_failed(s, row, e.to_string()),
    };
    env.shutdown().await;
    r
}

/// Runs every scenario (each data row) in order, one at a time; `on_result` sees each run as
/// it finishes.
pub async fn run(
    scenarios: &[Scenario],
    opts: &TestOptions,
    on_result: impl FnMut(&ScenarioResult),
) -> TestReport {
    run_jobs(scenarios, opts, 1, on_result).await
}

/// Runs every scenario (each data row) with up to `jobs` conversations at once. Results come
/// to `on_result`, and into the report, in the order of the files and rows, whatever order
/// they finish in: the output of a parallel run reads like that of a serial one.
pub async fn run_jobs(
    scenarios: &[Scenario],
    opts: &TestOptions,
    jobs: usize,
    mut on_result: impl FnMut(&ScenarioResult),
) -> TestReport {
    use futures_util::StreamExt;
    let started_at = crate::protocol::ids::created_on_now();
    let started = Instant::now();
    let mut env = Environment::default();
    // Targets are resolved one scenario at a time (the embedded simulator starts once).
    let mut targets = Vec::with_capacity(scenarios.len());
    for s in scenarios {
        targets.push(env.resolve(s, opts).await);
    }
    let runs = scenarios
        .iter()
        .zip(&targets)
        .flat_map(|(s, target)| {
            let rows: Vec<Option<usize>> = match (&s.data, target) {
                (Some(d), Ok(_)) => (0..d.rows.len()).map(Some).collect(),
                _ => vec![None],
            };
            rows.into_iter().map(move |row| (s, target, row))
        })
        .map(|(s, target, row)| async move {
            match target {
                Ok(target) => {
                    let mut r = run_row(s, target, row).await;
                    set_reproducer(&mut r, s, row, opts);
                    r
                }
                Err(e) => setup_failed(s, None, e.to_string()),
            }
        });
    let mut results = Vec::new();
    let mut finished = futures_util::stream::iter(runs).buffered(jobs.max(1));
    while let Some(r) = finished.next().await {
        on_result(&r);
        results.push(r);
    }
    drop(finished);
    let unmatched = env.unmatched_deliveries();
    env.shutdown().await;
    let mut report = TestReport::new(
        started_at,
        started.elapsed().as_secs_f64() * 1000.0,
        results,
    );
    report.summary.unmatched_deliveries = unmatched;
    report
}
