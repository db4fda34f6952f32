//! SQLite storage, the default. Writes go through one writer thread (see [`writer`]); reads run
//! on a small pool of read-only connections on the blocking pool, never on the async runtime's
//! threads.

mod agents;
pub mod queries;
pub mod schema;
pub mod writer;

use super::jobs::Job;
use super::{EventFilter, Range, StorageError, Store, StoreFuture};
use crate::clock::now_ms;
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::settings::Synchronous;
use protocol::{AgentSummary, EventRow, ProcessHistory, ProcessesResponse, Series};
use rusqlite::Connection;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc};

impl StorageError {
    fn from_commit(e: &rusqlite::Error) -> Self {
        StorageError::Commit(e.to_string())
    }
}

const READERS: usize = 4;
const WRITE_QUEUE: usize = 4096;

#[derive(Debug)]
pub struct SqliteStorage {
    jobs: mpsc::Sender<Job>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_permits: Arc<Semaphore>,
}

/// What start-up learns from an existing database.
#[derive(Debug)]
pub struct Opened {
    pub storage: SqliteStorage,
    pub replay_entries: Vec<(i64, [u8; 32])>,
}

impl SqliteStorage {
    pub fn open(
        path: &Path,
        sync: Synchronous,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> Result<Opened, StorageError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| StorageError::CreateDir { path: dir.to_owned(), source })?;
        }
        let open_err = |source| StorageError::Open { path: path.to_owned(), source };
        let conn = schema::open_writer(path, sync).map_err(open_err)?;
        let replay_entries = writer::load_replay_guard(&conn, now_ms())?;
        let agents = agents::Agents::load(&conn)?;
        let readers = (0..READERS)
            .map(|_| schema::open_reader(path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(open_err)?;
        let (jobs, rx) = mpsc::channel(WRITE_QUEUE);
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(conn, agents, rx, hub, metrics))
            .map_err(|e| StorageError::Commit(format!("cannot start the writer thread: {e}")))?;
        Ok(Opened {
            storage: SqliteStorage {
                jobs,
                writer: Mutex::new(Some(handle)),
                readers: Arc::new(Mutex::new(readers)),
                reader_permits: Arc::new(Semaphore::new(READERS)),
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
            let conn = pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
            let Some(conn) = conn else { return Err(StorageError::Closed) };
            let result = f(&conn).map_err(StorageError::from);
            pool.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(conn);
            result
        })
        .await
        .map_err(|_| StorageError::Closed)?
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

    fn events(&self, filter: EventFilter) -> StoreFuture<'_, Vec<EventRow>> {
        Box::pin(self.read(move |conn| queries::events(conn, &filter)))
    }

    fn agents(&self, now_ms: i64) -> StoreFuture<'_, Vec<AgentSummary>> {
        Box::pin(self.read(move |conn| queries::agents(conn, now_ms)))
    }

    fn agent_exists(&self, agent_id: String) -> StoreFuture<'_, bool> {
        Box::pin(self.read(move |conn| queries::agent_exists(conn, &agent_id)))
    }

    fn series(&self, agent_id: String, range: Range) -> StoreFuture<'_, Series> {
        Box::pin(self.read(move |conn| queries::series(conn, &agent_id, range)))
    }

    fn latest_processes(&self, agent_id: String) -> StoreFuture<'_, ProcessesResponse> {
        Box::pin(self.read(move |conn| queries::latest_processes(conn, &agent_id)))
    }

    fn process_history(
        &self,
        agent_id: String,
        name: String,
        range: Range,
    ) -> StoreFuture<'_, ProcessHistory> {
        Box::pin(self.read(move |conn| queries::process_history(conn, &agent_id, &name, range)))
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

    fn batch(agent: &str) -> IngestBatch {
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
        // Age the first 400 rows by a year, as if they had been ingested then.
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE events SET ingested_ms = ingested_ms - 31536000000 WHERE agent_id = 'old'",
            [],
        )
        .unwrap();
        let removed = crate::storage::prune(&storage, Some(now - 86_400_000)).await.unwrap();
        assert_eq!(removed, 400);
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
                "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.agent_id = 'bad'
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
}
