//! End-to-end: the `loadtest` binary against the real backend binary.

mod helpers;
mod runs;
