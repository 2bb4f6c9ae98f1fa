//! Small value types shared by every layer: typed durations, ranges and distributions.

pub mod duration;

pub use duration::{pause, pause_until, Delay, DurationSpec};
