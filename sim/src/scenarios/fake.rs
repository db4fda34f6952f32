//! A fake agent on the real sender and a real disk queue, for the scenarios on real time: what
//! survives between its lives (queue folder, numbering, counters, HTTP client) and how to build
//! the next life.

use crate::SimError;
use crate::numbered::{Numbered, agent_id};
use agent::queue::fs::StdFs;
use agent::queue::outbox::Outbox;
use agent::queue::{DiskQueue, Limits};
use agent::retry::Backoff;
use agent::schedule::{Agent, Stats};
use agent::send::{HttpTransport, Transport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How the fakes of one scenario behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    pub interval: Duration,
    pub timeout: Duration,
    pub base: Duration,
    pub cap: Duration,
}

#[derive(Debug)]
pub(crate) struct Fake {
    pub id: String,
    pub dir: PathBuf,
    pub collector: Numbered,
    pub stats: Arc<Stats>,
    /// Kept across lives: it remembers its last signature, as one process would.
    pub http: HttpTransport,
    seed: u64,
    tuning: Tuning,
}

impl Fake {
    pub(crate) fn new(
        scenario: &str,
        n: usize,
        seed: u64,
        root: &Path,
        url: &str,
        token: &str,
        tuning: Tuning,
    ) -> Result<Self, SimError> {
        Ok(Self {
            id: agent_id(scenario, n),
            dir: root.join(n.to_string()),
            collector: Numbered::default(),
            stats: Arc::new(Stats::default()),
            http: HttpTransport::new(url, token, super::SECRET, tuning.timeout)
                .map_err(|e| SimError::setup("building the HTTP client", e))?,
            seed: super::agent_seed(seed, n),
            tuning,
        })
    }

    /// The next life, on the queue the previous one left.
    pub(crate) fn agent<T: Transport>(
        &self,
        transport: T,
    ) -> Result<Agent<Numbered, T, Backoff, StdFs>, SimError> {
        let queue = DiskQueue::open(StdFs, &self.dir, Limits::NONE)
            .map_err(|e| SimError::setup("opening a queue", e))?;
        Ok(Agent {
            collector: self.collector.clone(),
            transport,
            policy: Backoff::new(self.tuning.base, self.tuning.cap, self.seed),
            outbox: Outbox::new(queue),
            agent_id: self.id.clone(),
            interval: self.tuning.interval,
            stats: self.stats.clone(),
        })
    }
}
