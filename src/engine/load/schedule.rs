//! The scheduler: one spawn function for every model. Closed users loop over conversations
//! while the ramp allows them; an arrival rate (open model, capacity search) starts one
//! conversation per arrival, each measured from its intended start.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

use super::{ramp, rate_at, Control};
use crate::engine::conversation::{Target, UserState};
use crate::scenario::shard::Shard;
use crate::scenario::{Load, LoadModel};

/// What a spawned task does.
enum Task {
    /// Closed model: this shard's user number `local` (from 1), user `vu` of the whole run,
    /// runs conversations while the ramp allows it.
    Looping {
        /// This shard's user number.
        local: u64,
        /// The user number over the whole run.
        vu: u64,
    },
    /// Arrival rate: conversation `n` of the whole run (this shard's `local`-th), intended to
    /// start at `intended`.
    Once {
        /// The conversation number.
        n: u64,
        /// This shard's conversation number.
        local: u64,
        /// When the schedule wanted it to start.
        intended: Instant,
    },
}

/// The arrival schedule of an open model or a capacity search: arrival `k` (from 0, over the
/// whole run) and its intended start after the run's start, for the arrivals that are
/// `shard`'s. Every shard computes the same global schedule (its random spacing seeded by
/// `seed`) and keeps every `count`-th arrival, so the shards' arrivals interleave into the
/// unsharded schedule. Pure: no clock, no sleeping.
pub struct Arrivals {
    model: LoadModel,
    duration: Duration,
    poisson: bool,
    rng: rand::rngs::StdRng,
    shard: Shard,
    next: Duration,
    k: u64,
}

impl Arrivals {
    /// The schedule of `model` over `duration`.
    pub fn new(model: &LoadModel, duration: Duration, seed: u64, shard: Shard) -> Arrivals {
        let poisson = match model {
            LoadModel::Open { poisson, .. } | LoadModel::Capacity { poisson, .. } => *poisson,
            LoadModel::Closed { .. } => false,
        };
        Arrivals {
            model: model.clone(),
            duration,
            poisson,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
            shard,
            next: Duration::ZERO,
            k: 0,
        }
    }
}

impl Iterator for Arrivals {
    type Item = (u64, Duration);

    fn next(&mut self) -> Option<(u64, Duration)> {
        loop {
            if self.next >= self.duration {
                return None;
            }
            let rate = rate_at(&self.model, self.next).unwrap_or(0.0);
            if rate <= 0.0 {
                // A ramp from zero: look again a moment later.
                self.next += Duration::from_millis(20);
                continue;
            }
            let at = self.next;
            // Drawn for every arrival, the shard's or not, so all shards see one sequence.
            let gap = if self.poisson {
                -self.rng.random_range(f64::EPSILON..1.0f64).ln() / rate
            } else {
                1.0 / rate
            };
            // A gap past the end (a slow rate) ends the starts at the end.
            self.next += Duration::from_secs_f64(gap.min(self.duration.as_secs_f64()));
            let k = self.k;
            self.k += 1;
            if self.shard.owns(k) {
                return Some((k, at));
            }
        }
    }
}

/// The seed of a run's random arrival spacing: from its id, so every shard of the run draws
/// the same schedule.
pub fn seed_of(run_id: Option<&str>) -> u64 {
    use sha2::Digest;
    match run_id {
        Some(id) => {
            let d = sha2::Sha256::digest(id.as_bytes());
            u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
        }
        None => rand::random(),
    }
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
            Task::Once { n, local, intended } => {
                ctl.conversation(n + 1, n, local, Some(intended), own.as_ref(), &mut carry)
                    .await;
            }
            Task::Looping { local, vu } => loop {
                if local > ctl.allowed_users.load(Relaxed) {
                    if ctl.stop_starting.load(Relaxed) || ctl.stop.is_stopped() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let Some(j) = ctl.claim() else { break };
                let n = ctl.shard.global(j);
                ctl.conversation(vu, n, j, None, own.as_ref(), &mut carry)
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
                // The whole run's users now, and this shard's part of them.
                let desired = ramp(*users as f64, stages, t).round().max(0.0) as u64;
                let mine = ctl.shard.share(desired);
                ctl.allowed_users.store(mine, Relaxed);
                while spawned < mine {
                    let vu = ctl.shard.global(spawned) + 1;
                    spawned += 1;
                    spawn(
                        &mut tasks,
                        ctl,
                        per_user,
                        Task::Looping { local: spawned, vu },
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    () = stop.wait() => {}
                }
            }
        }
        LoadModel::Open {
            max_concurrency, ..
        }
        | LoadModel::Capacity {
            max_concurrency, ..
        } => {
            let max_concurrency = max_concurrency.map(|m| ctl.shard.share(m));
            let end = start + duration;
            let seed = seed_of(load.run_id.as_deref());
            for (k, at) in Arrivals::new(&load.model, duration, seed, ctl.shard) {
                if stop.is_stopped() || ctl.stop_starting.load(Relaxed) {
                    break;
                }
                let intended = start + at;
                if intended > Instant::now() {
                    tokio::select! {
                        () = tokio::time::sleep_until(intended.into()) => {}
                        () = stop.wait() => break,
                    }
                }
                if max_concurrency.is_some_and(|m| ctl.active.load(Relaxed) >= m) {
                    ctl.shards.with(|s| s.counts.dropped_starts += 1);
                    continue;
                }
                let Some(local) = ctl.claim() else { break };
                spawn(
                    &mut tasks,
                    ctl,
                    per_user,
                    Task::Once {
                        n: k,
                        local,
                        intended,
                    },
                );
            }
            // No start left in the run: it still lasts its duration.
            if !stop.is_stopped() && !ctl.stop_starting.load(Relaxed) {
                tokio::select! {
                    () = tokio::time::sleep_until(end.into()) => {}
                    () = stop.wait() => {}
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Stage;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The striped arrivals of all shards together are the unsharded schedule: the same
        /// arrival numbers at the same instants, none twice.
        #[test]
        fn shards_arrivals_interleave_into_the_whole_schedule(
            rate in 1.0f64..400.0,
            ramp_to in proptest::option::of(0.0f64..400.0),
            poisson in any::<bool>(),
            count in 1u32..=1_000,
            seed in any::<u64>(),
        ) {
            let model = LoadModel::Open {
                rate,
                stages: ramp_to
                    .map(|to| vec![Stage { target: Some(to), over: Duration::from_secs(2) }])
                    .unwrap_or_default(),
                poisson,
                max_concurrency: None,
            };
            let duration = Duration::from_secs(3);
            let whole: Vec<(u64, Duration)> =
                Arrivals::new(&model, duration, seed, Shard::WHOLE).collect();
            let mut merged: Vec<(u64, Duration)> = (0..count)
                .flat_map(|i| {
                    Arrivals::new(&model, duration, seed, Shard::new(i, count).unwrap())
                })
                .collect();
            merged.sort();
            prop_assert_eq!(merged, whole);
        }
    }

    #[test]
    fn a_constant_rate_is_evenly_spaced_and_stops_at_the_end() {
        let model = LoadModel::Open {
            rate: 10.0,
            stages: Vec::new(),
            poisson: false,
            max_concurrency: None,
        };
        let all: Vec<_> = Arrivals::new(&model, Duration::from_secs(1), 7, Shard::WHOLE).collect();
        assert_eq!(all.len(), 10);
        assert_eq!(all[3], (3, Duration::from_secs_f64(0.3)));
        let second: Vec<u64> = Arrivals::new(
            &model,
            Duration::from_secs(1),
            7,
            Shard { index: 1, count: 4 },
        )
        .map(|(k, _)| k)
        .collect();
        assert_eq!(second, [1, 5, 9]);
    }
}
