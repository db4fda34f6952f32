//! Only integration tests live in this crate: see `tests/`.
