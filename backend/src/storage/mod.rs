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
