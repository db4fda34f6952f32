//! What ends dashboard sessions before they expire, kept in the database so that every replica
//! and every restart sees it: an epoch that "log out everywhere" moves on (sessions carry the
//! epoch they were made in), and the sessions logged out one by one until they expire. SQLite
//! and PostgreSQL run the same SQL (both take `$n` parameters).

use super::{Dialect, StoreFuture};

/// The migration for both stores. `ended_version` grows with every change to either, so a
/// replica learns from one row whether it must read the list again.
const TEMPLATE: &str = "
    CREATE TABLE session_state (
        id            INTEGER PRIMARY KEY,
        epoch         {big} NOT NULL,
        ended_version {big} NOT NULL
    );
    INSERT INTO session_state (id, epoch, ended_version) VALUES (1, 0, 0);
    CREATE TABLE ended_sessions (
        nonce      TEXT PRIMARY KEY,
        expires_ms {big} NOT NULL
    );
";

/// For SQLite's migration list.
pub(crate) fn sqlite() -> String {
    Dialect::Sqlite.render(TEMPLATE)
}

/// For PostgreSQL's migration list.
pub(crate) fn postgres() -> String {
    Dialect::Postgres.render(TEMPLATE)
}

pub(crate) const SELECT_STATE: &str = "SELECT epoch, ended_version FROM session_state WHERE id = 1";
pub(crate) const SELECT_ENDED: &str =
    "SELECT nonce, expires_ms FROM ended_sessions WHERE expires_ms > $1";
pub(crate) const PRUNE_ENDED: &str = "DELETE FROM ended_sessions WHERE expires_ms <= $1";
pub(crate) const COUNT_ENDED: &str = "SELECT count(*) FROM ended_sessions";
pub(crate) const INSERT_ENDED: &str = "INSERT INTO ended_sessions (nonce, expires_ms)
    VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING";
pub(crate) const BUMP_VERSION: &str =
    "UPDATE session_state SET ended_version = ended_version + 1 WHERE id = 1";
pub(crate) const REVOKE: &str = "UPDATE session_state
    SET epoch = epoch + 1, ended_version = ended_version + 1 WHERE id = 1 RETURNING epoch";
/// Sessions of the old epochs have ended already; their entries are no longer needed.
pub(crate) const FORGET_ENDED: &str = "DELETE FROM ended_sessions";

/// Sessions logged out one by one and not yet expired, at most: past that, a log-out is
/// refused (an admin can still end every session) rather than the list growing without bound.
pub(crate) const MAX_ENDED: i64 = 10_000;

/// The epoch, and the version of everything that ends sessions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SessionState {
    /// Sessions made in an older epoch have ended.
    pub(crate) epoch: i64,
    pub(crate) version: i64,
}

/// A session logged out one by one: its nonce, kept until it would have expired.
pub(crate) type EndedSession = (String, i64);

/// What the session checks need of a database.
pub(crate) trait SessionStore: Send + Sync + std::fmt::Debug {
    fn state(&self) -> StoreFuture<'_, SessionState>;
    /// The sessions logged out one by one that expire after `now_ms`.
    fn ended(&self, now_ms: i64) -> StoreFuture<'_, Vec<EndedSession>>;
    /// Ends one session until it expires (forgetting those that expired by `now_ms`); false
    /// when [`MAX_ENDED`] are held already.
    fn end(&self, session: EndedSession, now_ms: i64) -> StoreFuture<'_, bool>;
    /// Ends every session: resolves to the new epoch.
    fn revoke(&self) -> StoreFuture<'_, i64>;
}
