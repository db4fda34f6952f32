//! The session tables in SQLite, on a connection of their own: written only at a log-out or a
//! revocation, read once every few seconds.

use super::side::SideConnection;
use crate::settings::Synchronous;
use crate::storage::sessions::{
    BUMP_VERSION, COUNT_ENDED, EndedSession, FORGET_ENDED, INSERT_ENDED, MAX_ENDED, PRUNE_ENDED,
    REVOKE, SELECT_ENDED, SELECT_STATE, SessionState, SessionStore,
};
use crate::storage::{StorageError, StoreFuture};
use rusqlite::{Connection, params};
use std::path::Path;

#[derive(Debug, Clone)]
pub(crate) struct SqliteSessions {
    conn: SideConnection,
}

impl SqliteSessions {
    pub(crate) fn open(path: &Path, sync: Synchronous) -> Result<Self, StorageError> {
        Ok(Self { conn: SideConnection::open(path, sync)? })
    }

    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        self.conn.run(move |conn| Ok(f(conn)?))
    }
}

impl SessionStore for SqliteSessions {
    fn state(&self) -> StoreFuture<'_, SessionState> {
        self.run(|conn| {
            conn.prepare_cached(SELECT_STATE)?
                .query_row([], |r| Ok(SessionState { epoch: r.get(0)?, version: r.get(1)? }))
        })
    }

    fn ended(&self, now_ms: i64) -> StoreFuture<'_, Vec<EndedSession>> {
        self.run(move |conn| {
            conn.prepare_cached(SELECT_ENDED)?
                .query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    fn end(&self, (nonce, expires_ms): EndedSession, now_ms: i64) -> StoreFuture<'_, bool> {
        self.run(move |conn| {
            super::write_transaction(conn, |tx| {
                tx.prepare_cached(PRUNE_ENDED)?.execute([now_ms])?;
                let held: i64 = tx.prepare_cached(COUNT_ENDED)?.query_row([], |r| r.get(0))?;
                if held >= MAX_ENDED {
                    return Ok(false);
                }
                tx.prepare_cached(INSERT_ENDED)?.execute(params![nonce, expires_ms])?;
                tx.prepare_cached(BUMP_VERSION)?.execute([])?;
                Ok(true)
            })
        })
    }

    fn revoke(&self) -> StoreFuture<'_, i64> {
        self.run(|conn| {
            super::write_transaction(conn, |tx| {
                let epoch = tx.prepare_cached(REVOKE)?.query_row([], |r| r.get(0))?;
                tx.prepare_cached(FORGET_ENDED)?.execute([])?;
                Ok(epoch)
            })
        })
    }
}
