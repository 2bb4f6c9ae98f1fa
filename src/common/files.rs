//! What the scenario layer may ask of the file system. The scenario layer does no I/O: its
//! caller hands it a [`Files`], the disk ([`Disk`]) for the command line, anything else in
//! tests or when scenarios come from somewhere other than files.

use std::path::Path;

/// Files a scenario names: itself, includes, schemas, data, keys and uploads.
pub trait Files: Sync {
    /// A UTF-8 text file of at most `max` bytes.
    fn text(&self, path: &Path, max: u64) -> std::io::Result<String>;
    /// True when `path` names a file (uploads and keys are read when used).
    fn is_file(&self, path: &Path) -> bool;
}

/// The local disk, every read bounded (see [`super::read_limited`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Disk;

impl Files for Disk {
    fn text(&self, path: &Path, max: u64) -> std::io::Result<String> {
        super::read_limited(path, max)
    }

    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
}
