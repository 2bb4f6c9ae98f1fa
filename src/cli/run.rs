//! `hookbench run` (load) and `hookbench report` (HTML again from JSON).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::Exit;
use crate::engine::load::{self, report::LoadReport, StopSignal};
use crate::engine::suite::Environment;
use crate::error::Error;
use crate::reports::{html, junit, terminal};

/// Arguments of `hookbench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Closed model: this many concurrent users (overrides `load:`).
    #[arg(long, conflicts_with = "rate", value_name = "N")]
    pub users: Option<String>,
    /// Open model: new conversations per second (`20`, `20/s`, `600/m`).
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// Open model: Poisson (exponential) spacing of arrivals.
    #[arg(long)]
    pub poisson: bool,
    /// Open model: drop (and count) starts beyond this many conversations in flight.
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<String>,
    /// How long to start conversations.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Stop after this many conversations.
    #[arg(long, value_name = "N")]
    pub iterations: Option<String>,
    /// How long conversations in flight may finish after the stop.
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<String>,
    /// Where to send.
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// Output folder (default `reports/<time>-<name>/`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No live progress.
    #[arg(long)]
    pub quiet: bool,
    /// No colours.
    #[arg(long)]
    pub no_color: bool,
    /// Give each user (closed) or conversation (open) connections of its own instead of one
    /// shared keep-alive pool.
    #[arg(long)]
    pub connection_per_user: bool,
    /// At most this many connections in the shared HTTP/1.1 pool (a client's pool size);
    /// requests beyond it wait. Default: what the file-descriptor limit allows.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<String>,
    /// Without thresholds, do not fail the run on failed turns (the default gate); the run
    /// then fails only when nothing ran or it was stopped by request.
    #[arg(long)]
    pub no_default_gate: bool,
    /// Speak HTTP/2 (h2c, prior knowledge) to plain-text targets: users multiplexed over few
    /// connections instead of HTTP/1.1 keep-alive.
    #[arg(long)]
    pub http2: bool,
    /// Serve live metrics in Prometheus text format at http://ADDR/metrics during the run.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Run one part of a run split over machines: shard INDEX (from 0) of COUNT.
    #[arg(long, value_name = "INDEX/COUNT", conflicts_with = "shards")]
    pub shard: Option<String>,
    /// Run one of COUNT shards, its index from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job).
    #[arg(long, value_name = "COUNT")]
    pub shards: Option<String>,
    /// Wait until this time (RFC 3339 or Unix seconds) before starting, so shards begin
    /// together; a shard started later says so and starts at once.
    #[arg(long, value_name = "TIME")]
    pub start_at: Option<String>,
    /// The run's id, the same in every shard (generated when not given).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Also print the whole results document as one last line on standard output (for
    /// `kubectl logs … | hookbench merge -`).
    #[arg(long)]
    pub results_stdout: bool,
}

/// The live metrics exposition, updated once a second.
fn prometheus(p: &load::report::Point, total: &load::metrics::Sample) -> String {
    use crate::common::prometheus::{Exposition, Kind};
    let c = &total.counts;
    let h = &total.dists.turn;
    let mut e = Exposition::new();
    e.single(
        "hookbench_run_turns_total",
        Kind::Counter,
        "Turns completed.",
        c.turns as f64,
    )
    .single(
        "hookbench_run_turns_failed_total",
        Kind::Counter,
        "Turns that failed.",
        c.turns_failed as f64,
    )
    .single(
        "hookbench_run_conversations_total",
        Kind::Counter,
        "Conversations completed.",
        c.conversations as f64,
    )
    .single(
        "hookbench_run_active",
        Kind::Gauge,
        "Users (closed) or conversations in flight (open).",
        p.active as f64,
    )
    .single(
        "hookbench_run_sync_over_budget_total",
        Kind::Counter,
        "Sync turns over the budget.",
        c.over_budget as f64,
    );
    let quantiles = ["0.5", "0.9", "0.95", "0.99", "0.999"];
    let labels: Vec<[(&str, &str); 1]> = quantiles.iter().map(|q| [("quantile", *q)]).collect();
    e.family(
        "hookbench_run_turn_latency_seconds",
        Kind::Summary,
        "Turn latency since the start.",
        labels.iter().zip(quantiles).map(|(l, q)| {
            let v = if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q.parse().unwrap_or(0.5)) as f64 / 1e6
            };
            (&l[..], v)
        }),
    );
    e.finish()
}

impl RunArgs {
    /// The values given for keys of the scenario's `load:` section, as an overlay that the
    /// scenario validator reads like the file (one parser, one set of bounds, errors that name
    /// the flag).
    fn overlay(&self) -> Vec<crate::scenario::OverlayValue> {
        use crate::common::node::Node;
        use crate::scenario::OverlayValue;
        let text = |key, flag, v: &Option<String>| {
            v.as_ref().map(|v| OverlayValue {
                key,
                value: Node::Str(v.clone()),
                flag,
            })
        };
        let set =
            |key, flag, on: bool, value: Node| on.then_some(OverlayValue { key, value, flag });
        [
            text("users", "--users", &self.users),
            text("rate", "--rate", &self.rate),
            set(
                "arrivals",
                "--poisson",
                self.poisson,
                Node::Str("poisson".into()),
            ),
            text(
                "max_concurrency",
                "--max-concurrency",
                &self.max_concurrency,
            ),
            text("duration", "--duration", &self.duration),
            text("iterations", "--iterations", &self.iterations),
            text("grace", "--grace", &self.grace),
            set(
                "connections",
                "--connection-per-user",
                self.connection_per_user,
                Node::Str("per_user".into()),
            ),
            text(
                "max_connections",
                "--max-connections",
                &self.max_connections,
            ),
            set(
                "default_gate",
                "--no-default-gate",
                self.no_default_gate,
                Node::Bool(false),
            ),
            text("shard", "--shard", &self.shard),
            text("shards", "--shards", &self.shards),
            text("start_at", "--start-at", &self.start_at),
            text("run_id", "--run-id", &self.run_id),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The validated plan of a run: the scenario with the command line over its `load:` section,
/// and the load to run (the scenario's, or the default of one user). Nothing runs yet.
pub fn prepare(
    args: &RunArgs,
) -> Result<(crate::scenario::Scenario, crate::scenario::Load), Vec<crate::scenario::Diag>> {
    prepare_recorded(args).map(|(s, l, _)| (s, l))
}

/// [`prepare`], with every file the scenario read or named.
pub fn prepare_recorded(
    args: &RunArgs,
) -> Result<
    (
        crate::scenario::Scenario,
        crate::scenario::Load,
        crate::common::files::Recording,
    ),
    Vec<crate::scenario::Diag>,
> {
    let env = |n: &str| std::env::var(n).ok();
    let files = crate::common::files::Recording::default();
    let scenario = crate::scenario::load_from(&files, &args.scenario, &env, &args.overlay())?;
    let mut load = scenario.load.clone().unwrap_or_default();
    if load.run_id.is_none() {
        load.run_id = Some(crate::protocol::ids::run_id());
    }
    Ok((scenario, load, files))
}

/// Waits for a run's start time, if it has one; says so when it has passed.
async fn wait_for_start(load: &crate::scenario::Load) {
    let Some(at) = load.start_at else { return };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if at <= now {
        eprintln!("the start time passed {:.1} s ago: starting now", now - at);
        return;
    }
    eprintln!("waiting {:.1} s for the start time", at - now);
    tokio::time::sleep(Duration::from_secs_f64(at - now)).await;
}

/// `hookbench run`.
pub async fn run(args: RunArgs) -> Exit {
    let (scenario, load, files) = match prepare_recorded(&args) {
        Ok(p) => p,
        Err(diags) => return crate::error::fail(&Error::Plan(diags)),
    };
    let opts = args.target.options();
    let mut environment = Environment::with_client(load::client_for(&load));
    let target = match environment.resolve(&scenario, &opts).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let out_dir = args.out.clone().unwrap_or_else(|| {
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}-{:02}{:02}{:02}",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        );
        PathBuf::from("reports").join(format!("{stamp}-{}", slug(&scenario.name)))
    });
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("error: cannot create {}: {e}", out_dir.display());
        return Exit::Usage;
    }
    let style = terminal::Style {
        color: !args.no_color
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none(),
    };
    let stop = Arc::new(StopSignal::default());
    {
        let stop = stop.clone();
        let mut signals = super::StopSignals::install();
        tokio::spawn(async move {
            signals.wait().await;
            eprintln!(
                "\nstopping: letting conversations in flight finish (Ctrl-C again to quit now)"
            );
            stop.stop();
            signals.wait().await;
            std::process::exit(130);
        });
    }
    let digest = files.digest(args.scenario.parent().unwrap_or(std::path::Path::new("")));
    let shard_note = if load.shard.is_split() {
        format!(
            " (shard {} of run {})",
            load.shard,
            load.run_id.as_deref().unwrap_or_default()
        )
    } else {
        String::new()
    };
    eprintln!(
        "hookbench run: {} — {}{shard_note} against {}",
        scenario.name,
        load::describe(&load),
        target.message_url()
    );
    let live = Arc::new(std::sync::Mutex::new(String::new()));
    let metrics_server = match args.metrics_listen {
        None => None,
        Some(addr) => {
            let live = live.clone();
            let app = axum::Router::new().route(
                "/metrics",
                axum::routing::get(move || {
                    let live = live.clone();
                    async move {
                        (
                            [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                            live.lock().map(|s| s.clone()).unwrap_or_default(),
                        )
                    }
                }),
            );
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    eprintln!(
                        "live metrics: http://{}/metrics",
                        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
                    );
                    Some(tokio::spawn(async move {
                        let _ = axum::serve(l, app).await;
                    }))
                }
                Err(e) => {
                    eprintln!("error: cannot listen on {addr}: {e}");
                    return Exit::Usage;
                }
            }
        }
    };
    let tty = std::io::stderr().is_terminal();
    let quiet = args.quiet;
    let live_for_ticks = live.clone();
    let serve_live = metrics_server.is_some();
    let mut last_line = Instant::now();
    // On a terminal: a bar over the run's length (its duration, or its iteration cap), with
    // the live figures beside it; otherwise a plain line every 5 s; nothing with --quiet.
    let by_iterations = load.duration.is_none() && load.iterations.is_some();
    let bar = (tty && !quiet).then(|| {
        let (len, unit) = match (by_iterations, load.iterations) {
            (true, Some(n)) => (n, "conversations"),
            _ => (
                load.duration
                    .unwrap_or_else(|| load::default_duration(&load))
                    .as_secs()
                    .max(1),
                "s",
            ),
        };
        let bar = indicatif::ProgressBar::new(len);
        let template = format!(
            "{{spinner}} {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}, ETA {{eta}} | {{msg}}"
        );
        if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar
    });
    let bar_for_ticks = bar.clone();
    let progress = move |p: &load::report::Point, total: &load::metrics::Sample| {
        if serve_live {
            if let Ok(mut l) = live_for_ticks.lock() {
                *l = prometheus(p, total);
            }
        }
        if quiet {
            return;
        }
        let c = &total.counts;
        let figures = format!(
            "active {} | {:.1} turns/s | p95 {:.1} ms | p99 {:.1} ms | conversations {} | errors {} ({:.2}%)",
            p.active,
            p.throughput,
            p.p95_ms,
            p.p99_ms,
            c.conversations,
            c.turns_failed,
            100.0 * c.turns_failed as f64 / c.turns.max(1) as f64
        );
        match &bar_for_ticks {
            Some(bar) => {
                bar.set_position(if by_iterations {
                    c.conversations
                } else {
                    p.t as u64
                });
                bar.set_message(figures);
            }
            None if last_line.elapsed() >= Duration::from_secs(5) => {
                eprintln!("[{:>5.0}s] {figures}", p.t);
                last_line = Instant::now();
            }
            None => {}
        }
    };
    wait_for_start(&load).await;
    let mut report = load::run(Arc::new(scenario), Arc::new(target), load, stop, progress).await;
    report.run.scenario_digest = digest;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    environment.shutdown().await;
    if let Some(server) = metrics_server {
        server.abort();
    }
    out_part!("{}", terminal::load_summary(&report, style));
    let written = write_outputs(&report, &out_dir);
    match &written {
        Ok(()) => out!(
            "\n  results: {}/results.json, report.html, junit.xml",
            out_dir.display()
        ),
        Err(e) => eprintln!("error: {e}"),
    }
    if args.results_stdout {
        // One line, last: `kubectl logs` of a pod ends with its whole results.
        out!("{}", serde_json::to_string(&report).unwrap_or_default());
    }
    if written.is_err() {
        return Exit::Usage;
    }
    Exit::from(report.verdict.outcome)
}

/// Writes `results.json`, `junit.xml` and `report.html` of a run into `dir`.
pub(super) fn write_outputs(report: &LoadReport, dir: &std::path::Path) -> Result<(), Error> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| Error::Write { path, source })
    };
    write(
        "results.json",
        serde_json::to_string_pretty(report).unwrap_or_default(),
    )?;
    write("junit.xml", junit::gates(report))?;
    write("report.html", html::render(report)?)
}

/// Arguments of `hookbench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A `results.json` written by `hookbench run`.
    #[arg(value_name = "RESULTS.json")]
    pub results: PathBuf,
    /// Where to write the HTML (default: `report.html` beside the results).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `hookbench report`.
pub fn report(args: ReportArgs) -> Exit {
    let report = match read_results(&args.results) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let out = args
        .out
        .unwrap_or_else(|| args.results.with_file_name("report.html"));
    let written = html::render(&report).map_err(Error::from).and_then(|page| {
        std::fs::write(&out, page).map_err(|source| Error::Write {
            path: out.clone(),
            source,
        })
    });
    match written {
        Ok(()) => {
            out!("{}", out.display());
            Exit::Ok
        }
        Err(e) => crate::error::fail(&e),
    }
}

/// Arguments of `hookbench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline results.json.
    pub base: PathBuf,
    /// The new results.json.
    pub new: PathBuf,
    /// Allowed relative latency increase (p50/p95/p99 of turns, conversations, steps).
    #[arg(long, default_value = "10%", value_parser = parse_percent)]
    pub latency_tolerance: f64,
    /// Allowed increase of the error rate, in percentage points.
    #[arg(long, default_value = "0.1%", value_parser = parse_percent)]
    pub error_tolerance: f64,
    /// Allowed relative throughput decrease.
    #[arg(long, default_value = "10%", value_parser = parse_percent)]
    pub throughput_tolerance: f64,
}

fn parse_percent(s: &str) -> Result<f64, Error> {
    let v = s
        .trim_end_matches('%')
        .trim()
        .parse::<f64>()
        .map_err(|_| Error::Invalid(format!("`{s}` is not a percentage")))?;
    if !v.is_finite() || v < 0.0 {
        return Err(Error::Invalid(format!(
            "`{s}`: a tolerance is a percentage of at least 0%"
        )));
    }
    Ok(v / 100.0)
}

/// The largest results file `report` and `compare` read (a results file is a few MiB).
const MAX_RESULTS_BYTES: u64 = 256 * 1024 * 1024;

fn read_results(path: &std::path::Path) -> Result<LoadReport, Error> {
    let text =
        crate::common::read_limited(path, MAX_RESULTS_BYTES).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let not = |reason: String| Error::NotResults {
        path: path.to_path_buf(),
        reason,
    };
    let report: LoadReport = serde_json::from_str(&text).map_err(|e| not(e.to_string()))?;
    check_version(&report, path)?;
    Ok(report)
}

/// Refuses results (read from `path`) of another major format version or with no run length.
pub(super) fn check_version(report: &LoadReport, path: &std::path::Path) -> Result<(), Error> {
    let not = |reason: String| Error::NotResults {
        path: path.to_path_buf(),
        reason,
    };
    let major = load::report::LOAD_SCHEMA_VERSION.split('.').next();
    if report.schema_version.split('.').next() != major {
        return Err(not(format!(
            "results format {}; this hookbench reads {}.x",
            report.schema_version,
            major.unwrap_or_default()
        )));
    }
    if !(report.duration_s.is_finite() && report.duration_s > 0.0) {
        return Err(not(format!(
            "duration_s is {}, not a run's length",
            report.duration_s
        )));
    }
    Ok(())
}

/// `hookbench compare`: exits 1 on a regression beyond the tolerances.
pub fn compare(args: CompareArgs) -> Exit {
    let (base, new) = match (read_results(&args.base), read_results(&args.new)) {
        (Ok(b), Ok(n)) => (b, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let tol = crate::reports::compare::Tolerances {
        latency: args.latency_tolerance,
        error_rate: args.error_tolerance,
        throughput: args.throughput_tolerance,
    };
    let rows = crate::reports::compare::compare(&base, &new, tol);
    out_part!("{}", crate::reports::compare::render(&rows));
    let regressions = rows.iter().filter(|r| r.regressed).count();
    if regressions > 0 {
        out!("\n{regressions} regression(s) beyond tolerance");
        Exit::Failed
    } else {
        out!("\nno regression beyond tolerance");
        Exit::Ok
    }
}
