//! The session tables in PostgreSQL, shared by every replica.

use super::pool::Pool;
use crate::storage::sessions::{
    BUMP_VERSION, COUNT_ENDED, EndedSession, FORGET_ENDED, INSERT_ENDED, MAX_ENDED, PRUNE_ENDED,
    REVOKE, SELECT_ENDED, SELECT_STATE, SessionState, SessionStore,
};
use crate::storage::{StorageError, StoreFuture};

#[derive(Debug)]
pub(crate) struct PgSessions {
    pool: Pool,
}

impl PgSessions {
    /// Connects to the database at `url`, migrated first if no replica has done it yet.
    pub(crate) async fn connect(url: &protocol::Secret) -> Result<Self, StorageError> {
        let mut client = super::pool::connect(url).await?;
        super::schema::migrate(&mut client).await?;
        Ok(Self { pool: Pool::new(url.clone(), 1) })
    }
}

impl SessionStore for PgSessions {
    fn state(&self) -> StoreFuture<'_, SessionState> {
        Box::pin(async move {
            let row = self.pool.get().await?.query_one(SELECT_STATE, &[]).await?;
            Ok(SessionState { epoch: row.get(0), version: row.get(1) })
        })
    }

    fn ended(&self, now_ms: i64) -> StoreFuture<'_, Vec<EndedSession>> {
        Box::pin(async move {
            let rows = self.pool.get().await?.query(SELECT_ENDED, &[&now_ms]).await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    fn end(&self, (nonce, expires_ms): EndedSession, now_ms: i64) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            tx.execute(PRUNE_ENDED, &[&now_ms]).await?;
            let held: i64 = tx.query_one(COUNT_ENDED, &[]).await?.get(0);
            if held >= MAX_ENDED {
                return Ok(false);
            }
            tx.execute(INSERT_ENDED, &[&nonce, &expires_ms]).await?;
            tx.execute(BUMP_VERSION, &[]).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn revoke(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let epoch = tx.query_one(REVOKE, &[]).await?.get(0);
            tx.execute(FORGET_ENDED, &[]).await?;
            tx.commit().await?;
            Ok(epoch)
        })
    }
}
