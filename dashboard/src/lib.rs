//! The web dashboard: a Dioxus app compiled to WebAssembly.
//!
//! Formatting, chart geometry, the live store and the connection bookkeeping are plain Rust with
//! unit tests; components render them and are snapshot-tested with dioxus-ssr; `api` is the only
//! part that talks to the network, `auth` keeps the login.

#![warn(missing_docs)]

mod alert_forms;
mod alerts;
mod api;
mod auth;
mod chart;
mod columns;
pub mod components;
mod format;
mod live;
mod state;
mod store;

#[cfg(test)]
mod fixtures;
