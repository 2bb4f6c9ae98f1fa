//! Integration tests of the reference simulator over real HTTP on loopback (port 0).

mod async_mode;
mod auth;
mod common;
mod errors;
mod ops;
mod upload;
mod v1;
mod v2;
