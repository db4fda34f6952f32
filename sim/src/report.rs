//! One scenario's outcome: the counts the issue asks for, and every broken invariant.

use std::fmt;
use std::time::Duration;

/// What one scenario counted, printed as a row under [`Report::HEADER`].
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The scenario's [`name`](crate::Scenario::name).
    pub scenario: &'static str,
    pub(crate) agents: usize,
    /// The seed the run used, printed so that a failed run can be repeated.
    pub seed: u64,
    /// Readings the fake collectors produced.
    pub produced: u64,
    /// Batches the receiving side stored (once each).
    pub delivered: u64,
    /// Repeated batches the receiving side recognised by `batch_id`.
    pub duplicates: u64,
    /// Oldest batches dropped to stay within the queue limit.
    pub dropped: u64,
    /// Damaged queue files set aside in `corrupt/`.
    pub corrupt: u64,
    /// Batches refused by the server and set aside in `rejected/`.
    pub rejected: u64,
    /// Batches still queued when the scenario ended.
    pub queued: u64,
    /// The largest queue of one agent, in bytes.
    pub max_queue_bytes: u64,
    /// Failed delivery attempts, over all agents.
    pub retries: u64,
    /// Wall-clock time the scenario took.
    pub elapsed: Duration,
    /// Time the agents lived through (longer than `elapsed` on the paused clock).
    pub simulated: Duration,
    /// Every broken invariant, one line each; empty when the scenario passed.
    pub failures: Vec<String>,
}

impl Report {
    /// No invariant was broken.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    pub(crate) fn fail(&mut self, why: impl Into<String>) {
        self.failures.push(why.into());
    }

    /// Fails with `what` unless `left == right`.
    pub(crate) fn expect_eq(&mut self, what: &str, left: u64, right: u64) {
        if left != right {
            self.fail(format!("{what}: {left} != {right}"));
        }
    }

    /// The table's column names, aligned with the rows that `Display` prints.
    pub const HEADER: &'static str = "scenario      agents  produced delivered duplicates  dropped  corrupt rejected   queued  max queue  retries  simulated   wall  verdict";
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<12} {:>7} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>9}K {:>8} {:>9.0}s {:>5.1}s  {}",
            self.scenario,
            self.agents,
            self.produced,
            self.delivered,
            self.duplicates,
            self.dropped,
            self.corrupt,
            self.rejected,
            self.queued,
            self.max_queue_bytes.div_ceil(1024),
            self.retries,
            self.simulated.as_secs_f64(),
            self.elapsed.as_secs_f64(),
            if self.passed() { "ok" } else { "FAILED" },
        )
    }
}
