//! What a request asks of a storage writer, and what happens once its commit is decided: both
//! writers (SQLite's thread, PostgreSQL's task) group the queued jobs into one transaction and
//! answer each only after that transaction commits.

use super::{Cutoffs, IngestOutcome, Pruned, StorageError};
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::security::Verified;
use protocol::{Event, EventRow, IngestBatch};
use tokio::sync::{mpsc, oneshot};

/// At most this many requests share one transaction, so one commit never grows unbounded.
pub(crate) const MAX_GROUP: usize = 256;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

/// One request to a store's writer; each but `Shutdown` carries where its answer goes.
#[derive(Debug)]
pub enum Job {
    /// Stores a batch, unless its `batch_id` is stored already.
    Ingest {
        /// The batch, already validated; boxed, since it is several times the other jobs' size.
        batch: Box<IngestBatch>,
        /// The batch's `ts` in unix milliseconds, by the agent's clock.
        ts_ms: i64,
        /// The request's signature, stored with the batch so that a replay is refused until it
        /// expires, after a restart too.
        verified: Verified,
        /// Answered once the commit is decided.
        reply: Reply<IngestOutcome>,
    },
    /// Deletes the events of one agent, or of all.
    Clear {
        /// The agent whose events go; `None`: every agent's.
        agent_id: Option<String>,
        /// Answered with the number of events deleted.
        reply: Reply<usize>,
    },
    /// Takes the write lock and commits nothing: proves the database is writable.
    Ping {
        /// Answered once the empty transaction commits.
        reply: Reply<()>,
    },
    /// One retention step (see [`super::Store::prune_step`]).
    Prune {
        /// What goes: raw events and batch ids, and each tier's old buckets.
        cutoffs: Cutoffs,
        /// Answered with what the step removed.
        reply: Reply<Pruned>,
    },
    /// Ends the writer once the jobs queued before it are committed.
    Shutdown,
}

/// What a job produced inside the transaction, released only if the commit succeeds.
#[derive(Debug)]
pub enum Applied {
    /// The batch's outcome and its rows as stored, for the live feed (empty when nobody
    /// listens).
    Ingest(IngestOutcome, Vec<EventRow>),
    /// The number of events a clear deleted.
    Count(usize),
    /// What a retention step removed.
    Pruned(Pruned),
    /// Nothing to hand back, as for a ping.
    Unit,
}

/// Queues a job and waits for its commit.
pub(crate) async fn submit<T>(
    jobs: &mpsc::Sender<Job>,
    make: impl FnOnce(Reply<T>) -> Job,
) -> Result<T, StorageError> {
    let (reply, rx) = oneshot::channel();
    jobs.send(make(reply)).await.map_err(|_| StorageError::Closed)?;
    rx.await.map_err(|_| StorageError::Closed)?
}

/// The queued jobs after `first`, up to [`MAX_GROUP`], and whether a shutdown was among them
/// (the jobs after it are dropped: their senders learn that the writer has stopped).
pub fn take_group(first: Job, mut next: impl FnMut() -> Option<Job>) -> (Vec<Job>, bool) {
    let mut jobs = vec![first];
    while jobs.len() < MAX_GROUP {
        match next() {
            Some(job) => jobs.push(job),
            None => break,
        }
    }
    match jobs.iter().position(|j| matches!(j, Job::Shutdown)) {
        Some(pos) => {
            jobs.truncate(pos);
            (jobs, true)
        }
        None => (jobs, false),
    }
}

impl Job {
    pub(crate) fn fail(self, err: StorageError) {
        match self {
            Job::Ingest { reply, .. } => drop(reply.send(Err(err))),
            Job::Clear { reply, .. } => drop(reply.send(Err(err))),
            Job::Prune { reply, .. } => drop(reply.send(Err(err))),
            Job::Ping { reply } => drop(reply.send(Err(err))),
            Job::Shutdown => {}
        }
    }

    /// After the commit: counts, publishes the rows live, then answers the request.
    pub fn release(self, result: Applied, hub: &Hub, metrics: &Metrics) {
        use std::sync::atomic::Ordering::Relaxed;
        match (self, result) {
            (Job::Ingest { reply, .. }, Applied::Ingest(outcome, rows)) => {
                if outcome.duplicate {
                    metrics.batches_duplicate.fetch_add(1, Relaxed);
                } else {
                    metrics.batches_stored.fetch_add(1, Relaxed);
                    metrics.events_stored.fetch_add(outcome.stored as u64, Relaxed);
                }
                hub.publish_rows(&rows);
                let _ = reply.send(Ok(outcome));
            }
            (Job::Clear { reply, agent_id }, Applied::Count(n)) => {
                hub.publish_clear(agent_id.as_deref());
                let _ = reply.send(Ok(n));
            }
            (Job::Prune { reply, .. }, Applied::Pruned(p)) => {
                metrics.events_pruned.fetch_add(p.events as u64, Relaxed);
                metrics.batches_compacted.fetch_add(p.compacted as u64, Relaxed);
                let _ = reply.send(Ok(p));
            }
            (Job::Ping { reply }, _) => drop(reply.send(Ok(()))),
            (job, result) => unreachable!("{result:?} is not the result of {job:?}"),
        }
    }
}

/// One event's columns, borrowed from its batch. Validation keeps every integer within i64.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Columns<'a> {
    pub(crate) event_type: &'a str,
    pub(crate) cpu: Option<f64>,
    pub(crate) mem_free: Option<i64>,
    pub(crate) mem_total: Option<i64>,
    pub(crate) disk_free: Option<i64>,
    pub(crate) disk_total: Option<i64>,
    pub(crate) net_rx_bps: Option<f64>,
    pub(crate) net_tx_bps: Option<f64>,
    pub(crate) uptime_s: Option<i64>,
    pub(crate) pid: Option<i64>,
    pub(crate) proc_name: Option<&'a str>,
    pub(crate) rss: Option<i64>,
}

impl<'a> Columns<'a> {
    pub(crate) fn of(e: &'a Event) -> Self {
        let int = |v: Option<u64>| v.map(|v| v as i64);
        Columns {
            event_type: e.type_name(),
            cpu: e.cpu,
            mem_free: int(e.mem_free),
            mem_total: int(e.mem_total),
            disk_free: int(e.disk_free),
            disk_total: int(e.disk_total),
            net_rx_bps: e.net_rx_bps,
            net_tx_bps: e.net_tx_bps,
            uptime_s: int(e.uptime_s),
            pid: e.pid.map(i64::from),
            proc_name: e.name.as_deref(),
            rss: int(e.rss),
        }
    }

    /// The row as `GET /api/events` and the live feed show it.
    pub(crate) fn to_row(self, batch: &IngestBatch, id: i64, ingested_at: &str) -> EventRow {
        let uint = |v: Option<i64>| v.map(|v| v as u64);
        EventRow {
            id,
            agent_id: batch.agent_id.clone(),
            ts: batch.ts.clone(),
            platform: batch.platform.clone(),
            event_type: self.event_type.to_owned(),
            cpu: self.cpu,
            mem_free: uint(self.mem_free),
            pid: self.pid.map(|p| p as u32),
            proc_name: self.proc_name.map(str::to_owned),
            rss: uint(self.rss),
            ingested_at: ingested_at.to_owned(),
            mem_total: uint(self.mem_total),
            disk_free: uint(self.disk_free),
            disk_total: uint(self.disk_total),
            net_rx_bps: self.net_rx_bps,
            net_tx_bps: self.net_tx_bps,
            uptime_s: uint(self.uptime_s),
        }
    }
}
