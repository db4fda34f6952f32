//! Opening connections and versioned migrations (`PRAGMA user_version` counts those applied).

use crate::settings::Synchronous;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// The seed's `events` table as a view over the batches listed by `$batches` (columns
/// `first_id, agent_id, ts, ts_ms, platform, ingested_ms, events`): the log's events, keyed
/// objects and positional arrays alike (see `codec.rs`).
macro_rules! events_view {
    ($batches:literal) => {
        concat!(
            "DROP VIEW IF EXISTS events;
    CREATE VIEW events AS
        WITH b AS (",
            $batches,
            "), e AS (
            SELECT b.first_id + j.key AS id, b.agent_id, b.ts, b.ts_ms, b.platform,
                   b.ingested_ms, j.value AS v,
                   CASE WHEN j.type = 'object' THEN 'keyed'
                        WHEN json_array_length(j.value) = 8 THEN 'metric'
                        ELSE 'proc' END AS shape
            FROM b, json_each(b.events) j
        )
        SELECT id, agent_id, ts, ts_ms, platform,
               iif(shape = 'keyed', v ->> 'type', shape) AS event_type,
               CASE shape WHEN 'keyed' THEN v ->> 'cpu' WHEN 'metric' THEN v ->> 0
                          ELSE v ->> 2 END AS cpu,
               CASE shape WHEN 'keyed' THEN v ->> 'mem_free' WHEN 'metric' THEN v ->> 1
                          END AS mem_free,
               CASE shape WHEN 'keyed' THEN v ->> 'mem_total' WHEN 'metric' THEN v ->> 2
                          END AS mem_total,
               CASE shape WHEN 'keyed' THEN v ->> 'disk_free' WHEN 'metric' THEN v ->> 3
                          END AS disk_free,
               CASE shape WHEN 'keyed' THEN v ->> 'disk_total' WHEN 'metric' THEN v ->> 4
                          END AS disk_total,
               CASE shape WHEN 'keyed' THEN v ->> 'net_rx_bps' WHEN 'metric' THEN v ->> 5
                          END AS net_rx_bps,
               CASE shape WHEN 'keyed' THEN v ->> 'net_tx_bps' WHEN 'metric' THEN v ->> 6
                          END AS net_tx_bps,
               CASE shape WHEN 'keyed' THEN v ->> 'uptime_s' WHEN 'metric' THEN v ->> 7
                          END AS uptime_s,
               CASE shape WHEN 'keyed' THEN v ->> 'pid' WHEN 'proc' THEN v ->> 0 END AS pid,
               CASE shape WHEN 'keyed' THEN v ->> 'name' WHEN 'proc' THEN v ->> 1
                          END AS proc_name,
               CASE shape WHEN 'keyed' THEN v ->> 'rss' WHEN 'proc' THEN v ->> 3 END AS rss,
               ingested_ms
        FROM e;"
        )
    };
}

/// Over the log alone: plain SQL.
pub(crate) const EVENTS_VIEW: &str = events_view!(
    "SELECT first_id, agent_id, ts, ts_ms, platform, ingested_ms, events FROM batch_log"
);

/// Over the log and the chunks, which only the backend's `chunk_batches` reads.
pub(crate) const EVENTS_VIEW_WITH_CHUNKS: &str = events_view!(
    "SELECT first_id, agent_id, ts, ts_ms, platform, ingested_ms, events FROM batch_log
        UNION ALL
        SELECT j.value ->> 0, c.agent_id, j.value ->> 1, j.value ->> 2, j.value ->> 3,
               j.value ->> 4, j.value -> 5
        FROM batch_chunks c, json_each(chunk_batches(c.data)) j"
);

/// Each entry runs once, in order, inside one transaction with the version bump.
const MIGRATIONS: &[&str] = &[
    // 1: events keep the seed's columns; AUTOINCREMENT so an id is never reused after a clear,
    // which keeps `before_id` paging and the dashboard's de-duplication sound.
    r"
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        agent_id    TEXT    NOT NULL,
        ts          TEXT    NOT NULL,
        ts_ms       INTEGER NOT NULL,
        platform    TEXT    NOT NULL,
        event_type  TEXT    NOT NULL,
        cpu         REAL,
        mem_free    INTEGER,
        mem_total   INTEGER,
        disk_free   INTEGER,
        disk_total  INTEGER,
        net_rx_bps  REAL,
        net_tx_bps  REAL,
        uptime_s    INTEGER,
        pid         INTEGER,
        proc_name   TEXT,
        rss         INTEGER,
        ingested_ms INTEGER NOT NULL
    );
    CREATE INDEX events_by_agent ON events(agent_id, id);
    CREATE INDEX events_by_type ON events(event_type, id);
    CREATE INDEX events_by_agent_type_time ON events(agent_id, event_type, ts_ms);

    CREATE TABLE batches (
        agent_id    TEXT    NOT NULL,
        batch_id    TEXT    NOT NULL,
        received_ms INTEGER NOT NULL,
        stored      INTEGER NOT NULL,
        PRIMARY KEY (agent_id, batch_id)
    ) WITHOUT ROWID;
    CREATE INDEX batches_by_time ON batches(received_ms);

    CREATE TABLE agents (
        agent_id      TEXT PRIMARY KEY,
        platform      TEXT    NOT NULL,
        first_seen_ms INTEGER NOT NULL,
        last_seen_ms  INTEGER NOT NULL,
        last_ts_ms    INTEGER NOT NULL,
        interval_ms   REAL,
        metric_ts     TEXT,
        metric_ts_ms  INTEGER,
        cpu           REAL,
        mem_free      INTEGER,
        mem_total     INTEGER,
        disk_free     INTEGER,
        disk_total    INTEGER,
        net_rx_bps    REAL,
        net_tx_bps    REAL,
        uptime_s      INTEGER
    ) WITHOUT ROWID;

    CREATE TABLE replay_guard (
        signature  BLOB PRIMARY KEY,
        expires_ms INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX replay_guard_by_expiry ON replay_guard(expires_ms);
    ",
    // 2: the replay guard becomes an append-only log. Signatures arrive in expiry order (one TTL
    // for all), so both the log and its expiry index grow at one end, where the two B-trees
    // keyed by random bytes before cost every request a page write each.
    r"
    CREATE TABLE replay_log (
        id         INTEGER PRIMARY KEY,
        expires_ms INTEGER NOT NULL,
        signature  BLOB    NOT NULL
    );
    CREATE INDEX replay_log_by_expiry ON replay_log(expires_ms);
    INSERT INTO replay_log(expires_ms, signature)
        SELECT expires_ms, signature FROM replay_guard ORDER BY expires_ms;
    DROP TABLE replay_guard;

    -- Batch ids lead the key: the agent's ids are time-ordered (UUIDv7), so new entries of
    -- every agent land at the end of one B-tree instead of in a page of each agent's own.
    CREATE TABLE batches_v2 (
        batch_id    TEXT    NOT NULL,
        agent_id    TEXT    NOT NULL,
        received_ms INTEGER NOT NULL,
        stored      INTEGER NOT NULL,
        PRIMARY KEY (batch_id, agent_id)
    ) WITHOUT ROWID;
    INSERT INTO batches_v2 SELECT batch_id, agent_id, received_ms, stored FROM batches;
    DROP TABLE batches;
    ALTER TABLE batches_v2 RENAME TO batches;
    CREATE INDEX batches_by_time ON batches(received_ms);
    ",
    // 3: one row per stored batch, its events as JSON, appended in id order: a request writes
    // one row at the end of the log instead of a row per event and a page of its agent in each
    // per-agent index. Those indexes and the agent's row are written behind the log, an agent at
    // a time once it has gathered enough batches (see `backlog.rs`), so one page write carries many
    // batches. A batch at or above `floor` that is not in `agent_batches` is not indexed yet,
    // and is replayed at start-up. Event ids stay what they were: a batch's
    // events are `first_id .. first_id + count`. The view `events` shows the seed's table.
    r"
    CREATE TABLE batch_log (
        first_id    INTEGER PRIMARY KEY,
        agent_id    TEXT    NOT NULL,
        ts          TEXT    NOT NULL,
        ts_ms       INTEGER NOT NULL,
        platform    TEXT    NOT NULL,
        ingested_ms INTEGER NOT NULL,
        count       INTEGER NOT NULL,
        kinds       INTEGER NOT NULL,
        events      TEXT    NOT NULL
    );
    CREATE TABLE agent_batches (
        agent_id TEXT    NOT NULL,
        first_id INTEGER NOT NULL,
        ts_ms    INTEGER NOT NULL,
        kinds    INTEGER NOT NULL,
        PRIMARY KEY (agent_id, first_id)
    ) WITHOUT ROWID;
    CREATE INDEX agent_batches_by_time ON agent_batches(agent_id, ts_ms);
    CREATE TABLE agent_metrics (
        agent_id   TEXT    NOT NULL,
        ts_ms      INTEGER NOT NULL,
        id         INTEGER NOT NULL,
        cpu        REAL    NOT NULL,
        mem_free   INTEGER NOT NULL,
        mem_total  INTEGER,
        disk_free  INTEGER,
        disk_total INTEGER,
        net_rx_bps REAL,
        net_tx_bps REAL,
        PRIMARY KEY (agent_id, ts_ms, id)
    ) WITHOUT ROWID;
    CREATE TABLE log_state (
        only    INTEGER PRIMARY KEY CHECK (only = 1),
        floor   INTEGER NOT NULL,
        next_id INTEGER NOT NULL
    );

    INSERT INTO batch_log
        SELECT id, agent_id, ts, ts_ms, platform, ingested_ms, 1,
               CASE event_type WHEN 'metric' THEN 1 ELSE 2 END,
               json_array(CASE event_type
                   WHEN 'metric' THEN json_object('type', 'metric', 'cpu', cpu,
                       'mem_free', mem_free, 'mem_total', mem_total, 'disk_free', disk_free,
                       'disk_total', disk_total, 'net_rx_bps', net_rx_bps,
                       'net_tx_bps', net_tx_bps, 'uptime_s', uptime_s)
                   ELSE json_object('type', 'proc', 'pid', pid, 'name', proc_name, 'cpu', cpu,
                       'rss', rss)
               END)
        FROM events ORDER BY id;
    INSERT INTO agent_batches SELECT agent_id, first_id, ts_ms, kinds FROM batch_log;
    INSERT INTO agent_metrics
        SELECT agent_id, ts_ms, id, cpu, mem_free, mem_total, disk_free, disk_total, net_rx_bps,
               net_tx_bps
        FROM events WHERE event_type = 'metric';
    INSERT INTO log_state VALUES (1, 0,
        (SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                    coalesce((SELECT max(first_id) FROM batch_log), 0)) + 1));
    UPDATE log_state SET floor = next_id;
    DROP TABLE events;

    CREATE VIEW events AS
        SELECT b.first_id + e.key AS id, b.agent_id, b.ts, b.ts_ms, b.platform,
               e.value ->> 'type' AS event_type, e.value ->> 'cpu' AS cpu,
               e.value ->> 'mem_free' AS mem_free, e.value ->> 'mem_total' AS mem_total,
               e.value ->> 'disk_free' AS disk_free, e.value ->> 'disk_total' AS disk_total,
               e.value ->> 'net_rx_bps' AS net_rx_bps, e.value ->> 'net_tx_bps' AS net_tx_bps,
               e.value ->> 'uptime_s' AS uptime_s, e.value ->> 'pid' AS pid,
               e.value ->> 'name' AS proc_name, e.value ->> 'rss' AS rss, b.ingested_ms
        FROM batch_log b, json_each(b.events) e;
    ",
    // 4: signatures are deleted a few at a time with each commit, oldest id first (ids follow
    // the expiry, one TTL for all), so the expiry index, a second B-tree write per request,
    // goes. The minute's retention pass deleted them all at once before: at 18,000 requests/s
    // a million rows, with ingest waiting.
    r"
    DROP INDEX replay_log_by_expiry;
    ",
    // 5: the seed's clients may leave any figure out (its API made every event field optional),
    // so a metric without cpu or free memory is indexed with a gap there.
    r"
    CREATE TABLE agent_metrics_v5 (
        agent_id   TEXT    NOT NULL,
        ts_ms      INTEGER NOT NULL,
        id         INTEGER NOT NULL,
        cpu        REAL,
        mem_free   INTEGER,
        mem_total  INTEGER,
        disk_free  INTEGER,
        disk_total INTEGER,
        net_rx_bps REAL,
        net_tx_bps REAL,
        PRIMARY KEY (agent_id, ts_ms, id)
    ) WITHOUT ROWID;
    INSERT INTO agent_metrics_v5 SELECT * FROM agent_metrics;
    DROP TABLE agent_metrics;
    ALTER TABLE agent_metrics_v5 RENAME TO agent_metrics;
    ",
    // 6: the tiers (see `storage/rollup.rs`): sums per agent and minute, and per hour, of the
    // metrics and of each process, kept longer than the raw batches. Filled here from what is
    // indexed; the batches above the floor are summed when the restarted backend indexes them.
    r"
    CREATE TABLE metric_rollups (
        agent_id       TEXT    NOT NULL,
        tier_ms        INTEGER NOT NULL,
        bucket_ms      INTEGER NOT NULL,
        cpu_sum        REAL    NOT NULL,
        cpu_n          INTEGER NOT NULL,
        cpu_max        REAL,
        mem_used_sum   REAL    NOT NULL,
        mem_used_n     INTEGER NOT NULL,
        mem_total_sum  REAL    NOT NULL,
        mem_total_n    INTEGER NOT NULL,
        disk_used_sum  REAL    NOT NULL,
        disk_used_n    INTEGER NOT NULL,
        disk_total_sum REAL    NOT NULL,
        disk_total_n   INTEGER NOT NULL,
        rx_sum         REAL    NOT NULL,
        rx_n           INTEGER NOT NULL,
        tx_sum         REAL    NOT NULL,
        tx_n           INTEGER NOT NULL,
        PRIMARY KEY (agent_id, tier_ms, bucket_ms)
    ) WITHOUT ROWID;
    CREATE TABLE proc_rollups (
        agent_id  TEXT    NOT NULL,
        tier_ms   INTEGER NOT NULL,
        name      TEXT    NOT NULL,
        bucket_ms INTEGER NOT NULL,
        cpu_sum   REAL    NOT NULL,
        cpu_n     INTEGER NOT NULL,
        cpu_max   REAL,
        rss_sum   REAL    NOT NULL,
        rss_n     INTEGER NOT NULL,
        PRIMARY KEY (agent_id, tier_ms, name, bucket_ms)
    ) WITHOUT ROWID;

    INSERT INTO metric_rollups
        SELECT agent_id, t.ms, ts_ms - ts_ms % t.ms, total(cpu), count(cpu), max(cpu),
               total(mem_total - mem_free), count(mem_total - mem_free),
               total(mem_total), count(mem_total),
               total(disk_total - disk_free), count(disk_total - disk_free),
               total(disk_total), count(disk_total),
               total(net_rx_bps), count(net_rx_bps), total(net_tx_bps), count(net_tx_bps)
        FROM agent_metrics, (SELECT 60000 AS ms UNION ALL SELECT 3600000) t
        GROUP BY agent_id, t.ms, ts_ms - ts_ms % t.ms;
    INSERT INTO proc_rollups
        SELECT b.agent_id, t.ms, e.value ->> 'name', b.ts_ms - b.ts_ms % t.ms,
               total(e.value ->> 'cpu'), count(e.value ->> 'cpu'), max(e.value ->> 'cpu'),
               total(e.value ->> 'rss'), count(e.value ->> 'rss')
        FROM batch_log b, json_each(b.events) e, (SELECT 60000 AS ms UNION ALL SELECT 3600000) t
        WHERE b.first_id < (SELECT floor FROM log_state) AND b.kinds & 2 != 0
          AND e.value ->> 'type' = 'proc' AND e.value ->> 'name' IS NOT NULL
        GROUP BY 1, 2, 3, 4;
    ",
    // 7: new log rows write an event with only its kind's figures positionally (see `codec.rs`);
    // rows already written keep their objects, and the view reads both.
    EVENTS_VIEW,
    // 8: a batch id is kept under a short binary key of the agent and the id (`batch_key`),
    // appended in arrival order so that retention deletes from the front: the two texts (a
    // UUID is 36 characters) and an index by time that repeated them took 130 bytes a batch.
    r"
    CREATE TABLE batch_seen (
        id          INTEGER PRIMARY KEY,
        received_ms INTEGER NOT NULL,
        key         BLOB    NOT NULL UNIQUE
    );
    INSERT OR IGNORE INTO batch_seen(received_ms, key)
        SELECT received_ms, batch_key(agent_id, batch_id) FROM batches ORDER BY received_ms;
    DROP TABLE batches;
    ",
    // 9: a batch's id key moves into its log row (one B-tree fewer per request, and it can go
    // with the row when the row is compacted into a chunk); `batch_seen` keeps the keys of
    // batches whose rows are gone before retention (cleared) and those from before this version.
    // A chunk holds one agent's old batches (see `storage/chunk.rs`), `last_id` its highest
    // event id: chunks never share an event, so it is unique.
    r"
    ALTER TABLE batch_log ADD COLUMN batch_key BLOB;
    CREATE UNIQUE INDEX batch_log_by_key ON batch_log(batch_key);
    CREATE TABLE batch_chunks (
        last_id         INTEGER PRIMARY KEY,
        agent_id        TEXT    NOT NULL,
        first_id        INTEGER NOT NULL,
        ts_min_ms       INTEGER NOT NULL,
        ts_max_ms       INTEGER NOT NULL,
        ingested_max_ms INTEGER NOT NULL,
        batches         INTEGER NOT NULL,
        events          INTEGER NOT NULL,
        kinds           INTEGER NOT NULL,
        data            BLOB    NOT NULL
    );
    CREATE INDEX batch_chunks_by_agent ON batch_chunks(agent_id, ts_max_ms);
    CREATE INDEX batch_chunks_by_age ON batch_chunks(ingested_max_ms);
    ",
    // 10: an agent's per-minute buckets of a day, once the day is over, in one compressed row
    // (see `storage/tier_chunk.rs`): its metrics and its processes. Buckets a late batch adds
    // afterwards are rows again until the next compaction, which makes another chunk of the
    // same day; readers add them all up, as sums do.
    r"
    CREATE TABLE rollup_chunks (
        id       INTEGER PRIMARY KEY,
        agent_id TEXT    NOT NULL,
        day_ms   INTEGER NOT NULL,
        metrics  BLOB    NOT NULL,
        procs    BLOB    NOT NULL
    );
    CREATE INDEX rollup_chunks_by_agent ON rollup_chunks(agent_id, day_ms);
    CREATE INDEX rollup_chunks_by_day ON rollup_chunks(day_ms);
    ",
];

/// The key a batch id is kept under. A UUID in its usual spelling (what the agent sends, time
/// ordered) leads with its 16 bytes, so new keys land at the end of the index as the text did,
/// then 8 bytes of SHA-256 of the agent; any other id is 16 bytes of SHA-256 of the agent (its
/// length first, so no two pairs run together) and the id. The lengths differ, so the two
/// kinds never meet; a clash within one kind would take some 2^64 ids.
pub(crate) fn batch_key(agent_id: &str, batch_id: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    match uuid::Uuid::try_parse(batch_id) {
        // Compared on the stack: this runs for every batch.
        Ok(id) if id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()) == batch_id => {
            let agent = Sha256::digest(agent_id.as_bytes());
            [&id.as_bytes()[..], &agent[..8]].concat()
        }
        _ => {
            let mut hash = Sha256::new();
            hash.update((agent_id.len() as u64).to_le_bytes());
            hash.update(agent_id.as_bytes());
            hash.update(batch_id.as_bytes());
            hash.finalize()[..16].to_vec()
        }
    }
}

/// `batch_key(agent_id, batch_id)` for the migration that moves the ids already kept, and the
/// reader of chunks for the `events` view.
fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    super::chunks::register(conn)?;
    conn.create_scalar_function(
        "batch_key",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let (agent_id, batch_id): (String, String) = (ctx.get(0)?, ctx.get(1)?);
            Ok(batch_key(&agent_id, &batch_id))
        },
    )
}

const WRITER_CACHE_KIB: i64 = 16 * 1024;
const READER_CACHE_KIB: i64 = 16 * 1024;

/// The single writing connection: WAL so readers never block it.
pub(crate) fn open_writer(path: &Path, sync: Synchronous) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Enough for the log's end and the agents' index pages a flush step touches; SQLite walks
    // the whole page cache at every commit, so a larger one (64 MiB was tried) costs each
    // commit more than it saves.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    register_functions(&conn)?;
    migrate(&mut conn)?;
    super::chunks::sync_view(&conn)?;
    Ok(conn)
}

pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    register_functions(&conn)?;
    Ok(conn)
}

/// The agent's own version and uptime, and its drives (JSON), beside its latest figures.
const AGENT_INFO: &str = "ALTER TABLE agents ADD COLUMN agent_version TEXT;
    ALTER TABLE agents ADD COLUMN agent_uptime_s INTEGER;
    ALTER TABLE agents ADD COLUMN drives TEXT;";

/// Every migration in order: [`MIGRATIONS`], the alert tables (written for both stores), the
/// agent's own version and uptime, services and notices, then what ends sessions (both stores).
fn migrations() -> impl Iterator<Item = std::borrow::Cow<'static, str>> {
    let alerts = std::iter::once(crate::alerts::schema::sqlite().into());
    let notices = crate::storage::notices::sqlite().into();
    let sessions = crate::storage::sessions::sqlite().into();
    MIGRATIONS.iter().map(|&sql| sql.into()).chain(alerts).chain([
        AGENT_INFO.into(),
        notices,
        sessions,
    ])
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in migrations().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(&sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(open_writer(&path, Synchronous::Full).unwrap());
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        let v: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(v, migrations().count());
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    /// A database as an older backend left it: the first `version` migrations applied.
    fn database_at(version: usize) -> (tempfile::TempDir, std::path::PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        for migration in &MIGRATIONS[..version] {
            conn.execute_batch(migration).unwrap();
        }
        conn.pragma_update(None, "user_version", version).unwrap();
        (dir, path, conn)
    }

    #[test]
    fn a_version_2_database_keeps_its_events_and_their_ids_in_the_log_and_fills_the_tiers() {
        let (_dir, path, conn) = database_at(2);
        conn.execute_batch(
            "INSERT INTO events(id, agent_id, ts, ts_ms, platform, event_type, cpu, mem_free,
                 mem_total, disk_free, disk_total, net_rx_bps, net_tx_bps, uptime_s, ingested_ms)
                 VALUES (7, 'a', '2025-01-01T00:00:00Z', 1000, 'linux', 'metric', 0.25, 5, 9, 1,
                         2, 1.5, NULL, 60, 3000);
             INSERT INTO events(id, agent_id, ts, ts_ms, platform, event_type, cpu, pid,
                 proc_name, rss, ingested_ms)
                 VALUES (9, 'a', '2025-01-01T00:00:00Z', 1000, 'linux', 'proc', 0.5, 42, 'x.exe',
                         4096, 3000);
             DELETE FROM events WHERE id = 9;
             INSERT INTO events(id, agent_id, ts, ts_ms, platform, event_type, cpu, pid,
                 proc_name, rss, ingested_ms)
                 VALUES (8, 'a', '2025-01-01T00:00:00Z', 1000, 'linux', 'proc', 0.5, 42, 'x.exe',
                         4096, 3000);",
        )
        .unwrap();
        let before: Vec<String> = seed_rows(&conn);
        drop(conn);
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        assert_eq!(seed_rows(&conn), before, "the view shows the same rows");
        let state: (i64, i64) = conn
            .query_row("SELECT floor, next_id FROM log_state", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!(state, (10, 10), "ids go on after the highest ever given, and all is indexed");
        let indexed: (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM agent_batches), (SELECT count(*) FROM agent_metrics)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(indexed, (2, 1));
        let events: String = conn
            .query_row("SELECT events FROM batch_log WHERE first_id = 8", [], |r| r.get(0))
            .unwrap();
        let parsed: Vec<protocol::Event> = serde_json::from_str(&events).unwrap();
        assert!(matches!(&parsed[..], [p] if p.is_proc() && p.name.as_deref() == Some("x.exe")));
        // Both tiers are filled from what was there.
        let tiers = |sql: &str| -> Vec<(i64, i64, f64)> {
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
            rows.collect::<Result<_, _>>().unwrap()
        };
        let metric = "SELECT tier_ms, bucket_ms, cpu_sum FROM metric_rollups ORDER BY tier_ms";
        assert_eq!(tiers(metric), [(60_000, 0, 0.25), (3_600_000, 0, 0.25)]);
        let proc = "SELECT tier_ms, rss_n, cpu_max FROM proc_rollups WHERE name = 'x.exe'
                    ORDER BY tier_ms";
        assert_eq!(tiers(proc), [(60_000, 1, 0.5), (3_600_000, 1, 0.5)]);
    }

    #[test]
    fn a_version_4_database_keeps_its_indexed_metrics_and_takes_ones_with_gaps() {
        let (_dir, path, conn) = database_at(4);
        conn.execute_batch(
            "INSERT INTO agent_metrics VALUES ('a', 1000, 7, 0.25, 5, 9, 1, 2, 1.5, NULL);",
        )
        .unwrap();
        drop(conn);
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        let kept: (f64, i64, Option<f64>) = conn
            .query_row("SELECT cpu, mem_free, net_tx_bps FROM agent_metrics", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(kept, (0.25, 5, None));
        conn.execute("INSERT INTO agent_metrics(agent_id, ts_ms, id) VALUES ('a', 2000, 8)", [])
            .unwrap();
    }

    /// Every row of the seed's `events` table (or view), as text.
    fn seed_rows(conn: &Connection) -> Vec<String> {
        conn.prepare(
            "SELECT id, agent_id, ts, ts_ms, platform, event_type, cpu, mem_free, mem_total,
                    disk_free, disk_total, net_rx_bps, net_tx_bps, uptime_s, pid, proc_name, rss,
                    ingested_ms
             FROM events ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((0..18)
                .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[test]
    fn a_version_1_database_keeps_its_signatures_and_batch_ids() {
        let (_dir, path, conn) = database_at(1);
        conn.execute_batch(
            "INSERT INTO replay_guard VALUES (x'0101', 20), (x'0202', 10);
             INSERT INTO batches VALUES ('host-1', 'b-1', 5, 2);",
        )
        .unwrap();
        drop(conn);
        let conn = open_writer(&path, Synchronous::Full).unwrap();
        let log: Vec<(i64, Vec<u8>)> = conn
            .prepare("SELECT expires_ms, signature FROM replay_log ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(log, [(10, vec![2, 2]), (20, vec![1, 1])]);
        let batch: (i64, Vec<u8>) = conn
            .query_row("SELECT received_ms, key FROM batch_seen", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(batch, (5, batch_key("host-1", "b-1")));
    }

    #[test]
    fn batch_keys_tell_agents_and_spellings_apart_and_keep_uuids_in_order() {
        let (a, b) =
            ("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "0190a1b2-c3d5-7e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(batch_key("pc", a).len(), 24);
        assert!(batch_key("pc", a) < batch_key("pc", b), "time-ordered ids append");
        assert_ne!(batch_key("pc", a), batch_key("pc2", a));
        assert_ne!(batch_key("pc", a), batch_key("pc", &a.to_uppercase()), "another spelling");
        assert_eq!(batch_key("pc", &a.to_uppercase()).len(), 16);
        assert_ne!(batch_key("host-1", "b-1"), batch_key("host-1b", "-1"));
    }
}
