//! `hookbench test` and `hookbench validate`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;

use super::Exit;
use crate::engine::results::StepStatus;
use crate::engine::suite;
use crate::reports::{self, terminal};
use crate::scenario::{self, Diag, Scenario};

/// Arguments of `hookbench test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Scenario files or directories (searched recursively for *.yaml, except *.bot.yaml and
    /// *.steps.yaml).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Where to send.
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// Write JUnit XML here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write JSON results here.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// No colours.
    #[arg(long)]
    pub no_color: bool,
    /// Run this many conversations (scenario files and data rows) at once (default: the
    /// number of cores); output and reports keep the file and row order.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub jobs: Option<u64>,
}

/// Arguments of `hookbench replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The scenario.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// Replay up to and including this step (1-based, as `hookbench test` numbers them).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub step: Option<u64>,
    /// The data row (1-based) for scenarios fed by `data:`.
    #[arg(long, value_name = "R", value_parser = clap::value_parser!(u64).range(1..))]
    pub row: Option<u64>,
    /// Where to send.
    #[command(flatten)]
    pub target: super::TargetArgs,
    /// No colours.
    #[arg(long)]
    pub no_color: bool,
}

/// Arguments of `hookbench validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files or directories.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// True for files `hookbench test DIR` runs.
fn is_scenario_file(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with(".bot.yaml")
        && !name.ends_with(".steps.yaml")
        && !name.ends_with(".bot.yml")
        && !name.ends_with(".steps.yml")
}

/// Expands directories into their scenario files, sorted. Symbolic links are followed, but
/// each directory is entered and each file listed once (by its canonical path), so links that
/// loop back (`a -> .`) end the walk instead of hanging it.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut seen_files = std::collections::HashSet::new();
    let mut seen_dirs = std::collections::HashSet::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            let mut found = Vec::new();
            while let Some(dir) = stack.pop() {
                let Ok(canonical) = std::fs::canonicalize(&dir) else {
                    continue;
                };
                if !seen_dirs.insert(canonical) {
                    continue;
                }
                let entries = std::fs::read_dir(&dir)
                    .map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
                for e in entries.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if is_scenario_file(&path) {
                        found.push(path);
                    }
                }
            }
            found.sort();
            for f in found {
                if seen_files.insert(std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone())) {
                    out.push(f);
                }
            }
        } else if p.is_file() {
            if seen_files.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())) {
                out.push(p.clone());
            }
        } else {
            return Err(format!("no such file or directory: {}", p.display()));
        }
    }
    if out.is_empty() {
        return Err("no scenario files found".into());
    }
    Ok(out)
}

/// Loads and validates every file; all errors of all files are returned together.
pub fn load_all(files: &[PathBuf]) -> Result<Vec<Scenario>, Vec<Diag>> {
    let env = |n: &str| std::env::var(n).ok();
    let mut scenarios = Vec::new();
    let mut diags = Vec::new();
    for f in files {
        match scenario::load(f, &env) {
            Ok(s) => scenarios.push(s),
            Err(d) => diags.extend(d),
        }
    }
    if diags.is_empty() {
        Ok(scenarios)
    } else {
        Err(diags)
    }
}

fn print_diags(diags: &[Diag]) {
    for d in diags {
        eprintln!("{d}\n");
    }
    eprintln!(
        "{} found",
        crate::common::count(diags.len() as u64, "error", "errors")
    );
}

/// `hookbench validate`.
pub fn validate(args: ValidateArgs) -> Exit {
    let files = match expand(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    match load_all(&files) {
        Ok(s) => {
            for sc in &s {
                out!(
                    "ok   {} ({}, {})",
                    sc.name,
                    sc.file.display(),
                    crate::common::count(sc.steps.len() as u64, "step", "steps")
                );
            }
            out!(
                "{} valid",
                crate::common::count(s.len() as u64, "scenario", "scenarios")
            );
            Exit::Ok
        }
        Err(d) => {
            print_diags(&d);
            Exit::Usage
        }
    }
}

/// `hookbench replay`: the reproducer `hookbench test` prints for a failed step. Runs the
/// conversation up to and including that step, as the test ran it, against the same target;
/// exits 1 when the step fails again (reproduced), 0 when it passes this time.
pub async fn replay(args: ReplayArgs) -> Exit {
    let mut scenario = match load_all(std::slice::from_ref(&args.scenario)) {
        Ok(mut s) => s.remove(0),
        Err(d) => {
            print_diags(&d);
            return Exit::Usage;
        }
    };
    let steps = scenario.steps.len();
    let upto = match args.step.map(|n| n as usize) {
        None => steps,
        Some(n) if n <= steps => n,
        Some(n) => {
            eprintln!(
                "error: --step {n}: the scenario has {}",
                crate::common::count(steps as u64, "step", "steps")
            );
            return Exit::Usage;
        }
    };
    scenario.steps.truncate(upto);
    let rows = scenario.data.as_ref().map_or(0, |d| d.rows.len());
    let row = match (args.row.map(|r| r as usize), rows) {
        (None, 0) => None,
        (None, _) => Some(0),
        (Some(r), n) if r <= n => Some(r - 1),
        (Some(r), n) => {
            eprintln!("error: --row {r}: the scenario has {n} data row(s)");
            return Exit::Usage;
        }
    };
    if let Err(e) = check_target(&args.target) {
        eprintln!("error: --target: {e}");
        return Exit::Usage;
    }
    let style = style(args.no_color);
    let r = suite::replay(&scenario, row, &args.target.options()).await;
    out_part!("{}", terminal::scenario(&r, style));
    if r.setup_error.is_some() {
        return Exit::Usage;
    }
    let last = r.steps.last();
    if let Some(s) = last.filter(|s| s.status != StepStatus::Skipped) {
        if !s.texts.is_empty() {
            out!("\n  the bot said at step {}:", s.index + 1);
            for t in &s.texts {
                out!("    {t}");
            }
        }
    }
    if r.passed {
        out!("\nnot reproduced: every step up to step {upto} passed this time");
        Exit::Ok
    } else if r.steps.iter().any(|s| {
        matches!(
            s.failure,
            Some(crate::engine::results::Failure::Transport { .. })
        )
    }) {
        Exit::Unreachable
    } else {
        out!("\nreproduced");
        Exit::Failed
    }
}

fn check_target(t: &super::TargetArgs) -> Result<(), crate::protocol::urls::UrlError> {
    match &t.target {
        Some(url) => crate::protocol::WebhookUrl::parse(url).map(|_| ()),
        None => Ok(()),
    }
}

fn style(no_color: bool) -> terminal::Style {
    terminal::Style {
        color: !no_color
            && std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// `hookbench test`.
pub async fn test(args: TestArgs) -> Exit {
    let files = match expand(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let scenarios = match load_all(&files) {
        Ok(s) => s,
        Err(d) => {
            print_diags(&d);
            return Exit::Usage;
        }
    };
    if let Err(e) = check_target(&args.target) {
        eprintln!("error: --target: {e}");
        return Exit::Usage;
    }
    let opts = args.target.options();
    let style = style(args.no_color);
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(2, |n| n.get()),
        |j| j as usize,
    );
    let report = suite::run_jobs(&scenarios, &opts, jobs, |r| {
        out_part!("{}", terminal::scenario(r, style))
    })
    .await;
    out!(
        "\n{}",
        terminal::summary(&report.summary, report.duration_ms)
    );
    let mut write_failed = false;
    for (path, text) in [
        (args.junit.as_ref(), reports::junit::render(&report)),
        (args.json.as_ref(), reports::json(&report)),
    ] {
        if let Some(path) = path {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                let _ = std::fs::create_dir_all(dir);
            }
            if let Err(e) = std::fs::write(path, text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                write_failed = true;
            }
        }
    }
    if write_failed || report.summary.failures.contains_key("setup") {
        Exit::Usage
    } else if report.has_transport_failures() {
        Exit::Unreachable
    } else if report.summary.failed > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    }
}
