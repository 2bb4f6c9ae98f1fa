//! Integration tests of the scenario language and the conversation runner.

mod behaviour;
mod cli;
#[path = "../common/mod.rs"]
mod common;
mod validation;
