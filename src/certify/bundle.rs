//! The certificate bundle: `results.json`, `junit.xml`, `certificate.html`, the signer's
//! public key `certificate.pub`, and `certificate.json`, an in-toto Statement (Test Result
//! predicate) whose subjects are every other file with its sha256, in a DSSE envelope signed
//! with Ed25519. [`verify`] checks all of it.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::catalogue::{self, Level};
use super::sign::{self, Envelope, IN_TOTO_PAYLOAD_TYPE};
use super::{Certification, CheckStatus, Grade};

/// The in-toto Statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The Test Result predicate.
pub const TEST_RESULT_PREDICATE: &str = "https://in-toto.io/attestation/test-result/v0.1";

/// The signed statement's file.
pub const CERTIFICATE: &str = "certificate.json";
/// The signer's public key.
pub const PUBLIC_KEY: &str = "certificate.pub";
const RESULTS: &str = "results.json";
const JUNIT: &str = "junit.xml";
const HTML: &str = "certificate.html";

/// Which key signs.
#[derive(Debug)]
pub enum Key {
    /// The vendor's or lab's own key (`--signing-key`).
    Given(SigningKey),
    /// A key made for this bundle only: the bundle says it is self-signed.
    Ephemeral(SigningKey),
}

impl Key {
    fn signing(&self) -> &SigningKey {
        match self {
            Key::Given(k) | Key::Ephemeral(k) => k,
        }
    }
}

/// Why a bundle could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Rendering or signing failed.
    #[error("{0}")]
    Render(String),
}

impl Key {
    /// Who signs, as the certificate shows it.
    pub fn describe(&self) -> String {
        let key_id = sign::key_id(&self.signing().verifying_key());
        match self {
            Key::Given(_) => format!("Ed25519 key {key_id}"),
            Key::Ephemeral(_) => {
                format!("Ed25519 key {key_id} (self-signed: a key made for this bundle only)")
            }
        }
    }
}

/// The documents rendered for people and CI (by the reports layer).
#[derive(Debug, Clone)]
pub struct Rendered {
    /// `junit.xml`.
    pub junit: String,
    /// `certificate.html`.
    pub html: String,
}

/// Writes the bundle into `dir` (created when missing); returns the files written.
pub fn write(
    dir: &Path,
    c: &Certification,
    rendered: &Rendered,
    key: &Key,
) -> Result<Vec<PathBuf>, WriteError> {
    std::fs::create_dir_all(dir).map_err(|source| WriteError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let verifying = key.signing().verifying_key();
    let results = serde_json::to_vec_pretty(c).map_err(|e| WriteError::Render(e.to_string()))?;
    let public = sign::public_pem(&verifying).map_err(|e| WriteError::Render(e.to_string()))?;
    let files: Vec<(&str, Vec<u8>)> = vec![
        (RESULTS, results),
        (JUNIT, rendered.junit.clone().into_bytes()),
        (HTML, rendered.html.clone().into_bytes()),
        (PUBLIC_KEY, public.into_bytes()),
    ];
    let statement = statement(c, &files, matches!(key, Key::Ephemeral(_)));
    let payload = serde_json::to_vec(&statement).map_err(|e| WriteError::Render(e.to_string()))?;
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &payload, key.signing());
    let envelope =
        serde_json::to_vec_pretty(&envelope).map_err(|e| WriteError::Render(e.to_string()))?;
    let mut written = Vec::new();
    for (name, bytes) in files
        .iter()
        .map(|(n, b)| (*n, b.as_slice()))
        .chain([(CERTIFICATE, envelope.as_slice())])
    {
        let path = dir.join(name);
        std::fs::write(&path, bytes).map_err(|source| WriteError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

fn statement(c: &Certification, files: &[(&str, Vec<u8>)], self_signed: bool) -> Value {
    let ids = |s: CheckStatus| -> Vec<&str> {
        c.checks
            .iter()
            .filter(|k| k.result == s)
            .map(|k| k.id.as_str())
            .collect()
    };
    let scenarios = |passed: bool| -> Vec<String> {
        c.scenarios
            .iter()
            .filter(|s| s.passed == passed)
            .map(|s| s.label())
            .collect()
    };
    let mut passed = ids(CheckStatus::Passed)
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    passed.extend(scenarios(true));
    let mut failed = ids(CheckStatus::Failed)
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    failed.extend(scenarios(false));
    json!({
        "_type": STATEMENT_TYPE,
        "subject": files.iter().map(|(name, bytes)| json!({
            "name": name,
            "digest": {"sha256": sign::sha256_hex(bytes)},
        })).collect::<Vec<_>>(),
        "predicateType": TEST_RESULT_PREDICATE,
        "predicate": {
            "result": c.result.as_str(),
            "configuration": [{
                "name": format!("hookbench certify {} --profile {}", c.side.as_str(), c.profile.as_str()),
                "annotations": {
                    "hookbench_version": c.hookbench_version,
                    "catalogue_version": c.catalogue_version,
                    "protocol_revision": c.protocol_revision,
                    "side": c.side.as_str(),
                    "profile": c.profile.as_str(),
                    "product": c.product.name,
                    "product_version": c.product.version,
                    "target": c.target,
                    "started": c.started,
                    "finished": c.finished,
                    "self_signed": self_signed,
                    "review": ids(CheckStatus::Review),
                },
            }],
            "passedTests": passed,
            "warnedTests": ids(CheckStatus::Warning),
            "failedTests": failed,
        },
    })
}

/// What [`verify`] found in a bundle that holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The certificate's result.
    pub result: Grade,
    /// The product.
    pub product: String,
    /// side and profile.
    pub scope: String,
    /// The signer's key id.
    pub key_id: String,
    /// No `--public-key` was given: the key is the one the bundle carries.
    pub self_asserted: bool,
    /// The statement says the key was made for this bundle.
    pub self_signed: bool,
}

#[derive(Deserialize, Serialize)]
struct Subject {
    name: String,
    digest: BTreeMap<String, String>,
}

/// Checks a bundle: the signature (with `public_key`, else the bundle's own key), every
/// subject's digest, no file missing or extra, the versions, and that the result stated
/// matches the checks in `results.json` and the profile's required checks. Returns the first
/// thing that does not hold.
pub fn verify(dir: &Path, public_key: Option<&VerifyingKey>) -> Result<Verified, String> {
    let read = |name: &str| {
        crate::common::read_bytes_limited(&dir.join(name), 64 * 1024 * 1024)
            .map_err(|e| format!("{name}: {e}"))
    };
    let envelope: Envelope = serde_json::from_slice(&read(CERTIFICATE)?)
        .map_err(|e| format!("{CERTIFICATE} is not a DSSE envelope: {e}"))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "{CERTIFICATE}: payloadType {:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}",
            envelope.payload_type
        ));
    }
    let bundled;
    let (key, self_asserted) = match public_key {
        Some(k) => (k, false),
        None => {
            let pem = String::from_utf8_lossy(&read(PUBLIC_KEY)?).into_owned();
            bundled = sign::read_public(&pem).map_err(|e| format!("{PUBLIC_KEY}: {e}"))?;
            (&bundled, true)
        }
    };
    let payload = envelope
        .open(key)
        .map_err(|e| format!("{CERTIFICATE}: {e} (key {})", sign::key_id(key)))?;
    let statement: Value = serde_json::from_slice(&payload)
        .map_err(|e| format!("{CERTIFICATE}: the signed statement is not JSON: {e}"))?;
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != TEST_RESULT_PREDICATE {
        return Err(format!(
            "{CERTIFICATE}: not an in-toto Statement v1 with the Test Result predicate"
        ));
    }
    let subjects: Vec<Subject> = serde_json::from_value(statement["subject"].clone())
        .map_err(|e| format!("{CERTIFICATE}: subjects: {e}"))?;
    for s in &subjects {
        let bytes = read(&s.name).map_err(|e| format!("missing or unreadable file {e}"))?;
        let want = s
            .digest
            .get("sha256")
            .map(String::as_str)
            .unwrap_or_default();
        if sign::sha256_hex(&bytes) != want {
            return Err(format!(
                "{}: its sha256 differs from the signed statement's (the file was changed)",
                s.name
            ));
        }
    }
    let listed: Vec<&str> = subjects.iter().map(|s| s.name.as_str()).collect();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != CERTIFICATE && !listed.contains(&name.as_str()) {
            return Err(format!(
                "{name}: not part of the signed bundle (an extra file)"
            ));
        }
    }
    for needed in [RESULTS, JUNIT, HTML] {
        if !listed.contains(&needed) {
            return Err(format!("{needed}: missing from the signed statement"));
        }
    }
    let c: Certification = serde_json::from_slice(&read(RESULTS)?)
        .map_err(|e| format!("{RESULTS}: not a certification result: {e}"))?;
    for (what, v) in [
        ("hookbench_version", &c.hookbench_version),
        ("catalogue_version", &c.catalogue_version),
        ("protocol_revision", &c.protocol_revision),
        ("product.name", &c.product.name),
        ("product.version", &c.product.version),
    ] {
        if v.trim().is_empty() {
            return Err(format!("{RESULTS}: {what} is empty"));
        }
    }
    let recomputed = Certification::result(&c.checks, &c.scenarios);
    if recomputed != c.result {
        return Err(format!(
            "{RESULTS}: says {} but its checks make it {}",
            c.result.as_str(),
            recomputed.as_str()
        ));
    }
    if statement["predicate"]["result"] != c.result.as_str() {
        return Err(format!(
            "{CERTIFICATE}: the signed result {} differs from {RESULTS}'s {}",
            statement["predicate"]["result"],
            c.result.as_str()
        ));
    }
    if c.catalogue_version == catalogue::CATALOGUE_VERSION {
        for check in catalogue::select(c.side, c.profile).filter(|k| k.level == Level::Required) {
            if !c.checks.iter().any(|r| r.id == check.id) {
                return Err(format!(
                    "{RESULTS}: required check {} of profile {} is missing",
                    check.id,
                    c.profile.as_str()
                ));
            }
        }
    }
    if c.result == Grade::Failed {
        let failed: Vec<String> = c
            .checks
            .iter()
            .filter(|k| k.level == Level::Required && k.result != CheckStatus::Passed)
            .map(|k| k.id.clone())
            .chain(c.scenarios.iter().filter(|s| !s.passed).map(|s| s.label()))
            .collect();
        return Err(format!(
            "the bundle is intact, but its result is FAILED: required check(s) {} did not pass",
            failed.join(", ")
        ));
    }
    Ok(Verified {
        result: c.result,
        product: format!("{} {}", c.product.name, c.product.version),
        scope: format!("{}, profile {}", c.side.as_str(), c.profile.as_str()),
        key_id: sign::key_id(key),
        self_asserted,
        self_signed: statement["predicate"]["configuration"][0]["annotations"]["self_signed"]
            == true,
    })
}

/// Packs the bundle in `dir` into `DIR.tar.gz` (the files under a folder named like `dir`);
/// returns the archive's path.
pub fn archive(dir: &Path) -> Result<PathBuf, WriteError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "certificate".into());
    let path = dir.with_file_name(format!("{name}.tar.gz"));
    let io = |source| WriteError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::File::create(&path).map_err(io)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        tar.append_path_with_name(dir.join(&n), format!("{name}/{n}"))
            .map_err(io)?;
    }
    tar.into_inner().and_then(|gz| gz.finish()).map_err(io)?;
    Ok(path)
}

/// The most an archive may unpack to: a bundle is a few megabytes of JSON and HTML.
const MAX_UNPACKED: u64 = 256 * 1024 * 1024;

/// Unpacks a `.tar.gz` bundle into `into` (one folder, regular files only, no path that
/// leaves it, bounded size); returns the bundle's folder.
pub fn unpack(archive: &Path, into: &Path) -> Result<PathBuf, String> {
    let file = std::fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut total = 0u64;
    let mut root: Option<String> = None;
    let entries = tar
        .entries()
        .map_err(|e| format!("{}: not a tar.gz: {e}", archive.display()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{}: {e}", archive.display()))?;
        let path = entry
            .path()
            .map_err(|e| format!("{}: {e}", archive.display()))?
            .into_owned();
        let parts: Vec<String> = path
            .components()
            .map(|c| match c {
                std::path::Component::Normal(s) => Ok(s.to_string_lossy().into_owned()),
                _ => Err(format!(
                    "{}: entry {} leaves the bundle",
                    archive.display(),
                    path.display()
                )),
            })
            .collect::<Result<_, _>>()?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let [folder, name] = parts.as_slice() else {
            return Err(format!(
                "{}: entry {} is not FOLDER/FILE",
                archive.display(),
                path.display()
            ));
        };
        if !entry.header().entry_type().is_file() {
            return Err(format!(
                "{}: entry {} is not a regular file",
                archive.display(),
                path.display()
            ));
        }
        if root.get_or_insert_with(|| folder.clone()) != folder {
            return Err(format!("{}: more than one folder", archive.display()));
        }
        total += entry.size();
        if total > MAX_UNPACKED {
            return Err(format!(
                "{}: unpacks to more than {MAX_UNPACKED} bytes",
                archive.display()
            ));
        }
        let dir = into.join(folder);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut out = std::fs::File::create(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        std::io::copy(&mut (&mut entry).take(MAX_UNPACKED), &mut out)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    root.map(|r| into.join(r))
        .ok_or_else(|| format!("{}: an empty archive", archive.display()))
}
