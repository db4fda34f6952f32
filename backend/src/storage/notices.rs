//! The newest list of watched services of each agent, and the notices agents send (service
//! changes, Event Log and journal entries). Both are written in the ingest's transaction, after
//! its batch id proved it new, so a retried batch stores its notices once. The SQL is shared:
//! both stores take `$n` parameters.

use super::Dialect;
use crate::alerts::store::from_word;
use protocol::{IngestBatch, NoticeKind, NoticeLevel, NoticeRow};

/// The migration for both stores (see [`Dialect::render`]).
const TEMPLATE: &str = "
    ALTER TABLE agents ADD COLUMN host TEXT;
    CREATE TABLE agent_services (
        agent_id TEXT PRIMARY KEY,
        ts       TEXT NOT NULL,
        ts_ms    {big} NOT NULL,
        services TEXT NOT NULL
    );
    CREATE TABLE notices (
        id          {id},
        agent_id    TEXT NOT NULL,
        ts          TEXT NOT NULL,
        ts_ms       {big} NOT NULL,
        received_ms {big} NOT NULL,
        kind        TEXT NOT NULL,
        level       TEXT NOT NULL,
        source      TEXT NOT NULL,
        code        {big},
        message     TEXT NOT NULL
    );
    CREATE INDEX notices_by_agent ON notices(agent_id, id);
    CREATE INDEX notices_by_time ON notices(agent_id, ts_ms);
";

/// For SQLite's migration list.
pub(crate) fn sqlite() -> String {
    Dialect::Sqlite.render(TEMPLATE)
}

/// For PostgreSQL's migration list.
pub(crate) fn postgres() -> String {
    Dialect::Postgres.render(TEMPLATE)
}

/// The newest list by the agent's clock wins, so a queued batch replayed late does not bring
/// back an old state.
pub(crate) const UPSERT_SERVICES: &str =
    "INSERT INTO agent_services(agent_id, ts, ts_ms, services) VALUES ($1, $2, $3, $4)
    ON CONFLICT (agent_id) DO UPDATE SET ts = excluded.ts, ts_ms = excluded.ts_ms,
        services = excluded.services
    WHERE excluded.ts_ms >= agent_services.ts_ms";

pub(crate) const INSERT_NOTICE: &str = "INSERT INTO notices(agent_id, ts, ts_ms, received_ms,
        kind, level, source, code, message)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const SELECT_SERVICES: &str =
    "SELECT ts, services FROM agent_services WHERE agent_id = $1";

/// Newest first; `$2` is the id to page before, `$3` and `$4` the kind and level or NULL.
pub(crate) const SELECT_NOTICES: &str = "SELECT id, agent_id, ts, kind, level, source, code,
        message
    FROM notices
    WHERE agent_id = $1 AND id < $2 AND (kind = $3 OR $3 IS NULL) AND (level = $4 OR $4 IS NULL)
    ORDER BY id DESC LIMIT $5";

/// Log entries of one level whose time (the agent's clock) is at or after `$3`.
pub(crate) const COUNT_LOG_NOTICES: &str = "SELECT count(*) FROM notices
    WHERE agent_id = $1 AND kind = 'log' AND level = $2 AND ts_ms >= $3";

/// Ids grow with the time received, so the oldest are the first chunk. (SQLite numbers `$n`
/// parameters by first appearance: each statement names them in order.)
pub(crate) const PRUNE_NOTICES: &str = "DELETE FROM notices WHERE received_ms < $1
    AND id IN (SELECT id FROM notices ORDER BY id LIMIT $2)";
/// The same on PostgreSQL, where replicas prune at once: each takes rows no other holds, as its
/// other prunes do.
pub(crate) const PRUNE_NOTICES_PG: &str = "DELETE FROM notices WHERE received_ms < $1
    AND id IN (SELECT id FROM notices ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)";

pub(crate) const CLEAR_AGENT: [&str; 2] =
    ["DELETE FROM agent_services WHERE agent_id = $1", "DELETE FROM notices WHERE agent_id = $1"];
pub(crate) const CLEAR_ALL: [&str; 2] = ["DELETE FROM agent_services", "DELETE FROM notices"];

/// `GET /api/agents/{agent_id}/notices`.
#[derive(Debug, Clone)]
pub struct NoticeFilter {
    pub(crate) agent_id: String,
    pub(crate) kind: Option<NoticeKind>,
    pub(crate) level: Option<NoticeLevel>,
    pub(crate) before_id: Option<i64>,
    pub(crate) limit: u32,
}

impl NoticeFilter {
    pub(crate) fn kind(&self) -> Option<&'static str> {
        self.kind.map(NoticeKind::as_str)
    }

    pub(crate) fn level(&self) -> Option<&'static str> {
        self.level.map(NoticeLevel::as_str)
    }

    pub(crate) fn before(&self) -> i64 {
        self.before_id.unwrap_or(i64::MAX)
    }
}

/// One notice as the insert binds it: time, its unix ms, kind, level, source, code, message.
pub(crate) type NoticeParams<'a> =
    (&'a str, i64, &'static str, &'static str, &'a str, Option<i64>, &'a str);

/// The batch's notices, ready to bind; validation has checked every time.
pub(crate) fn notice_params(batch: &IngestBatch) -> impl Iterator<Item = NoticeParams<'_>> {
    batch.notices.iter().flatten().map(|n| {
        let ts_ms = protocol::validate::parse_ts(&n.ts).unwrap_or_default();
        let code = n.code.map(i64::from);
        (n.ts.as_str(), ts_ms, n.kind.as_str(), n.level.as_str(), &*n.source, code, &*n.message)
    })
}

/// The batch's services as stored: JSON.
pub(crate) fn services_json(batch: &IngestBatch) -> Option<String> {
    batch.services.as_ref().and_then(|s| serde_json::to_string(s).ok())
}

/// A stored row back; kinds and levels are written by us, so others read as what they most
/// likely were rather than failing the whole page.
#[allow(clippy::too_many_arguments)]
pub(crate) fn notice_row(
    id: i64,
    agent_id: String,
    ts: String,
    kind: &str,
    level: &str,
    source: String,
    code: Option<i64>,
    message: String,
) -> NoticeRow {
    NoticeRow {
        id,
        agent_id,
        ts,
        kind: from_word(kind).unwrap_or(NoticeKind::Log),
        level: from_word(level).unwrap_or(NoticeLevel::Warning),
        source,
        code: code.and_then(|c| u32::try_from(c).ok()),
        message,
    }
}

/// A stored list back: written by us as JSON; a row changed into something else reads as none.
pub(crate) fn services_of(
    agent_id: &str,
    row: Option<(String, String)>,
) -> protocol::ServicesResponse {
    let (ts, services) = match row {
        Some((ts, json)) => (Some(ts), serde_json::from_str(&json).unwrap_or_default()),
        None => (None, Vec::new()),
    };
    protocol::ServicesResponse { agent_id: agent_id.to_owned(), ts, services }
}
