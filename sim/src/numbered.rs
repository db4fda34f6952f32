//! Fake readings numbered per agent, so the receiving side can check each one arrives once and
//! in order: the number travels in `uptime_s`, the agent in `agent_id`.

use agent::collect::{Collector, Reading};
use protocol::{Event, EventKind, IngestBatch};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counts from 1; the counter is shared so that an agent restarted after a crash goes on
/// numbering where the killed one stopped, and the scenario can read how many were produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Numbered(pub Arc<AtomicU64>);

impl Numbered {
    pub(crate) fn produced(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

impl Collector for Numbered {
    fn collect(&mut self) -> Reading {
        let seq = self.0.fetch_add(1, Relaxed) + 1;
        Reading {
            metric: Event {
                cpu: Some(0.25),
                mem_free: Some(1 << 30),
                mem_total: Some(1 << 32),
                uptime_s: Some(seq),
                ..Event::empty(EventKind::Metric)
            },
            procs: vec![],
            drives: vec![],
        }
    }
}

/// Who sent a batch, its number and its id, read back from a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub agent_id: String,
    pub seq: u64,
    pub batch_id: String,
}

impl Stamp {
    pub(crate) fn of(body: &[u8]) -> Result<Self, String> {
        let batch: IngestBatch =
            serde_json::from_slice(body).map_err(|e| format!("not a batch: {e}"))?;
        let seq = match batch.events.first() {
            Some(e @ Event { uptime_s: Some(seq), .. }) if e.is_metric() => *seq,
            _ => return Err("the first event is not a numbered metric".into()),
        };
        let batch_id = batch.batch_id.ok_or("no batch_id")?;
        Ok(Self { agent_id: batch.agent_id, seq, batch_id })
    }
}

/// The agent id of fake agent `n` in a scenario.
pub(crate) fn agent_id(scenario: &str, n: usize) -> String {
    format!("sim-{scenario}-{n:04}")
}
