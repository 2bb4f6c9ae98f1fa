//! Certification: a catalogue of named protocol checks ([`catalogue`]), their judging
//! functions ([`channel`]), the runner that grades a target with a profile's checks, and the
//! signed bundle a vendor hands over ([`bundle`]). The certificate's result is decided once,
//! here ([`Certification::result`]); the terminal, `results.json`, `junit.xml`,
//! `certificate.html`, the signed statement and the exit code all read it.

pub mod bundle;
pub mod catalogue;
pub mod channel;
pub mod client;
pub mod probe;
pub mod sign;

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use catalogue::{Check, Level, Profile, Side};
use channel::{ChannelTarget, Ctx};
use probe::{Evidence, Exchange, Mismatch, Miss};

/// The version of `results.json` of a certificate bundle (`schemas/certification.schema.json`).
pub const RESULTS_SCHEMA_VERSION: &str = "1.0";

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CheckStatus {
    /// It held.
    Passed,
    /// A required check did not hold.
    Failed,
    /// A recommended check did not hold.
    Warning,
    /// It could not run (what it needs was not given).
    Skipped,
    /// A person judges it from the evidence (the platform side cannot observe it).
    Review,
}

/// The certificate's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Grade {
    /// Every required check passed, and every recommended one.
    Passed,
    /// Every required check passed; a recommended one did not.
    Warned,
    /// A required check did not pass.
    Failed,
}

impl Grade {
    /// As printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Grade::Passed => "PASSED",
            Grade::Warned => "WARNED",
            Grade::Failed => "FAILED",
        }
    }
}

/// One check as the bundle records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// The catalogue id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// What it proves.
    pub proves: String,
    /// The requirement it rests on.
    pub requirement: String,
    /// Inferred rather than documented.
    pub gap: bool,
    /// Required or recommended.
    pub level: Level,
    /// The result.
    pub result: CheckStatus,
    /// Why it did not pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What did not match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<Mismatch>,
    /// The target could not be reached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreachable: bool,
    /// How long it took.
    pub duration_ms: f64,
    /// The exchanges that decided it.
    pub evidence: Vec<Exchange>,
}

/// The product being certified.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Product {
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// A certification run: what `results.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Certification {
    /// [`RESULTS_SCHEMA_VERSION`].
    pub schema_version: String,
    /// hookbench's version.
    pub hookbench_version: String,
    /// [`catalogue::CATALOGUE_VERSION`].
    pub catalogue_version: String,
    /// [`catalogue::PROTOCOL_REVISION`].
    pub protocol_revision: String,
    /// channel or client.
    pub side: Side,
    /// The profile.
    pub profile: Profile,
    /// The declared product.
    pub product: Product,
    /// The target, without credentials.
    pub target: String,
    /// RFC 3339.
    pub started: String,
    /// RFC 3339.
    pub finished: String,
    /// The certificate's result ([`Certification::result`], stored for readers).
    pub result: Grade,
    /// Counts by result.
    pub summary: Summary,
    /// Every check of the profile, in catalogue order.
    pub checks: Vec<CheckResult>,
    /// The owner's own scenarios (`--scenarios`), run against the same target as functional
    /// evidence: every one must pass.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<ScenarioEvidence>,
}

/// One scenario run (one data row) given as functional evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioEvidence {
    /// The file.
    pub file: String,
    /// `name:`.
    pub name: String,
    /// The data row (1-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<usize>,
    /// Every step passed.
    pub passed: bool,
    /// Steps run.
    pub steps: usize,
    /// How long it took.
    pub duration_ms: f64,
    /// The first failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

impl ScenarioEvidence {
    /// From a test report: one entry per scenario run.
    pub fn from_report(report: &crate::engine::results::TestReport) -> Vec<ScenarioEvidence> {
        report
            .scenarios
            .iter()
            .map(|r| ScenarioEvidence {
                file: r.file.clone(),
                name: r.name.clone(),
                row: r.row,
                passed: r.passed,
                steps: r.steps.len(),
                duration_ms: r.duration_ms,
                failure: r.setup_error.clone().or_else(|| {
                    r.steps.iter().find_map(|s| {
                        s.failure
                            .as_ref()
                            .map(|f| format!("step {}: {}", s.index + 1, f.summary()))
                    })
                }),
            })
            .collect()
    }

    /// The name the statement and JUnit give it.
    pub fn label(&self) -> String {
        match self.row {
            Some(r) => format!("scenario {} [row {r}]", self.file),
            None => format!("scenario {}", self.file),
        }
    }
}

/// Counts by result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Warning.
    pub warning: usize,
    /// Skipped.
    pub skipped: usize,
    /// For review.
    #[serde(default)]
    pub review: usize,
}

impl Certification {
    /// The one place the result is decided: FAILED while any required check did not pass
    /// (failed, or skipped because what it needs was not given) or a scenario given as
    /// evidence failed; WARNED when a recommended check did not pass; else PASSED.
    pub fn result(checks: &[CheckResult], scenarios: &[ScenarioEvidence]) -> Grade {
        let required_missed = checks
            .iter()
            .any(|c| c.level == Level::Required && c.result != CheckStatus::Passed)
            || scenarios.iter().any(|s| !s.passed);
        if required_missed {
            return Grade::Failed;
        }
        if checks
            .iter()
            .any(|c| !matches!(c.result, CheckStatus::Passed | CheckStatus::Review))
        {
            return Grade::Warned;
        }
        Grade::Passed
    }

    /// Counts by result.
    pub fn summarise(checks: &[CheckResult]) -> Summary {
        let mut s = Summary::default();
        for c in checks {
            match c.result {
                CheckStatus::Passed => s.passed += 1,
                CheckStatus::Failed => s.failed += 1,
                CheckStatus::Warning => s.warning += 1,
                CheckStatus::Skipped => s.skipped += 1,
                CheckStatus::Review => s.review += 1,
            }
        }
        s
    }

    /// True when a check that did not pass could not reach the target (exit code 3).
    pub fn unreachable(&self) -> bool {
        self.checks.iter().any(|c| c.unreachable)
    }
}

/// How to certify a channel.
#[derive(Debug, Clone)]
pub struct ChannelRun {
    /// The profile.
    pub profile: Profile,
    /// The product.
    pub product: Product,
    /// Where and with which credentials.
    pub target: ChannelTarget,
    /// At most this many checks at once.
    pub jobs: usize,
    /// Each request's timeout.
    pub timeout: Duration,
}

/// Checks that take longest start first (the 15-second budget), so the run lasts about as
/// long as its slowest check.
const SLOW_FIRST: &[&str] = &["CH-V2-NOPOLL-02"];

/// Grades a channel with the profile's checks (independent checks run concurrently).
pub async fn certify_channel(
    run: &ChannelRun,
    http: crate::client::HttpClient,
    receiver: Option<crate::client::Receiver>,
) -> Certification {
    let started = now_rfc3339();
    let ctx = Ctx {
        target: run.target.clone(),
        prober: probe::Prober::new(http, run.timeout),
        receiver,
        run: format!("{:08x}", rand::random::<u32>()),
    };
    let mut checks: Vec<&'static Check> = catalogue::select(Side::Channel, run.profile).collect();
    checks.sort_by_key(|c| !SLOW_FIRST.contains(&c.id));
    let ctx = &ctx;
    let mut results: Vec<CheckResult> = stream::iter(checks)
        .map(|check| async move { grade(ctx, check).await })
        .buffer_unordered(run.jobs.max(1))
        .collect()
        .await;
    let order = |id: &str| catalogue::CHECKS.iter().position(|c| c.id == id);
    results.sort_by_key(|r| order(&r.id));
    Certification::new(
        Side::Channel,
        run.profile,
        run.product.clone(),
        crate::protocol::urls::redact_userinfo(&run.target.endpoints.base),
        started,
        results,
    )
}

impl Certification {
    /// A certification of `checks`: its result decided by [`Certification::result`].
    pub fn new(
        side: Side,
        profile: Profile,
        product: Product,
        target: String,
        started: String,
        checks: Vec<CheckResult>,
    ) -> Certification {
        Certification {
            schema_version: RESULTS_SCHEMA_VERSION.into(),
            hookbench_version: env!("CARGO_PKG_VERSION").into(),
            catalogue_version: catalogue::CATALOGUE_VERSION.into(),
            protocol_revision: catalogue::PROTOCOL_REVISION.into(),
            side,
            profile,
            product,
            target,
            started,
            finished: now_rfc3339(),
            result: Certification::result(&checks, &[]),
            summary: Certification::summarise(&checks),
            checks,
            scenarios: Vec::new(),
        }
    }

    /// Adds the owner's scenarios as functional evidence; the result is decided again.
    pub fn with_scenarios(mut self, scenarios: Vec<ScenarioEvidence>) -> Certification {
        self.scenarios = scenarios;
        self.result = Certification::result(&self.checks, &self.scenarios);
        self
    }
}

async fn grade(ctx: &Ctx, check: &'static Check) -> CheckResult {
    let started = Instant::now();
    let mut ev = Evidence::default();
    let outcome = match channel::judge(check.id) {
        Some(judge) => judge(ctx, &mut ev).await,
        None => Err(Miss::Skipped("no judge for this check".into())),
    };
    result_of(check, outcome, ev.exchanges, started.elapsed())
}

/// A check's result from its judgement: a miss of a required check fails, of a recommended
/// one warns; an unreachable target fails and says so.
pub fn result_of(
    check: &'static Check,
    outcome: probe::Judged,
    evidence: Vec<Exchange>,
    took: Duration,
) -> CheckResult {
    let miss_status = match check.level {
        Level::Required => CheckStatus::Failed,
        Level::Recommended | Level::Review => CheckStatus::Warning,
    };
    let (result, reason, mismatches, unreachable) = match outcome {
        // A review check that found its evidence is for a person to judge.
        Ok(()) if check.level == Level::Review => (
            CheckStatus::Review,
            Some("for review: see the evidence".into()),
            Vec::new(),
            false,
        ),
        Ok(()) => (CheckStatus::Passed, None, Vec::new(), false),
        Err(Miss::Failed(m)) => {
            let reason = format!("{}: expected {}, got {}", m.field, m.expected, m.actual);
            (miss_status, Some(reason), vec![m], false)
        }
        Err(Miss::Skipped(why)) => (CheckStatus::Skipped, Some(why), Vec::new(), false),
        Err(Miss::Unreachable(why)) => (
            miss_status,
            Some(format!("the target could not be reached: {why}")),
            Vec::new(),
            true,
        ),
    };
    CheckResult {
        id: check.id.into(),
        title: check.title.into(),
        proves: check.proves.into(),
        requirement: check.requirement.into(),
        gap: check.gap,
        level: check.level,
        result,
        reason,
        mismatches,
        unreachable,
        duration_ms: took.as_secs_f64() * 1e3,
        evidence,
    }
}

/// The private key of the demo bot's key-pair app (a demo credential).
const DEMO_RSA_KEY: &[u8] = include_bytes!("../../scenarios/bots/demo-rs.key.pem");

/// A simulator to certify against (the embedded default target), with the POST_URL receiver
/// its async instances deliver to.
#[derive(Debug)]
pub struct SimTarget {
    /// The simulator.
    pub sim: crate::sim::RunningSim,
    /// Where its async instances deliver.
    pub receiver: crate::client::Receiver,
    /// Its URLs and the first app's credentials.
    pub target: ChannelTarget,
}

impl SimTarget {
    /// Starts `bot` on a loopback port of its own, its async deliveries going to a receiver
    /// on another; the first sync instance with polling on is the V1 and V2 target.
    pub async fn start(bot: crate::sim::Bot) -> std::io::Result<SimTarget> {
        use crate::sim::Mode;
        let receiver = crate::client::Receiver::start(([127, 0, 0, 1], 0).into(), None).await?;
        let mut config = crate::sim::SimConfig::new(bot);
        config.post_url = Some(receiver.url.clone());
        let sim =
            crate::sim::RunningSim::start_isolated(config, ([127, 0, 0, 1], 0).into()).await?;
        let info = sim.info();
        let pick = |mode: Mode, polling: bool| {
            info.instances
                .iter()
                .find(|i| i.mode == mode && (mode == Mode::Async || i.polling == polling))
        };
        let poll = pick(Mode::Sync, true);
        let first_is_poll =
            info.instances.first().map(|i| i.id.as_str()) == poll.map(|i| i.id.as_str());
        let target = ChannelTarget {
            endpoints: crate::protocol::urls::Endpoints::new(&info.base_url, &info.bot_id),
            v1: poll.map(|i| i.v1_url.clone()),
            v2_poll: poll.map(|i| i.v2_url.clone()),
            v2_nopoll: pick(Mode::Sync, false).map(|i| i.v2_url.clone()),
            v2_async: pick(Mode::Async, false).map(|i| i.v2_url.clone()),
            v2_limited: sim
                .state
                .bot
                .instances
                .iter()
                .find(|i| i.mode == Mode::Sync && i.rate_limit.is_some())
                .map(|i| sim.url(crate::protocol::Version::V2, &i.id)),
            upload_channel: first_is_poll.then(|| "ivr".to_string()),
            client_id: info.client_id.clone(),
            client_secret: info.client_secret.clone().unwrap_or_default(),
            // The demo bot's key-pair app signs with the demo key shipped beside it.
            rsa_app: sim
                .state
                .bot
                .apps
                .iter()
                .find(|a| a.public_key.is_some() && a.client_secret.is_none())
                .map(|a| (a.client_id.clone(), DEMO_RSA_KEY.to_vec())),
        };
        Ok(SimTarget {
            sim,
            receiver,
            target,
        })
    }

    /// Stops the simulator and the receiver.
    pub async fn stop(self) {
        self.receiver.stop();
        self.sim.shutdown().await;
    }
}

/// Now, RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(level: Level, result: CheckStatus) -> CheckResult {
        CheckResult {
            id: "CH-X-01".into(),
            title: String::new(),
            proves: String::new(),
            requirement: String::new(),
            gap: false,
            level,
            result,
            reason: None,
            mismatches: Vec::new(),
            unreachable: false,
            duration_ms: 0.0,
            evidence: Vec::new(),
        }
    }

    #[test]
    fn a_required_check_that_did_not_pass_fails_the_certificate() {
        use CheckStatus::*;
        use Level::*;
        let grade = |cs: &[(Level, CheckStatus)]| {
            Certification::result(
                &cs.iter().map(|(l, r)| check(*l, *r)).collect::<Vec<_>>(),
                &[],
            )
        };
        assert_eq!(grade(&[(Required, Passed)]), Grade::Passed);
        assert_eq!(
            grade(&[(Required, Passed), (Recommended, Warning)]),
            Grade::Warned
        );
        assert_eq!(
            grade(&[(Required, Passed), (Recommended, Skipped)]),
            Grade::Warned
        );
        assert_eq!(
            grade(&[(Required, Failed), (Recommended, Passed)]),
            Grade::Failed
        );
        // Skipping a required check never yields a certificate.
        assert_eq!(grade(&[(Required, Skipped)]), Grade::Failed);
        // Nor does a failed scenario given as evidence.
        let failed = ScenarioEvidence {
            file: "a.yaml".into(),
            name: "a".into(),
            row: None,
            passed: false,
            steps: 1,
            duration_ms: 1.0,
            failure: Some("step 1: no".into()),
        };
        assert_eq!(
            Certification::result(&[check(Required, Passed)], &[failed]),
            Grade::Failed
        );
        // An empty profile is not a pass of anything... but it cannot be chosen: every
        // profile of the channel side has checks.
        for p in Profile::ALL {
            assert!(
                catalogue::select(Side::Channel, p).next().is_some(),
                "{p:?}"
            );
        }
    }
}
