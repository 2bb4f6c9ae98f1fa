//! `hookbench kube`: Kubernetes manifests that run a scenario as an Indexed Job of N shards:
//! a ConfigMap with the scenario and every file it reads, and a Job whose pods run
//! `hookbench run --shards N --start-at … --results-stdout`, credentials from a Secret.

use crate::error::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};

use super::run::RunArgs;
use super::Exit;

/// Arguments of `hookbench kube`.
#[derive(Debug, Args)]
pub struct KubeArgs {
    /// The scenario.
    #[arg(value_name = "SCENARIO")]
    pub scenario: PathBuf,
    /// How many pods (shards) share the run.
    #[arg(long, value_name = "N")]
    pub shards: String,
    /// The container image with hookbench (see the Dockerfile).
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// Namespace of the manifests.
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// Name of the Job (and prefix of the ConfigMap); default `hookbench-<run id>`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The Secret whose keys become the pods' environment (HOOKBENCH_CLIENT_ID,
    /// HOOKBENCH_CLIENT_SECRET, anything the scenario's `${…}` read).
    #[arg(long, value_name = "NAME", default_value = "hookbench-credentials")]
    pub secret: String,
    /// Closed model: users of the whole run (split over the shards).
    #[arg(long, conflicts_with = "rate", value_name = "N")]
    pub users: Option<String>,
    /// Open model: arrivals per second of the whole run (split over the shards).
    #[arg(long, value_name = "RATE")]
    pub rate: Option<String>,
    /// How long to start conversations.
    #[arg(long, value_name = "DURATION")]
    pub duration: Option<String>,
    /// Conversations of the whole run.
    #[arg(long, value_name = "N")]
    pub iterations: Option<String>,
    /// Webhook URL for scenarios without their own `target.url`.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// The pods start the load together this long after the manifests are rendered.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub start_in: String,
    /// The run's id (generated when not given).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// CPU each pod requests.
    #[arg(long, value_name = "CPU", default_value = "1")]
    pub cpu: String,
    /// Memory each pod requests (and is limited to).
    #[arg(long, value_name = "SIZE", default_value = "1Gi")]
    pub memory: String,
    /// The port of each pod's live metrics (Prometheus scrape annotations point at it).
    #[arg(long, value_name = "PORT", default_value = "9464")]
    pub metrics_port: u16,
}

/// Where the scenario's files are mounted in the pods.
const MOUNT: &str = "/hookbench/scenario";

/// Everything the manifests are made of, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// Job name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Image.
    pub image: String,
    /// Shards.
    pub shards: u32,
    /// The run's id.
    pub run_id: String,
    /// When the load starts (RFC 3339).
    pub start_at: String,
    /// The Secret with the credentials.
    pub secret: String,
    /// CPU request.
    pub cpu: String,
    /// Memory request and limit.
    pub memory: String,
    /// Metrics port.
    pub metrics_port: u16,
    /// The scenario's path under the mount.
    pub scenario: String,
    /// Arguments of `hookbench run` beyond the sharding ones (`--users 500`).
    pub extra_args: Vec<String>,
    /// The files, by their path under the mount.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// The manifests as YAML documents.
pub fn render(spec: &JobSpec) -> String {
    let labels = json!({
        "app.kubernetes.io/name": "hookbench",
        "app.kubernetes.io/instance": spec.name,
        "hookbench/run-id": spec.run_id,
    });
    let mut data = serde_json::Map::new();
    let mut binary = serde_json::Map::new();
    let mut items = Vec::new();
    for (i, (path, bytes)) in spec.files.iter().enumerate() {
        // ConfigMap keys cannot hold `/`: numbered keys, mapped back to paths by the volume.
        let base: String = Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .take(200)
            .collect();
        let key = format!("f{i}-{base}");
        match std::str::from_utf8(bytes) {
            Ok(text) => data.insert(key.clone(), Value::String(text.to_string())),
            Err(_) => {
                use base64::Engine;
                binary.insert(
                    key.clone(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
                )
            }
        };
        items.push(json!({"key": key, "path": path}));
    }
    let mut config = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": format!("{}-scenario", spec.name),
            "namespace": spec.namespace,
            "labels": labels,
        },
        "data": data,
    });
    if !binary.is_empty() {
        config["binaryData"] = Value::Object(binary);
    }
    let mut args: Vec<String> = [
        "run",
        &format!("{MOUNT}/{}", spec.scenario),
        "--shards",
        &spec.shards.to_string(),
        "--start-at",
        &spec.start_at,
        "--run-id",
        &spec.run_id,
        "--results-stdout",
        "--quiet",
        "--out",
        "/tmp/results",
        "--metrics-listen",
        &format!("0.0.0.0:{}", spec.metrics_port),
    ]
    .map(String::from)
    .to_vec();
    args.extend(spec.extra_args.iter().cloned());
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": labels,
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.shards,
            "parallelism": spec.shards,
            "backoffLimit": 0,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": spec.metrics_port.to_string(),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                    },
                    "containers": [{
                        "name": "hookbench",
                        "image": spec.image,
                        "args": args,
                        "envFrom": [{"secretRef": {"name": spec.secret}}],
                        "ports": [{"name": "metrics", "containerPort": spec.metrics_port}],
                        "resources": {
                            "requests": {"cpu": spec.cpu, "memory": spec.memory},
                            "limits": {"memory": spec.memory},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [
                            {"name": "scenario", "mountPath": MOUNT, "readOnly": true},
                            {"name": "results", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [
                        {"name": "scenario", "configMap": {"name": format!("{}-scenario", spec.name), "items": items}},
                        {"name": "results", "emptyDir": {}},
                    ],
                },
            },
        },
    });
    let mut out = String::from(
        "# hookbench kube: apply with `kubectl apply -f -`; the pods start the load together at\n",
    );
    out.push_str(&format!(
        "# {} (run {}). Then: kubectl wait --for=condition=complete job/{} -n {} --timeout=1h\n",
        spec.start_at, spec.run_id, spec.name, spec.namespace
    ));
    for doc in [config, job] {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&doc).unwrap_or_default());
    }
    out
}

/// Refuses a scenario that would put a credential into the ConfigMap.
fn inline_secret(files: &[(PathBuf, Option<String>)]) -> Option<String> {
    for (path, text) in files {
        let Some(text) = text else { continue };
        for (n, line) in text.lines().enumerate() {
            let code = line.split(" #").next().unwrap_or_default();
            // `client_secret: …` in block or flow style (`{ client_secret: x, … }`).
            if let Some((_, rest)) = code.split_once("client_secret:") {
                let v = rest.split([',', '}']).next().unwrap_or_default().trim();
                if !v.is_empty() && !v.contains("${") {
                    return Some(format!(
                        "{}:{}: the client secret is written in the scenario, and would go into a ConfigMap; write `client_secret: \"${{HOOKBENCH_CLIENT_SECRET}}\"` and keep the secret in the Kubernetes Secret",
                        path.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    None
}

/// The deepest folder holding every path.
fn common_base(paths: &[PathBuf]) -> PathBuf {
    let mut base: Option<PathBuf> = None;
    for p in paths {
        let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
        base = Some(match base {
            None => dir,
            Some(b) => {
                let mut acc = PathBuf::new();
                for (x, y) in b.components().zip(dir.components()) {
                    if x != y {
                        break;
                    }
                    acc.push(x);
                }
                acc
            }
        });
    }
    base.unwrap_or_default()
}

/// `hookbench kube`.
pub fn kube(args: KubeArgs) -> Exit {
    match spec_of(&args) {
        Ok(spec) => {
            out_part!("{}", render(&spec));
            Exit::Ok
        }
        Err(e) => crate::error::fail(&e),
    }
}

fn spec_of(args: &KubeArgs) -> Result<JobSpec, Error> {
    let count: u32 = args
        .shards
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=crate::scenario::shard::MAX_SHARDS).contains(n))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "--shards `{}` is not a count from 1 to {}",
                args.shards,
                crate::scenario::shard::MAX_SHARDS
            ))
        })?;
    let start_in = crate::common::duration::parse_duration(&args.start_in)
        .map_err(|e| Error::Invalid(format!("--start-in: {e}")))?;
    // The plan every pod will run, validated here as shard 0 (every shard has a share).
    let run = RunArgs {
        scenario: args.scenario.clone(),
        users: args.users.clone(),
        rate: args.rate.clone(),
        poisson: false,
        max_concurrency: None,
        duration: args.duration.clone(),
        iterations: args.iterations.clone(),
        grace: None,
        target: super::TargetArgs {
            target: args.target.clone(),
            client_id: None,
            client_secret: None,
        },
        out: None,
        quiet: true,
        no_color: true,
        connection_per_user: false,
        max_connections: None,
        no_default_gate: false,
        http2: false,
        metrics_listen: None,
        shard: Some(format!("0/{count}")),
        shards: None,
        start_at: None,
        run_id: args.run_id.clone(),
        results_stdout: false,
    };
    let (scenario, load, recorded) = super::run::prepare_recorded(&run).map_err(Error::Plan)?;
    if scenario
        .auth
        .as_ref()
        .is_some_and(|a| a.private_key_file.is_some())
    {
        return Err(Error::Invalid("the scenario signs with a private key file, which must not go into a ConfigMap: sign with HS credentials from the Secret, or mount the key from a Secret yourself".into()));
    }
    let read = recorded.files();
    if let Some(why) = inline_secret(&read) {
        return Err(Error::Invalid(why));
    }
    let absolute: Vec<PathBuf> = read
        .iter()
        .map(|(p, _)| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        .collect();
    let base = common_base(&absolute);
    let mut files = BTreeMap::new();
    for ((_, text), abs) in read.iter().zip(&absolute) {
        let rel = abs
            .strip_prefix(&base)
            .unwrap_or(abs)
            .to_string_lossy()
            .into_owned();
        let bytes = match text {
            Some(t) => t.clone().into_bytes(),
            None => std::fs::read(abs).map_err(|source| Error::Read {
                path: abs.clone(),
                source,
            })?,
        };
        files.insert(rel, bytes);
    }
    let scenario_abs =
        std::path::absolute(&args.scenario).unwrap_or_else(|_| args.scenario.clone());
    let scenario_rel = scenario_abs
        .strip_prefix(&base)
        .unwrap_or(&scenario_abs)
        .to_string_lossy()
        .into_owned();
    let run_id = load.run_id.clone().unwrap_or_default();
    let start = time::OffsetDateTime::now_utc() + start_in;
    let start_at = start
        .replace_nanosecond(0)
        .unwrap_or(start)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("hookbench-{}", run_id.to_ascii_lowercase()));
    let dns = |s: &str| {
        !s.is_empty()
            && s.len() <= 52
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if !dns(&name) {
        return Err(Error::Invalid(format!("`{name}` is not a Job name: lower-case letters, digits and `-`, at most 52 characters (--name)")));
    }
    let mut extra_args = Vec::new();
    for (flag, v) in [
        ("--users", &args.users),
        ("--rate", &args.rate),
        ("--duration", &args.duration),
        ("--iterations", &args.iterations),
        ("--target", &args.target),
    ] {
        if let Some(v) = v {
            extra_args.push(flag.to_string());
            extra_args.push(v.clone());
        }
    }
    Ok(JobSpec {
        name,
        namespace: args.namespace.clone(),
        image: args.image.clone(),
        shards: count,
        run_id,
        start_at,
        secret: args.secret.clone(),
        cpu: args.cpu.clone(),
        memory: args.memory.clone(),
        metrics_port: args.metrics_port,
        scenario: scenario_rel,
        extra_args,
        files,
    })
}
