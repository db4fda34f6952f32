//! What one in-process backend logs, kept apart from every other backend in the process.
//!
//! Each backend's threads get a tracing dispatcher of their own that writes here, so a test
//! reads exactly its server's lines even when `cargo test` runs many tests in one process.

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The text lines logged so far, as the binary prints them without colour.
#[derive(Debug, Clone, Default)]
pub struct Logs(Arc<Mutex<String>>);

impl Logs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Prints everything logged when the test is failing (called as its backend is dropped),
    /// where the test runner shows it beside the failure.
    pub(crate) fn show_if_failing(&self) {
        if std::thread::panicking() {
            eprintln!("--- backend logs ---\n{}", self.text());
        }
    }

    /// A dispatcher writing the events that `filter` (a `RUST_LOG` value) lets through here.
    pub(crate) fn dispatch(&self, filter: &str) -> tracing::Dispatch {
        let filter =
            EnvFilter::try_new(filter).unwrap_or_else(|e| panic!("RUST_LOG {filter}: {e}"));
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(self.clone())
            .finish();
        tracing::Dispatch::new(subscriber)
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut text = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        text.push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}
