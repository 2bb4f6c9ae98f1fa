//! `hookbench certify`, `keygen` and `verify`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::Exit;
use crate::certify::bundle::{self, Key};
use crate::certify::catalogue::{self, Level, Profile, Side};
use crate::certify::channel::ChannelTarget;
use crate::certify::client::{ClientRun, ClientSession};
use crate::certify::{sign, ChannelRun, CheckStatus, Product, SimTarget};
use crate::client::{HttpClient, Receiver};
use crate::protocol::urls::{Endpoints, WebhookUrl};
use crate::protocol::Version;

/// `certify`'s subcommands.
#[derive(Debug, Args)]
pub struct CertifyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CertifyCommand,
}

/// `certify list` and `certify channel`.
#[derive(Debug, Subcommand)]
pub enum CertifyCommand {
    /// Print the catalogue of checks.
    List(ListArgs),
    /// Grade a channel (the embedded simulator unless --target is given) and write a signed
    /// certificate bundle.
    Channel(Box<ChannelArgs>),
    /// Start the simulator in certification mode, print the plan a client must follow, grade
    /// the client that follows it, and write a signed certificate bundle.
    Client(Box<ClientArgs>),
}

/// What `certify channel` and `certify client` share: the profile, the product the
/// certificate names, the signing key and the bundle.
#[derive(Debug, Args)]
pub struct CertArgs {
    /// The profile (v1-sync, v2-poll, v2-nopoll, v2-async, upload, auth, full).
    #[arg(long, value_parser = profile)]
    pub profile: Profile,
    /// The product's name, as the certificate states it.
    #[arg(long)]
    pub product: String,
    /// The product's version.
    #[arg(long)]
    pub product_version: String,
    /// Ed25519 private key (PKCS#8 PEM, from `hookbench keygen`); without it an ephemeral
    /// key signs and the bundle says it is self-signed.
    #[arg(long, value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
    /// The bundle's folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also pack the bundle into DIR.tar.gz.
    #[arg(long)]
    pub archive: bool,
    /// No colours.
    #[arg(long)]
    pub no_color: bool,
}

impl CertArgs {
    /// The product, once both its name and version are given.
    fn product(&self) -> Result<Product, Exit> {
        if self.product.trim().is_empty() || self.product_version.trim().is_empty() {
            eprintln!(
                "error: --product and --product-version must not be empty: the certificate names them"
            );
            return Err(Exit::Usage);
        }
        Ok(Product {
            name: self.product.clone(),
            version: self.product_version.clone(),
        })
    }

    /// The signing key: the given one, else an ephemeral key.
    fn key(&self) -> Result<Key, Exit> {
        match &self.signing_key {
            Some(p) => read_key(p).map_err(|e| {
                eprintln!("error: {e}");
                Exit::Usage
            }),
            None => Ok(Key::Ephemeral(sign::generate())),
        }
    }
}

/// `certify client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Profile, product, signing and the bundle.
    #[command(flatten)]
    pub cert: CertArgs,
    /// Where the simulator listens (port 0 picks a free one; the first line printed says).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// The client's POST_URL, where async messages go (v2-async and full).
    #[arg(long, value_name = "URL")]
    pub post_url: Option<String>,
    /// How long to wait for the client to finish the plan; steps never performed fail.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub timeout: crate::common::DurationSpec,
}

/// A side on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SideArg {
    /// The platform side.
    Channel,
    /// The client side.
    Client,
}

impl From<SideArg> for Side {
    fn from(s: SideArg) -> Side {
        match s {
            SideArg::Channel => Side::Channel,
            SideArg::Client => Side::Client,
        }
    }
}

fn profile(text: &str) -> Result<Profile, String> {
    Profile::parse(text).ok_or_else(|| {
        let all: Vec<&str> = Profile::ALL.iter().map(|p| p.as_str()).collect();
        format!("unknown profile `{text}`: one of {}", all.join(", "))
    })
}

/// `certify list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this side.
    #[arg(long, value_enum)]
    pub side: Option<SideArg>,
    /// Only this profile (v1-sync, v2-poll, v2-nopoll, v2-async, upload, auth, full).
    #[arg(long, value_parser = profile)]
    pub profile: Option<Profile>,
    /// As JSON.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// The whole catalogue as the Markdown tables of docs/conformance.md.
    #[arg(long)]
    pub markdown: bool,
}

/// `certify channel`.
#[derive(Debug, Args)]
pub struct ChannelArgs {
    /// Profile, product, signing and the bundle.
    #[command(flatten)]
    pub cert: CertArgs,
    /// V2 webhook URL of a sync instance with polling on (default: the embedded simulator).
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// V1 URL (default: derived from --target).
    #[arg(long, value_name = "URL")]
    pub v1_url: Option<String>,
    /// V2 URL of a sync instance with polling off.
    #[arg(long, value_name = "URL")]
    pub nopoll_url: Option<String>,
    /// Client id of a key-pair app (RS256), for the RS check; with --private-key-file.
    #[arg(long, requires = "private_key_file")]
    pub rsa_client_id: Option<String>,
    /// The key-pair app's RSA private key (PEM).
    #[arg(long, value_name = "PEM", requires = "rsa_client_id")]
    pub private_key_file: Option<PathBuf>,
    /// V2 URL of a rate-limited sync instance (the 429 check).
    #[arg(long, value_name = "URL")]
    pub rate_limited_url: Option<String>,
    /// V2 URL of an async instance whose POST_URL reaches --post-url-listen.
    #[arg(long, value_name = "URL")]
    pub async_url: Option<String>,
    /// Where to receive async deliveries (the async instance's POST_URL must reach it).
    #[arg(long, value_name = "ADDR")]
    pub post_url_listen: Option<SocketAddr>,
    /// Client id of the app.
    #[arg(long, env = "HOOKBENCH_CLIENT_ID")]
    pub client_id: Option<String>,
    /// Client secret of the app (HS256/HS512).
    #[arg(long, env = "HOOKBENCH_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Your own scenario files or folders, run against the same target as functional evidence
    /// in the bundle (every one must pass).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub scenarios: Vec<PathBuf>,
    /// At most this many checks at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
}

/// `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where the private key goes (PKCS#8 PEM, mode 0600); the public key goes to FILE.pub.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bundle's folder, or its `.tar.gz`.
    pub bundle: PathBuf,
    /// The signer's public key (SPKI PEM); without it the key in the bundle is used, which
    /// proves the files are intact but not who signed them.
    #[arg(long, value_name = "FILE")]
    pub public_key: Option<PathBuf>,
}

/// `hookbench certify …`.
pub async fn run(args: CertifyArgs) -> Exit {
    match args.command {
        CertifyCommand::List(a) => list(a),
        CertifyCommand::Channel(a) => channel(*a).await,
        CertifyCommand::Client(a) => client(*a).await,
    }
}

fn list(a: ListArgs) -> Exit {
    if a.markdown {
        out_part!("{}", catalogue::markdown());
        return Exit::Ok;
    }
    let side = a.side.map(Side::from);
    let profile = a.profile.unwrap_or(Profile::Full);
    let checks: Vec<&catalogue::Check> = catalogue::CHECKS
        .iter()
        .filter(|c| side.is_none_or(|s| c.side == s) && c.in_profile(profile))
        .collect();
    if a.json {
        let doc = serde_json::json!({
            "catalogue_version": catalogue::CATALOGUE_VERSION,
            "protocol_revision": catalogue::PROTOCOL_REVISION,
            "checks": checks,
        });
        out!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Exit::Ok;
    }
    out!(
        "hookbench conformance catalogue {} (protocol {}): {} check(s)",
        catalogue::CATALOGUE_VERSION,
        catalogue::PROTOCOL_REVISION,
        checks.len()
    );
    let profiles_of = |c: &catalogue::Check| {
        c.profiles
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    let width = checks
        .iter()
        .map(|c| profiles_of(c).len())
        .max()
        .unwrap_or(0);
    for c in checks {
        out!(
            "{:<16} {:<11} {:<width$} {}{}",
            c.id,
            match c.level {
                Level::Required => "required",
                Level::Recommended => "recommended",
                Level::Review => "review",
            },
            profiles_of(c),
            c.title,
            if c.gap { " [gap]" } else { "" }
        );
    }
    Exit::Ok
}

fn read_key(path: &Path) -> Result<Key, String> {
    let pem = crate::common::read_limited(path, 64 * 1024)
        .map_err(|e| format!("--signing-key {}: {e}", path.display()))?;
    sign::read_private(&pem)
        .map(Key::Given)
        .map_err(|e| format!("--signing-key {}: {e}", path.display()))
}

async fn channel(a: ChannelArgs) -> Exit {
    let (key, product) = match (a.cert.key(), a.cert.product()) {
        (Ok(k), Ok(p)) => (k, p),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let http = HttpClient::new();
    let mut embedded = None;
    let (target, receiver) = match &a.target {
        None => match SimTarget::start(crate::sim::Bot::demo()).await {
            Ok(s) => {
                let pair = (s.target.clone(), Some(s.receiver.clone()));
                embedded = Some(s);
                pair
            }
            Err(e) => {
                eprintln!("error: cannot start the embedded simulator: {e}");
                return Exit::Usage;
            }
        },
        Some(url) => match remote_target(&a, url).await {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage;
            }
        },
    };
    let shown = crate::protocol::urls::redact_userinfo(&target.endpoints.base);
    out!(
        "hookbench certify channel --profile {}: {} {} against {shown}",
        a.cert.profile.as_str(),
        product.name,
        product.version
    );
    let run = ChannelRun {
        profile: a.cert.profile,
        product,
        target,
        jobs: usize::from(a.jobs),
        timeout: Duration::from_secs(30),
    };
    // The owner's scenarios are read before anything runs: a bad file is a usage error.
    let scenarios = if a.scenarios.is_empty() {
        Vec::new()
    } else {
        let files = match super::test::expand(&a.scenarios) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: --scenarios: {e}");
                return Exit::Usage;
            }
        };
        match super::test::load_all(&files) {
            Ok(s) => s,
            Err(diags) => {
                for d in diags {
                    eprintln!("{d}");
                }
                return Exit::Usage;
            }
        }
    };
    let c = crate::certify::certify_channel(&run, http, receiver.clone()).await;
    let c = if scenarios.is_empty() {
        c
    } else {
        // Against the same target: the given one with the same credentials, else the
        // embedded simulator (the demo bot) as `hookbench test` runs it.
        let opts = crate::engine::suite::TestOptions {
            target: a.target.clone(),
            client_id: a.client_id.clone(),
            client_secret: a.client_secret.clone().map(crate::scenario::Secret),
        };
        let report = crate::engine::suite::run_jobs(&scenarios, &opts, 1, |_| {}).await;
        c.with_scenarios(crate::certify::ScenarioEvidence::from_report(&report))
    };
    if let Some(sim) = embedded {
        sim.stop().await;
    } else if let Some(r) = &receiver {
        r.stop();
    }
    finish(&c, &key, &a.cert)
}

/// Prints every check, writes the bundle (and its archive), prints the result; the exit code
/// comes from the certification.
fn finish(c: &crate::certify::Certification, key: &Key, cert: &CertArgs) -> Exit {
    let out = cert.out.as_path();
    let color = !cert.no_color && std::io::IsTerminal::is_terminal(&std::io::stdout());
    for k in &c.checks {
        let (mark, paint) = match k.result {
            CheckStatus::Passed => ("PASSED ", "32"),
            CheckStatus::Failed => ("FAILED ", "31"),
            CheckStatus::Warning => ("WARNING", "33"),
            CheckStatus::Skipped => ("SKIPPED", "90"),
            CheckStatus::Review => ("REVIEW ", "36"),
        };
        let mark = if color {
            format!("\x1b[{paint}m{mark}\x1b[0m")
        } else {
            mark.to_string()
        };
        out!("  {mark} {:<16} {}", k.id, k.title);
        if let Some(r) = &k.reason {
            out!("          {r}");
        }
    }
    let html = match crate::reports::certificate::render(c, &key.describe()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: cannot render certificate.html: {e}");
            return Exit::Usage;
        }
    };
    let rendered = bundle::Rendered {
        junit: crate::reports::junit::certification(c),
        html,
    };
    let written = match bundle::write(out, c, &rendered, key) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    if cert.archive {
        match bundle::archive(out) {
            Ok(p) => out!("archive: {}", p.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Usage;
            }
        }
    }
    for sc in &c.scenarios {
        out!(
            "  {} {}",
            if sc.passed { "PASSED " } else { "FAILED " },
            sc.label()
        );
        if let Some(f) = &sc.failure {
            out!("          {f}");
        }
    }
    let s = &c.summary;
    out!(
        "{}: {} passed, {} failed, {} warnings, {} skipped{}; bundle {} ({} files{})",
        c.result.as_str(),
        s.passed,
        s.failed,
        s.warning,
        s.skipped,
        if s.review > 0 {
            format!(", {} for review", s.review)
        } else {
            String::new()
        },
        out.display(),
        written.len(),
        if matches!(key, Key::Ephemeral(_)) {
            ", self-signed"
        } else {
            ""
        }
    );
    Exit::from(c)
}

async fn client(a: ClientArgs) -> Exit {
    let (key, product) = match (a.cert.key(), a.cert.product()) {
        (Ok(k), Ok(p)) => (k, p),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if let Some(u) = &a.post_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) || u.contains('@') {
            eprintln!("error: --post-url must be an http(s) URL without credentials");
            return Exit::Usage;
        }
    }
    let run = ClientRun {
        profile: a.cert.profile,
        product,
        listen: a.listen,
        post_url: a.post_url.clone(),
        timeout: a.timeout.get(),
        quiet: Duration::from_secs(4),
    };
    let session = match ClientSession::start(&run, crate::sim::Bot::demo()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    // The first line: everything a client (or a person) needs, then the plan.
    out!("{}", session.announcement);
    eprintln!(
        "hookbench certify client --profile {}: waiting up to {:?} for the plan on {} (Ctrl-C grades what came so far)",
        a.cert.profile.as_str(),
        run.timeout,
        session.base_url()
    );
    let mut signals = super::StopSignals::install();
    let c = session
        .finish(&run, async {
            signals.wait().await;
            eprintln!("stopped: grading what the client did so far");
        })
        .await;
    finish(&c, &key, &a.cert)
}

async fn remote_target(
    a: &ChannelArgs,
    url: &str,
) -> Result<(ChannelTarget, Option<Receiver>), String> {
    let parsed = WebhookUrl::parse(url).map_err(|e| format!("--target: {e}"))?;
    if parsed.version != Version::V2 {
        return Err("--target: give the V2 URL of a sync instance with polling on (…/chatbot/v2/webhook/{botId}); --v1-url names the V1 one".into());
    }
    let (Some(client_id), Some(secret)) = (&a.client_id, &a.client_secret) else {
        return Err("a target needs --client-id and --client-secret (or HOOKBENCH_CLIENT_ID / HOOKBENCH_CLIENT_SECRET)".into());
    };
    if secret.is_empty() {
        return Err("--client-secret is empty".into());
    }
    for (flag, u) in [
        ("--v1-url", &a.v1_url),
        ("--nopoll-url", &a.nopoll_url),
        ("--async-url", &a.async_url),
        ("--rate-limited-url", &a.rate_limited_url),
    ] {
        if let Some(u) = u {
            WebhookUrl::parse(u).map_err(|e| format!("{flag}: {e}"))?;
        }
    }
    let receiver = match (&a.async_url, a.post_url_listen) {
        (Some(_), Some(addr)) => Some(
            Receiver::start(addr, None)
                .await
                .map_err(|e| format!("--post-url-listen {addr}: {e}"))?,
        ),
        (Some(_), None) => {
            return Err("--async-url needs --post-url-listen ADDR: where the async instance's POST_URL delivers".into())
        }
        _ => None,
    };
    let instance = parsed.instance.clone();
    Ok((
        ChannelTarget {
            v1: a
                .v1_url
                .clone()
                .or_else(|| Some(parsed.endpoints.message(Version::V1, instance.as_deref()))),
            v2_poll: Some(parsed.message_url()),
            v2_nopoll: a.nopoll_url.clone(),
            v2_async: a.async_url.clone(),
            v2_limited: a.rate_limited_url.clone(),
            rsa_app: match (&a.rsa_client_id, &a.private_key_file) {
                (Some(id), Some(path)) => Some((
                    id.clone(),
                    crate::common::read_bytes_limited(path, 64 * 1024)
                        .map_err(|e| format!("--private-key-file {}: {e}", path.display()))?,
                )),
                _ => None,
            },
            upload_channel: Some(Endpoints::channel_type(instance.as_deref()).to_string()),
            endpoints: parsed.endpoints,
            client_id: client_id.clone(),
            client_secret: secret.clone(),
        },
        receiver,
    ))
}

/// `hookbench keygen`.
pub fn keygen(a: KeygenArgs) -> Exit {
    let key = sign::generate();
    let (private, public) = match (
        sign::private_pem(&key),
        sign::public_pem(&key.verifying_key()),
    ) {
        (Ok(p), Ok(q)) => (p, q),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let pub_path = PathBuf::from(format!("{}.pub", a.out.display()));
    if let Err(e) = write_private(&a.out, &private) {
        eprintln!("error: cannot write {}: {e}", a.out.display());
        return Exit::Usage;
    }
    if let Err(e) = std::fs::write(&pub_path, public) {
        eprintln!("error: cannot write {}: {e}", pub_path.display());
        return Exit::Usage;
    }
    out!(
        "Ed25519 key {}: private {}, public {}",
        sign::key_id(&key.verifying_key()),
        a.out.display(),
        pub_path.display()
    );
    Exit::Ok
}

fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(pem.as_bytes())
}

/// `hookbench verify`.
pub fn verify(a: VerifyArgs) -> Exit {
    let key = match &a.public_key {
        Some(p) => {
            let pem = match crate::common::read_limited(p, 64 * 1024) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: --public-key {}: {e}", p.display());
                    return Exit::Usage;
                }
            };
            match sign::read_public(&pem) {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("error: --public-key {}: {e}", p.display());
                    return Exit::Usage;
                }
            }
        }
        None => None,
    };
    let mut unpacked = None;
    let dir = if a.bundle.is_file() {
        let into = std::env::temp_dir().join(format!(
            "hookbench-verify-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        match bundle::unpack(&a.bundle, &into) {
            Ok(d) => {
                unpacked = Some(into);
                d
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&into);
                out!("NOT VERIFIED: {e}");
                return Exit::Failed;
            }
        }
    } else {
        a.bundle.clone()
    };
    let verdict = bundle::verify(&dir, key.as_ref());
    if let Some(tmp) = unpacked {
        let _ = std::fs::remove_dir_all(tmp);
    }
    match verdict {
        Ok(v) => {
            out!(
                "verified: {} certificate for {} ({}), signed by Ed25519 key {}{}",
                v.result.as_str(),
                v.product,
                v.scope,
                v.key_id,
                match (v.self_asserted, v.self_signed) {
                    (_, true) => "; self-signed (a key made for this bundle): proves the files are intact, not who issued them",
                    (true, false) => "; key taken from the bundle (give --public-key to check who signed)",
                    (false, false) => "",
                }
            );
            Exit::Ok
        }
        Err(e) => {
            out!("NOT VERIFIED: {e}");
            Exit::Failed
        }
    }
}
