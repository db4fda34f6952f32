//! The web dashboard: a Dioxus app compiled to WebAssembly.
//!
//! Formatting, chart geometry, the live store and the connection bookkeeping are plain Rust with
//! unit tests; components render them and are snapshot-tested with dioxus-ssr; `api` is the only
//! part that talks to the network, `auth` keeps the login.

pub mod api;
pub mod auth;
pub mod chart;
pub mod columns;
pub mod components;
pub mod format;
pub mod live;
pub mod state;
pub mod store;

#[cfg(test)]
mod fixtures;
