//! The reference simulator of the platform's Webhook channel (`hookbench sim`): V1 and V2,
//! sync, polling and async, JWT, uploads, rate limits, and fault and latency injection. It is
//! the embedded default target of every command and what the tests run against.

pub mod answer;
pub mod bodies;
pub mod bot;
mod bot_check;
pub mod botmeta;
pub mod conversation;
pub mod delivery;
pub mod faults;
pub mod hot;
pub mod metrics;
pub mod notify;
pub mod observe;
pub mod record;
pub mod serve;
pub mod server;
pub mod state;
pub mod upload;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use bot::{Bot, BotError, Mode};
pub use state::SimState;

use crate::protocol::{Endpoints, Version};

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The bot served.
    pub bot: Bot,
    /// Overrides POST_URL of every async instance.
    pub post_url: Option<String>,
    /// Records every request as a JSON line.
    pub record: Option<PathBuf>,
    /// How long open connections may finish after shutdown starts.
    pub grace: Duration,
    /// Sees (and may answer) every request and delivery: certification mode.
    pub observer: Option<Arc<dyn observe::Observer>>,
}

impl SimConfig {
    /// The demo bot with default settings.
    pub fn demo() -> Self {
        Self::new(Bot::demo())
    }

    /// A bot with default settings.
    pub fn new(bot: Bot) -> Self {
        Self {
            bot,
            post_url: None,
            record: None,
            grace: Duration::from_secs(5),
            observer: None,
        }
    }
}

/// One instance as `--print-config json` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InstanceInfo {
    /// Instance id.
    pub id: String,
    /// V1 message URL.
    pub v1_url: String,
    /// V2 message URL.
    pub v2_url: String,
    /// sync or async.
    pub mode: Mode,
    /// V2 polling.
    pub polling: bool,
}

/// What a client needs to talk to a running simulator (`--print-config json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SimInfo {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// `st-…`.
    pub bot_id: String,
    /// First app's client id.
    pub client_id: String,
    /// First app's secret (none for key-pair apps).
    pub client_secret: Option<String>,
    /// Every instance.
    pub instances: Vec<InstanceInfo>,
    /// Every app: what any client needs to sign (and encrypt) its tokens.
    pub apps: Vec<AppInfo>,
}

/// One app in `--print-config`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AppInfo {
    /// `cs-…`.
    pub client_id: String,
    /// Its secret (none for key-pair apps).
    pub client_secret: Option<String>,
    /// Whether it takes JWE-encrypted tokens: `off`, `optional` or `required`.
    pub jwe: bot::JweMode,
    /// The bot's JWE public key (SPKI PEM) for apps that take JWE.
    pub public_key_pem: Option<String>,
}

/// A simulator serving on a socket.
#[derive(Debug)]
pub struct RunningSim {
    /// Bound address.
    pub addr: SocketAddr,
    /// Shared state (sessions, metrics) for tests and embedding.
    pub state: Arc<SimState>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    /// The simulator's own runtime, when it was started on threads of its own.
    runtime: Option<tokio::runtime::Runtime>,
}

/// The name of the threads of a simulator started with [`RunningSim::start_isolated`], by
/// which a load run tells the embedded simulator's CPU time from the generator's.
pub const SIM_THREAD_NAME: &str = "hookbench-sim";

impl RunningSim {
    /// Like [`RunningSim::start`], on a runtime and threads of its own (named
    /// [`SIM_THREAD_NAME`]), so an embedding process can account the simulator's CPU time
    /// apart from its own.
    pub async fn start_isolated(
        config: SimConfig,
        listen: SocketAddr,
    ) -> std::io::Result<RunningSim> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(SIM_THREAD_NAME)
            .enable_all()
            .build()?;
        let started = runtime
            .spawn(RunningSim::start(config, listen))
            .await
            .map_err(std::io::Error::other)?;
        match started {
            Ok(mut sim) => {
                sim.runtime = Some(runtime);
                Ok(sim)
            }
            Err(e) => {
                runtime.shutdown_background();
                Err(e)
            }
        }
    }

    /// Binds `listen` (port 0 picks a free port) and starts serving.
    pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<RunningSim> {
        let mut bot = config.bot;
        if let Some(url) = &config.post_url {
            for inst in bot.instances.iter_mut().filter(|i| i.mode == Mode::Async) {
                inst.post_url = Some(url.clone());
            }
        }
        let mut state = SimState::new(bot);
        state.observer = config.observer.clone();
        let state = Arc::new(state);
        let mut router = server::router(state.clone());
        // The hot routes skip the router only when it has no layer of its own to see them.
        let hot = (config.observer.is_none() && config.record.is_none()).then(|| state.clone());
        if let Some(o) = &config.observer {
            router = router.layer(axum::middleware::from_fn_with_state(
                o.clone(),
                observe::observe,
            ));
        }
        if let Some(path) = &config.record {
            let rec = record::Recorder::create(path)?;
            router = router.layer(axum::middleware::from_fn_with_state(rec, record::record));
        }
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let grace = config.grace;
        let idle = state.bot.settings.connection_idle;
        let server = tokio::spawn(async move {
            serve::serve(
                listener,
                router,
                hot,
                async {
                    let _ = rx.await;
                },
                grace,
                idle,
            )
            .await;
        });
        let sweep_state = state.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                sweep_state.sweep(Instant::now(), unix);
            }
        });
        Ok(RunningSim {
            addr,
            state,
            shutdown: Some(tx),
            server,
            sweeper,
            runtime: None,
        })
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// URLs for the served bot.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints::new(&self.base_url(), &self.state.bot.id)
    }

    /// The message URL of an instance.
    pub fn url(&self, version: Version, instance: &str) -> String {
        let inst = self.state.bot.instance(instance).map(|(_, i)| i);
        let segment = inst.filter(|i| !i.first).map(|i| i.id.as_str());
        self.endpoints().message(version, segment)
    }

    /// The connection details `--print-config json` prints.
    pub fn info(&self) -> SimInfo {
        let bot = &self.state.bot;
        let app = &bot.apps[0];
        SimInfo {
            base_url: self.base_url(),
            bot_id: bot.id.clone(),
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone(),
            apps: bot
                .apps
                .iter()
                .map(|a| AppInfo {
                    client_id: a.client_id.clone(),
                    client_secret: a.client_secret.clone(),
                    jwe: a.jwe,
                    public_key_pem: (a.jwe != bot::JweMode::Off)
                        .then(|| bot.jwe_public_pem())
                        .flatten(),
                })
                .collect(),
            instances: bot
                .instances
                .iter()
                .map(|i| InstanceInfo {
                    id: i.id.clone(),
                    v1_url: self.url(Version::V1, &i.id),
                    v2_url: self.url(Version::V2, &i.id),
                    mode: i.mode,
                    polling: i.polling,
                })
                .collect(),
        }
    }

    /// Stops accepting, lets open requests finish (up to the grace period), then returns.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.sweeper.abort();
        let _ = (&mut self.server).await;
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.sweeper.abort();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
