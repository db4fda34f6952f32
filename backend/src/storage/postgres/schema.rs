//! PostgreSQL tables, the same as SQLite's but for the replay guard, which is keyed by signature
//! here: replicas share it, and an insert that conflicts is how one learns of the other's.

use tokio_postgres::Client;

/// Each entry runs once, in order, inside one transaction with the version bump.
/// (The alert tables come after these, from [`crate::alerts::schema`].)
const MIGRATIONS: &[&str] = &[
    r"
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
    ",
    // 2: the tiers (see `storage/rollup.rs`), filled from the events already stored.
    r"
    CREATE TABLE metric_rollups (
        agent_id       TEXT   NOT NULL,
        tier_ms        BIGINT NOT NULL,
        bucket_ms      BIGINT NOT NULL,
        cpu_sum        DOUBLE PRECISION NOT NULL,
        cpu_n          BIGINT NOT NULL,
        cpu_max        DOUBLE PRECISION,
        mem_used_sum   DOUBLE PRECISION NOT NULL,
        mem_used_n     BIGINT NOT NULL,
        mem_total_sum  DOUBLE PRECISION NOT NULL,
        mem_total_n    BIGINT NOT NULL,
        disk_used_sum  DOUBLE PRECISION NOT NULL,
        disk_used_n    BIGINT NOT NULL,
        disk_total_sum DOUBLE PRECISION NOT NULL,
        disk_total_n   BIGINT NOT NULL,
        rx_sum         DOUBLE PRECISION NOT NULL,
        rx_n           BIGINT NOT NULL,
        tx_sum         DOUBLE PRECISION NOT NULL,
        tx_n           BIGINT NOT NULL,
        PRIMARY KEY (agent_id, tier_ms, bucket_ms)
    );
    CREATE INDEX metric_rollups_by_time ON metric_rollups(tier_ms, bucket_ms);
    CREATE TABLE proc_rollups (
        agent_id  TEXT   NOT NULL,
        tier_ms   BIGINT NOT NULL,
        name      TEXT   NOT NULL,
        bucket_ms BIGINT NOT NULL,
        cpu_sum   DOUBLE PRECISION NOT NULL,
        cpu_n     BIGINT NOT NULL,
        cpu_max   DOUBLE PRECISION,
        rss_sum   DOUBLE PRECISION NOT NULL,
        rss_n     BIGINT NOT NULL,
        PRIMARY KEY (agent_id, tier_ms, name, bucket_ms)
    );
    CREATE INDEX proc_rollups_by_time ON proc_rollups(tier_ms, bucket_ms);

    INSERT INTO metric_rollups
        SELECT agent_id, t.ms, ts_ms - ts_ms % t.ms, coalesce(sum(cpu), 0), count(cpu), max(cpu),
               coalesce(sum(mem_total - mem_free), 0), count(mem_total - mem_free),
               coalesce(sum(mem_total), 0), count(mem_total),
               coalesce(sum(disk_total - disk_free), 0), count(disk_total - disk_free),
               coalesce(sum(disk_total), 0), count(disk_total),
               coalesce(sum(net_rx_bps), 0), count(net_rx_bps),
               coalesce(sum(net_tx_bps), 0), count(net_tx_bps)
        FROM events, (VALUES (60000::bigint), (3600000::bigint)) t(ms)
        WHERE event_type = 'metric'
        GROUP BY agent_id, t.ms, ts_ms - ts_ms % t.ms;
    INSERT INTO proc_rollups
        SELECT agent_id, t.ms, proc_name, ts_ms - ts_ms % t.ms, coalesce(sum(cpu), 0),
               count(cpu), max(cpu), coalesce(sum(rss), 0), count(rss)
        FROM events, (VALUES (60000::bigint), (3600000::bigint)) t(ms)
        WHERE event_type = 'proc' AND proc_name IS NOT NULL
        GROUP BY agent_id, t.ms, proc_name, ts_ms - ts_ms % t.ms;
    ",
    // 3: the tiers are summed behind the ingest commit: a group appends one row of its sums
    // here (an array of tier rows) and a merge moves them into the tiers seconds later (see
    // `rollups.rs`). The tables hold seconds of groups; a reader scans them whole.
    r"
    CREATE TABLE metric_rollup_deltas (
        id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sums metric_rollups[] NOT NULL
    );
    CREATE TABLE proc_rollup_deltas (
        id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sums proc_rollups[] NOT NULL
    );
    ",
    // 4: one row per batch instead of one per event, its events as SQLite's log holds them
    // (`storage/codec.rs`): a metric or a process as a positional array, anything else as the
    // wire's object. The seed's table becomes a view with the same columns. A batch's ids are
    // `first_id` onwards; each batch takes a block of `event_ids` as large as the most events a
    // batch may hold, so the replicas' batches never share a block. Rows move with their ids;
    // one batch's consecutive rows (same agent, time and arrival) become one row again.
    r"
    ALTER TABLE events RENAME TO events_v3;
    CREATE SEQUENCE event_ids INCREMENT BY 1000;
    SELECT setval('event_ids', greatest(
        coalesce(pg_sequence_last_value(pg_get_serial_sequence('events_v3', 'id')::regclass), 0),
        coalesce((SELECT max(id) FROM events_v3), 0)) + 1, false);
    CREATE TABLE batch_log (
        first_id    BIGINT   PRIMARY KEY,
        ts_ms       BIGINT   NOT NULL,
        ingested_ms BIGINT   NOT NULL,
        kinds       SMALLINT NOT NULL,
        agent_id    TEXT     NOT NULL,
        ts          TEXT     NOT NULL,
        platform    TEXT     NOT NULL,
        events      JSON     NOT NULL
    );
    INSERT INTO batch_log
        SELECT min(id), ts_ms, ingested_ms,
               bit_or(CASE event_type WHEN 'metric' THEN 1 WHEN 'proc' THEN 2 ELSE 4 END),
               agent_id, ts, platform,
               json_agg(CASE
                   WHEN event_type = 'metric'
                        AND num_nulls(pid, proc_name, rss) = 3
                   THEN json_build_array(cpu, mem_free, mem_total, disk_free, disk_total,
                        net_rx_bps, net_tx_bps, uptime_s)
                   WHEN event_type = 'proc'
                        AND num_nulls(mem_free, mem_total, disk_free, disk_total, net_rx_bps,
                                      net_tx_bps, uptime_s) = 7
                   THEN json_build_array(pid, proc_name, cpu, rss)
                   ELSE json_strip_nulls(json_build_object('type', event_type, 'cpu', cpu,
                        'mem_free', mem_free, 'mem_total', mem_total, 'disk_free', disk_free,
                        'disk_total', disk_total, 'net_rx_bps', net_rx_bps,
                        'net_tx_bps', net_tx_bps, 'uptime_s', uptime_s, 'pid', pid,
                        'name', proc_name, 'rss', rss))
               END ORDER BY id)
        FROM (SELECT e.*, id - row_number() OVER (
                  PARTITION BY agent_id, ts, ts_ms, ingested_ms, platform ORDER BY id) AS run
              FROM events_v3 e) e
        GROUP BY agent_id, ts, ts_ms, ingested_ms, platform, run;
    DROP TABLE events_v3;
    CREATE INDEX batch_log_by_agent ON batch_log(agent_id, first_id);
    CREATE INDEX batch_log_by_agent_time ON batch_log(agent_id, ts_ms);

    CREATE VIEW events AS
        SELECT l.first_id + e.i - 1 AS id, l.agent_id, l.ts, l.ts_ms, l.platform,
               CASE s.shape WHEN 'keyed' THEN e.v ->> 'type' ELSE s.shape END AS event_type,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'cpu' WHEN 'metric' THEN e.v ->> 0
                             ELSE e.v ->> 2 END)::float8 AS cpu,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'mem_free' WHEN 'metric' THEN e.v ->> 1
                             END)::bigint AS mem_free,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'mem_total' WHEN 'metric' THEN e.v ->> 2
                             END)::bigint AS mem_total,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'disk_free' WHEN 'metric' THEN e.v ->> 3
                             END)::bigint AS disk_free,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'disk_total' WHEN 'metric' THEN e.v ->> 4
                             END)::bigint AS disk_total,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'net_rx_bps' WHEN 'metric' THEN e.v ->> 5
                             END)::float8 AS net_rx_bps,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'net_tx_bps' WHEN 'metric' THEN e.v ->> 6
                             END)::float8 AS net_tx_bps,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'uptime_s' WHEN 'metric' THEN e.v ->> 7
                             END)::bigint AS uptime_s,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'pid' WHEN 'proc' THEN e.v ->> 0
                             END)::bigint AS pid,
               CASE s.shape WHEN 'keyed' THEN e.v ->> 'name' WHEN 'proc' THEN e.v ->> 1
                            END AS proc_name,
               (CASE s.shape WHEN 'keyed' THEN e.v ->> 'rss' WHEN 'proc' THEN e.v ->> 3
                             END)::bigint AS rss,
               l.ingested_ms
        FROM batch_log l
        CROSS JOIN LATERAL json_array_elements(l.events) WITH ORDINALITY AS e(v, i)
        CROSS JOIN LATERAL (SELECT CASE WHEN json_typeof(e.v) = 'object' THEN 'keyed'
                                        WHEN json_array_length(e.v) = 8 THEN 'metric'
                                        ELSE 'proc' END AS shape) s;
    ",
];

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
    let all: Vec<std::borrow::Cow<'static, str>> = MIGRATIONS
        .iter()
        .map(|&sql| sql.into())
        .chain(std::iter::once(crate::alerts::schema::postgres().into()))
        .chain(std::iter::once(
            "ALTER TABLE agents ADD COLUMN agent_version TEXT, ADD COLUMN agent_uptime_s BIGINT,\n                 ADD COLUMN drives TEXT;"
                .into(),
        ))
        .chain(std::iter::once(crate::storage::notices::postgres().into()))
        .chain(std::iter::once(crate::storage::sessions::postgres().into()))
        .collect();
    for (i, sql) in all.iter().enumerate().skip(current) {
        tx.batch_execute(sql).await?;
        tracing::info!(version = i + 1, "applied PostgreSQL migration");
    }
    if current < all.len() {
        let latest = i32::try_from(all.len()).unwrap_or(i32::MAX);
        tx.execute("DELETE FROM schema_version", &[]).await?;
        tx.execute("INSERT INTO schema_version VALUES ($1)", &[&latest]).await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Secret;

    async fn empty_database() -> tokio_postgres::Client {
        let admin = harness::postgres::server_url();
        let name = format!("telemetry_test_{}", uuid::Uuid::new_v4().simple());
        let url = Secret::new(super::super::create_database(&admin, &name).await.unwrap());
        super::super::pool::connect(&url).await.unwrap()
    }

    /// A database as the first release left it, with a metric and a process stored, takes the
    /// tiers from what it holds.
    #[tokio::test]
    async fn a_version_1_database_gets_its_tiers_from_the_events_it_holds() {
        let mut client = empty_database().await;
        client
            .batch_execute(&format!(
                "{}
                 CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (1);
                 INSERT INTO events (agent_id, ts, ts_ms, platform, event_type, cpu, mem_free,
                     mem_total, ingested_ms)
                     VALUES ('a', 't', 3600500, 'linux', 'metric', 0.25, 1, 5, 0),
                            ('a', 't', 3660500, 'linux', 'metric', 0.75, 3, 5, 0);
                 INSERT INTO events (agent_id, ts, ts_ms, platform, event_type, cpu, proc_name,
                     rss, ingested_ms)
                     VALUES ('a', 't', 3600500, 'linux', 'proc', 0.5, 'x.exe', 100, 0);",
                MIGRATIONS[0]
            ))
            .await
            .unwrap();
        migrate(&mut client).await.unwrap();
        let metric = client
            .query(
                "SELECT tier_ms, bucket_ms, cpu_sum, cpu_n, cpu_max, mem_used_sum
                 FROM metric_rollups ORDER BY tier_ms, bucket_ms",
                &[],
            )
            .await
            .unwrap();
        let rows: Vec<(i64, i64, f64, i64, Option<f64>, f64)> = metric
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect();
        assert_eq!(
            rows,
            [
                (60_000, 3_600_000, 0.25, 1, Some(0.25), 4.0),
                (60_000, 3_660_000, 0.75, 1, Some(0.75), 2.0),
                (3_600_000, 3_600_000, 1.0, 2, Some(0.75), 6.0),
            ]
        );
        let proc = client
            .query_one("SELECT count(*), sum(rss_sum) FROM proc_rollups WHERE name = 'x.exe'", &[])
            .await
            .unwrap();
        assert_eq!((proc.get::<_, i64>(0), proc.get::<_, f64>(1)), (2, 200.0));
    }

    /// Every event of a version 3 database reads the same through the `events` view after the
    /// move into the log, with its id; one batch's rows become one log row; ids cleared at the
    /// top are not given again.
    #[tokio::test]
    async fn a_version_3_database_keeps_every_event_and_id_in_the_log() {
        let mut client = empty_database().await;
        let v3 = MIGRATIONS[..3].concat();
        client
            .batch_execute(&format!(
                "{v3}
                 CREATE TABLE schema_version (version INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (3);
                 INSERT INTO events (agent_id, ts, ts_ms, platform, event_type, cpu, mem_free,
                     mem_total, disk_free, disk_total, net_rx_bps, net_tx_bps, uptime_s, pid,
                     proc_name, rss, ingested_ms) VALUES
                   ('a', '2025-11-12T12:00:00.1234567Z', 1000, 'windows', 'metric', 0.1,
                    5368709120, 17179869184, 1, 2, 125000.5, 0.25, 86400, NULL, NULL, NULL, 7),
                   ('a', '2025-11-12T12:00:00.1234567Z', 1000, 'windows', 'proc', 0.3, NULL,
                    NULL, NULL, NULL, NULL, NULL, NULL, 4000, 'chrome.exe', 314572800, 7),
                   ('a', '2025-11-12T12:00:00.1234567Z', 1000, 'windows', 'proc', NULL, NULL,
                    NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'x', NULL, 7),
                   ('b', '2025-11-12 12:00:01', 2000, 'linux', 'metric', 0.5, 1, NULL, NULL,
                    NULL, NULL, NULL, NULL, 12, NULL, NULL, 8),
                   ('a', '2025-11-12T12:00:00.1234567Z', 1000, 'windows', 'proc', 0.2, NULL,
                    NULL, NULL, NULL, NULL, NULL, NULL, 4001, 'x', 1, 7),
                   ('b', '2025-11-12 12:00:01', 2000, 'linux', 'gpu', 0.7, NULL, NULL, NULL,
                    NULL, NULL, NULL, NULL, NULL, NULL, NULL, 8),
                   ('b', '2025-11-12 12:00:01', 2000, 'linux', 'proc', 0.1, 3, NULL, NULL, NULL,
                    NULL, NULL, NULL, 5, 'y', 6, 8),
                   ('b', 'late', 3000, 'linux', 'metric', NULL, NULL, NULL, NULL, NULL, NULL,
                    NULL, NULL, NULL, NULL, NULL, 9);
                 DELETE FROM events WHERE ts = 'late';"
            ))
            .await
            .unwrap();
        let all = "SELECT row_to_json(e)::text FROM events e ORDER BY id";
        let texts = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
            rows.iter().map(|r| r.get(0)).collect()
        };
        let before = texts(client.query(all, &[]).await.unwrap());
        assert_eq!(before.len(), 7);
        migrate(&mut client).await.unwrap();
        assert_eq!(texts(client.query(all, &[]).await.unwrap()), before);
        // Rows 1-3, 4, 5, 6-7: a batch interrupted by another agent's rows splits there.
        let log = client.query_one("SELECT count(*) FROM batch_log", &[]).await.unwrap();
        assert_eq!(log.get::<_, i64>(0), 4);
        let (next, step): (i64, i64) = {
            let r = client
                .query_one(
                    "SELECT nextval('event_ids'),
                        (SELECT increment_by FROM pg_sequences WHERE sequencename = 'event_ids')",
                    &[],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        };
        assert_eq!(next, 9, "id 8 was given before the clear");
        assert!(usize::try_from(step).unwrap() >= protocol::validate::Limits::MAX_EVENTS);
    }
}
