//! `hookbench merge`: the results of a run's shards, from files, folders or a stream of logs,
//! merged into the results of the whole run and judged.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use clap::Args;

use super::Exit;
use crate::engine::load::merge::Merger;
use crate::engine::load::report::LoadReport;
use crate::error::Error;
use crate::reports::terminal;

/// Arguments of `hookbench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Shard results: `results.json` files, folders holding them, files of log lines, or
    /// `-` for standard input (`kubectl logs -l job-name=… | hookbench merge -`).
    #[arg(value_name = "RESULTS", required = true)]
    pub inputs: Vec<String>,
    /// Output folder for the merged results.json, report.html and junit.xml (default
    /// `reports/<run id>-merged/`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Merge even when shards are missing; the report names them and a gate fails.
    #[arg(long)]
    pub allow_partial: bool,
    /// No colours.
    #[arg(long)]
    pub no_color: bool,
}

/// The largest results document read (a 10-minute run's results are well under 1 MiB).
const MAX_DOCUMENT_BYTES: usize = 64 * 1024 * 1024;
/// How deep folders are searched for results files.
const MAX_DEPTH: usize = 4;

/// Reads results documents from a stream that holds one or more: a pretty-printed document,
/// one per line (`--results-stdout`), or log lines with documents among them (anything before
/// a line's first `{`, such as `kubectl logs --prefix`, is skipped). Each document is handed
/// to `each` as soon as it is read, so one document is in memory at a time.
pub fn read_documents(
    reader: impl BufRead,
    what: &str,
    each: &mut dyn FnMut(LoadReport, &str) -> Result<(), Error>,
) -> Result<usize, Error> {
    let mut found = 0;
    let mut pending = String::new();
    let mut line_no = 0usize;
    let mut start_line = 0usize;
    let mut handle = |text: &str, line: usize, found: &mut usize| -> Result<bool, Error> {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
            return Ok(false);
        };
        // Other JSON (a logger's lines) is not results: skipped.
        let Some(kind) = value.get("kind").and_then(|k| k.as_str()) else {
            return Ok(true);
        };
        if value.get("schema_version").is_none() {
            return Ok(true);
        }
        let name = format!("{what}:{line}");
        let not = |reason: String| Error::NotResults {
            path: PathBuf::from(&name),
            reason,
        };
        if kind != "load" {
            return Err(not(format!(
                "`{kind}` results, not a load run's (hookbench run)"
            )));
        }
        let report: LoadReport = serde_json::from_value(value).map_err(|e| not(e.to_string()))?;
        super::run::check_version(&report, Path::new(&name))?;
        *found += 1;
        each(report, &name)?;
        Ok(true)
    };
    for line in reader.lines() {
        let line = line.map_err(|source| Error::Read {
            path: PathBuf::from(what),
            source,
        })?;
        line_no += 1;
        if pending.is_empty() {
            let Some(at) = line.find('{') else { continue };
            let candidate = &line[at..];
            if handle(candidate, line_no, &mut found)? {
                continue;
            }
            // The first line of a pretty-printed document.
            if candidate.trim_end() == "{" {
                pending.push_str(candidate);
                pending.push('\n');
                start_line = line_no;
            }
            continue;
        }
        pending.push_str(&line);
        pending.push('\n');
        if pending.len() > MAX_DOCUMENT_BYTES {
            return Err(Error::NotResults {
                path: PathBuf::from(format!("{what}:{start_line}")),
                reason: format!(
                    "a document of over {} MiB",
                    MAX_DOCUMENT_BYTES / (1024 * 1024)
                ),
            });
        }
        if line.trim_end() == "}" {
            let text = std::mem::take(&mut pending);
            if !handle(&text, start_line, &mut found)? {
                return Err(Error::NotResults {
                    path: PathBuf::from(format!("{what}:{start_line}")),
                    reason: "a document that is not JSON".into(),
                });
            }
        }
    }
    Ok(found)
}

/// The results files under a folder: `*.json` files, `MAX_DEPTH` levels down at most, in name
/// order, symbolic links not followed (no cycle can make it loop).
fn files_under(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let kind = e.file_type()?;
        let path = e.path();
        if kind.is_dir() && depth < MAX_DEPTH {
            files_under(&path, depth + 1, out)?;
        } else if kind.is_file() && path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// `hookbench merge`.
pub fn merge(args: MergeArgs) -> Exit {
    match merge_inputs(&args) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Usage
        }
    }
}

fn merge_inputs(args: &MergeArgs) -> Result<Exit, Error> {
    let mut merger = Merger::new();
    let mut add = |r: LoadReport, what: &str| -> Result<(), Error> {
        merger.add(r, what).map_err(Error::from)
    };
    for input in &args.inputs {
        if input == "-" {
            let stdin = std::io::stdin();
            let n = read_documents(stdin.lock(), "stdin", &mut add)?;
            if n == 0 {
                return Err(Error::Invalid(
                    "standard input holds no results (did the shards run with --results-stdout?)"
                        .into(),
                ));
            }
            continue;
        }
        let path = Path::new(input);
        let files = if path.is_dir() {
            let mut v = Vec::new();
            files_under(path, 0, &mut v).map_err(|source| Error::Read {
                path: path.to_path_buf(),
                source,
            })?;
            if v.is_empty() {
                return Err(Error::Invalid(format!(
                    "{input} holds no .json results files"
                )));
            }
            v
        } else {
            vec![path.to_path_buf()]
        };
        for f in files {
            let file = std::fs::File::open(&f).map_err(|source| Error::Read {
                path: f.clone(),
                source,
            })?;
            let shown = f.display().to_string();
            let n = read_documents(std::io::BufReader::new(file), &shown, &mut add)?;
            if n == 0 {
                return Err(Error::NotResults {
                    path: f.clone(),
                    reason: "no results document in it".into(),
                });
            }
        }
    }
    let report = merger.finish(args.allow_partial)?;
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("reports").join(format!("{}-merged", report.run.id)));
    std::fs::create_dir_all(&out_dir).map_err(|source| Error::Write {
        path: out_dir.clone(),
        source,
    })?;
    let style = terminal::Style {
        color: !args.no_color
            && std::io::IsTerminal::is_terminal(&std::io::stdout())
            && std::env::var_os("NO_COLOR").is_none(),
    };
    out_part!("{}", terminal::load_summary(&report, style));
    super::run::write_outputs(&report, &out_dir)?;
    out!(
        "\n  merged {} of run {}: {}/results.json, report.html, junit.xml",
        crate::common::count(report.run.shards.len() as u64, "shard", "shards"),
        report.run.id,
        out_dir.display()
    );
    Ok(Exit::from(report.verdict.outcome))
}
