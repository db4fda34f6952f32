//! Browser end-to-end tests: headless Chromium against the real backend, fed with signed
//! batches, through the dashboard server. Run by `ci/test.sh dashboard`.

mod alerts;
mod clear;
mod harness;
mod live;
mod login;
mod paging;
mod perf;
mod reconnect;
