//! The aggregator: once a second it merges what the users recorded, keeps the time series,
//! checks abort thresholds and steps the capacity search; at the end it takes the last,
//! partial second.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::metrics::{hist, record, Sample};
use super::report::{CapacityStep, Point};
use super::thresholds;
use super::verdict::{Gate, GateOrigin};
use super::{rate_at, Control};
use crate::scenario::threshold::Threshold;
use crate::scenario::{Load, LoadModel, Scenario};

/// What the run answers to: the scenario's thresholds, else the default gate (if on), with
/// the step labels `step[…]` thresholds name.
#[derive(Debug, Clone)]
pub(super) struct Gates {
    list: Vec<Threshold>,
    origin: GateOrigin,
    labels: Vec<String>,
}

impl Gates {
    pub(super) fn of(scenario: &Scenario, load: &Load) -> Gates {
        let (list, origin) = if !scenario.thresholds.is_empty() {
            (scenario.thresholds.clone(), GateOrigin::Threshold)
        } else if load.default_gate {
            (
                crate::scenario::threshold::default_gate(),
                GateOrigin::Default,
            )
        } else {
            (Vec::new(), GateOrigin::Default)
        };
        Gates {
            list,
            origin,
            labels: scenario.steps.iter().map(|s| s.label.to_string()).collect(),
        }
    }

    /// The gates as written, for the results (a merge judges them again).
    pub(super) fn specs(&self) -> Vec<super::report::GateSpec> {
        self.list
            .iter()
            .map(|th| super::report::GateSpec {
                expr: th.source.clone(),
                abort: th.abort,
                origin: self.origin,
            })
            .collect()
    }

    /// Every gate's verdict over `sample`, which spans `elapsed`.
    pub(super) fn measure(&self, sample: &Sample, elapsed: Duration) -> Vec<Gate> {
        self.list
            .iter()
            .map(|th| thresholds::evaluate(th, self.origin, sample, elapsed, &self.labels))
            .collect()
    }
}

/// What the aggregator keeps.
#[derive(Debug)]
pub(super) struct Aggregate {
    /// Everything so far.
    pub(super) total: Sample,
    /// The current second.
    interval: Sample,
    /// The current capacity step.
    window: Sample,
    /// One point per second.
    pub(super) series: Vec<Point>,
    /// The capacity search's steps.
    pub(super) capacity: Vec<CapacityStep>,
    /// Why the run stopped early.
    pub(super) aborted: Option<String>,
    /// How late the aggregator's own ticker woke.
    pub(super) lag: hdrhistogram::Histogram<u64>,
}

impl Aggregate {
    pub(super) fn new(steps: usize) -> Self {
        Aggregate {
            total: Sample::new(steps),
            interval: Sample::new(steps),
            window: Sample::new(steps),
            series: Vec::new(),
            capacity: Vec::new(),
            aborted: None,
            lag: hist(),
        }
    }

    /// Takes what the users recorded since the last tick: the run's last, partial second
    /// (a run rarely ends on a tick) gets its own point, as a rate.
    pub(super) fn close(&mut self, ctl: &Control, model: &LoadModel, elapsed: Duration) {
        ctl.collect(&mut self.interval);
        let last_tick = self.series.last().map_or(0.0, |p| p.t);
        let span = elapsed.as_secs_f64() - last_tick;
        let i = &self.interval;
        if span >= 0.1 && (i.counts.turns > 0 || i.counts.conversations > 0) {
            let t = (elapsed.as_secs_f64() * 10.0).round() / 10.0;
            self.series.push(ctl.point(model, i, t, span));
        }
        self.total.add(&self.interval);
        self.interval.reset();
    }

    /// One tick, `t` into the run.
    fn tick(
        &mut self,
        ctl: &Control,
        model: &LoadModel,
        gates: &Gates,
        t: Duration,
        window_start: &mut Duration,
        on_tick: &mut impl FnMut(&Point, &Sample),
    ) {
        ctl.collect(&mut self.interval);
        let point = ctl.point(model, &self.interval, t.as_secs_f64().round(), 1.0);
        self.total.add(&self.interval);
        self.window.add(&self.interval);
        self.interval.reset();
        on_tick(&point, &self.total);
        self.series.push(point);
        // Only abort thresholds are judged while the run lasts; the others at its end.
        for th in gates.list.iter().filter(|th| th.abort) {
            let r = thresholds::evaluate(th, gates.origin, &self.total, t, &gates.labels);
            if !r.passed && self.aborted.is_none() {
                self.aborted = Some(format!("threshold broke: {} (actual {})", r.expr, r.actual));
                ctl.stop.stop();
            }
        }
        let LoadModel::Capacity { every, .. } = model else {
            return;
        };
        if t < *window_start + *every {
            return;
        }
        let rate = rate_at(model, *window_start).unwrap_or(0.0);
        let broken: Vec<String> = gates
            .measure(&self.window, t - *window_start)
            .into_iter()
            .filter(|r| !r.passed)
            .map(|r| format!("{} (actual {})", r.expr, r.actual))
            .collect();
        self.capacity.push(CapacityStep {
            rate,
            passed: broken.is_empty(),
            broken: broken.clone(),
        });
        self.window.reset();
        *window_start = t;
        if !broken.is_empty() {
            self.aborted = Some(format!(
                "capacity found: {rate}/s broke {}",
                broken.join(", ")
            ));
            ctl.stop_starting.store(true, Relaxed);
            ctl.stop.stop();
        }
    }
}

/// Starts the aggregator: a tick a second until aborted.
pub(super) fn spawn(
    ctl: Arc<Control>,
    agg: Arc<Mutex<Aggregate>>,
    model: LoadModel,
    gates: Gates,
    start: Instant,
    mut on_tick: impl FnMut(&Point, &Sample) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = Instant::now() + Duration::from_secs(1);
        let mut window_start = Duration::ZERO;
        loop {
            tokio::time::sleep_until(next.into()).await;
            let late = Instant::now().saturating_duration_since(next);
            next += Duration::from_secs(1);
            let t = start.elapsed();
            let mut a = agg.lock().unwrap_or_else(|p| p.into_inner());
            record(&mut a.lag, late);
            a.tick(&ctl, &model, &gates, t, &mut window_start, &mut on_tick);
        }
    })
}
