//! Turns a positioned YAML tree into a [`Scenario`], collecting every error at once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::diag::{did_you_mean, Diag};
use super::node::{parse, At, Node, Pos};
use super::plan::*;
use super::schemas;
use super::template::{expand_env, Template};
use crate::common::duration::parse_duration;
use crate::common::files::{Disk, Files};
use crate::common::Delay;
use crate::protocol::jwt::{Alg, AppClaim};
use crate::protocol::v2::Event;
use crate::protocol::{Version, WebhookUrl, SYNC_BUDGET};

/// Looks up environment variables (injectable for tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

mod checks;
mod data;
mod load;
mod steps;
mod target;

/// Variables every scenario has.
pub const BUILTIN_VARS: [&str; 5] = ["vu", "iteration", "run", "user", "scenario"];

const TOP_KEYS: [&str; 11] = [
    "name",
    "description",
    "target",
    "auth",
    "user",
    "vars",
    "data",
    "steps",
    "tags",
    "load",
    "thresholds",
];
const STEP_ACTIONS: [&str; 8] = [
    "send", "event", "template", "form", "upload", "notify", "include", "think",
];
const STEP_OPTIONS: [&str; 9] = [
    "name",
    "expect",
    "capture",
    "new_session",
    "attachments",
    "tags",
    "custom_data",
    "language",
    "think",
];
const CHECK_KINDS: [&str; 11] = [
    "status",
    "schema",
    "text",
    "jsonpath",
    "messages",
    "template",
    "end_of_task",
    "latency",
    "poll",
    "not",
    "equals",
];

/// One value given on the command line for a key of the scenario's `load:` section: the
/// command line is an overlay of the file, validated by the same code, and its errors name the
/// flag (`--rate`) where a file's name file:line:col.
#[derive(Debug, Clone, PartialEq)]
pub struct OverlayValue {
    /// The key of `load:` it sets (`rate`).
    pub key: &'static str,
    /// The value as given.
    pub value: Node,
    /// Where it came from (`--rate`).
    pub flag: &'static str,
}

/// The highest arrival rate a plan accepts (per second): beyond what one generator can start.
pub const MAX_RATE: f64 = 1_000_000.0;

/// The most simulated users a closed model accepts (about 6 GiB of generator memory).
pub const MAX_USERS: u64 = 1_000_000;

/// Reads and validates a scenario file.
pub fn load(path: &Path, env: EnvLookup<'_>) -> Result<Scenario, Vec<Diag>> {
    load_with(path, env, &[])
}

/// Reads and validates a scenario file with command-line values over its `load:` section.
pub fn load_with(
    path: &Path,
    env: EnvLookup<'_>,
    overlay: &[OverlayValue],
) -> Result<Scenario, Vec<Diag>> {
    load_from(&Disk, path, env, overlay)
}

/// Reads a scenario through `files` and validates it, with command-line values over its
/// `load:` section; every file it names is read through `files` too.
pub fn load_from(
    files: &dyn Files,
    path: &Path,
    env: EnvLookup<'_>,
    overlay: &[OverlayValue],
) -> Result<Scenario, Vec<Diag>> {
    match files.text(path, crate::common::MAX_SOURCE_BYTES) {
        Ok(text) => parse_from(files, &text, path, env, overlay),
        Err(e) => Err(vec![Diag {
            file: path.to_path_buf(),
            pos: Pos::default(),
            path: String::new(),
            message: format!("cannot read the scenario: {e}"),
            hint: None,
            line_text: None,
        }]),
    }
}

/// Validates scenario text; `file` names it in errors and anchors relative paths.
pub fn parse_str(text: &str, file: &Path, env: EnvLookup<'_>) -> Result<Scenario, Vec<Diag>> {
    parse_with(text, file, env, &[])
}

/// Validates scenario text with command-line values over its `load:` section.
pub fn parse_with(
    text: &str,
    file: &Path,
    env: EnvLookup<'_>,
    overlay: &[OverlayValue],
) -> Result<Scenario, Vec<Diag>> {
    parse_from(&Disk, text, file, env, overlay)
}

/// Validates scenario text, reading the files it names through `files`.
pub fn parse_from(
    files: &dyn Files,
    text: &str,
    file: &Path,
    env: EnvLookup<'_>,
    overlay: &[OverlayValue],
) -> Result<Scenario, Vec<Diag>> {
    let mut v = Validator {
        files,
        overlay,
        file: file.to_path_buf(),
        text: text.to_string(),
        env,
        diags: Vec::new(),
        vars: BUILTIN_VARS.iter().map(|s| s.to_string()).collect(),
        depth: 0,
        steps: Vec::new(),
    };
    let root = match parse(text) {
        Ok(r) => r,
        Err(e) => {
            v.err(e.pos, "", e.message);
            return Err(v.diags);
        }
    };
    let scenario = v.scenario(&root);
    match scenario {
        Some(s) if v.diags.is_empty() => Ok(s),
        _ => {
            if v.diags.is_empty() {
                v.err(root.pos, "", "invalid scenario".into());
            }
            Err(v.diags)
        }
    }
}

type Entries = [(At<String>, At<Node>)];

struct Validator<'a> {
    files: &'a dyn Files,
    overlay: &'a [OverlayValue],
    file: PathBuf,
    text: String,
    env: EnvLookup<'a>,
    diags: Vec<Diag>,
    vars: HashSet<String>,
    depth: usize,
    steps: Vec<Step>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Validator<'_> {
    fn base_dir(&self) -> PathBuf {
        self.file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }

    fn err(&mut self, pos: Pos, path: &str, message: String) {
        self.err_hint(pos, path, message, None);
    }

    fn err_hint(&mut self, pos: Pos, path: &str, message: String, hint: Option<String>) {
        // Line 0, column k: the k-th command-line value (see `overlaid_load`).
        let flag = (pos.line == 0 && pos.column > 0)
            .then(|| self.overlay.get(pos.column as usize - 1))
            .flatten();
        let diag = match flag {
            Some(o) => Diag::at(Path::new(o.flag), "", Pos::default(), path, message, hint),
            None => Diag::at(&self.file, &self.text, pos, path, message, hint),
        };
        self.diags.push(diag);
    }

    /// The file's `load:` section with the command-line values over it. A value that picks a
    /// model (`users`, `rate`) replaces the file's model and the keys only that model takes.
    fn overlaid_load(&self, file: Option<&At<Node>>) -> Option<At<Node>> {
        if self.overlay.is_empty() {
            return file.cloned();
        }
        let mut entries = match file.map(|f| &f.value) {
            None => Vec::new(),
            Some(Node::Map(e)) => e.clone(),
            // Not a mapping: the error is reported on the file's value.
            Some(_) => return file.cloned(),
        };
        let sets = |k: &str| self.overlay.iter().any(|o| o.key == k);
        let replaced: &[&str] = if sets("users") {
            &[
                "users",
                "rate",
                "capacity",
                "stages",
                "arrivals",
                "max_concurrency",
            ]
        } else if sets("rate") {
            &["users", "rate", "capacity", "stages"]
        } else {
            &[]
        };
        entries.retain(|(k, _)| !replaced.contains(&k.value.as_str()) && !sets(&k.value));
        for (i, o) in self.overlay.iter().enumerate() {
            let pos = Pos {
                line: 0,
                column: i as u64 + 1,
            };
            entries.push((
                At {
                    value: o.key.to_string(),
                    pos,
                },
                At {
                    value: o.value.clone(),
                    pos,
                },
            ));
        }
        Some(At {
            value: Node::Map(entries),
            pos: file.map_or(Pos::default(), |f| f.pos),
        })
    }

    fn map<'n>(&mut self, node: &'n At<Node>, path: &str) -> Option<&'n Entries> {
        match &node.value {
            Node::Map(e) => Some(e),
            other => {
                let kind = other.kind();
                self.err(node.pos, path, format!("expected a mapping, found {kind}"));
                None
            }
        }
    }

    fn keys(&mut self, entries: &Entries, allowed: &[&str], path: &str) {
        let mut seen = HashSet::new();
        for (k, _) in entries {
            if !seen.insert(k.value.as_str()) {
                self.err(
                    k.pos,
                    &join(path, &k.value),
                    format!("duplicate key `{}`", k.value),
                );
            }
            if !allowed.contains(&k.value.as_str()) {
                let hint = did_you_mean(&k.value, allowed.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(|| Some(format!("expected one of: {}", allowed.join(", "))));
                self.err_hint(
                    k.pos,
                    &join(path, &k.value),
                    format!("unknown key `{}`", k.value),
                    hint,
                );
            }
        }
    }

    fn text(&mut self, node: &At<Node>, path: &str) -> Option<String> {
        let Some(raw) = node.value.as_text() else {
            let kind = node.value.kind();
            self.err(node.pos, path, format!("expected text, found {kind}"));
            return None;
        };
        match expand_env(&raw, self.env) {
            Ok(s) => Some(s),
            Err(missing) => {
                for name in missing {
                    self.err_hint(
                        node.pos,
                        path,
                        format!("environment variable `{name}` is not set"),
                        Some(format!("export {name}=… before running")),
                    );
                }
                None
            }
        }
    }

    fn template(&mut self, node: &At<Node>, path: &str) -> Option<Template> {
        let s = self.text(node, path)?;
        match Template::parse(&s) {
            Ok(t) => {
                self.check_vars(&t, node.pos, path);
                Some(t)
            }
            Err(e) => {
                self.err(node.pos, path, e.0);
                None
            }
        }
    }

    fn check_vars(&mut self, t: &Template, pos: Pos, path: &str) {
        let unknown: Vec<String> = t
            .vars()
            .filter(|v| !self.vars.contains(*v))
            .map(str::to_string)
            .collect();
        for name in unknown {
            let hint = did_you_mean(&name, self.vars.iter().map(String::as_str))
                .map(|s| format!("did you mean `{s}`?"));
            let hint = hint.or_else(|| Some("define it under `vars:`, as a `data:` column, or `capture:` it in an earlier step".into()));
            self.err_hint(pos, path, format!("variable `{name}` is not defined"), hint);
        }
    }

    fn json_templated(&mut self, node: &At<Node>, path: &str) -> Value {
        // Strings inside may use {{vars}}; they are checked here and rendered at run time.
        fn walk(v: &mut Validator<'_>, n: &At<Node>, path: &str) {
            match &n.value {
                Node::Str(s) => {
                    if let Ok(t) = Template::parse(s) {
                        v.check_vars(&t, n.pos, path);
                    }
                }
                Node::Seq(items) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, it)| walk(v, it, &format!("{path}[{i}]"))),
                Node::Map(entries) => entries
                    .iter()
                    .for_each(|(k, it)| walk(v, it, &join(path, &k.value))),
                _ => {}
            }
        }
        walk(self, node, path);
        let j = node.value.to_json();
        match expand_env_json(&j, self.env) {
            Ok(v) => v,
            Err(missing) => {
                for name in missing {
                    self.err(
                        node.pos,
                        path,
                        format!("environment variable `{name}` is not set"),
                    );
                }
                j
            }
        }
    }

    fn duration(&mut self, node: &At<Node>, path: &str) -> Option<Duration> {
        let s = self.text(node, path)?;
        parse_duration(&s)
            .map_err(|e| self.err(node.pos, path, e.to_string()))
            .ok()
    }

    fn delay(&mut self, node: &At<Node>, path: &str) -> Option<Delay> {
        let s = self.text(node, path)?;
        s.parse::<Delay>()
            .map_err(|e| self.err(node.pos, path, e.to_string()))
            .ok()
    }

    fn boolean(&mut self, node: &At<Node>, path: &str) -> Option<bool> {
        match node.value {
            Node::Bool(b) => Some(b),
            ref other => {
                let kind = other.kind();
                self.err(
                    node.pos,
                    path,
                    format!("expected true or false, found {kind}"),
                );
                None
            }
        }
    }

    fn uint(&mut self, node: &At<Node>, path: &str) -> Option<u64> {
        match node.value {
            Node::Int(i) if i >= 0 => Some(i as u64),
            // `${USERS}` and quoted numbers arrive as text.
            Node::Str(ref s) if s.contains("${") || s.trim().parse::<u64>().is_ok() => {
                let text = self.text(node, path)?;
                match text.trim().parse::<u64>() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        self.err(
                            node.pos,
                            path,
                            format!("expected a whole number ≥ 0, found `{text}`"),
                        );
                        None
                    }
                }
            }
            ref other => {
                let found = match other {
                    Node::Int(i) => i.to_string(),
                    Node::Float(f) => f.to_string(),
                    _ => other.kind().to_string(),
                };
                self.err(
                    node.pos,
                    path,
                    format!("expected a whole number ≥ 0, found {found}"),
                );
                None
            }
        }
    }

    /// A whole number from `min` to `max`.
    fn bounded(&mut self, node: &At<Node>, path: &str, min: u64, max: u64) -> Option<u64> {
        let n = self.uint(node, path)?;
        if (min..=max).contains(&n) {
            return Some(n);
        }
        let key = path.rsplit('.').next().unwrap_or(path);
        let message = if n < min {
            format!("{key} must be at least {min}")
        } else {
            format!("{key} must be at most {max}")
        };
        self.err(node.pos, path, message);
        None
    }

    fn regex(&mut self, node: &At<Node>, path: &str) -> Option<Regex> {
        let s = self.text(node, path)?;
        Regex::new(&s)
            .map_err(|e| {
                self.err(
                    node.pos,
                    path,
                    format!(
                        "invalid regex: {}",
                        e.to_string().lines().last().unwrap_or("")
                    ),
                )
            })
            .ok()
    }

    fn scenario(&mut self, root: &At<Node>) -> Option<Scenario> {
        let entries = self.map(root, "")?;
        self.keys(entries, &TOP_KEYS, "");
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.value == k)
                .map(|(_, v)| v)
        };
        let name = match get("name") {
            Some(n) => self.text(n, "name"),
            None => Some(
                self.file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "scenario".into()),
            ),
        };
        let target = self.target(get("target"));
        let auth = get("auth").and_then(|a| self.auth(a));
        if let Some(vars) = get("vars") {
            if let Some(ve) = self.map(vars, "vars") {
                for (k, _) in ve {
                    self.vars.insert(k.value.clone());
                }
            }
        }
        let data = get("data").and_then(|d| self.data(d));
        if let Some(d) = &data {
            self.vars.extend(d.columns.iter().cloned());
        }
        let mut vars = Vec::new();
        if let Some(vn) = get("vars") {
            if let Node::Map(ve) = &vn.value {
                for (k, val) in ve {
                    if let Some(t) = self.template(val, &format!("vars.{}", k.value)) {
                        vars.push((k.value.clone(), t));
                    }
                }
            }
        }
        let user = self.user(get("user"));
        match get("steps") {
            Some(steps) => self.steps(steps, "steps"),
            None => self.err(root.pos, "steps", "a scenario needs `steps:`".into()),
        }
        if self.steps.is_empty() && get("steps").is_some() && self.diags.is_empty() {
            self.err(root.pos, "steps", "`steps:` is empty".into());
        }
        let load_node = self.overlaid_load(get("load"));
        let load = load_node.as_ref().and_then(|l| self.load(l));
        if let (Some(l), Some(node)) = (&load, &load_node) {
            let rows = data.as_ref().map_or(0, |d| d.rows.len());
            if let Some(why) = crate::scenario::shard::refusal(l, rows, l.shard.count) {
                let at = node
                    .value
                    .get("shard")
                    .or_else(|| node.value.get("shards"))
                    .map_or(node.pos, |n| n.pos);
                self.err(at, "load.shard", why);
            }
        }
        let thresholds = get("thresholds")
            .map(|t| self.thresholds(t))
            .unwrap_or_default();
        Some(Scenario {
            name: name?,
            file: self.file.clone(),
            target: target?,
            auth,
            user: user?,
            vars,
            data,
            steps: std::mem::take(&mut self.steps),
            load,
            thresholds,
        })
    }
}

fn expand_env_json(v: &Value, env: EnvLookup<'_>) -> Result<Value, Vec<String>> {
    Ok(match v {
        Value::String(s) => Value::String(expand_env(s, env)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| expand_env_json(x, env))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), expand_env_json(x, env)?)))
                .collect::<Result<_, Vec<String>>>()?,
        ),
        other => other.clone(),
    })
}

/// A generated step label cut to 60 characters (a `send:` of megabytes is labelled by its
/// start, not printed whole in every report); a `name:` is kept as written.
fn short_label(label: String) -> String {
    const MAX: usize = 60;
    match label.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &label[..at]),
        None => label,
    }
}
