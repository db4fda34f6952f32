//! Browser end-to-end tests: headless Chromium against the real backend, fed with signed
//! batches, on the dashboard door the backend itself serves. Run by `ci/test.sh dashboard`.

mod alerts;
mod clear;
mod harness;
mod live;
mod login;
mod paging;
mod perf;
mod reconnect;
