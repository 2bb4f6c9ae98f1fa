//! Integration tests of the scenario language and the conversation runner.

mod behaviour;
mod cli;
mod validation;
