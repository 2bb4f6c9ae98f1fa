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
use crate::common::Delay;
use crate::protocol::jwt::{Alg, AppClaim};
use crate::protocol::v2::Event;
use crate::protocol::{Version, WebhookUrl, SYNC_BUDGET};

/// Looks up environment variables (injectable for tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

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
const STEP_ACTIONS: [&str; 7] = [
    "send", "event", "template", "form", "upload", "include", "think",
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
    match crate::common::read_limited(path, crate::common::MAX_SOURCE_BYTES) {
        Ok(text) => parse_with(&text, path, env, overlay),
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
    let mut v = Validator {
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
                self.err(node.pos, path, e);
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
        let load = self.overlaid_load(get("load")).and_then(|l| self.load(&l));
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

    fn target(&mut self, node: Option<&At<Node>>) -> Option<Target> {
        let mut t = Target {
            url: None,
            version: None,
            mode: None,
            instance: None,
            timeout: SYNC_BUDGET,
            poll: Poll {
                interval: PollInterval::Fixed(Duration::from_secs(1)),
                max_wait: Duration::from_secs(60),
            },
            asynch: AsyncCfg {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                public_url: None,
                quiet: Duration::from_millis(1500),
                max_wait: Duration::from_secs(30),
            },
        };
        let Some(node) = node else { return Some(t) };
        let entries = self.map(node, "target")?;
        self.keys(
            entries,
            &[
                "url", "version", "mode", "instance", "timeout", "poll", "async",
            ],
            "target",
        );
        let mut explicit_version = None;
        for (k, v) in entries {
            let path = format!("target.{}", k.value);
            match k.value.as_str() {
                "url" => {
                    if let Some(url) = self.text(v, &path) {
                        match WebhookUrl::parse(&url) {
                            Ok(u) => {
                                t.version = Some(u.version);
                                t.url = Some(url);
                            }
                            Err(e) => self.err(v.pos, &path, e.to_string()),
                        }
                    }
                }
                "version" => match self.text(v, &path).as_deref() {
                    Some("v1") => explicit_version = Some((Version::V1, v.pos)),
                    Some("v2") => explicit_version = Some((Version::V2, v.pos)),
                    Some(other) => self.err(
                        v.pos,
                        &path,
                        format!("version must be v1 or v2, not `{other}`"),
                    ),
                    None => {}
                },
                "mode" => match self.text(v, &path).as_deref() {
                    Some("sync") => t.mode = Some(Mode::Sync),
                    Some("async") => t.mode = Some(Mode::Async),
                    Some(other) => self.err(
                        v.pos,
                        &path,
                        format!("mode must be sync or async, not `{other}`"),
                    ),
                    None => {}
                },
                "instance" => t.instance = self.text(v, &path),
                "timeout" => {
                    if let Some(d) = self.duration(v, &path) {
                        t.timeout = d;
                    }
                }
                "poll" => {
                    if let Some(pe) = self.map(v, &path) {
                        self.keys(pe, &["interval", "max_wait"], &path);
                        for (pk, pv) in pe {
                            let pp = format!("{path}.{}", pk.value);
                            match pk.value.as_str() {
                                "interval" => {
                                    if let Some(i) = self.poll_interval(pv, &pp) {
                                        t.poll.interval = i;
                                    }
                                }
                                "max_wait" => {
                                    if let Some(d) = self.duration(pv, &pp) {
                                        t.poll.max_wait = d;
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                "async" => {
                    if let Some(ae) = self.map(v, &path) {
                        self.keys(ae, &["listen", "public_url", "quiet", "max_wait"], &path);
                        for (ak, av) in ae {
                            let ap = format!("{path}.{}", ak.value);
                            match ak.value.as_str() {
                                "listen" => {
                                    match self.text(av, &ap).map(|s| s.parse::<SocketAddr>()) {
                                        Some(Ok(a)) => t.asynch.listen = a,
                                        Some(Err(_)) => self.err(
                                            av.pos,
                                            &ap,
                                            "expected an address like 127.0.0.1:0 or 0.0.0.0:8080"
                                                .into(),
                                        ),
                                        None => {}
                                    }
                                }
                                "public_url" if !matches!(av.value, Node::Null) => {
                                    t.asynch.public_url = self.text(av, &ap)
                                }
                                "quiet" => {
                                    t.asynch.quiet =
                                        self.duration(av, &ap).unwrap_or(t.asynch.quiet)
                                }
                                "max_wait" => {
                                    t.asynch.max_wait =
                                        self.duration(av, &ap).unwrap_or(t.asynch.max_wait)
                                }
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some((version, pos)) = explicit_version {
            if let Some(url_version) = t.version.filter(|v| *v != version) {
                self.err(
                    pos,
                    "target.version",
                    format!("the URL is a {url_version} URL but version says {version}"),
                );
            }
            t.version = Some(version);
        }
        let url_names_instance = t
            .url
            .as_deref()
            .and_then(|u| WebhookUrl::parse(u).ok())
            .is_some_and(|u| u.instance.is_some());
        if url_names_instance {
            if let Some(pos) = entries
                .iter()
                .find(|(k, _)| k.value == "instance")
                .map(|(k, _)| k.pos)
            {
                self.err(
                    pos,
                    "target.instance",
                    "the URL already names a channel instance (`/hookInstance/…`)".into(),
                );
            }
        }
        Some(t)
    }

    fn rate(&mut self, node: &At<Node>, path: &str) -> Option<f64> {
        let text = match node.value {
            Node::Str(_) => self.text(node, path)?,
            ref other => other.as_text().unwrap_or_default(),
        };
        let (num, per) = match text.split_once('/') {
            Some((n, unit)) => (n.trim().to_string(), unit.trim().to_string()),
            None => (text.clone(), "s".to_string()),
        };
        let per_secs = match per.as_str() {
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => 0.0,
        };
        match num.parse::<f64>() {
            Ok(n) if n.is_finite() && n > 0.0 && per_secs > 0.0 && n / per_secs <= MAX_RATE => {
                Some(n / per_secs)
            }
            Ok(n) if n.is_finite() && n > 0.0 && per_secs > 0.0 => {
                self.err(
                    node.pos,
                    path,
                    format!("`{text}` is beyond the most one generator can start ({MAX_RATE}/s)"),
                );
                None
            }
            _ => {
                self.err(
                    node.pos,
                    path,
                    format!("`{text}` is not a rate above zero (write 20/s, 600/m or 20)"),
                );
                None
            }
        }
    }

    fn stages(&mut self, node: &At<Node>, path: &str, rates: bool) -> Vec<Stage> {
        let Node::Seq(items) = &node.value else {
            self.err(
                node.pos,
                path,
                "stages is a list like [{to: 100, over: 1m}, {hold: 5m}]".into(),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(e) = self.map(it, &p) else { continue };
            self.keys(e, &["to", "over", "hold"], &p);
            if let Some(h) = it.value.get("hold") {
                if let Some(d) = self.duration(h, &join(&p, "hold")) {
                    out.push(Stage {
                        target: None,
                        over: d,
                    });
                }
                continue;
            }
            let (Some(to), Some(over)) = (it.value.get("to"), it.value.get("over")) else {
                self.err(
                    it.pos,
                    &p,
                    "a stage is {to: N, over: DURATION} or {hold: DURATION}".into(),
                );
                continue;
            };
            let target = if rates {
                self.rate(to, &join(&p, "to"))
            } else {
                self.uint(to, &join(&p, "to")).map(|n| n as f64)
            };
            if let (Some(target), Some(over)) = (target, self.duration(over, &join(&p, "over"))) {
                out.push(Stage {
                    target: Some(target),
                    over,
                });
            }
        }
        out
    }

    fn load(&mut self, node: &At<Node>) -> Option<Load> {
        let e = self.map(node, "load")?;
        self.keys(
            e,
            &[
                "users",
                "rate",
                "stages",
                "arrivals",
                "max_concurrency",
                "capacity",
                "duration",
                "iterations",
                "grace",
                "connections",
                "max_connections",
                "default_gate",
            ],
            "load",
        );
        let g = |k: &str| node.value.get(k);
        let mut load = Load::default();
        let poisson = match g("arrivals")
            .and_then(|a| self.text(a, "load.arrivals"))
            .as_deref()
        {
            None | Some("constant") => false,
            Some("poisson") => true,
            Some(other) => {
                self.err(
                    g("arrivals").expect("present").pos,
                    "load.arrivals",
                    format!("arrivals are `constant` or `poisson`, not `{other}`"),
                );
                false
            }
        };
        let max_concurrency =
            g("max_concurrency").and_then(|m| self.bounded(m, "load.max_concurrency", 1, u64::MAX));
        // Options of the open model and the capacity search mean nothing to closed users.
        if g("rate").is_none() && g("capacity").is_none() {
            for key in ["arrivals", "max_concurrency"] {
                if let Some(n) = g(key) {
                    self.err(
                        n.pos,
                        &format!("load.{key}"),
                        format!("`{key}` applies to an arrival rate (rate, capacity), not to closed users"),
                    );
                }
            }
        }
        let models = ["users", "rate", "capacity"]
            .iter()
            .filter(|k| g(k).is_some())
            .count();
        if models > 1 {
            self.err(
                node.pos,
                "load",
                "give one of users (closed model), rate (open model) or capacity (search)".into(),
            );
            return None;
        }
        if let Some(c) = g("capacity") {
            let ce = self.map(c, "load.capacity")?;
            self.keys(ce, &["start", "step", "every", "max"], "load.capacity");
            let start = c
                .value
                .get("start")
                .and_then(|v| self.rate(v, "load.capacity.start"))
                .unwrap_or(1.0);
            let step = c
                .value
                .get("step")
                .and_then(|v| self.rate(v, "load.capacity.step"))
                .unwrap_or(start);
            let every = c
                .value
                .get("every")
                .and_then(|v| self.duration(v, "load.capacity.every"))
                .unwrap_or(Duration::from_secs(30));
            let max = c
                .value
                .get("max")
                .and_then(|v| self.rate(v, "load.capacity.max"))
                .unwrap_or(f64::MAX);
            load.model = LoadModel::Capacity {
                start,
                step,
                every,
                max,
                poisson,
                max_concurrency,
            };
        } else if let Some(r) = g("rate") {
            let rate = self.rate(r, "load.rate")?;
            let stages = g("stages")
                .map(|s| self.stages(s, "load.stages", true))
                .unwrap_or_default();
            load.model = LoadModel::Open {
                rate,
                stages,
                poisson,
                max_concurrency,
            };
        } else {
            let ramped = g("stages").is_some();
            let users = match g("users") {
                Some(u) => self.bounded(u, "load.users", u64::from(!ramped), MAX_USERS)?,
                None if ramped => 0,
                None => 1,
            };
            let stages = g("stages")
                .map(|s| self.stages(s, "load.stages", false))
                .unwrap_or_default();
            load.model = LoadModel::Closed { users, stages };
        }
        load.duration = g("duration").and_then(|d| {
            let v = self.duration(d, "load.duration")?;
            if v.is_zero() {
                self.err(d.pos, "load.duration", "a run lasts longer than 0s".into());
                return None;
            }
            Some(v)
        });
        load.iterations =
            g("iterations").and_then(|d| self.bounded(d, "load.iterations", 1, u64::MAX));
        if let Some(gr) = g("grace").and_then(|d| self.duration(d, "load.grace")) {
            load.grace = gr;
        }
        match g("connections")
            .and_then(|c| self.text(c, "load.connections"))
            .as_deref()
        {
            None | Some("shared") => {}
            Some("per_user") => load.connection_per_user = true,
            Some(other) => self.err(
                g("connections").expect("present").pos,
                "load.connections",
                format!("connections are `shared` or `per_user`, not `{other}`"),
            ),
        }
        if let Some(m) = g("max_connections") {
            load.max_connections = self.bounded(m, "load.max_connections", 1, u64::MAX);
        }
        if let Some(b) = g("default_gate").and_then(|b| self.boolean(b, "load.default_gate")) {
            load.default_gate = b;
        }
        Some(load)
    }

    fn thresholds(&mut self, node: &At<Node>) -> Vec<super::threshold::Threshold> {
        let Node::Seq(items) = &node.value else {
            self.err(
                node.pos,
                "thresholds",
                "thresholds is a list of expressions like `turn.latency.p99 < 3s`".into(),
            );
            return Vec::new();
        };
        let labels: Vec<String> = self.steps.iter().map(|s| s.label.to_string()).collect();
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = format!("thresholds[{i}]");
            let (expr_node, abort) = match &it.value {
                Node::Map(e) => {
                    self.keys(e, &["expr", "abort"], &p);
                    let abort = it
                        .value
                        .get("abort")
                        .and_then(|a| self.boolean(a, &join(&p, "abort")))
                        .unwrap_or(false);
                    match it.value.get("expr") {
                        Some(x) => (x, abort),
                        None => {
                            self.err(it.pos, &p, "a threshold mapping needs `expr`".into());
                            continue;
                        }
                    }
                }
                _ => (it, false),
            };
            let Some(expr) = self.text(expr_node, &p) else {
                continue;
            };
            match super::threshold::parse(&expr, abort) {
                Ok(t) => {
                    if let super::threshold::MetricRef::Dist(
                        super::threshold::Dist::Step(label),
                        _,
                    ) = &t.metric
                    {
                        if !labels.iter().any(|l| l == label) {
                            let hint = did_you_mean(label, labels.iter().map(String::as_str))
                                .map(|s| format!("did you mean `step[{s}]`?"));
                            let hint =
                                hint.or_else(|| Some(format!("steps: {}", labels.join(", "))));
                            self.err_hint(
                                expr_node.pos,
                                &p,
                                format!("no step is labelled `{label}`"),
                                hint,
                            );
                            continue;
                        }
                    }
                    out.push(t);
                }
                Err(e) => {
                    let word = expr
                        .split(|c: char| c.is_whitespace() || "<>=!".contains(c))
                        .next()
                        .unwrap_or("");
                    let base = word.rsplit_once('.').map(|(b, _)| b).unwrap_or(word);
                    // A metric that reads (or names a known distribution) needs no "did you
                    // mean": the error is about its statistic, operator or value.
                    let known = super::threshold::parse_metric(word).is_ok()
                        || super::threshold::METRIC_NAMES.contains(&base);
                    if known {
                        self.err(expr_node.pos, &p, e);
                        continue;
                    }
                    let hint = did_you_mean(base, super::threshold::METRIC_NAMES)
                        .or_else(|| did_you_mean(word, super::threshold::METRIC_NAMES));
                    let hint = hint.map(|s| format!("did you mean `{s}`?")).or_else(|| {
                        Some(format!(
                            "metrics: {}",
                            super::threshold::METRIC_NAMES.join(", ")
                        ))
                    });
                    self.err_hint(expr_node.pos, &p, e, hint);
                }
            }
        }
        out
    }

    fn poll_interval(&mut self, node: &At<Node>, path: &str) -> Option<PollInterval> {
        if let Node::Map(e) = &node.value {
            self.keys(e, &["exponential", "max"], path);
            let initial = e
                .iter()
                .find(|(k, _)| k.value == "exponential")
                .and_then(|(_, v)| self.duration(v, &join(path, "exponential")));
            let max = e
                .iter()
                .find(|(k, _)| k.value == "max")
                .and_then(|(_, v)| self.duration(v, &join(path, "max")));
            return match initial {
                Some(initial) => Some(PollInterval::Exponential {
                    initial,
                    max: max.unwrap_or(Duration::from_secs(5)),
                }),
                None => {
                    self.err(
                        node.pos,
                        path,
                        "an exponential interval needs `exponential: FIRST_WAIT`".into(),
                    );
                    None
                }
            };
        }
        match self.text(node, path)?.as_str() {
            "immediate" => Some(PollInterval::Immediate),
            other => parse_duration(other)
                .map(PollInterval::Fixed)
                .map_err(|e| {
                    self.err(
                        node.pos,
                        path,
                        format!("{e}; or `immediate`, or `{{exponential: 250ms, max: 4s}}`"),
                    )
                })
                .ok(),
        }
    }

    fn auth(&mut self, node: &At<Node>) -> Option<Auth> {
        let entries = self.map(node, "auth")?;
        self.keys(
            entries,
            &[
                "client_id",
                "client_secret",
                "private_key_file",
                "algorithm",
                "claims",
            ],
            "auth",
        );
        let mut a = Auth {
            client_id: String::new(),
            client_secret: None,
            private_key_file: None,
            algorithm: Alg::HS256,
            app_claim: AppClaim::AppId,
            user_identity: true,
            expires_in: Some(Duration::from_secs(3600)),
            jti: false,
        };
        let mut has_id = false;
        for (k, v) in entries {
            let path = format!("auth.{}", k.value);
            match k.value.as_str() {
                "client_id" => {
                    if let Some(id) = self.text(v, &path) {
                        a.client_id = id;
                        has_id = true;
                    }
                }
                "client_secret" => a.client_secret = self.text(v, &path).map(Secret),
                "private_key_file" => {
                    a.private_key_file = self.text(v, &path).map(|p| self.base_dir().join(p));
                    if let Some(f) = a.private_key_file.as_ref().filter(|f| !f.is_file()) {
                        let message = format!("no such file: {}", f.display());
                        self.err(v.pos, &path, message);
                    }
                }
                "algorithm" => {
                    if let Some(s) = self.text(v, &path) {
                        match Alg::parse(&s.to_ascii_uppercase()) {
                            Some(alg) => a.algorithm = alg,
                            None => self.err(
                                v.pos,
                                &path,
                                format!("`{s}` is not one of HS256, HS512, RS256, RS512"),
                            ),
                        }
                    }
                }
                "claims" => {
                    if let Some(ce) = self.map(v, &path) {
                        self.keys(ce, &["app", "user_identity", "expires_in", "jti"], &path);
                        for (ck, cv) in ce {
                            let cp = format!("{path}.{}", ck.value);
                            match ck.value.as_str() {
                                "app" => match self.text(cv, &cp).as_deref() {
                                    Some("appId") => a.app_claim = AppClaim::AppId,
                                    Some("iss") => a.app_claim = AppClaim::Iss,
                                    Some(other) => self.err(
                                        cv.pos,
                                        &cp,
                                        format!("app must be appId or iss, not `{other}`"),
                                    ),
                                    None => {}
                                },
                                "user_identity" => {
                                    a.user_identity = self.boolean(cv, &cp).unwrap_or(true)
                                }
                                "expires_in" => {
                                    a.expires_in = if matches!(cv.value, Node::Null) {
                                        None
                                    } else {
                                        self.duration(cv, &cp)
                                    }
                                }
                                "jti" => a.jti = self.boolean(cv, &cp).unwrap_or(false),
                                _ => {}
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !has_id && !entries.iter().any(|(k, _)| k.value == "client_id") {
            self.err(node.pos, "auth.client_id", "auth needs `client_id`".into());
        }
        if a.algorithm.is_hmac()
            && a.client_secret.is_none()
            && !entries.iter().any(|(k, _)| k.value == "client_secret")
        {
            self.err(
                node.pos,
                "auth.client_secret",
                format!("{} needs `client_secret`", a.algorithm),
            );
        }
        if !a.algorithm.is_hmac()
            && a.private_key_file.is_none()
            && !entries.iter().any(|(k, _)| k.value == "private_key_file")
        {
            self.err(
                node.pos,
                "auth.private_key_file",
                format!("{} needs `private_key_file`", a.algorithm),
            );
        }
        Some(a)
    }

    fn user(&mut self, node: Option<&At<Node>>) -> Option<User> {
        let mut u = User {
            id: Template::parse("hookbench-{{run}}-{{vu}}").expect("valid"),
            first_name: None,
            last_name: None,
            email: None,
        };
        let Some(node) = node else { return Some(u) };
        let entries = self.map(node, "user")?;
        self.keys(entries, &["id", "first_name", "last_name", "email"], "user");
        for (k, v) in entries {
            let path = format!("user.{}", k.value);
            let t = self.template(v, &path);
            match k.value.as_str() {
                "id" => u.id = t.unwrap_or(u.id),
                "first_name" => u.first_name = t,
                "last_name" => u.last_name = t,
                "email" => u.email = t,
                _ => {}
            }
        }
        Some(u)
    }

    fn data(&mut self, node: &At<Node>) -> Option<Data> {
        if let Node::Seq(items) = &node.value {
            return self.inline_data(node, items);
        }
        let rel = self.text(node, "data")?;
        let path = self.base_dir().join(&rel);
        let text = crate::common::read_limited(&path, crate::common::MAX_DATA_BYTES);
        let mut reader = match text {
            Ok(t) => csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(std::io::Cursor::new(t.into_bytes())),
            Err(e) => {
                self.err(
                    node.pos,
                    "data",
                    format!("cannot read `{}`: {e}", path.display()),
                );
                return None;
            }
        };
        let columns: Vec<String> = match reader.headers() {
            Ok(h) => h.iter().map(str::to_string).collect(),
            Err(e) => {
                self.err(
                    node.pos,
                    "data",
                    format!("`{}` has no header row: {e}", path.display()),
                );
                return None;
            }
        };
        let mut rows = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            match rec {
                Ok(r) => rows.push(r.iter().map(str::to_string).collect()),
                Err(e) => {
                    self.err(
                        node.pos,
                        "data",
                        format!("`{}` row {}: {e}", path.display(), i + 2),
                    );
                    return None;
                }
            }
        }
        if rows.is_empty() {
            self.err(
                node.pos,
                "data",
                format!("`{}` has no rows", path.display()),
            );
            return None;
        }
        Some(Data {
            path,
            columns,
            rows,
        })
    }

    /// `data:` written in the scenario: a list of mappings, one per row, all with the same keys.
    fn inline_data(&mut self, node: &At<Node>, items: &[At<Node>]) -> Option<Data> {
        if items.is_empty() {
            self.err(node.pos, "data", "`data:` has no rows".into());
            return None;
        }
        let mut columns: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("data[{i}]");
            let Some(entries) = self.map(item, &path) else {
                continue;
            };
            if i == 0 {
                columns = entries.iter().map(|(k, _)| k.value.clone()).collect();
            }
            let mut row = vec![String::new(); columns.len()];
            let mut ok = true;
            for (k, v) in entries {
                let at = format!("{path}.{}", k.value);
                match columns.iter().position(|c| *c == k.value) {
                    Some(c) => match v.value.as_text() {
                        Some(t) => row[c] = t,
                        None => {
                            let kind = v.value.kind();
                            self.err(
                                v.pos,
                                &at,
                                format!("a data value is text or a number, not {kind}"),
                            );
                            ok = false;
                        }
                    },
                    None => {
                        self.err(
                            k.pos,
                            &at,
                            format!(
                                "`{}` is not a column of the first row ({})",
                                k.value,
                                columns.join(", ")
                            ),
                        );
                        ok = false;
                    }
                }
            }
            for c in &columns {
                if !entries.iter().any(|(k, _)| k.value == *c) {
                    self.err(item.pos, &path, format!("row {} has no `{c}`", i + 1));
                    ok = false;
                }
            }
            if ok {
                rows.push(row);
            }
        }
        // Rows with errors are left out (the errors fail validation); the columns still
        // define their variables, so no error follows from another.
        (!columns.is_empty()).then(|| Data {
            path: self.file.clone(),
            columns,
            rows,
        })
    }

    fn steps(&mut self, node: &At<Node>, path: &str) {
        let Node::Seq(items) = &node.value else {
            let kind = node.value.kind();
            self.err(
                node.pos,
                path,
                format!("expected a list of steps, found {kind}"),
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            self.step(item, &format!("{path}[{i}]"));
        }
    }

    fn step(&mut self, node: &At<Node>, path: &str) {
        let Some(entries) = self.map(node, path) else {
            return;
        };
        let mut allowed: Vec<&str> = STEP_ACTIONS.to_vec();
        allowed.extend(STEP_OPTIONS);
        self.keys(entries, &allowed, path);
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.value == k)
                .map(|(_, v)| v)
        };
        let actions: Vec<&str> = entries
            .iter()
            .map(|(k, _)| k.value.as_str())
            .filter(|k| STEP_ACTIONS.contains(k) && *k != "think")
            .collect();
        if actions.len() > 1 {
            self.err(
                node.pos,
                path,
                format!("a step does one thing; found {}", actions.join(" and ")),
            );
            return;
        }
        if let Some(inc) = get("include") {
            if entries.len() > 1 {
                self.err(node.pos, path, "`include` stands alone in its step".into());
            }
            self.include(inc, &join(path, "include"));
            return;
        }
        let think = get("think").and_then(|t| self.delay(t, &join(path, "think")));
        let (action, label) = match actions.first().copied() {
            None => match think {
                Some(d) => (Action::Think(d), format!("think {d}")),
                None => {
                    if get("think").is_none() {
                        self.err_hint(
                            node.pos,
                            path,
                            "a step needs an action".into(),
                            Some(format!("one of: {}", STEP_ACTIONS.join(", "))),
                        );
                    }
                    return;
                }
            },
            Some("send") => {
                let p = join(path, "send");
                let Some(t) = self.template(get("send").expect("present"), &p) else {
                    return;
                };
                let label = format!("send {t}");
                (Action::Send(t), label)
            }
            Some("event") => {
                let p = join(path, "event");
                let n = get("event").expect("present");
                match self.text(n, &p).as_deref() {
                    Some("ON_CONNECT") => (
                        Action::Event(Event::OnConnect),
                        "event ON_CONNECT".to_string(),
                    ),
                    Some("SESSION_CLOSURE") => (
                        Action::Event(Event::SessionClosure),
                        "event SESSION_CLOSURE".to_string(),
                    ),
                    Some(other) => {
                        let hint = did_you_mean(other, ["ON_CONNECT", "SESSION_CLOSURE"])
                            .map(|s| format!("did you mean `{s}`?"));
                        self.err_hint(
                            n.pos,
                            &p,
                            format!("unknown event `{other}` (ON_CONNECT or SESSION_CLOSURE)"),
                            hint,
                        );
                        return;
                    }
                    None => return,
                }
            }
            Some("template") => {
                let p = join(path, "template");
                let n = get("template").expect("present");
                if !matches!(n.value, Node::Map(_)) {
                    self.err(n.pos, &p, "a template step sends an object".into());
                    return;
                }
                (
                    Action::Template(self.json_templated(n, &p)),
                    "template".to_string(),
                )
            }
            Some("form") => {
                let p = join(path, "form");
                let Some(fe) = self.map(get("form").expect("present"), &p) else {
                    return;
                };
                let mut fields = Vec::new();
                for (k, v) in fe {
                    if let Some(t) = self.template(v, &join(&p, &k.value)) {
                        fields.push((k.value.clone(), t));
                    }
                }
                let label = format!(
                    "form {}",
                    fields
                        .iter()
                        .map(|(k, _)| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                (Action::Form(fields), label)
            }
            Some("upload") => {
                let p = join(path, "upload");
                let Some(ue) = self.map(get("upload").expect("present"), &p) else {
                    return;
                };
                self.keys(
                    ue,
                    &["file", "text", "file_type", "chunk_size", "method"],
                    &p,
                );
                let uget = |k: &str| ue.iter().find(|(key, _)| key.value == k).map(|(_, v)| v);
                let file = match uget("file") {
                    Some(f) => self
                        .text(f, &join(&p, "file"))
                        .map(|rel| (self.base_dir().join(rel), f.pos)),
                    None => {
                        self.err(
                            get("upload").expect("present").pos,
                            &join(&p, "file"),
                            "upload needs `file`".into(),
                        );
                        None
                    }
                };
                if let Some((fp, pos)) = &file {
                    if !fp.is_file() {
                        self.err(
                            *pos,
                            &join(&p, "file"),
                            format!("no such file: {}", fp.display()),
                        );
                    }
                }
                let text = uget("text")
                    .and_then(|t| self.template(t, &join(&p, "text")))
                    .unwrap_or_else(|| Template::literal("Please see the attached file."));
                let file_type = uget("file_type")
                    .and_then(|t| self.text(t, &join(&p, "file_type")))
                    .unwrap_or_else(|| "attachment".into());
                let chunk_size = uget("chunk_size")
                    .and_then(|c| self.uint(c, &join(&p, "chunk_size")))
                    .unwrap_or(1024 * 1024)
                    .max(1) as usize;
                let method = match uget("method") {
                    None => UploadMethod::Chunked(chunk_size),
                    Some(m) => match self.text(m, &join(&p, "method")).as_deref() {
                        Some("chunked") => UploadMethod::Chunked(chunk_size),
                        Some("one_shot") => {
                            if let Some(c) = uget("chunk_size") {
                                self.err(
                                    c.pos,
                                    &join(&p, "chunk_size"),
                                    "chunk_size applies to `method: chunked` only".into(),
                                );
                            }
                            UploadMethod::OneShot
                        }
                        Some(word) => {
                            self.err(
                                m.pos,
                                &join(&p, "method"),
                                format!("method is `chunked` (token, chunks, merge) or `one_shot`, not `{word}`"),
                            );
                            return;
                        }
                        None => return,
                    },
                };
                let Some((path_buf, _)) = file else { return };
                let label = format!(
                    "upload {}",
                    path_buf
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_default()
                );
                (
                    Action::Upload {
                        path: path_buf,
                        text,
                        file_type,
                        method,
                    },
                    label,
                )
            }
            Some(_) => return,
        };
        let label = match get("name") {
            Some(n) => self.text(n, &join(path, "name")).unwrap_or(label),
            None => short_label(label),
        };
        let expect = match get("expect") {
            Some(e) => self.checks(e, &join(path, "expect")),
            None => Vec::new(),
        };
        let mut step = Step {
            index: self.steps.len(),
            file: self.file.clone(),
            shown_file: self.file.display().to_string().into(),
            pos: node.pos,
            label: label.into(),
            action,
            expect,
            capture: Vec::new(),
            think: if actions.is_empty() { None } else { think },
            new_session: false,
            attachments: None,
            tags: None,
            custom_data: None,
            language: None,
        };
        for (k, v) in entries {
            let p = join(path, &k.value);
            match k.value.as_str() {
                "new_session" => step.new_session = self.boolean(v, &p).unwrap_or(false),
                "attachments" => step.attachments = self.attachments(v, &p),
                "tags" => step.tags = self.tags(v, &p),
                "custom_data" => step.custom_data = Some(self.json_templated(v, &p)),
                "language" => step.language = self.text(v, &p),
                _ => {}
            }
        }
        if let Some(c) = get("capture") {
            step.capture = self.captures(c, &join(path, "capture"));
        }
        self.steps.push(step);
    }

    fn include(&mut self, node: &At<Node>, path: &str) {
        let Some(rel) = self.text(node, path) else {
            return;
        };
        if self.depth >= 8 {
            self.err(
                node.pos,
                path,
                "includes nested more than 8 deep (a cycle?)".into(),
            );
            return;
        }
        let file = self.base_dir().join(&rel);
        let text = match crate::common::read_limited(&file, crate::common::MAX_SOURCE_BYTES) {
            Ok(t) => t,
            Err(e) => {
                self.err(
                    node.pos,
                    path,
                    format!("cannot read `{}`: {e}", file.display()),
                );
                return;
            }
        };
        let saved = (
            std::mem::replace(&mut self.file, file),
            std::mem::replace(&mut self.text, text),
        );
        self.depth += 1;
        match parse(&self.text.clone()) {
            Ok(root) => match &root.value {
                Node::Seq(_) => self.steps(&root, "steps"),
                Node::Map(e) if e.iter().any(|(k, _)| k.value == "steps") => {
                    self.keys(e, &["steps", "name", "description"], "");
                    let steps = root.value.get("steps").expect("checked").clone();
                    self.steps(&steps, "steps");
                }
                other => {
                    let kind = other.kind();
                    self.err(
                        root.pos,
                        "",
                        format!("an included file holds a list of steps, found {kind}"),
                    );
                }
            },
            Err(e) => self.err(e.pos, "", e.message),
        }
        self.depth -= 1;
        self.file = saved.0;
        self.text = saved.1;
    }

    fn attachments(&mut self, node: &At<Node>, path: &str) -> Option<Value> {
        let Node::Seq(items) = &node.value else {
            self.err(node.pos, path, "expected a list of attachments".into());
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(e) = self.map(it, &p) else { continue };
            self.keys(e, &["url", "file_id", "file_type", "file_name"], &p);
            let mut m = Map::new();
            for (k, v) in e {
                let wire = match k.value.as_str() {
                    "url" => "url",
                    "file_id" => "fileId",
                    "file_type" => "fileType",
                    "file_name" => "fileName",
                    _ => continue,
                };
                if let Some(t) = self.template(v, &join(&p, &k.value)) {
                    m.insert(wire.into(), Value::String(t.to_string()));
                }
            }
            out.push(Value::Object(m));
        }
        Some(Value::Array(out))
    }

    fn tags(&mut self, node: &At<Node>, path: &str) -> Option<Value> {
        let e = self.map(node, path)?;
        self.keys(e, &["user", "session", "message"], path);
        let mut out = Map::new();
        for (k, v) in e {
            let wire = match k.value.as_str() {
                "user" => "userLevelTags",
                "session" => "sessionLevelTags",
                "message" => "messageLevelTags",
                _ => continue,
            };
            let p = join(path, &k.value);
            let Some(te) = self.map(v, &p) else { continue };
            let list: Vec<Value> = te
                .iter()
                .map(|(tk, tv)| json!({"name": tk.value, "value": tv.value.to_json()}))
                .collect();
            for (tk, tv) in te {
                if let Node::Str(s) = &tv.value {
                    if let Ok(t) = Template::parse(s) {
                        self.check_vars(&t, tv.pos, &join(&p, &tk.value));
                    }
                }
            }
            out.insert(wire.into(), Value::Array(list));
        }
        Some(Value::Object(out))
    }

    fn captures(&mut self, node: &At<Node>, path: &str) -> Vec<Capture> {
        let Some(e) = self.map(node, path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in e {
            let p = join(path, &k.value);
            let source = match &v.value {
                Node::Str(_) => self.jsonpath(v, &p).map(CaptureSource::JsonPath),
                Node::Map(ce) => {
                    self.keys(ce, &["jsonpath", "regex"], &p);
                    match ce.first() {
                        Some((ck, cv)) if ck.value == "jsonpath" => self
                            .jsonpath(cv, &join(&p, "jsonpath"))
                            .map(CaptureSource::JsonPath),
                        Some((ck, cv)) if ck.value == "regex" => {
                            self.regex(cv, &join(&p, "regex")).map(CaptureSource::Regex)
                        }
                        _ => None,
                    }
                }
                other => {
                    let kind = other.kind();
                    self.err(
                        v.pos,
                        &p,
                        format!("a capture is a JSONPath or {{jsonpath|regex: …}}, found {kind}"),
                    );
                    None
                }
            };
            if let Some(source) = source {
                self.vars.insert(k.value.clone());
                out.push(Capture {
                    name: k.value.clone(),
                    source,
                });
            }
        }
        out
    }

    fn jsonpath(&mut self, node: &At<Node>, path: &str) -> Option<serde_json_path::JsonPath> {
        let s = self.text(node, path)?;
        serde_json_path::JsonPath::parse(&s)
            .map_err(|e| self.err(node.pos, path, format!("invalid JSONPath `{s}`: {e}")))
            .ok()
    }

    fn checks(&mut self, node: &At<Node>, path: &str) -> Vec<Check> {
        let Node::Seq(items) = &node.value else {
            self.err(node.pos, path, "`expect` is a list of checks".into());
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| self.check(it, &format!("{path}[{i}]"), false))
            .collect()
    }

    fn check(&mut self, node: &At<Node>, path: &str, negate: bool) -> Option<Check> {
        let e = self.map(node, path)?;
        if e.len() != 1 {
            self.err(
                node.pos,
                path,
                format!("a check has exactly one kind, found {}", e.len()),
            );
            return None;
        }
        let (k, v) = &e[0];
        let p = join(path, &k.value);
        let pos = k.pos;
        let kind_name = k.value.as_str();
        let (kind, label) = match kind_name {
            "not" => {
                let inner = self.check(v, &p, !negate)?;
                return Some(Check {
                    label: format!("not {}", inner.label).into(),
                    ..inner
                });
            }
            "status" => {
                // HTTP statuses are 100 to 599.
                let codes: Vec<u16> = match &v.value {
                    Node::Seq(items) => items
                        .iter()
                        .filter_map(|c| self.bounded(c, &p, 100, 599))
                        .map(|c| c as u16)
                        .collect(),
                    _ => self
                        .bounded(v, &p, 100, 599)
                        .map(|c| vec![c as u16])
                        .unwrap_or_default(),
                };
                if codes.is_empty() {
                    return None;
                }
                let label = format!(
                    "status {}",
                    codes
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join("|")
                );
                (CheckKind::Status(codes), label)
            }
            "schema" => {
                let name = self.text(v, &p)?;
                let schema = match schemas::builtin(&name) {
                    Some(s) => Some(s),
                    None => {
                        let file = self.base_dir().join(&name);
                        match crate::common::read_limited(&file, crate::common::MAX_SOURCE_BYTES)
                            .map_err(|e| e.to_string())
                            .and_then(|t| {
                                serde_json::from_str::<Value>(&t).map_err(|e| e.to_string())
                            }) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                let hint = did_you_mean(&name, schemas::NAMES)
                                    .map(|s| format!("did you mean `{s}`?"))
                                    .or_else(|| {
                                        Some(format!(
                                            "built-in schemas: {}",
                                            schemas::NAMES.join(", ")
                                        ))
                                    });
                                self.err_hint(v.pos, &p, format!("`{name}` is not a built-in schema, and reading it as a file failed: {e}"), hint);
                                None
                            }
                        }
                    }
                }?;
                match jsonschema::validator_for(&schema) {
                    Ok(val) => (
                        CheckKind::Schema(SchemaRef {
                            name: name.clone(),
                            validator: Arc::new(val),
                        }),
                        format!("schema {name}"),
                    ),
                    Err(e) => {
                        self.err(v.pos, &p, format!("invalid JSON Schema: {e}"));
                        return None;
                    }
                }
            }
            "text" => self.text_check(v, &p)?,
            "jsonpath" => {
                let (src, jp_node, test) = match &v.value {
                    Node::Str(s) => (s.clone(), v, PathTest::Exists(true)),
                    Node::Map(je) => {
                        self.keys(je, &["path", "exists", "equals", "matches", "count"], &p);
                        let Some(pn) = v.value.get("path") else {
                            self.err(v.pos, &p, "jsonpath needs `path`".into());
                            return None;
                        };
                        let tests: Vec<_> = je.iter().filter(|(k, _)| k.value != "path").collect();
                        let test = match tests.as_slice() {
                            [] => PathTest::Exists(true),
                            [(tk, tv)] => match tk.value.as_str() {
                                "exists" => {
                                    PathTest::Exists(self.boolean(tv, &join(&p, "exists"))?)
                                }
                                "equals" => {
                                    PathTest::Equals(self.json_templated(tv, &join(&p, "equals")))
                                }
                                "matches" => {
                                    PathTest::Matches(self.regex(tv, &join(&p, "matches"))?)
                                }
                                "count" => {
                                    PathTest::Count(self.uint(tv, &join(&p, "count"))? as usize)
                                }
                                _ => return None,
                            },
                            _ => {
                                self.err(
                                    v.pos,
                                    &p,
                                    "give one of exists, equals, matches, count".into(),
                                );
                                return None;
                            }
                        };
                        (pn.value.as_text().unwrap_or_default(), pn, test)
                    }
                    other => {
                        let kind = other.kind();
                        self.err(
                            v.pos,
                            &p,
                            format!("jsonpath is a path or a mapping, found {kind}"),
                        );
                        return None;
                    }
                };
                let path_c = self.jsonpath(jp_node, &join(&p, "path"))?;
                let label = match &test {
                    PathTest::Exists(true) => format!("jsonpath {src} exists"),
                    PathTest::Exists(false) => format!("jsonpath {src} does not exist"),
                    PathTest::Equals(x) => format!("jsonpath {src} == {x}"),
                    PathTest::Matches(r) => format!("jsonpath {src} ~ /{r}/"),
                    PathTest::Count(n) => format!("jsonpath {src} count {n}"),
                };
                (
                    CheckKind::JsonPath {
                        source: src,
                        path: path_c,
                        test,
                    },
                    label,
                )
            }
            "messages" => {
                let c = self.count(v, &p)?;
                (CheckKind::Messages(c), format!("messages {c}"))
            }
            "template" => {
                let te = self.map(v, &p)?;
                self.keys(te, &["type", "buttons"], &p);
                let template_type = v
                    .value
                    .get("type")
                    .and_then(|t| self.text(t, &join(&p, "type")));
                let buttons = v
                    .value
                    .get("buttons")
                    .and_then(|b| self.count(b, &join(&p, "buttons")));
                let label = format!(
                    "template {}{}",
                    template_type.clone().unwrap_or_else(|| "any".into()),
                    buttons
                        .map(|b| format!(" with {b} button(s)"))
                        .unwrap_or_default()
                );
                (
                    CheckKind::Template {
                        template_type,
                        buttons,
                    },
                    label,
                )
            }
            "end_of_task" => match &v.value {
                Node::Bool(b) => (
                    CheckKind::EndOfTask {
                        ended: *b,
                        reason: None,
                        task: None,
                    },
                    format!("end_of_task {b}"),
                ),
                Node::Map(ee) => {
                    self.keys(ee, &["reason", "task"], &p);
                    let reason = v
                        .value
                        .get("reason")
                        .and_then(|r| self.text(r, &join(&p, "reason")));
                    let task = v
                        .value
                        .get("task")
                        .and_then(|t| self.text(t, &join(&p, "task")));
                    let label = format!(
                        "end_of_task {} {}",
                        reason.clone().unwrap_or_default(),
                        task.clone().unwrap_or_default()
                    )
                    .trim()
                    .to_string();
                    (
                        CheckKind::EndOfTask {
                            ended: true,
                            reason,
                            task,
                        },
                        label,
                    )
                }
                other => {
                    let kind = other.kind();
                    self.err(
                        v.pos,
                        &p,
                        format!("end_of_task is true, false or {{reason, task}}, found {kind}"),
                    );
                    return None;
                }
            },
            "latency" => {
                let d = match &v.value {
                    Node::Map(le) => {
                        self.keys(le, &["under"], &p);
                        let Some(u) = v.value.get("under") else {
                            self.err(v.pos, &p, "latency needs `under`".into());
                            return None;
                        };
                        self.duration(u, &join(&p, "under"))?
                    }
                    _ => self.duration(v, &p)?,
                };
                (
                    CheckKind::Latency(d),
                    format!(
                        "latency under {}",
                        crate::common::duration::format_duration(d)
                    ),
                )
            }
            "poll" => {
                let pe = self.map(v, &p)?;
                self.keys(pe, &["converged", "max_polls", "within"], &p);
                let converged = v
                    .value
                    .get("converged")
                    .and_then(|c| self.boolean(c, &join(&p, "converged")));
                let max_polls = v
                    .value
                    .get("max_polls")
                    .and_then(|c| self.uint(c, &join(&p, "max_polls")))
                    .map(|n| n as u32);
                let within = v
                    .value
                    .get("within")
                    .and_then(|c| self.duration(c, &join(&p, "within")));
                (
                    CheckKind::Poll {
                        converged,
                        max_polls,
                        within,
                    },
                    "poll".to_string(),
                )
            }
            other => {
                let hint = did_you_mean(
                    other,
                    CHECK_KINDS.iter().copied().filter(|k| *k != "equals"),
                )
                .map(|s| format!("did you mean `{s}`?"));
                let hint =
                    hint.or_else(|| Some(format!("checks: {}", CHECK_KINDS[..10].join(", "))));
                self.err_hint(pos, &p, format!("unknown check `{other}`"), hint);
                return None;
            }
        };
        Some(Check {
            label: label.into(),
            pos,
            negate,
            kind,
        })
    }

    fn count(&mut self, node: &At<Node>, path: &str) -> Option<Count> {
        match &node.value {
            Node::Int(_) | Node::Float(_) => self.uint(node, path).map(|n| Count::Eq(n as usize)),
            Node::Map(e) => {
                self.keys(e, &["count", "min", "max"], path);
                if e.len() != 1 {
                    self.err(node.pos, path, "give one of count, min, max".into());
                    return None;
                }
                let (k, v) = &e[0];
                let n = self.uint(v, &join(path, &k.value))? as usize;
                Some(match k.value.as_str() {
                    "min" => Count::AtLeast(n),
                    "max" => Count::AtMost(n),
                    _ => Count::Eq(n),
                })
            }
            other => {
                let kind = other.kind();
                self.err(
                    node.pos,
                    path,
                    format!("expected a number or {{count|min|max: N}}, found {kind}"),
                );
                None
            }
        }
    }

    fn text_check(&mut self, v: &At<Node>, p: &str) -> Option<(CheckKind, String)> {
        if let Node::Str(_) = v.value {
            let t = self.template(v, p)?;
            let label = format!("text contains {:?}", t.to_string());
            return Some((CheckKind::Text(Which::Any, TextTest::Contains(t)), label));
        }
        let e = self.map(v, p)?;
        self.keys(
            e,
            &["contains", "equals", "matches", "any_of", "nth", "all"],
            p,
        );
        let mut which = Which::Any;
        let mut test = None;
        for (k, tv) in e {
            let tp = join(p, &k.value);
            match k.value.as_str() {
                "nth" => match tv.value {
                    Node::Int(i) => which = Which::Nth(i),
                    _ => self.err(
                        tv.pos,
                        &tp,
                        "nth is a message index (negative counts from the end)".into(),
                    ),
                },
                "all" if self.boolean(tv, &tp) == Some(true) => which = Which::All,
                "contains" => {
                    test = self.template(tv, &tp).map(|t| {
                        (
                            TextTest::Contains(t.clone()),
                            format!("contains {:?}", t.to_string()),
                        )
                    })
                }
                "equals" => {
                    test = self.template(tv, &tp).map(|t| {
                        (
                            TextTest::Equals(t.clone()),
                            format!("equals {:?}", t.to_string()),
                        )
                    })
                }
                "matches" => {
                    test = self
                        .regex(tv, &tp)
                        .map(|r| (TextTest::Matches(r.clone()), format!("matches /{r}/")))
                }
                "any_of" => {
                    if let Node::Seq(items) = &tv.value {
                        let list: Vec<Template> = items
                            .iter()
                            .enumerate()
                            .filter_map(|(i, it)| self.template(it, &format!("{tp}[{i}]")))
                            .collect();
                        let label = format!(
                            "any of {:?}",
                            list.iter().map(Template::to_string).collect::<Vec<_>>()
                        );
                        test = Some((TextTest::AnyOf(list), label));
                    } else {
                        self.err(tv.pos, &tp, "any_of is a list of texts".into());
                    }
                }
                _ => {}
            }
        }
        let Some((test, desc)) = test else {
            if self.diags.is_empty() {
                self.err(
                    v.pos,
                    p,
                    "text needs one of contains, equals, matches, any_of".into(),
                );
            }
            return None;
        };
        let scope = match which {
            Which::Any => String::new(),
            Which::All => " (all messages)".into(),
            Which::Nth(i) => format!(" (message {i})"),
        };
        Some((CheckKind::Text(which, test), format!("text {desc}{scope}")))
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
