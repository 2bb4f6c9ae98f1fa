//! The scenario language: YAML conversation scripts, parsed with positions, validated into a
//! runnable plan. No network I/O here; files are read only to load scenarios, includes, data
//! feeders and user schemas.

pub use crate::common::{diag, node};
pub mod botium;
pub mod plan;
pub mod schemas;
pub mod shard;
pub mod template;
pub mod threshold;
pub mod validate;

pub use diag::Diag;
pub use plan::*;
pub use validate::{
    load, load_from, load_with, parse_from, parse_str, parse_with, EnvLookup, OverlayValue,
};
