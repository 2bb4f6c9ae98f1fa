//! `hookbench import botium`: Botium convo files to scenarios.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::Exit;

/// Arguments of `hookbench import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// What to import.
    #[command(subcommand)]
    pub from: ImportFrom,
}

/// Formats `import` reads.
#[derive(Debug, Subcommand)]
pub enum ImportFrom {
    /// Botium convo files (`*.convo.txt`, `*.pconvo.txt`, `*.utterances.txt`, `botium.json`).
    Botium(BotiumArgs),
}

/// Arguments of `hookbench import botium`.
#[derive(Debug, Args)]
pub struct BotiumArgs {
    /// Convo, partial convo and utterances files, `botium.json`, or folders holding them.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Where the scenarios are written (one `<convo>.yaml` each).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// The files under `dir` that Botium projects hold, in name order, `depth` levels at most,
/// symbolic links not followed.
fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let kind = e.file_type()?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if kind.is_dir() && depth < 4 && !name.starts_with('.') && name != "node_modules" {
            collect(&path, depth + 1, out)?;
        } else if kind.is_file() && (name.ends_with(".txt") || name == "botium.json") {
            out.push(path);
        }
    }
    Ok(())
}

/// `hookbench import`.
pub fn import(args: ImportArgs) -> Exit {
    match args.from {
        ImportFrom::Botium(a) => botium(a),
    }
}

fn botium(args: BotiumArgs) -> Exit {
    let mut paths = Vec::new();
    for p in &args.paths {
        if p.is_dir() {
            if let Err(e) = collect(p, 0, &mut paths) {
                eprintln!("error: cannot read {}: {e}", p.display());
                return Exit::Usage;
            }
        } else {
            paths.push(p.clone());
        }
    }
    let mut files = Vec::new();
    let mut botium_json = None;
    for p in &paths {
        let text = match crate::common::read_limited(p, crate::common::MAX_SOURCE_BYTES) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return Exit::Usage;
            }
        };
        let shown = p.display().to_string();
        if p.file_name().is_some_and(|n| n == "botium.json") {
            botium_json = Some((shown, text));
        } else {
            files.push((shown, text));
        }
    }
    let result = crate::scenario::botium::convert(
        &files,
        botium_json.as_ref().map(|(f, t)| (f.as_str(), t.as_str())),
    );
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("error: cannot create {}: {e}", args.out.display());
        return Exit::Usage;
    }
    for s in &result.scenarios {
        let path = args.out.join(&s.file);
        if let Err(e) = std::fs::write(&path, &s.yaml) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Exit::Usage;
        }
        out!("wrote {}", path.display());
    }
    let skipped = result.notes.iter().filter(|n| n.skipped).count();
    for n in &result.notes {
        let what = if n.skipped { "skipped" } else { "note" };
        eprintln!("{}:{}: {what}: {}", n.file, n.line, n.message);
    }
    out!(
        "{} from {}; {}",
        crate::common::count(result.scenarios.len() as u64, "scenario", "scenarios"),
        crate::common::count(files.len() as u64, "file", "files"),
        if skipped == 0 {
            "everything converted".to_string()
        } else {
            format!(
                "{} not converted (listed above)",
                crate::common::count(skipped as u64, "construct", "constructs")
            )
        }
    );
    if skipped > 0 {
        Exit::Failed
    } else {
        Exit::Ok
    }
}
