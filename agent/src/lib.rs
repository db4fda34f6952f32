//! The telemetry agent as a library: the simulator builds agents from these parts with a fake
//! collector and scripted servers; `main.rs` wires the real ones.

#![warn(missing_docs)]

pub mod collect;
pub mod data_dir;
mod host_detail;
pub mod logfile;
pub mod machine_config;
// Windows only; its arithmetic is unit-tested everywhere.
#[cfg(any(windows, test))]
mod machine_cpu;
pub mod queue;
pub mod retry;
pub mod schedule;
pub mod send;
#[cfg(windows)]
pub mod service;
pub mod settings;
pub mod startup;
pub mod tls;
mod watch;
