//! The report builder: a [`LoadReport`] from what the aggregator kept, with the generator's
//! own health (CPU without an embedded simulator's, memory, scheduler lag, warnings).

use std::time::Duration;

use super::aggregate::Aggregate;
use super::metrics::summarise;
use super::report::{self, Capacity, Generator, LoadReport, StepReport};
use super::verdict::Verdict;
use super::{describe, Target};
use crate::common::procfs;
use crate::scenario::{Action, Load, LoadModel, Scenario};

/// Readings taken when the run starts.
#[derive(Debug)]
pub(super) struct Before {
    started_at: String,
    pub(super) started_unix: f64,
    cpu: f64,
    sim_cpu: f64,
    waits: u64,
}

impl Before {
    pub(super) fn now(target: &Target) -> Before {
        Before {
            started_at: crate::protocol::ids::created_on_now(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            cpu: procfs::process_cpu_seconds(),
            sim_cpu: procfs::threads_cpu_seconds(crate::sim::SIM_THREAD_NAME),
            waits: target.http.connection_waits(),
        }
    }
}

/// Everything the report is built from.
pub(super) struct Parts<'a> {
    pub(super) scenario: &'a Scenario,
    pub(super) target: &'a Target,
    pub(super) load: &'a Load,
    pub(super) before: Before,
    pub(super) elapsed: Duration,
    pub(super) threads: usize,
    pub(super) agg: &'a Aggregate,
    pub(super) capacity: Option<Capacity>,
    pub(super) verdict: Verdict,
    pub(super) gates: Vec<report::GateSpec>,
}

/// Builds the report.
pub(super) fn report(p: Parts<'_>) -> LoadReport {
    let Parts {
        scenario,
        target,
        load,
        before,
        elapsed,
        threads,
        agg,
        capacity,
        verdict,
        gates,
    } = p;
    let total = &agg.total;
    let d = &total.dists;
    let mut distributions = std::collections::BTreeMap::new();
    for (name, h, scale) in [
        ("turn", &d.turn, 1000.0),
        ("conversation", &d.conversation, 1000.0),
        ("conversation_intended", &d.conversation_intended, 1000.0),
        ("poll_convergence", &d.poll_convergence, 1000.0),
        ("polls", &d.polls, 1.0),
        ("async_delivery", &d.async_delivery, 1000.0),
        ("start_lag", &d.start_lag, 1000.0),
    ] {
        distributions.insert(name.to_string(), summarise(h, scale));
    }
    let step_reports = scenario
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| !matches!(s.action, Action::Think(_)))
        .map(|(i, s)| StepReport {
            label: s.label.to_string(),
            count: total.counts.step_runs.get(i).map(|r| r.0).unwrap_or(0),
            failed: total.counts.step_runs.get(i).map(|r| r.1).unwrap_or(0),
            latency: summarise(&d.steps[i], 1000.0),
        })
        .collect();
    // An embedded simulator runs on threads of its own: its share is not the generator's.
    let sim_cpu =
        (procfs::threads_cpu_seconds(crate::sim::SIM_THREAD_NAME) - before.sim_cpu).max(0.0);
    let cpu = (procfs::process_cpu_seconds() - before.cpu - sim_cpu).max(0.0);
    let lag_summary = summarise(&agg.lag, 1000.0);
    let waits = target.http.connection_waits() - before.waits;
    let warnings = warnings(
        load,
        total,
        &lag_summary,
        cpu,
        elapsed,
        threads,
        waits,
        target,
    );
    let run = report::RunInfo {
        id: load.run_id.clone().unwrap_or_default(),
        scenario_digest: String::new(),
        shard: load.shard,
        started_unix: before.started_unix,
        thresholds: gates,
        shards: Vec::new(),
        missing_shards: Vec::new(),
    };
    LoadReport {
        run,
        schema_version: report::LOAD_SCHEMA_VERSION.into(),
        kind: "load".into(),
        tool: format!("hookbench {}", env!("CARGO_PKG_VERSION")),
        scenario: scenario.name.clone(),
        file: scenario.file.display().to_string(),
        target: target.message_url().to_string(),
        workload: describe(load),
        started_at: before.started_at,
        duration_s: elapsed.as_secs_f64(),
        budget_ms: target.timeout.as_secs_f64() * 1000.0,
        aborted: agg.aborted.clone(),
        counts: {
            let mut c = total.counts.clone();
            c.settle_failures();
            c
        },
        distributions,
        steps: step_reports,
        verdict,
        capacity,
        timeseries: agg.series.clone(),
        generator: Generator {
            cpu_seconds: cpu,
            simulator_cpu_seconds: (sim_cpu > 0.0).then_some(sim_cpu),
            cpu_us_per_turn: cpu * 1e6 / total.counts.turns.max(1) as f64,
            scheduler_lag: Some(lag_summary),
            max_rss_mib: procfs::max_rss_mib(),
            warnings,
        },
    }
}

/// Where the generator, not the target, may have set the figures.
#[allow(clippy::too_many_arguments)]
fn warnings(
    load: &Load,
    total: &super::metrics::Sample,
    lag: &super::metrics::DistSummary,
    cpu: f64,
    elapsed: Duration,
    threads: usize,
    waits: u64,
    target: &Target,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if lag.p99 > 50.0 {
        warnings.push(format!("the generator's scheduler ran late (p99 {:.0} ms): the load generator, not the target, may be the bottleneck", lag.p99));
    }
    let late = total.counts.late_starts as f64 / total.counts.conversations.max(1) as f64;
    if matches!(
        load.model,
        LoadModel::Open { .. } | LoadModel::Capacity { .. }
    ) && late > 0.01
    {
        warnings.push(format!("{:.1}% of conversations started more than 10 ms late: the generator could not keep the arrival rate", late * 100.0));
    }
    if cpu / elapsed.as_secs_f64().max(1e-9) > 0.9 * threads as f64 {
        warnings.push(format!(
            "the generator used {:.0}% of {threads} cores: results may be limited by the generator",
            100.0 * cpu / elapsed.as_secs_f64() / threads as f64
        ));
    }
    if waits > 0 {
        let why = match load.max_connections {
            Some(_) => "set by max_connections (--max-connections); raise it for more",
            None => "it follows the file-descriptor limit; raise `ulimit -n` for more",
        };
        warnings.push(format!(
            "{} waited for a free connection: the generator's pool was at its cap of {} open connections ({why})",
            crate::common::count(waits, "request", "requests"),
            target.http.connection_limit()
        ));
    }
    warnings
}
