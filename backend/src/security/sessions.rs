//! Which sessions ended before their expiry, as this replica knows it: the database's epoch and
//! logged-out sessions, cached so that a request is checked without a query, and read again
//! at each login, after each change here and every [`REFRESH_EVERY`] for the changes made on
//! other replicas. Live sockets watch it, to close when their session ends.

use super::access::Claims;
use crate::clock::now_ms;
use crate::storage::StorageError;
use crate::storage::sessions::{SessionState, SessionStore};
use crate::telemetry::chain;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a change made on another replica may take to reach this one.
const REFRESH_EVERY: Duration = Duration::from_secs(2);

/// What has ended sessions, as last read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ended {
    state: SessionState,
    /// Sessions logged out one by one: nonce, and when the session would have expired (ms).
    nonces: Arc<HashMap<String, i64>>,
}

impl Ended {
    /// Whether the session `claims` describe has ended: made in an older epoch, or logged out.
    pub(crate) fn ends(&self, claims: &Claims) -> bool {
        claims.epoch < self.state.epoch || self.nonces.contains_key(&claims.nonce)
    }

    /// The epoch a session made now carries.
    pub(crate) fn epoch(&self) -> i64 {
        self.state.epoch
    }
}

#[derive(Debug)]
pub(crate) struct Sessions {
    store: Arc<dyn SessionStore>,
    ended: watch::Sender<Ended>,
}

impl Sessions {
    /// Reads what ended sessions from `store`.
    pub(crate) async fn open(store: Arc<dyn SessionStore>) -> Result<Self, StorageError> {
        let sessions = Self { store, ended: watch::Sender::new(Ended::default()) };
        sessions.refresh().await?;
        Ok(sessions)
    }

    pub(crate) fn current(&self) -> Ended {
        self.ended.borrow().clone()
    }

    /// Changes as they are read.
    pub(crate) fn watch(&self) -> watch::Receiver<Ended> {
        self.ended.subscribe()
    }

    /// Reads the state again, and the logged-out sessions only when their version moved.
    pub(crate) async fn refresh(&self) -> Result<Ended, StorageError> {
        let state = self.store.state().await?;
        let held = self.current();
        if state.version <= held.state.version {
            return Ok(held);
        }
        let nonces = Arc::new(self.store.ended(now_ms()).await?.into_iter().collect());
        // A slower refresh that read an older state never replaces a newer one.
        self.ended.send_if_modified(|ended| {
            let newer = state.version > ended.state.version;
            if newer {
                *ended = Ended { state, nonces };
            }
            newer
        });
        Ok(self.current())
    }

    /// Ends the session of `claims` on every replica; false when too many are held already
    /// (see [`crate::storage::sessions::MAX_ENDED`]).
    pub(crate) async fn end(&self, claims: &Claims) -> Result<bool, StorageError> {
        let until_ms = claims.good_until_ms();
        let ended = self.store.end((claims.nonce.clone(), until_ms), now_ms()).await?;
        self.refresh().await?;
        Ok(ended)
    }

    /// Ends every session on every replica; resolves to the new epoch.
    pub(crate) async fn revoke(&self) -> Result<i64, StorageError> {
        let epoch = self.store.revoke().await?;
        self.refresh().await?;
        Ok(epoch)
    }

    /// Keeps up with the changes made on other replicas.
    pub(crate) async fn refresh_forever(self: Arc<Self>) {
        let mut every = tokio::time::interval(REFRESH_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = self.refresh().await {
                tracing::warn!(
                    error = %chain(&e),
                    "could not read which sessions ended; checking against what was last read"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::access::Role;
    use crate::settings::Synchronous;
    use crate::storage::sqlite::sessions::SqliteSessions;

    fn claims(epoch: i64, nonce: &str) -> Claims {
        Claims { role: Role::Read, epoch, expires_s: now_ms() / 1000 + 3600, nonce: nonce.into() }
    }

    async fn open(path: &std::path::Path) -> Sessions {
        let store = SqliteSessions::open(path, Synchronous::Full).unwrap();
        Sessions::open(Arc::new(store)).await.unwrap()
    }

    #[tokio::test]
    async fn a_log_out_ends_one_session_a_revocation_all_and_both_outlive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let sessions = open(&path).await;
        let (a, b) = (claims(0, "a"), claims(0, "b"));
        assert!(!sessions.current().ends(&a));
        assert!(sessions.end(&a).await.unwrap());
        assert!(sessions.current().ends(&a) && !sessions.current().ends(&b));
        assert!(open(&path).await.current().ends(&a), "read back after a restart");

        let watching = sessions.watch();
        assert_eq!(sessions.revoke().await.unwrap(), 1);
        assert!(watching.has_changed().unwrap(), "sockets learn of it");
        assert!(sessions.current().ends(&b));
        assert!(!sessions.current().ends(&claims(1, "c")), "sessions of the new epoch hold");
        assert_eq!(open(&path).await.current().epoch(), 1);
    }

    #[tokio::test]
    async fn a_change_made_elsewhere_is_read_at_the_next_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (here, elsewhere) = (open(&path).await, open(&path).await);
        elsewhere.revoke().await.unwrap();
        assert!(!here.current().ends(&claims(0, "a")), "not read yet");
        assert_eq!(here.refresh().await.unwrap().epoch(), 1);
        assert!(here.current().ends(&claims(0, "a")));
    }
}
