//! What the test suites of every crate share.

pub mod postgres;
pub mod signed;
