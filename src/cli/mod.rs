//! The command line. Arguments are parsed by clap, checked, then handed to the library; every
//! failure maps to one of the documented exit codes.

/// Writes a line to stdout, ignoring a closed pipe (`hookbench run … | head`): what the
/// command prints is a view of its results, and losing the reader must not turn a verdict into
/// a panic (exit 101) or stop the reports being written.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// [`out!`] without the newline.
macro_rules! out_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub mod certify;
pub mod import;
pub mod kube;
pub mod merge;
pub mod run;
pub mod sim;
pub mod test;
pub mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::error::Exit;

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// The target options `test` and `run` share.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Webhook URL for scenarios without their own `target.url` (default: the embedded simulator).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Client id for targets whose scenario has no `auth:`.
    #[arg(long, env = "HOOKBENCH_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client secret for targets whose scenario has no `auth:`.
    #[arg(long, env = "HOOKBENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
}

impl TargetArgs {
    /// As engine options.
    pub fn options(&self) -> crate::engine::suite::TestOptions {
        crate::engine::suite::TestOptions {
            target: self.target.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone().map(crate::scenario::Secret),
        }
    }
}

/// hookbench: load testing and conformance for chatbot Webhook channels (V1 and V2).
#[derive(Debug, Parser)]
#[command(name = "hookbench", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (also RUST_LOG): error, warn, info, debug, trace.
    #[arg(long, global = true, default_value = "info", env = "HOOKBENCH_LOG")]
    pub log: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the reference platform simulator (the demo bot unless --bot is given).
    Sim(sim::SimArgs),
    /// Run a scenario as a load test: many users, live progress, thresholds, reports.
    Run(run::RunArgs),
    /// Render the HTML report again from a run's results.json.
    Report(run::ReportArgs),
    /// Compare two runs' results.json; exit 1 on a regression beyond the tolerances.
    Compare(run::CompareArgs),
    /// Convert other tools' test files into scenarios (`import botium`).
    Import(import::ImportArgs),
    /// Merge the results of a run's shards into the whole run's, judged by its thresholds.
    Merge(merge::MergeArgs),
    /// Print Kubernetes manifests that run a scenario as an Indexed Job of N shards.
    Kube(kube::KubeArgs),
    /// Run scenarios once each and report pass or fail (exit 1 on a failed check).
    Test(test::TestArgs),
    /// Replay a scenario's conversation up to a step (the reproducer `test` prints).
    Replay(test::ReplayArgs),
    /// Check scenario files without running them.
    Validate(test::ValidateArgs),
    /// Print a signed JWT for a user (the demo bot's credentials unless given).
    Token(token::TokenArgs),
    /// Conformance certification: the catalogue of checks, and signed certificate bundles.
    Certify(certify::CertifyArgs),
    /// Write a new Ed25519 signing key (PKCS#8 PEM) and its public key (FILE.pub).
    Keygen(certify::KeygenArgs),
    /// Check a certificate bundle: signature, every file's digest, versions, required checks.
    Verify(certify::VerifyArgs),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
            let _ = e.print();
            return code.into();
        }
    };
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Usage.into();
        }
    };
    let exit = runtime.block_on(async {
        match cli.command {
            Command::Sim(args) => sim::run(args).await,
            Command::Token(args) => token::run(args),
            Command::Test(args) => test::test(args).await,
            Command::Run(args) => run::run(args).await,
            Command::Report(args) => run::report(args),
            Command::Compare(args) => run::compare(args),
            Command::Merge(args) => merge::merge(args),
            Command::Import(args) => import::import(args),
            Command::Kube(args) => kube::kube(args),
            Command::Validate(args) => test::validate(args),
            Command::Replay(args) => test::replay(args).await,
            Command::Certify(args) => certify::run(args).await,
            Command::Keygen(args) => certify::keygen(args),
            Command::Verify(args) => certify::verify(args),
        }
    });
    exit.into()
}

fn init_logging(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only on a terminal, and never with NO_COLOR or a command's --no-color.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none()
        && !std::env::args_os().any(|a| a == "--no-color");
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Ctrl-C and SIGTERM, with their handlers installed as soon as this is made: a signal that
/// arrives before the first wait is not lost and does not kill the process.
#[derive(Debug)]
pub struct StopSignals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Installs the handlers.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Resolves at the next Ctrl-C or SIGTERM.
    pub async fn wait(&mut self) {
        #[cfg(unix)]
        {
            let int = async {
                match self.int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let term = async {
                match self.term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = int => {},
                () = term => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
