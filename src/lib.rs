//! hookbench: a load-testing and conformance harness for chatbot Webhook channels (V1 and V2),
//! with a reference simulator of the platform.
//!
//! Layers, each depending only on those above it in this list:
//! - [`common`]: typed durations and distributions;
//! - [`protocol`]: wire types, JWT, URLs and ids;
//! - [`sim`]: the reference platform simulator;
//! - [`cli`]: the command line.

pub mod certify;
pub mod cli;
pub mod client;
pub mod common;
pub mod engine;
pub mod error;
pub mod protocol;
pub mod reports;
pub mod scenario;
pub mod sim;
