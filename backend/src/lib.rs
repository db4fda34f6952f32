//! The telemetry backend as a library; `main.rs` only parses settings and calls [`startup`].

#![warn(missing_docs)]

mod alerts;
pub mod clock;
mod conn_guard;
mod error;
pub mod live;
pub mod metrics;
mod routes;
mod security;
mod serve;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod telemetry;
mod tls;

// musl's allocator made the static build (the Docker image) a third slower than the glibc one
// under ingest load; mimalloc brings it close and speeds up the glibc build too. Set here so that
// every binary built on this crate (the backend, its bench and tests) runs with what production
// runs. Not in this crate's own unit tests: they also link the test harness, which brings this
// library's normal build and its allocator with it.
#[cfg(not(test))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
