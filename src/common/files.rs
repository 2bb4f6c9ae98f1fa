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

/// What a scenario read, by path: text files with their content, and files only named
/// (uploads, keys: read when used).
#[derive(Debug, Default)]
pub struct Recording {
    seen: std::sync::Mutex<Vec<(std::path::PathBuf, Option<String>)>>,
}

impl Recording {
    /// Every file read or named, in first-seen order, each once; `Some(text)` for files read.
    pub fn files(&self) -> Vec<(std::path::PathBuf, Option<String>)> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// `sha256:` over the files read (their paths as given, relative to the scenario's
    /// folder when inside it, and their text), in the order they were read.
    pub fn digest(&self, base: &Path) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        for (path, text) in self.files() {
            let Some(text) = text else { continue };
            let shown = path.strip_prefix(base).unwrap_or(&path);
            h.update(shown.to_string_lossy().as_bytes());
            h.update([0]);
            h.update((text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        format!("sha256:{:x}", h.finalize())
    }

    fn note(&self, path: &Path, text: Option<&str>) {
        if let Ok(mut s) = self.seen.lock() {
            match s.iter_mut().find(|(p, _)| p == path) {
                Some(entry) => {
                    if entry.1.is_none() {
                        entry.1 = text.map(str::to_string);
                    }
                }
                None => s.push((path.to_path_buf(), text.map(str::to_string))),
            }
        }
    }
}

impl Files for Recording {
    fn text(&self, path: &Path, max: u64) -> std::io::Result<String> {
        let text = Disk.text(path, max)?;
        self.note(path, Some(&text));
        Ok(text)
    }

    fn is_file(&self, path: &Path) -> bool {
        let yes = Disk.is_file(path);
        if yes {
            self.note(path, None);
        }
        yes
    }
}
