//! The telemetry backend as a library; `main.rs` only parses settings and calls [`startup`].

pub mod clock;
pub mod error;
pub mod live;
pub mod metrics;
pub mod routes;
pub mod security;
pub mod settings;
pub mod startup;
pub mod storage;
pub mod telemetry;
