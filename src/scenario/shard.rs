//! Splitting one run over many machines: shard `index` of `count` (from 0, as Kubernetes
//! numbers the pods of an Indexed Job) runs its share of the plan, and the shares of all shards
//! add up to the whole.
//!
//! Everything that is counted is **striped**: item `k` (a user, a conversation, an arrival, a
//! data row) belongs to shard `k mod count`. So
//! - a closed model's users are numbered globally (`{{vu}}` of shard 2 of 4 is 3, 7, 11, …) and
//!   the shards' user counts add up to the unsharded count at every instant of a ramp, not
//!   only at stage ends (k6's contiguous segments, `round(v·to) − round(v·from)`, add up too,
//!   but a ramp then fills one shard after the other);
//! - an open model's arrivals come from one global schedule that every shard computes, each
//!   starting only its own, so the shards' arrivals interleave into the unsharded schedule
//!   instead of N bursts at the same instants (Poisson spacing included: the schedule's
//!   random numbers are seeded by the run id, the same in every shard);
//! - conversation numbers (`{{iteration}}`) are global and so unique across shards, and an
//!   iteration cap is split so that the shares add up to it;
//! - data rows are partitioned: shard `i` reads rows `i, i + count, …` and no other shard
//!   reads them.
//!
//! This module is pure: the functions of (plan, index, count) that the engine applies and the
//! property tests check.

use std::fmt;

use super::plan::{Load, LoadModel};

/// The most shards a run can be split into.
pub const MAX_SHARDS: u32 = 10_000;

/// One shard of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// From 0.
    pub index: u32,
    /// How many shards the run has.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a shard cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not `INDEX/COUNT`.
    #[error("`{0}` is not a shard: write INDEX/COUNT with INDEX from 0, as in 0/4")]
    Syntax(String),
    /// A count out of range.
    #[error("a run has from 1 to {MAX_SHARDS} shards, not {0}")]
    Count(u32),
    /// An index not below the count.
    #[error("shard index {index} is not below the count {count} (indexes start at 0)")]
    Index {
        /// The index.
        index: u32,
        /// The count.
        count: u32,
    },
}

impl Shard {
    /// An unsharded run.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// `INDEX/COUNT`, INDEX from 0 and below COUNT.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError::Syntax(text.to_string());
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        Shard::new(index, count)
    }

    /// Shard `index` of `count`, checked.
    pub fn new(index: u32, count: u32) -> Result<Shard, ShardError> {
        if count == 0 || count > MAX_SHARDS {
            return Err(ShardError::Count(count));
        }
        if index >= count {
            return Err(ShardError::Index { index, count });
        }
        Ok(Shard { index, count })
    }

    /// True for a run split over more than one shard.
    pub fn is_split(self) -> bool {
        self.count > 1
    }

    /// How many of the items numbered `0..v` are this shard's.
    pub fn share(self, v: u64) -> u64 {
        let (i, n) = (u64::from(self.index), u64::from(self.count));
        if v <= i {
            0
        } else {
            (v - i - 1) / n + 1
        }
    }

    /// True when item `k` (from 0) is this shard's.
    pub fn owns(self, k: u64) -> bool {
        k % u64::from(self.count) == u64::from(self.index)
    }

    /// The global number of this shard's `j`-th item (both from 0).
    pub fn global(self, j: u64) -> u64 {
        j.saturating_mul(u64::from(self.count))
            .saturating_add(u64::from(self.index))
    }
}

/// What one shard runs of a plan: the counted values of its load, as this shard's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shares {
    /// Closed model: users at the start.
    pub users: Option<u64>,
    /// Closed model: each stage's user target (`None` for a hold).
    pub stage_users: Vec<Option<u64>>,
    /// The iteration cap.
    pub iterations: Option<u64>,
    /// Open model: the concurrency cap.
    pub max_concurrency: Option<u64>,
    /// The data rows this shard reads, by index into the file's rows.
    pub rows: Vec<usize>,
}

/// This shard's part of `load` (with `data_rows` rows of data, if any).
pub fn shares(load: &Load, data_rows: usize, shard: Shard) -> Shares {
    let (users, stage_users, max_concurrency) = match &load.model {
        LoadModel::Closed { users, stages } => (
            Some(shard.share(*users)),
            stages
                .iter()
                .map(|s| s.target.map(|t| shard.share(t.round() as u64)))
                .collect(),
            None,
        ),
        LoadModel::Open {
            max_concurrency, ..
        }
        | LoadModel::Capacity {
            max_concurrency, ..
        } => (None, Vec::new(), max_concurrency.map(|m| shard.share(m))),
    };
    Shares {
        users,
        stage_users,
        iterations: load.iterations.map(|n| shard.share(n)),
        max_concurrency,
        rows: (0..data_rows).filter(|r| shard.owns(*r as u64)).collect(),
    }
}

/// Why a plan cannot be split over `count` shards, if it cannot: every shard must get at
/// least one of everything counted, and a capacity search (each step judged on the whole
/// rate) cannot be judged by shards that each see a part.
pub fn refusal(load: &Load, data_rows: usize, count: u32) -> Option<String> {
    if count <= 1 {
        return None;
    }
    let n = u64::from(count);
    match &load.model {
        LoadModel::Capacity { .. } => {
            return Some(format!(
                "a capacity search cannot be split over {count} shards: each step is judged on the whole rate, which no shard sees; run it on one machine, or run an open model (rate, stages) sharded and judge the merge"
            ))
        }
        LoadModel::Closed { users, stages } => {
            let peak = stages
                .iter()
                .filter_map(|s| s.target)
                .fold(*users as f64, f64::max)
                .round() as u64;
            if peak < n {
                return Some(format!(
                    "{} cannot be split over {count} shards: each shard needs at least one user",
                    crate::common::count(peak, "user", "users")
                ));
            }
        }
        LoadModel::Open {
            max_concurrency: Some(m),
            ..
        } if *m < n => {
            return Some(format!(
                "max_concurrency {m} cannot be split over {count} shards: each shard needs at least 1"
            ))
        }
        LoadModel::Open { .. } => {}
    }
    if let Some(i) = load.iterations.filter(|i| *i < n) {
        return Some(format!(
            "{} cannot be split over {count} shards: each shard needs at least one",
            crate::common::count(i, "iteration", "iterations")
        ));
    }
    if data_rows > 0 && (data_rows as u64) < n {
        return Some(format!(
            "{} of data cannot be partitioned over {count} shards without two reading the same row: each shard needs at least one",
            crate::common::count(data_rows as u64, "row", "rows")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::Stage;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::time::Duration;

    fn closed(users: u64, targets: &[Option<u64>], iterations: Option<u64>) -> Load {
        Load {
            model: LoadModel::Closed {
                users,
                stages: targets
                    .iter()
                    .map(|t| Stage {
                        target: t.map(|v| v as f64),
                        over: Duration::from_secs(10),
                    })
                    .collect(),
            },
            iterations,
            ..Load::default()
        }
    }

    #[test]
    fn shards_parse_from_zero() {
        assert_eq!(Shard::parse("0/4"), Ok(Shard { index: 0, count: 4 }));
        assert_eq!(Shard::parse(" 3 / 4 "), Ok(Shard { index: 3, count: 4 }));
        assert!(Shard::parse("4/4")
            .unwrap_err()
            .to_string()
            .contains("not below"));
        assert!(Shard::parse("0/0").is_err());
        assert!(Shard::parse("1").is_err());
        assert!(Shard::parse("-1/4").is_err());
        assert!(Shard::parse("0/10001").is_err());
    }

    #[test]
    fn users_are_striped() {
        let s = Shard { index: 2, count: 4 };
        let vus: Vec<u64> = (0..s.share(12)).map(|j| s.global(j) + 1).collect();
        assert_eq!(vus, [3, 7, 11]);
        assert_eq!(s.share(2), 0);
        assert_eq!(s.share(3), 1);
    }

    #[test]
    fn what_cannot_be_split_is_refused() {
        let cap = Load {
            model: LoadModel::Capacity {
                start: 1.0,
                step: 1.0,
                every: Duration::from_secs(1),
                max: 10.0,
                poisson: false,
                max_concurrency: None,
            },
            ..Load::default()
        };
        assert!(refusal(&cap, 0, 2).unwrap().contains("capacity search"));
        assert!(refusal(&cap, 0, 1).is_none());
        assert!(refusal(&closed(3, &[], None), 0, 4)
            .unwrap()
            .contains("3 users"));
        assert!(refusal(&closed(0, &[Some(8)], None), 0, 4).is_none());
        assert!(refusal(&closed(8, &[], Some(3)), 0, 4)
            .unwrap()
            .contains("3 iterations"));
        assert!(refusal(&closed(8, &[], None), 3, 4)
            .unwrap()
            .contains("3 rows"));
        assert!(refusal(&closed(8, &[], Some(8)), 4, 4).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// For any plan and any count from 1 to 1,000 the shares add up to the whole, and no
        /// user number or data row is any two shards'.
        #[test]
        fn shares_add_up_and_never_overlap(
            users in 0u64..5_000,
            targets in proptest::collection::vec(proptest::option::of(0u64..5_000), 0..4),
            iterations in proptest::option::of(0u64..100_000),
            rows in 0usize..300,
            count in 1u32..=1_000,
        ) {
            let load = closed(users, &targets, iterations);
            let all: Vec<Shares> = (0..count)
                .map(|i| shares(&load, rows, Shard::new(i, count).unwrap()))
                .collect();
            let sum = |f: &dyn Fn(&Shares) -> u64| all.iter().map(f).sum::<u64>();
            prop_assert_eq!(sum(&|s| s.users.unwrap_or(0)), users);
            for (k, t) in targets.iter().enumerate() {
                let total = sum(&|s| s.stage_users[k].unwrap_or(0));
                prop_assert_eq!(total, t.unwrap_or(0));
            }
            prop_assert_eq!(sum(&|s| s.iterations.unwrap_or(0)), iterations.unwrap_or(0));
            let mut seen_rows = HashSet::new();
            for s in &all {
                for r in &s.rows {
                    prop_assert!(seen_rows.insert(*r), "row {} read by two shards", r);
                }
            }
            prop_assert_eq!(seen_rows.len(), rows);
            let peak = targets.iter().flatten().copied().fold(users, u64::max);
            let mut vus = HashSet::new();
            for i in 0..count {
                let s = Shard::new(i, count).unwrap();
                for j in 0..s.share(peak) {
                    prop_assert!(vus.insert(s.global(j) + 1), "user {} in two shards", s.global(j) + 1);
                }
            }
            prop_assert_eq!(vus.len() as u64, peak);
            prop_assert!(vus.iter().all(|v| (1..=peak).contains(v)));
        }

        /// An open model's concurrency cap is split so the parts add up to it.
        #[test]
        fn concurrency_caps_add_up(cap in 1u64..100_000, count in 1u32..=1_000) {
            let load = Load {
                model: LoadModel::Open {
                    rate: 10.0,
                    stages: Vec::new(),
                    poisson: false,
                    max_concurrency: Some(cap),
                },
                ..Load::default()
            };
            let total: u64 = (0..count)
                .map(|i| shares(&load, 0, Shard::new(i, count).unwrap()).max_concurrency.unwrap())
                .sum();
            prop_assert_eq!(total, cap);
        }

        /// At every instant of a ramp the shards' users add up to the unsharded count.
        #[test]
        fn ramped_users_add_up_at_every_instant(desired in 0u64..1_000_000, count in 1u32..=1_000) {
            let total: u64 = (0..count).map(|i| Shard::new(i, count).unwrap().share(desired)).sum();
            prop_assert_eq!(total, desired);
        }
    }
}
