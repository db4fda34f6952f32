//! A connection of its own for the small tables beside the events (alerts, sessions): a few rows
//! at a time, never on the ingest path, taking turns with the event writer's group commits
//! under WAL (each waits up to the busy timeout for the other).

use crate::settings::Synchronous;
use crate::storage::{StorageError, StoreFuture};
use rusqlite::Connection;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Clone)]
pub(crate) struct SideConnection(Arc<Mutex<Connection>>);

impl SideConnection {
    /// Opens the database at `path` as the event writer does (migrated if it is not yet).
    pub(crate) fn open(path: &Path, sync: Synchronous) -> Result<Self, StorageError> {
        let conn = super::schema::open_writer(path, sync)
            .map_err(|source| StorageError::Open { path: path.to_owned(), source })?;
        Ok(Self(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` on the connection, on the blocking pool.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let conn = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                f(&mut conn.lock().unwrap_or_else(PoisonError::into_inner))
            })
            .await
            .map_err(|_| StorageError::ReadPanicked)?
        })
    }
}
