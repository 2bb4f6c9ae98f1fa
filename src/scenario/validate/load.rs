//! `load:` (models, ramps, rates and their bounds) and `thresholds:`.

use super::*;

impl Validator<'_> {
    pub(super) fn rate(&mut self, node: &At<Node>, path: &str) -> Option<f64> {
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

    pub(super) fn stages(&mut self, node: &At<Node>, path: &str, rates: bool) -> Vec<Stage> {
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

    pub(super) fn load(&mut self, node: &At<Node>) -> Option<Load> {
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
                "http2",
                "shard",
                "shards",
                "start_at",
                "run_id",
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
        if let Some(b) = g("http2").and_then(|b| self.boolean(b, "load.http2")) {
            load.http2 = b;
        }
        self.sharding(node, &mut load);
        Some(load)
    }

    /// `shard: INDEX/COUNT`, or `shards: COUNT` with the index from `JOB_COMPLETION_INDEX`
    /// (a Kubernetes Indexed Job sets it); `start_at` and `run_id`.
    fn sharding(&mut self, node: &At<Node>, load: &mut Load) {
        let g = |k: &str| node.value.get(k);
        match (g("shard"), g("shards")) {
            (Some(_), Some(s)) => self.err(
                s.pos,
                "load.shards",
                "give `shard` (INDEX/COUNT) or `shards` (COUNT, index from JOB_COMPLETION_INDEX), not both".into(),
            ),
            (Some(s), None) => {
                if let Some(text) = self.text(s, "load.shard") {
                    match crate::scenario::shard::Shard::parse(&text) {
                        Ok(sh) => load.shard = sh,
                        Err(e) => self.err(s.pos, "load.shard", e.to_string()),
                    }
                }
            }
            (None, Some(s)) => {
                let max = u64::from(crate::scenario::shard::MAX_SHARDS);
                if let Some(count) = self.bounded(s, "load.shards", 1, max) {
                    let index = (self.env)("JOB_COMPLETION_INDEX");
                    let parsed = match index.as_deref().map(str::trim) {
                        None | Some("") => Err(format!(
                            "`shards: {count}` takes the shard's index from JOB_COMPLETION_INDEX, which is not set (a Kubernetes Indexed Job sets it); elsewhere give the shard as INDEX/COUNT (--shard 0/{count})"
                        )),
                        Some(i) => i
                            .parse::<u32>()
                            .map_err(|_| format!("JOB_COMPLETION_INDEX `{i}` is not a shard index"))
                            .and_then(|i| {
                                crate::scenario::shard::Shard::new(i, count as u32)
                                    .map_err(|e| e.to_string())
                            }),
                    };
                    match parsed {
                        Ok(sh) => load.shard = sh,
                        Err(e) => self.err(s.pos, "load.shards", e),
                    }
                }
            }
            (None, None) => {}
        }
        if let Some(t) = g("start_at") {
            if let Some(text) = self.text(t, "load.start_at") {
                match parse_start_at(&text) {
                    Ok(at) => load.start_at = Some(at),
                    Err(e) => self.err(t.pos, "load.start_at", e.to_string()),
                }
            }
        }
        if let Some(r) = g("run_id") {
            if let Some(id) = self.text(r, "load.run_id") {
                // A Kubernetes label value: the manifests of `hookbench kube` carry it.
                let ok = !id.is_empty()
                    && id.len() <= 63
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && id.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && id.ends_with(|c: char| c.is_ascii_alphanumeric());
                if ok {
                    load.run_id = Some(id);
                } else {
                    self.err(
                        r.pos,
                        "load.run_id",
                        format!("`{id}` is not a run id: 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"),
                    );
                }
            }
        }
    }

    pub(super) fn thresholds(
        &mut self,
        node: &At<Node>,
    ) -> Vec<crate::scenario::threshold::Threshold> {
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
            match crate::scenario::threshold::parse(&expr, abort) {
                Ok(t) => {
                    if let crate::scenario::threshold::MetricRef::Dist(
                        crate::scenario::threshold::Dist::Step(label),
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
                    let known = crate::scenario::threshold::parse_metric(word).is_ok()
                        || crate::scenario::threshold::METRIC_NAMES.contains(&base);
                    if known {
                        self.err(expr_node.pos, &p, e.0);
                        continue;
                    }
                    let hint = did_you_mean(base, crate::scenario::threshold::METRIC_NAMES)
                        .or_else(|| did_you_mean(word, crate::scenario::threshold::METRIC_NAMES));
                    let hint = hint.map(|s| format!("did you mean `{s}`?")).or_else(|| {
                        Some(format!(
                            "metrics: {}",
                            crate::scenario::threshold::METRIC_NAMES.join(", ")
                        ))
                    });
                    self.err_hint(expr_node.pos, &p, e.0, hint);
                }
            }
        }
        out
    }
}

/// A start time that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartAtError {
    /// A number outside 2000 to 2200.
    #[error("`{0}` is not a start time in Unix seconds (2000 to 2200)")]
    OutOfRange(String),
    /// Neither a number nor RFC 3339.
    #[error("`{0}` is not a start time: write RFC 3339 (2026-12-01T10:00:00Z) or Unix seconds")]
    Syntax(String),
}

/// A start time: RFC 3339 (`2026-12-01T10:00:00Z`) or Unix seconds (`1796119200`), as Unix
/// seconds.
pub fn parse_start_at(text: &str) -> Result<f64, StartAtError> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        // Unix seconds from 2000 to 2200: anything else is a typo, not a time.
        if secs.is_finite() && (946_684_800.0..7_258_118_400.0).contains(&secs) {
            return Ok(secs);
        }
        return Err(StartAtError::OutOfRange(text.to_string()));
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
        .map_err(|_| StartAtError::Syntax(text.to_string()))
}
