//! End-to-end: the `loadtest` binary against the real backend, in this process.

mod helpers;
mod runs;
