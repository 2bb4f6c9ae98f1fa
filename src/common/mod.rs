//! Small value types shared by every layer: typed durations, ranges and distributions, how
//! YAML is read into a positioned tree, and the diagnostics that point into it.

pub mod diag;
pub mod duration;
pub mod node;
pub mod procfs;

pub use duration::{pause, pause_until, Delay, DurationSpec};

/// How hookbench reads YAML (scenarios and bots): YAML 1.2 booleans only (`true`/`false`), so
/// that keys and values such as `n`, `no`, `on` or `y` stay text, as they would in JSON.
pub fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! { strict_booleans: true }
}

/// `n` with its noun: `1 delivery`, `3 deliveries`, `0 steps`.
pub fn count(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}
