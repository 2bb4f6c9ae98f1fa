//! The library's error type and the one place where errors and verdicts become the exit codes
//! the README documents.

use std::path::PathBuf;

use crate::engine::load::verdict::Outcome;

/// Exit codes, as documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Ok = 0,
    /// A check, a gate or a comparison failed.
    Failed = 1,
    /// Invalid input or usage: arguments, files, credentials, a port or a report path.
    Usage = 2,
    /// The target could not be reached or answered with transport errors.
    Unreachable = 3,
}

impl From<Outcome> for Exit {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Passed => Exit::Ok,
            Outcome::Failed => Exit::Failed,
            Outcome::Unreachable => Exit::Unreachable,
        }
    }
}

impl From<&crate::certify::Certification> for Exit {
    /// PASSED and WARNED certificates exit 0; FAILED exits 1, or 3 when a check that did not
    /// pass could not reach the target.
    fn from(c: &crate::certify::Certification) -> Self {
        use crate::certify::Grade;
        match c.result {
            Grade::Passed | Grade::Warned => Exit::Ok,
            Grade::Failed if c.unreachable() => Exit::Unreachable,
            Grade::Failed => Exit::Failed,
        }
    }
}

/// What can stop a command before it has a verdict. Every variant is the user's input or the
/// machine, never the target: the target's faults are results, not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value on the command line or in a file that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// A file that cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file or folder that cannot be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A results file of another format, or not results at all.
    #[error("{path} is not hookbench load results: {reason}")]
    NotResults {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The HTML report could not be rendered.
    #[error("cannot render the HTML report: {0}")]
    Render(#[from] minijinja::Error),
    /// A target that cannot be set up.
    #[error(transparent)]
    Setup(#[from] crate::engine::suite::SetupError),
    /// A bot file with errors.
    #[error(transparent)]
    Bot(#[from] crate::sim::BotError),
    /// A URL that is not a webhook URL.
    #[error(transparent)]
    Url(#[from] crate::protocol::urls::UrlError),
    /// Shard results that cannot be merged.
    #[error(transparent)]
    Merge(#[from] crate::engine::load::merge::MergeError),
    /// A scenario and command line that do not make a plan: every diagnostic, each pointing at
    /// its file, line and column or its flag.
    #[error("{}\n\n{} found", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n\n"), crate::common::count(.0.len() as u64, "error", "errors"))]
    Plan(Vec<crate::common::diag::Diag>),
}

impl Error {
    /// The exit code: all of these are the input's or the machine's (2).
    pub fn exit(&self) -> Exit {
        match self {
            Error::Invalid(_)
            | Error::Read { .. }
            | Error::Write { .. }
            | Error::NotResults { .. }
            | Error::Render(_)
            | Error::Setup(_)
            | Error::Bot(_)
            | Error::Url(_)
            | Error::Merge(_)
            | Error::Plan(_) => Exit::Usage,
        }
    }
}

/// Reports `e` on stderr and gives its exit code.
pub fn fail(e: &Error) -> Exit {
    match e {
        // Each diagnostic says `error:` itself.
        Error::Plan(_) => eprintln!("{e}"),
        _ => eprintln!("error: {e}"),
    }
    e.exit()
}
