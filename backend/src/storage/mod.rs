//! Where events live. [`Store`] is what the routes need of a database; SQLite (one process,
//! the default) and PostgreSQL (several replicas acting as one) implement it.

pub(crate) mod chunk;
pub(crate) mod codec;
pub mod jobs;
pub(crate) mod notices;
pub(crate) mod postgres;
pub(crate) mod rollup;
pub(crate) mod sessions;
pub(crate) mod sqlite;
pub(crate) mod tier_chunk;

pub use notices::NoticeFilter;
pub use postgres::create_database;
#[cfg(test)]
mod suite;

use crate::security::Verified;
use jobs::{Job, submit};
use protocol::{
    AgentSummary, EventRow, IngestBatch, NoticeLevel, NoticeRow, ProcessHistory, ProcessesResponse,
    Series, ServicesResponse,
};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;

/// Which store a migration written once for both is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `template` in this store's words: `{id}` is a table's own growing key column, `{big}` a
    /// 64-bit integer, `{float}` a double.
    pub(crate) fn render(self, template: &str) -> String {
        let (id, big, float) = match self {
            Dialect::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "INTEGER", "REAL"),
            Dialect::Postgres => {
                ("BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BIGINT", "DOUBLE PRECISION")
            }
        };
        template.replace("{id}", id).replace("{big}", big).replace("{float}", float)
    }
}

/// Why a store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite failed, in a read or while opening the database.
    #[error("SQLite failed")]
    Sqlite(#[from] rusqlite::Error),
    /// Nothing of the transaction is stored.
    #[error("the commit failed")]
    Commit(#[source] rusqlite::Error),
    /// The store is closing or its writer has stopped: the request cannot be served.
    #[error("the storage writer has stopped")]
    Closed,
    /// The operating system would not start SQLite's writer thread.
    #[error("cannot start the storage writer thread")]
    WriterThread(#[source] std::io::Error),
    /// The SQLite file could not be opened, or its schema not be set up.
    #[error("cannot open the database at {path}")]
    Open {
        /// The file, as `DB_PATH` names it.
        path: std::path::PathBuf,
        /// SQLite's reason.
        source: rusqlite::Error,
    },
    /// The folder of the SQLite file did not exist and could not be created.
    #[error("cannot create the database folder {path}")]
    CreateDir {
        /// The folder `DB_PATH` lies in.
        path: std::path::PathBuf,
        /// The file system's reason.
        source: std::io::Error,
    },
    /// A PostgreSQL statement failed, or the connection to the server did.
    #[error("PostgreSQL failed")]
    Postgres(#[from] tokio_postgres::Error),
    /// A setting this build cannot honour, such as `sslmode=require`.
    #[error("{0}")]
    Unsupported(&'static str),
    /// [`create_database`] takes only lower-case ASCII letters, digits and `_`.
    #[error("{0:?} is not a plain database name")]
    BadDatabaseName(String),
    /// PostgreSQL did not confirm within this time that this replica listens for the others'
    /// notices.
    #[error("could not LISTEN for the other replicas within {0:?}")]
    ListenTimeout(std::time::Duration),
    /// The COMMIT was sent and no answer came (with the driver's error, if it gave one): the
    /// batch may be stored or not, and its batch id makes sending it again harmless.
    #[error("the commit's outcome is unknown; send the batch again")]
    OutcomeUnknown(#[source] Option<std::sync::Arc<tokio_postgres::Error>>),
    /// A batch's events could not be written as the log's JSON.
    #[error("cannot encode the batch's events")]
    Encode(#[source] serde_json::Error),
    /// A stored batch's events could not be read back: the row was changed by hand or is
    /// damaged.
    #[error("a stored batch cannot be read")]
    Damaged(#[source] serde_json::Error),
    /// A notice for the other replicas could not be encoded as JSON.
    #[error("cannot encode a notice for the other replicas")]
    Notice(#[source] serde_json::Error),
    /// Another replica accepted the same signed request first.
    #[error("this signed request was already received")]
    Replay,
    /// A read failed in a way that says nothing about the database (a bug); only this request
    /// fails, and the connection goes back to the pool.
    #[error("the read failed unexpectedly")]
    ReadPanicked,
}

/// What became of an ingested batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events stored; 0 for a duplicate.
    pub stored: usize,
    /// The batch's `batch_id` was stored already, so nothing was stored again.
    pub duplicate: bool,
}

/// The columns of an event row, in the order both stores' row readers expect.
pub(crate) const EVENT_COLUMNS: &str = "id, agent_id, ts, platform, event_type, cpu, mem_free,
    pid, proc_name, rss, ingested_ms, mem_total, disk_free, disk_total, net_rx_bps, net_tx_bps,
    uptime_s";

/// Filters of `GET /api/events`.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub(crate) agent_id: Option<String>,
    pub(crate) event_type: Option<String>,
    pub(crate) before_id: Option<i64>,
    pub(crate) limit: u32,
}

/// A time range cut into buckets of `step_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub(crate) from_ms: i64,
    pub(crate) to_ms: i64,
    pub(crate) step_ms: i64,
}

/// Gaps between an agent's batches (its own clock, ms) outside this range are replays of queued
/// batches or restarts, not its interval.
pub(crate) const PLAUSIBLE_GAP_MS: std::ops::RangeInclusive<i64> = 500..=3_600_000;
/// The weight of the newest gap in the learnt interval, an exponential moving average. Both
/// stores use these two (PostgreSQL binds them into its upsert).
pub(crate) const GAP_WEIGHT: f64 = 0.25;

/// The interval learnt so far, after one more gap.
pub(crate) fn learn_interval(interval_ms: Option<f64>, gap_ms: i64) -> Option<f64> {
    if !PLAUSIBLE_GAP_MS.contains(&gap_ms) {
        return interval_ms;
    }
    let gap = gap_ms as f64;
    Some(interval_ms.map_or(gap, |i| i * (1.0 - GAP_WEIGHT) + gap * GAP_WEIGHT))
}

/// How long ago (s) an agent was seen, its interval (s), and whether it counts as online (see
/// [`protocol::liveness`]).
pub(crate) fn liveness(
    now_ms: i64,
    last_seen_ms: i64,
    interval_ms: Option<f64>,
) -> (f64, f64, bool) {
    let interval_s = protocol::liveness::interval_s(interval_ms.map(|ms| ms / 1000.0));
    let ago_s = (now_ms - last_seen_ms).max(0) as f64 / 1000.0;
    (
        ago_s,
        (interval_s * 1000.0).round() / 1000.0,
        protocol::liveness::is_online(ago_s, interval_s),
    )
}

impl Range {
    /// The start of a bucket, in unix seconds.
    fn bucket_start(self, bucket: i64) -> i64 {
        (self.from_ms + bucket * self.step_ms) / 1000
    }
}

pub(crate) fn empty_series(agent_id: &str, range: Range) -> Series {
    Series {
        agent_id: agent_id.to_owned(),
        from: range.from_ms / 1000,
        to: range.to_ms / 1000,
        step: range.step_ms / 1000,
        t: Vec::new(),
        cpu_avg: Vec::new(),
        cpu_max: Vec::new(),
        mem_used: Vec::new(),
        mem_total: Vec::new(),
        disk_used: Vec::new(),
        disk_total: Vec::new(),
        net_rx_bps: Vec::new(),
        net_tx_bps: Vec::new(),
    }
}

/// Appends one bucket: cpu avg and max, memory used and total, disk used and total, network
/// in and out. With a total unknown, "used" is unknown too.
pub(crate) fn push_series(s: &mut Series, range: Range, bucket: i64, v: [Option<f64>; 8]) {
    s.t.push(range.bucket_start(bucket));
    let [cpu_avg, cpu_max, mem_used, mem_total, disk_used, disk_total, rx, tx] = v;
    s.cpu_avg.push(cpu_avg);
    s.cpu_max.push(cpu_max);
    s.mem_used.push(mem_used);
    s.mem_total.push(mem_total);
    s.disk_used.push(disk_used);
    s.disk_total.push(disk_total);
    s.net_rx_bps.push(rx);
    s.net_tx_bps.push(tx);
}

pub(crate) fn empty_history(agent_id: &str, name: &str, range: Range) -> ProcessHistory {
    ProcessHistory {
        agent_id: agent_id.to_owned(),
        name: name.to_owned(),
        from: range.from_ms / 1000,
        to: range.to_ms / 1000,
        step: range.step_ms / 1000,
        t: Vec::new(),
        cpu_avg: Vec::new(),
        cpu_max: Vec::new(),
        rss_avg: Vec::new(),
    }
}

/// Appends one bucket: cpu avg and max, rss avg.
pub(crate) fn push_history(h: &mut ProcessHistory, range: Range, bucket: i64, v: [Option<f64>; 3]) {
    h.t.push(range.bucket_start(bucket));
    let [cpu_avg, cpu_max, rss_avg] = v;
    h.cpu_avg.push(cpu_avg);
    h.cpu_max.push(cpu_max);
    h.rss_avg.push(rss_avg);
}

/// What one retention pass removes: each kind of row from before its time (unix ms); `None`
/// keeps that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cutoffs {
    /// Raw events and batch ids, by when they were received.
    pub raw: Option<i64>,
    /// Each tier's buckets, in [`rollup::TIERS`] order, by where they start on the agent's clock.
    pub tiers: [Option<i64>; 2],
    /// Which raw batches move into compressed chunks (SQLite; PostgreSQL keeps its rows).
    pub compact: Option<Compaction>,
}

/// An agent's raw batches received before `before_ms` move into a chunk once its oldest was
/// received before `due_before_ms`: a chunk then holds about as long of its batches as they
/// waited, rather than one batch each time one comes of age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Batches received before this move.
    pub before_ms: i64,
    /// Once the agent's oldest was received before this.
    pub due_before_ms: i64,
}

impl Cutoffs {
    /// Raw events and batch ids only.
    #[cfg(test)]
    pub(crate) fn raw(before_ms: Option<i64>) -> Self {
        Self { raw: before_ms, tiers: [None; 2], compact: None }
    }
}

/// Rows deleted per retention step, so pruning never holds the write lock for long.
pub(crate) const PRUNE_CHUNK: usize = 5000;

/// What one retention step removed, and whether it stopped at a limit with more left: old
/// events, old batch ids or expired signatures. Any of them can outgrow a step on its own (batch
/// ids outlive their events after a clear; signatures expire whether or not events are old).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub(crate) events: usize,
    /// Raw batches moved into chunks (SQLite).
    pub(crate) compacted: usize,
    pub(crate) more: bool,
}

impl Pruned {
    /// `deleted` holds each step's count of rows per kind, each limited to [`PRUNE_CHUNK`].
    pub(crate) fn of(events: usize, deleted: &[u64]) -> Self {
        Self { events, compacted: 0, more: deleted.iter().any(|&n| n >= PRUNE_CHUNK as u64) }
    }
}

/// What a [`Store`] answers with: a boxed future, so that the trait can be used as `dyn Store`.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Both stores write through a writer of their own that takes [`Job`]s from a queue, so the
/// write half is provided here; each store answers the reads itself.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The queue of this store's writer.
    fn jobs(&self) -> &mpsc::Sender<Job>;

    /// Resolves once the batch is committed (or known to be a duplicate).
    fn ingest(
        &self,
        batch: IngestBatch,
        ts_ms: i64,
        verified: Verified,
    ) -> StoreFuture<'_, IngestOutcome> {
        Box::pin(submit(self.jobs(), move |reply| Job::Ingest {
            batch: Box::new(batch),
            ts_ms,
            verified,
            reply,
        }))
    }
    /// Deletes the events of `agent_id` (`None`: of every agent) and forgets the agent, then tells
    /// the live clients; resolves to the number of events deleted.
    fn clear(&self, agent_id: Option<String>) -> StoreFuture<'_, usize> {
        Box::pin(submit(self.jobs(), move |reply| Job::Clear { agent_id, reply }))
    }
    /// Takes the write lock and commits nothing: proves the database is writable.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(submit(self.jobs(), |reply| Job::Ping { reply }))
    }
    /// Runs a trivial read the way every read runs: proves reads can be served.
    fn ping_read(&self) -> StoreFuture<'_, ()>;
    /// Deletes up to [`PRUNE_CHUNK`] batches (or events) ingested before `cutoffs.raw`, as many
    /// batch ids received before it, and expired signatures.
    fn prune_step(&self, cutoffs: Cutoffs) -> StoreFuture<'_, Pruned> {
        Box::pin(submit(self.jobs(), move |reply| Job::Prune { cutoffs, reply }))
    }
    /// Newest first by id, which is insertion order.
    fn events(&self, filter: EventFilter) -> StoreFuture<'_, Vec<EventRow>>;
    /// Every agent with its latest figures, or only the one `only` names (none when it has not
    /// reported); `online` is judged against its own interval.
    fn agents(&self, now_ms: i64, only: Option<String>) -> StoreFuture<'_, Vec<AgentSummary>>;
    /// Whether `agent_id` has sent a batch since it was last cleared.
    fn agent_exists(&self, agent_id: String) -> StoreFuture<'_, bool>;
    /// `agent_id`'s metrics in `range`, bucketed by the agent's own timestamps; buckets without
    /// any are left out.
    fn series(&self, agent_id: String, range: Range) -> StoreFuture<'_, Series>;
    /// The `proc` events of `agent_id`'s latest batch (by its own time) that held any, busiest
    /// first; none if it never sent one.
    fn latest_processes(&self, agent_id: String) -> StoreFuture<'_, ProcessesResponse>;
    /// The cpu and rss of `agent_id`'s processes called `name` in `range`, bucketed by the agent's
    /// own timestamps; buckets without any are left out.
    fn process_history(
        &self,
        agent_id: String,
        name: String,
        range: Range,
    ) -> StoreFuture<'_, ProcessHistory>;
    /// The newest list of watched services `agent_id` sent (by its clock); empty when none.
    fn services(&self, agent_id: String) -> StoreFuture<'_, ServicesResponse>;
    /// Its notices, newest first.
    fn notices(&self, filter: NoticeFilter) -> StoreFuture<'_, Vec<NoticeRow>>;
    /// How many Event Log or journal entries of `level` `agent_id` has that happened at or after
    /// `since_ms` (its clock).
    fn count_log_notices(
        &self,
        agent_id: String,
        level: NoticeLevel,
        since_ms: i64,
    ) -> StoreFuture<'_, u64>;
    /// Commits everything queued so far, then stops writing.
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Opens the alert tables of the database the settings name. The event store migrates them
/// when it opens; a benchmark that runs the application around a store of its own gets them
/// migrated here.
pub(crate) async fn open_alerts(
    settings: &crate::settings::Settings,
) -> Result<std::sync::Arc<dyn crate::alerts::AlertStore>, StorageError> {
    Ok(match &settings.database_url {
        Some(url) => std::sync::Arc::new(postgres::alerts::PgAlerts::connect(url).await?),
        None => std::sync::Arc::new(sqlite::alerts::SqliteAlerts::open(
            &settings.db_path,
            settings.synchronous,
        )?),
    })
}

/// Opens the session tables of the database the settings name, migrated as by
/// [`open_alerts`].
pub(crate) async fn open_sessions(
    settings: &crate::settings::Settings,
) -> Result<std::sync::Arc<dyn sessions::SessionStore>, StorageError> {
    Ok(match &settings.database_url {
        Some(url) => std::sync::Arc::new(postgres::sessions::PgSessions::connect(url).await?),
        None => std::sync::Arc::new(sqlite::sessions::SqliteSessions::open(
            &settings.db_path,
            settings.synchronous,
        )?),
    })
}

/// Removes everything older than its cutoff in short steps, letting ingest commits go between
/// two of them.
pub(crate) async fn prune(store: &dyn Store, cutoffs: Cutoffs) -> Result<usize, StorageError> {
    let (mut total, mut compacted) = (0, 0);
    loop {
        let step = store.prune_step(cutoffs).await?;
        total += step.events;
        compacted += step.compacted;
        if !step.more {
            if compacted > 0 {
                tracing::info!(batches = compacted, "compaction moved old batches into chunks");
            }
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
