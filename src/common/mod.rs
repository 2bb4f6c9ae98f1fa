//! Small value types shared by every layer: typed durations, ranges and distributions, how
//! YAML is read into a positioned tree, and the diagnostics that point into it.

pub mod diag;
pub mod duration;
pub mod files;
pub mod node;
pub mod procfs;
pub mod prometheus;
pub mod short;

pub use duration::{pause, pause_until, Delay, DurationSpec};

/// How hookbench reads YAML (scenarios and bots): YAML 1.2 booleans only (`true`/`false`), so
/// that keys and values such as `n`, `no`, `on` or `y` stay text, as they would in JSON.
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// `n` with its noun: `1 delivery`, `3 deliveries`, `0 steps`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Reads a file of at most `max` bytes: a larger file (or one that never ends, such as
/// `/dev/zero`) is an error after `max` bytes, never a read of everything.
pub fn read_bytes_limited(path: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(std::io::Error::other("is a directory"));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!(
            "larger than the {} MiB a file here may be",
            max / (1024 * 1024)
        )));
    }
    Ok(bytes)
}

/// Reads a UTF-8 text file of at most `max` bytes (see [`read_bytes_limited`]).
pub fn read_limited(path: &std::path::Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_bytes_limited(path, max)?)
        .map_err(|_| std::io::Error::other("not UTF-8 text"))
}

/// The largest key file read (1 MiB).
pub const MAX_KEY_BYTES: u64 = 1024 * 1024;

/// The largest file a scenario uploads (1 GiB).
pub const MAX_UPLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// The largest scenario, include, schema or bot file read (16 MiB).
pub const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// The largest data (CSV) file read (256 MiB).
pub const MAX_DATA_BYTES: u64 = 256 * 1024 * 1024;
