//! `hookbench sim`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::Exit;
use crate::sim::{Bot, RunningSim, SimConfig};

/// Output formats of `--print-config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConfigFormat {
    /// One JSON object on the first line of stdout.
    Json,
}

/// Arguments of `hookbench sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Bot definition file (`*.bot.yaml`); the built-in demo bot when omitted.
    #[arg(long, value_name = "FILE")]
    pub bot: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// POST_URL for every async channel instance.
    #[arg(long, value_name = "URL")]
    pub post_url: Option<String>,
    /// Print the connection details (base URL, bot, credentials, instance URLs) first.
    #[arg(long, value_name = "FORMAT")]
    pub print_config: Option<ConfigFormat>,
    /// Record every inbound request as one JSON line (token redacted).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// How long open requests may finish after Ctrl-C.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub grace: crate::common::DurationSpec,
    /// Drop sessions idle this long (the bot's `settings.session_idle`, default 15m): soaks
    /// of many distinct users shorten it to hold memory to the live sessions.
    #[arg(long, value_name = "DURATION")]
    pub session_idle: Option<crate::common::DurationSpec>,
}

/// Runs the simulator until Ctrl-C or SIGTERM.
pub async fn run(args: SimArgs) -> Exit {
    let bot = match &args.bot {
        None => Bot::demo(),
        Some(path) => match Bot::from_file(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{e}");
                return Exit::Usage;
            }
        },
    };
    if let Some(url) = &args.post_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            eprintln!("error: --post-url `{url}` is not an http(s) URL");
            return Exit::Usage;
        }
    }
    let mut bot = bot;
    if let Some(idle) = args.session_idle {
        if idle.get().is_zero() {
            eprintln!("error: --session-idle must be above 0s");
            return Exit::Usage;
        }
        bot.settings.session_idle = idle.get();
    }
    let config = SimConfig {
        bot,
        post_url: args.post_url.clone(),
        record: args.record.clone(),
        grace: args.grace.get().max(Duration::from_millis(1)),
        observer: None,
    };
    let mut signals = super::StopSignals::install();
    let sim = match RunningSim::start(config, args.listen).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return Exit::Usage;
        }
    };
    let info = sim.info();
    if args.print_config == Some(ConfigFormat::Json) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", serde_json::to_string(&info).unwrap_or_default());
        let _ = out.flush();
    }
    tracing::info!(base_url = %info.base_url, bot = %info.bot_id, "simulator serving; Ctrl-C to stop");
    for i in &info.instances {
        tracing::info!(instance = %i.id, mode = ?i.mode, polling = i.polling, v2 = %i.v2_url, "channel instance");
    }
    signals.wait().await;
    tracing::info!("shutting down");
    sim.shutdown().await;
    Exit::Ok
}
