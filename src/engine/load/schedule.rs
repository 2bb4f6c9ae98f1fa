//! The scheduler: one spawn function for every model. Closed users loop over conversations
//! while the ramp allows them; an arrival rate (open model, capacity search) starts one
//! conversation per arrival, each measured from its intended start.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::task::JoinSet;

use super::{ramp, rate_at, Control};
use crate::engine::conversation::{Target, UserState};
use crate::scenario::{Load, LoadModel};

/// What a spawned task does.
enum Task {
    /// Closed model: user `vu` runs conversations while the ramp allows it.
    Looping {
        /// The user number.
        vu: u64,
    },
    /// Arrival rate: conversation `n`, intended to start at `intended`.
    Once {
        /// The conversation number.
        n: u64,
        /// When the schedule wanted it to start.
        intended: Instant,
    },
}

/// Spawns one task, on connections of its own when the load asks for that.
fn spawn(tasks: &mut JoinSet<()>, ctl: &Arc<Control>, per_user: bool, task: Task) {
    let ctl = ctl.clone();
    let own = per_user.then(|| Target {
        http: ctl.target.http.fresh(),
        ..(*ctl.target).clone()
    });
    tasks.spawn(async move {
        let mut carry = UserState::default();
        match task {
            Task::Once { n, intended } => {
                ctl.conversation(n + 1, n, Some(intended), own.as_ref(), &mut carry)
                    .await;
            }
            Task::Looping { vu } => loop {
                if vu > ctl.allowed_users.load(Relaxed) {
                    if ctl.stop_starting.load(Relaxed) || ctl.stop.is_stopped() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let Some(n) = ctl.claim() else { break };
                ctl.conversation(vu, n, None, own.as_ref(), &mut carry)
                    .await;
            },
        }
    });
}

/// Starts users for `duration` (or until a stop), following the model; returns their tasks.
pub(super) async fn start_users(
    ctl: &Arc<Control>,
    load: &Load,
    start: Instant,
    duration: Duration,
) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let per_user = load.connection_per_user;
    let stop = &ctl.stop;
    match &load.model {
        LoadModel::Closed { users, stages } => {
            let mut spawned = 0u64;
            loop {
                let t = start.elapsed();
                if t >= duration || stop.is_stopped() || ctl.stop_starting.load(Relaxed) {
                    break;
                }
                let desired = ramp(*users as f64, stages, t).round().max(0.0) as u64;
                ctl.allowed_users.store(desired, Relaxed);
                while spawned < desired {
                    spawned += 1;
                    spawn(&mut tasks, ctl, per_user, Task::Looping { vu: spawned });
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    () = stop.wait() => {}
                }
            }
        }
        LoadModel::Open {
            poisson,
            max_concurrency,
            ..
        }
        | LoadModel::Capacity {
            poisson,
            max_concurrency,
            ..
        } => {
            // `next` is the intended start of the next conversation: the first at the start,
            // each later one a gap (1/rate, or exponential) after the one before.
            let end = start + duration;
            let mut next = start;
            loop {
                if stop.is_stopped() || ctl.stop_starting.load(Relaxed) {
                    break;
                }
                if next >= end {
                    // No start left in the run: it still lasts its duration.
                    tokio::select! {
                        () = tokio::time::sleep_until(end.into()) => {}
                        () = stop.wait() => {}
                    }
                    break;
                }
                let now = Instant::now();
                if next > now {
                    tokio::select! {
                        () = tokio::time::sleep_until(next.into()) => {}
                        () = stop.wait() => break,
                    }
                }
                let rate = rate_at(&load.model, next - start).unwrap_or(0.0);
                if rate <= 0.0 {
                    next = next.max(now) + Duration::from_millis(20);
                    continue;
                }
                let intended = next;
                let gap = if *poisson {
                    -rand::rng().random_range(f64::EPSILON..1.0f64).ln() / rate
                } else {
                    1.0 / rate
                };
                // A gap past the end (a slow rate) ends the starts at the end.
                next += Duration::from_secs_f64(gap.min(duration.as_secs_f64()));
                if max_concurrency.is_some_and(|m| ctl.active.load(Relaxed) >= m) {
                    ctl.shards.with(|s| s.counts.dropped_starts += 1);
                    continue;
                }
                let Some(n) = ctl.claim() else { break };
                spawn(&mut tasks, ctl, per_user, Task::Once { n, intended });
            }
        }
    }
    ctl.stop_starting.store(true, Relaxed);
    tasks
}

/// Lets conversations in flight finish within `grace`, then cuts the rest (and counts them).
pub(super) async fn drain(mut tasks: JoinSet<()>, ctl: &Control, grace: Duration) {
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        let cut = ctl.active.load(Relaxed);
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
        ctl.shards
            .with(|s| s.counts.conversations_interrupted += cut);
    }
}
