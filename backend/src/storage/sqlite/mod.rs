//! SQLite storage, the default. Writes go through one writer thread (see [`writer`]) that
//! appends each batch to a log and indexes it per agent later (see [`backlog`]); reads run on a
//! small pool of read-only connections on the blocking pool, never on the async runtime's
//! threads, and take what is not indexed yet from the writer's memory.

mod agents;
pub(crate) mod alerts;
pub(crate) mod backlog;
mod chunks;
pub(crate) mod queries;
mod rollups;
pub(crate) mod schema;
pub(crate) mod sessions;
mod side;
mod tier_chunks;
pub(crate) mod writer;

use super::jobs::Job;
use super::{EventFilter, NoticeFilter, Range, StorageError, Store, StoreFuture};
use crate::clock::now_ms;
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::settings::Synchronous;
use protocol::{
    AgentSummary, EventRow, NoticeLevel, NoticeRow, ProcessHistory, ProcessesResponse, Series,
    ServicesResponse,
};
use rusqlite::Connection;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};

/// Runs `f` in a write transaction on the writer's connection. rusqlite's `Transaction` parses
/// `BEGIN` and `COMMIT` anew each time; here they are prepared once, which is a few percent of
/// the writer's time at thousands of commits a second.
pub(crate) fn write_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let done = f(conn).and_then(|t| conn.prepare_cached("COMMIT")?.execute([]).map(|_| t));
    if done.is_err() && !conn.is_autocommit() {
        // The error is the one to report; a failed rollback leaves nothing more to undo.
        let _ = conn.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
    }
    done
}

const READERS: usize = 4;

/// A reader connection out of the pool, returned on drop: also when the read panics, or four
/// panicking requests would leave no reader and every read would wait forever.
struct Pooled {
    pool: Arc<Mutex<Vec<Connection>>>,
    conn: Option<Connection>,
}

impl Pooled {
    fn take(pool: Arc<Mutex<Vec<Connection>>>) -> Option<Self> {
        let conn = pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop()?;
        Some(Self { pool, conn: Some(conn) })
    }

    fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("present until drop")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(conn);
        }
    }
}
const WRITE_QUEUE: usize = 4096;

#[derive(Debug)]
pub(crate) struct SqliteStorage {
    jobs: mpsc::Sender<Job>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_permits: Arc<Semaphore>,
    agents: agents::SharedAgents,
    backlog: backlog::SharedBacklog,
}

/// What start-up learns from an existing database.
#[derive(Debug)]
pub(crate) struct Opened {
    pub storage: SqliteStorage,
    pub replay_entries: Vec<(i64, [u8; 32])>,
}

impl SqliteStorage {
    pub(crate) fn open(
        path: &Path,
        sync: Synchronous,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> Result<Opened, StorageError> {
        Self::open_with(path, sync, hub, metrics, backlog::FlushPolicy::default())
    }

    pub(crate) fn open_with(
        path: &Path,
        sync: Synchronous,
        hub: Hub,
        metrics: Arc<Metrics>,
        policy: backlog::FlushPolicy,
    ) -> Result<Opened, StorageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StorageError::CreateDir { path: dir.to_owned(), source })?;
        }
        let open_err = |source| StorageError::Open { path: path.to_owned(), source };
        let conn = schema::open_writer(path, sync).map_err(open_err)?;
        let replay_entries = writer::load_replay_guard(&conn, now_ms())?;
        let mut agents = agents::Agents::load(&conn)?;
        let backlog = backlog::IndexBacklog::load(&conn, &mut agents, policy)?;
        let (shared_agents, shared_backlog) = (agents.shared(), backlog.shared());
        let readers = (0..READERS)
            .map(|_| schema::open_reader(path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(open_err)?;
        let (jobs, rx) = mpsc::channel(WRITE_QUEUE);
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(writer::Writer { conn, agents, backlog, hub, metrics }, rx))
            .map_err(StorageError::WriterThread)?;
        Ok(Opened {
            storage: SqliteStorage {
                jobs,
                writer: Mutex::new(Some(handle)),
                readers: Arc::new(Mutex::new(readers)),
                reader_permits: Arc::new(Semaphore::new(READERS)),
                agents: shared_agents,
                backlog: shared_backlog,
            },
            replay_entries,
        })
    }

    /// Runs a read on a pooled read-only connection, off the async threads.
    async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let _permit = self.reader_permits.acquire().await.map_err(|_| StorageError::Closed)?;
        let pool = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let Some(reader) = Pooled::take(pool) else { return Err(StorageError::Closed) };
            let conn = reader.conn();
            // One snapshot for the whole read: a compaction that commits between two of its
            // statements would otherwise show a batch in both the log and a chunk, or neither.
            if !conn.is_autocommit() {
                // Left open by a read that panicked.
                conn.prepare_cached("ROLLBACK")?.execute([])?;
            }
            conn.prepare_cached("BEGIN")?.execute([])?;
            let out = f(conn);
            conn.prepare_cached("COMMIT")?.execute([])?;
            out.map_err(StorageError::from)
        })
        .await
        .map_err(|e| {
            if e.is_panic() {
                tracing::error!(error = %e, "a read panicked; its connection went back to the pool");
                StorageError::ReadPanicked
            } else {
                StorageError::Closed
            }
        })?
    }

    /// Commits everything queued so far, then stops the writer thread.
    async fn shut_down(&self) {
        let _ = self.jobs.send(Job::Shutdown).await;
        let handle = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

impl Store for SqliteStorage {
    fn jobs(&self) -> &mpsc::Sender<Job> {
        &self.jobs
    }

    fn ping_read(&self) -> StoreFuture<'_, ()> {
        Box::pin(self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))))
    }

    fn events(&self, filter: EventFilter) -> StoreFuture<'_, Vec<EventRow>> {
        let backlog = filter.agent_id.as_deref().map(|a| self.backlog.view(a)).unwrap_or_default();
        Box::pin(self.read(move |conn| queries::events(conn, &filter, &backlog)))
    }

    fn agents(&self, now_ms: i64, only: Option<String>) -> StoreFuture<'_, Vec<AgentSummary>> {
        let agents = self.agents.summaries(now_ms, only.as_deref());
        Box::pin(async move { Ok(agents) })
    }

    fn agent_exists(&self, agent_id: String) -> StoreFuture<'_, bool> {
        let exists = self.agents.exists(&agent_id);
        Box::pin(async move { Ok(exists) })
    }

    fn series(&self, agent_id: String, range: Range) -> StoreFuture<'_, Series> {
        let backlog = self.backlog.view(&agent_id);
        Box::pin(self.read(move |conn| queries::series(conn, &agent_id, &backlog, range)))
    }

    fn latest_processes(&self, agent_id: String) -> StoreFuture<'_, ProcessesResponse> {
        let backlog = self.backlog.view(&agent_id);
        Box::pin(self.read(move |conn| queries::latest_processes(conn, &agent_id, &backlog)))
    }

    fn process_history(
        &self,
        agent_id: String,
        name: String,
        range: Range,
    ) -> StoreFuture<'_, ProcessHistory> {
        let backlog = self.backlog.view(&agent_id);
        Box::pin(
            self.read(move |conn| {
                queries::process_history(conn, &agent_id, &backlog, &name, range)
            }),
        )
    }

    fn services(&self, agent_id: String) -> StoreFuture<'_, ServicesResponse> {
        Box::pin(self.read(move |conn| queries::services(conn, &agent_id)))
    }

    fn notices(&self, filter: NoticeFilter) -> StoreFuture<'_, Vec<NoticeRow>> {
        Box::pin(self.read(move |conn| queries::notices(conn, &filter)))
    }

    fn count_log_notices(
        &self,
        agent_id: String,
        level: NoticeLevel,
        since_ms: i64,
    ) -> StoreFuture<'_, u64> {
        Box::pin(
            self.read(move |conn| queries::count_log_notices(conn, &agent_id, level, since_ms)),
        )
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.shut_down())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::Verified;
    use crate::security::replay::Signature;
    use protocol::IngestBatch;

    pub(super) fn batch(agent: &str) -> IngestBatch {
        serde_json::from_str(
            &include_str!("../../../../protocol/testdata/payloads/seed_example.json")
                .replace("host-01", agent),
        )
        .unwrap()
    }

    fn verified(n: u8, expires_ms: i64) -> Verified {
        Verified { signature: [n; 32] as Signature, expires_ms }
    }

    #[tokio::test]
    async fn a_panicking_read_fails_alone_and_gives_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(Metrics::default());
        let opened = SqliteStorage::open(
            &dir.path().join("t.db"),
            Synchronous::Normal,
            Hub::new(4),
            metrics,
        )
        .unwrap();
        let storage = opened.storage;
        for _ in 0..READERS * 2 {
            let failed = storage.read(|_| -> rusqlite::Result<()> { panic!("a bug") }).await;
            assert!(matches!(failed, Err(StorageError::ReadPanicked)), "{failed:?}");
        }
        assert_eq!(storage.readers.lock().unwrap().len(), READERS);
        storage.ping_read().await.unwrap();
        storage.close().await;
    }

    #[tokio::test]
    async fn retention_prunes_old_events_in_chunks_and_expired_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let metrics = Arc::new(Metrics::default());
        let opened =
            SqliteStorage::open(&path, Synchronous::Normal, Hub::new(4), metrics.clone()).unwrap();
        let storage = opened.storage;
        let now = now_ms();
        for i in 0..200u8 {
            storage.ingest(batch("old"), 0, verified(i, now - 1)).await.unwrap();
        }
        storage.ingest(batch("new"), 0, verified(255, now + 60_000)).await.unwrap();
        // Closing writes every waiting batch into the index: only indexed batches are pruned.
        storage.close().await;
        // Age the first 400 rows by a year, as if they had been ingested then.
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE batch_log SET ingested_ms = ingested_ms - 31536000000 WHERE agent_id = 'old'",
            [],
        )
        .unwrap();
        let storage = SqliteStorage::open(&path, Synchronous::Normal, Hub::new(4), metrics.clone())
            .unwrap()
            .storage;
        let removed =
            crate::storage::prune(&storage, crate::storage::Cutoffs::raw(Some(now - 86_400_000)))
                .await
                .unwrap();
        assert_eq!(removed, 400);
        let index: i64 = conn
            .query_row("SELECT count(*) FROM agent_batches WHERE agent_id = 'old'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(index, 0, "their index entries went with them");
        let left: Vec<String> = conn
            .prepare("SELECT DISTINCT agent_id FROM events")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, ["new"]);
        let guard: i64 =
            conn.query_row("SELECT count(*) FROM replay_log", [], |r| r.get(0)).unwrap();
        assert_eq!(guard, 1, "expired signatures are pruned, live ones kept");
        assert_eq!(metrics.events_pruned.load(std::sync::atomic::Ordering::Relaxed), 400);
        storage.close().await;
    }

    /// A copy of the files taken while batches wait for the index is what a crash leaves.
    #[tokio::test]
    async fn after_a_crash_the_batches_not_indexed_yet_are_replayed_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let policy =
            backlog::FlushPolicy { batches: 3, after: std::time::Duration::from_secs(3600) };
        let open = |path: &Path| {
            SqliteStorage::open_with(path, Synchronous::Full, Hub::new(4), Arc::default(), policy)
                .unwrap()
                .storage
        };
        let storage = open(&path);
        // Three batches of "a" reach the index, the fourth and "b"'s wait.
        for (i, agent) in ["a", "a", "a", "a", "b"].into_iter().enumerate() {
            storage.ingest(batch(agent), 0, verified(i as u8, i64::MAX)).await.unwrap();
        }
        let before = storage.events(EventFilter { limit: 50, ..EventFilter::default() }).await;
        let crashed = dir.path().join("crashed");
        std::fs::create_dir(&crashed).unwrap();
        for file in ["t.db", "t.db-wal"] {
            std::fs::copy(dir.path().join(file), crashed.join(file)).unwrap();
        }
        let indexed: i64 = Connection::open(crashed.join("t.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM agent_batches", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexed, 3);
        storage.close().await;

        let restarted = open(&crashed.join("t.db"));
        let after = restarted.events(EventFilter { limit: 50, ..EventFilter::default() }).await;
        assert_eq!(after.unwrap(), before.unwrap());
        let a = EventFilter { agent_id: Some("a".into()), limit: 50, ..EventFilter::default() };
        assert_eq!(restarted.events(a).await.unwrap().len(), 8, "indexed and replayed alike");
        let agents = restarted.agents(now_ms(), None).await.unwrap();
        assert_eq!(agents.iter().map(|a| a.agent_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        let procs = restarted.latest_processes("b".into()).await.unwrap();
        assert_eq!(procs.processes.len(), 1);
        restarted.close().await;
        let indexed: i64 = Connection::open(crashed.join("t.db"))
            .unwrap()
            .query_row("SELECT count(*) FROM agent_batches", [], |r| r.get(0))
            .unwrap();
        assert_eq!(indexed, 5, "a clean stop indexes everything");
    }

    #[tokio::test]
    async fn expired_signatures_go_a_few_hundred_per_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let storage = SqliteStorage::open(&path, Synchronous::Normal, Hub::new(4), Arc::default())
            .unwrap()
            .storage;
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO replay_log(expires_ms, signature) SELECT i, randomblob(32) FROM n;",
        )
        .unwrap();
        let expired = || -> i64 {
            conn.query_row("SELECT count(*) FROM replay_log WHERE expires_ms <= 2000", [], |r| {
                r.get(0)
            })
            .unwrap()
        };
        storage.ingest(batch("a"), 0, verified(1, i64::MAX)).await.unwrap();
        assert_eq!(expired(), 2000 - 2 * super::super::jobs::MAX_GROUP as i64);
        for i in 2..6 {
            storage.ingest(batch("a"), 0, verified(i, i64::MAX)).await.unwrap();
        }
        assert_eq!(expired(), 0);
        let live: i64 =
            conn.query_row("SELECT count(*) FROM replay_log", [], |r| r.get(0)).unwrap();
        assert_eq!(live, 5, "the signatures still within their TTL stay");
        storage.close().await;
    }

    #[tokio::test]
    async fn one_failing_job_does_not_sink_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let opened =
            SqliteStorage::open(&path, Synchronous::Normal, Hub::new(4), Arc::default()).unwrap();
        let storage = Arc::new(opened.storage);
        // A trigger that refuses one agent's rows stands in for any per-request failure.
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER refuse BEFORE INSERT ON batch_log WHEN NEW.agent_id = 'bad'
                 BEGIN SELECT RAISE(ABORT, 'refused'); END;",
            )
            .unwrap();
        let jobs = ["good-1", "bad", "good-2"].map(|agent| {
            let storage = storage.clone();
            tokio::spawn(async move {
                storage.ingest(batch(agent), 0, verified(agent.len() as u8, 0)).await
            })
        });
        let mut results = Vec::new();
        for job in jobs {
            results.push(job.await.unwrap().is_ok());
        }
        assert_eq!(results, [true, false, true]);
        let count: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 4);
        storage.close().await;
    }

    /// Keys kept apart from the log (batches cleared, or stored before the keys moved into the
    /// log rows) still make a resent batch a duplicate.
    #[tokio::test]
    async fn a_batch_id_kept_apart_from_the_log_is_still_known() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let open = || {
            SqliteStorage::open(&path, Synchronous::Normal, Hub::new(4), Arc::default())
                .unwrap()
                .storage
        };
        open().close().await;
        let mut b = batch("host-1");
        b.batch_id = Some("b-1".into());
        Connection::open(&path)
            .unwrap()
            .execute(
                "INSERT INTO batch_seen(received_ms, key) VALUES (?1, ?2)",
                rusqlite::params![now_ms(), schema::batch_key("host-1", "b-1")],
            )
            .unwrap();
        let storage = open();
        let again = storage.ingest(b.clone(), 0, verified(1, i64::MAX)).await.unwrap();
        assert!(again.duplicate);
        b.batch_id = Some("b-2".into());
        assert!(!storage.ingest(b, 0, verified(2, i64::MAX)).await.unwrap().duplicate);
        storage.close().await;
    }

    /// SQL users read the seed's table from the view; it must say what the API says, for rows
    /// in either of the log's shapes.
    #[tokio::test]
    async fn the_events_view_matches_the_api_for_positional_and_keyed_rows() {
        use protocol::{Event, EventKind};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let metrics = Arc::new(Metrics::default());
        let storage = SqliteStorage::open(&path, Synchronous::Normal, Hub::new(4), metrics.clone())
            .unwrap()
            .storage;
        let mut odd = batch("odd");
        odd.events.push(Event {
            pid: Some(9),
            cpu: Some(0.125),
            ..Event::empty(EventKind::Metric)
        });
        odd.events.push(Event { rss: Some(5), ..Event::empty(EventKind::Other("gpu".into())) });
        odd.events.push(Event { name: None, ..Event::process(1, "", 0.5, 2) });
        for (i, b) in [batch("a"), odd, batch("old")].into_iter().enumerate() {
            storage.ingest(b, 0, verified(i as u8, i64::MAX)).await.unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        // The row an older backend wrote: keyed objects.
        let keyed = serde_json::to_string(&batch("old").events).unwrap();
        conn.execute("UPDATE batch_log SET events = ?1 WHERE agent_id = 'old'", [&keyed]).unwrap();
        let shapes: Vec<String> = conn
            .prepare("SELECT substr(events, 1, 2) FROM batch_log ORDER BY first_id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(shapes, ["[[", "[[", "[{"]);

        let api = || async {
            let rows = storage.events(EventFilter { limit: 50, ..EventFilter::default() }).await;
            let blank = |r| protocol::EventRow { ingested_at: String::new(), ..r };
            rows.unwrap().into_iter().map(blank).collect::<Vec<_>>()
        };
        let view = |conn: &Connection| -> rusqlite::Result<Vec<protocol::EventRow>> {
            conn.prepare(
                "SELECT id, agent_id, ts, platform, event_type, cpu, mem_free, mem_total,
                        disk_free, disk_total, net_rx_bps, net_tx_bps, uptime_s, pid, proc_name,
                        rss
                 FROM events ORDER BY id DESC",
            )?
            .query_map([], |r| {
                Ok(protocol::EventRow {
                    id: r.get(0)?,
                    agent_id: r.get(1)?,
                    ts: r.get(2)?,
                    platform: r.get(3)?,
                    event_type: r.get(4)?,
                    cpu: r.get(5)?,
                    mem_free: r.get(6)?,
                    mem_total: r.get(7)?,
                    disk_free: r.get(8)?,
                    disk_total: r.get(9)?,
                    net_rx_bps: r.get(10)?,
                    net_tx_bps: r.get(11)?,
                    uptime_s: r.get(12)?,
                    pid: r.get(13)?,
                    proc_name: r.get(14)?,
                    rss: r.get(15)?,
                    ingested_at: String::new(),
                })
            })?
            .collect()
        };
        let rows = view(&conn).unwrap();
        assert_eq!(rows.len(), 9, "two events each for a and old, five for odd");
        assert_eq!(rows, api().await);

        // Compacted, the rows leave the log and the view reads them from the chunks, through
        // the backend's function; the shell's connection, without it, is told so.
        let soon = now_ms() + 1_000;
        let all = super::super::Compaction { before_ms: soon, due_before_ms: soon };
        let cutoffs =
            super::super::Cutoffs { compact: Some(all), ..super::super::Cutoffs::raw(None) };
        super::super::prune(&storage, cutoffs).await.unwrap();
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
        };
        assert_eq!((count("batch_log"), count("agent_batches"), count("agent_metrics")), (0, 0, 0));
        assert_eq!(count("batch_chunks"), 3, "one chunk per agent");
        assert_eq!(metrics.batches_compacted.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert_eq!(count("rollup_chunks"), 3, "and one per agent-day of the per-minute tier");
        assert_eq!(count("metric_rollups WHERE tier_ms = 60000"), 0);
        assert_eq!(count("proc_rollups WHERE tier_ms = 60000"), 0);
        assert_eq!(view(&schema::open_reader(&path).unwrap()).unwrap(), rows);
        let shell = view(&Connection::open(&path).unwrap()).unwrap_err().to_string();
        assert!(shell.contains("chunk_batches"), "{shell}");
        assert_eq!(api().await, rows);

        // Without chunks the view is plain SQL again.
        storage.clear(None).await.unwrap();
        assert_eq!(view(&Connection::open(&path).unwrap()).unwrap(), []);
        storage.close().await;
    }
}
