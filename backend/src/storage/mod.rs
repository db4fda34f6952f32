//! SQLite storage. Writes go through one writer thread (see [`writer`]); reads run on a small
//! pool of read-only connections on the blocking pool, never on the async runtime's threads.

pub mod queries;
pub mod schema;
pub mod writer;

use crate::clock::now_ms;
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::security::Verified;
use crate::settings::Synchronous;
use protocol::IngestBatch;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{Semaphore, mpsc, oneshot};
pub use writer::{IngestOutcome, Job};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the commit failed: {0}")]
    Commit(String),
    #[error("the storage writer has stopped")]
    Closed,
    #[error("cannot open the database at {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("cannot create the database folder {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
}

impl StorageError {
    fn from_commit(e: &rusqlite::Error) -> Self {
        StorageError::Commit(e.to_string())
    }
}

const READERS: usize = 4;
const WRITE_QUEUE: usize = 4096;

#[derive(Debug)]
pub struct Storage {
    jobs: mpsc::Sender<Job>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Mutex<Vec<Connection>>>,
    reader_permits: Arc<Semaphore>,
}

/// What start-up learns from an existing database.
#[derive(Debug)]
pub struct Opened {
    pub storage: Storage,
    pub replay_entries: Vec<(i64, [u8; 32])>,
}

impl Storage {
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
        let readers = (0..READERS)
            .map(|_| schema::open_reader(path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(open_err)?;
        let (jobs, rx) = mpsc::channel(WRITE_QUEUE);
        let handle = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer::run(conn, rx, hub, metrics))
            .map_err(|e| StorageError::Commit(format!("cannot start the writer thread: {e}")))?;
        Ok(Opened {
            storage: Storage {
                jobs,
                writer: Mutex::new(Some(handle)),
                readers: Arc::new(Mutex::new(readers)),
                reader_permits: Arc::new(Semaphore::new(READERS)),
            },
            replay_entries,
        })
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StorageError>>) -> Job,
    ) -> Result<T, StorageError> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send(make(reply)).await.map_err(|_| StorageError::Closed)?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// Resolves once the batch is committed (or known to be a duplicate).
    pub async fn ingest(
        &self,
        batch: IngestBatch,
        ts_ms: i64,
        verified: Verified,
    ) -> Result<IngestOutcome, StorageError> {
        self.submit(|reply| Job::Ingest { batch, ts_ms, verified, reply }).await
    }

    pub async fn clear(&self, agent_id: Option<String>) -> Result<usize, StorageError> {
        self.submit(|reply| Job::Clear { agent_id, reply }).await
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        self.submit(|reply| Job::Ping { reply }).await
    }

    /// Removes events ingested before `before_ms` in short steps, and expired replay entries.
    pub async fn prune(&self, before_ms: Option<i64>) -> Result<usize, StorageError> {
        let mut total = 0;
        loop {
            let n = self.submit(|reply| Job::Prune { before_ms, reply }).await?;
            total += n;
            if n < writer::PRUNE_CHUNK {
                return Ok(total);
            }
            // Let queued ingest commits go between two chunks.
            tokio::task::yield_now().await;
        }
    }

    /// Runs a read on a pooled read-only connection, off the async threads.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StorageError>
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
    pub async fn close(&self) {
        let _ = self.jobs.send(Job::Shutdown).await;
        let handle = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::replay::Signature;

    fn batch(agent: &str) -> IngestBatch {
        serde_json::from_str(
            &include_str!("../../../protocol/testdata/payloads/seed_example.json")
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
            Storage::open(&path, Synchronous::Normal, Hub::new(4), metrics.clone()).unwrap();
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
        let removed = storage.prune(Some(now - 86_400_000)).await.unwrap();
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
            conn.query_row("SELECT count(*) FROM replay_guard", [], |r| r.get(0)).unwrap();
        assert_eq!(guard, 1, "expired signatures are pruned, live ones kept");
        assert_eq!(metrics.events_pruned.load(std::sync::atomic::Ordering::Relaxed), 400);
        storage.close().await;
    }

    #[tokio::test]
    async fn one_failing_job_does_not_sink_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let opened =
            Storage::open(&path, Synchronous::Normal, Hub::new(4), Arc::default()).unwrap();
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
