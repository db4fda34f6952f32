//! PostgreSQL tables, the same as SQLite's but for the replay guard, which is keyed by signature
//! here: replicas share it, and an insert that conflicts is how one learns of the other's.

use tokio_postgres::Client;

/// Each entry runs once, in order, inside one transaction with the version bump.
const MIGRATIONS: &[&str] = &[r"
    CREATE TABLE events (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        agent_id    TEXT    NOT NULL,
        ts          TEXT    NOT NULL,
        ts_ms       BIGINT  NOT NULL,
        platform    TEXT    NOT NULL,
        event_type  TEXT    NOT NULL,
        cpu         DOUBLE PRECISION,
        mem_free    BIGINT,
        mem_total   BIGINT,
        disk_free   BIGINT,
        disk_total  BIGINT,
        net_rx_bps  DOUBLE PRECISION,
        net_tx_bps  DOUBLE PRECISION,
        uptime_s    BIGINT,
        pid         BIGINT,
        proc_name   TEXT,
        rss         BIGINT,
        ingested_ms BIGINT  NOT NULL
    );
    CREATE INDEX events_by_agent ON events(agent_id, id);
    CREATE INDEX events_by_type ON events(event_type, id);
    CREATE INDEX events_by_agent_type_time ON events(agent_id, event_type, ts_ms);

    CREATE TABLE batches (
        batch_id    TEXT    NOT NULL,
        agent_id    TEXT    NOT NULL,
        received_ms BIGINT  NOT NULL,
        stored      INTEGER NOT NULL,
        PRIMARY KEY (batch_id, agent_id)
    );
    CREATE INDEX batches_by_time ON batches(received_ms);

    CREATE TABLE agents (
        agent_id      TEXT PRIMARY KEY,
        platform      TEXT   NOT NULL,
        first_seen_ms BIGINT NOT NULL,
        last_seen_ms  BIGINT NOT NULL,
        last_ts_ms    BIGINT NOT NULL,
        interval_ms   DOUBLE PRECISION,
        metric_ts     TEXT,
        metric_ts_ms  BIGINT,
        cpu           DOUBLE PRECISION,
        mem_free      BIGINT,
        mem_total     BIGINT,
        disk_free     BIGINT,
        disk_total    BIGINT,
        net_rx_bps    DOUBLE PRECISION,
        net_tx_bps    DOUBLE PRECISION,
        uptime_s      BIGINT
    );

    CREATE TABLE replay_guard (
        signature  BYTEA PRIMARY KEY,
        expires_ms BIGINT NOT NULL
    );
    CREATE INDEX replay_guard_by_expiry ON replay_guard(expires_ms);
    "];

/// Any constant: replicas starting together take this lock so that one migrates at a time.
const MIGRATION_LOCK: i64 = 0x7e1e_3e7a;

pub(super) async fn migrate(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .await?;
    let current = tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
        .map_or(0, |r| usize::try_from(r.get::<_, i32>(0)).unwrap_or(0));
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql).await?;
        tracing::info!(version = i + 1, "applied PostgreSQL migration");
    }
    if current < MIGRATIONS.len() {
        let latest = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
        tx.execute("DELETE FROM schema_version", &[]).await?;
        tx.execute("INSERT INTO schema_version VALUES ($1)", &[&latest]).await?;
    }
    tx.commit().await
}
