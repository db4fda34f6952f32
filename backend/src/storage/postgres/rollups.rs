//! The tiers in PostgreSQL: the same tables as SQLite's, summed behind the ingest commit. Each
//! group appends one row of its sums to `*_rollup_deltas` (an array of tier rows) in its own
//! transaction; a merge task moves them into the tiers every five seconds, one replica at a time,
//! and a clear or a tier prune merges everything first. A reader adds what still waits in the
//! deltas to the tiers in one statement, so it sees each batch once, merged or not. Upserting
//! the tiers inside each ingest transaction cost a quarter of PostgreSQL's ingest rate, all of
//! it on the writer's one connection.

use crate::storage::rollup::{Rollup, TIERS};
use crate::storage::{PRUNE_CHUNK, Range, StorageError};
use crate::telemetry::chain;
use protocol::{IngestBatch, ProcessHistory, Secret, Series};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_postgres::{Client, Error, Statement, Transaction};

/// Held by a merge and by a clear, so that a clear never races a merge of the agent's sums.
const MERGE_LOCK: i64 = 0x7e1e_3e7b;
/// How often the deltas are merged: each merge upserts every tier row touched since the last,
/// so a longer pause merges more batches per row (at the ingest bench's rate, every 5 s kept
/// 0.94 of the rate without tiers where every 1 s kept 0.88); readers scan what waits.
pub(crate) const MERGE_EVERY: Duration = Duration::from_secs(5);
/// Groups' deltas moved per statement: a merge that fell behind catches up in short
/// transactions.
const MERGE_CHUNK: i64 = 500;

/// A group's sums of the metrics, as one row of deltas (`append`).
pub(super) const METRIC_DELTAS_SQL: &str = "INSERT INTO metric_rollup_deltas (sums)
    SELECT array_agg(ROW(u.*)::metric_rollups)
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[], $5::bigint[],
        $6::float8[], $7::float8[], $8::bigint[], $9::float8[], $10::bigint[], $11::float8[],
        $12::bigint[], $13::float8[], $14::bigint[], $15::float8[], $16::bigint[],
        $17::float8[], $18::bigint[]) u";
/// A group's sums of the processes, likewise.
pub(super) const PROC_DELTAS_SQL: &str = "INSERT INTO proc_rollup_deltas (sums)
    SELECT array_agg(ROW(u.*)::proc_rollups)
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::float8[],
        $6::bigint[], $7::float8[], $8::float8[], $9::bigint[]) u";

/// Appends the sums of the group's stored batches to the deltas.
pub(super) async fn append(
    tx: &Transaction<'_>,
    [metric_deltas, proc_deltas]: [&Statement; 2],
    stored: &[(&IngestBatch, i64)],
) -> Result<(), StorageError> {
    let mut by_agent: BTreeMap<&str, Rollup> = BTreeMap::new();
    for (batch, ts_ms) in stored {
        by_agent.entry(&batch.agent_id).or_default().add_batch(*ts_ms, &batch.events);
    }
    let (mut agents, mut tiers, mut buckets) = (Vec::new(), Vec::new(), Vec::new());
    let mut sums: [Vec<f64>; 7] = Default::default();
    let mut counts: [Vec<i64>; 7] = Default::default();
    let mut cpu_max: Vec<Option<f64>> = Vec::new();
    let (mut p_agents, mut p_tiers, mut p_names, mut p_buckets) = (vec![], vec![], vec![], vec![]);
    let mut p_sums: [Vec<f64>; 2] = Default::default();
    let mut p_counts: [Vec<i64>; 2] = Default::default();
    let mut p_max: Vec<Option<f64>> = Vec::new();
    for (agent, rollup) in &by_agent {
        for ((tier, bucket), s) in &rollup.metrics {
            agents.push(agent.to_string());
            tiers.push(*tier);
            buckets.push(*bucket);
            for (i, sum) in s.iter().enumerate() {
                sums[i].push(sum.sum);
                counts[i].push(sum.n);
            }
            cpu_max.push(s[0].max);
        }
        for ((tier, name, bucket), s) in &rollup.procs {
            p_agents.push(agent.to_string());
            p_tiers.push(*tier);
            p_names.push(name.clone());
            p_buckets.push(*bucket);
            for (i, sum) in s.iter().enumerate() {
                p_sums[i].push(sum.sum);
                p_counts[i].push(sum.n);
            }
            p_max.push(s[0].max);
        }
    }
    let [c, mu, mt, du, dt, rx, txb] = &sums;
    let [cn, mun, mtn, dun, dtn, rxn, txn] = &counts;
    let metrics = async {
        if agents.is_empty() {
            return Ok(0);
        }
        tx.execute(
            metric_deltas,
            &[
                &agents, &tiers, &buckets, c, cn, &cpu_max, mu, mun, mt, mtn, du, dun, dt, dtn, rx,
                rxn, txb, txn,
            ],
        )
        .await
    };
    let ([cpu, rss], [cpu_n, rss_n]) = (&p_sums, &p_counts);
    let procs = async {
        if p_agents.is_empty() {
            return Ok(0);
        }
        tx.execute(
            proc_deltas,
            &[&p_agents, &p_tiers, &p_names, &p_buckets, cpu, cpu_n, &p_max, rss, rss_n],
        )
        .await
    };
    // Sent together: one round trip for both.
    futures_util::future::try_join(metrics, procs).await?;
    Ok(())
}

/// One agent's rows of the tiers (`None`: everyone's), once what waits in the deltas is in
/// them; a merge of another replica finishes first.
pub(super) async fn clear(tx: &Transaction<'_>, agent: Option<&str>) -> Result<(), Error> {
    merge_all(tx).await?;
    for table in ["metric_rollups", "proc_rollups"] {
        match agent {
            Some(agent) => {
                tx.execute(&format!("DELETE FROM {table} WHERE agent_id = $1"), &[&agent]).await
            }
            None => tx.execute(&format!("DELETE FROM {table}"), &[]).await,
        }?;
    }
    Ok(())
}

/// `metric_rollups` -> `metric_rollup_deltas`.
fn deltas_of(table: &str) -> String {
    format!("{}_deltas", table.trim_end_matches('s'))
}

/// Adds the moved deltas into their tier rows, in key order so that merges cannot deadlock.
fn merge_sql(table: &str, key: &str, sums: &[&str], maxima: &[&str]) -> String {
    let aggregates: Vec<String> = sums
        .iter()
        .map(|c| format!("sum({c})"))
        .chain(maxima.iter().map(|c| format!("max({c})")))
        .collect();
    let updates: Vec<String> = sums
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .chain(maxima.iter().map(|c| format!("{c} = greatest({table}.{c}, excluded.{c})")))
        .collect();
    let columns: Vec<&str> = sums.iter().chain(maxima).copied().collect();
    let deltas = deltas_of(table);
    format!(
        "WITH moved AS (
            DELETE FROM {deltas}
            WHERE id IN (SELECT id FROM {deltas} ORDER BY id LIMIT $1)
            RETURNING sums
         ), merged AS (
            INSERT INTO {table} ({key}, {columns})
            SELECT {key}, {aggregates} FROM moved, unnest(moved.sums)
            GROUP BY {key} ORDER BY {key}
            ON CONFLICT ({key}) DO UPDATE SET {updates}
         )
         SELECT count(*) FROM moved",
        columns = columns.join(", "),
        aggregates = aggregates.join(", "),
        updates = updates.join(", "),
    )
}

/// Both tables' merge statements, built once.
static MERGES: std::sync::LazyLock<[String; 2]> = std::sync::LazyLock::new(merge_statements);

/// Everything that waits in the deltas, inside the caller's transaction, which then holds the
/// merge lock until it ends: for a clear or a prune, which must see every sum in the tiers.
async fn merge_all(tx: &Transaction<'_>) -> Result<(), Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MERGE_LOCK]).await?;
    for sql in MERGES.iter() {
        while tx.query_one(sql, &[&MERGE_CHUNK]).await?.get::<_, i64>(0) >= MERGE_CHUNK {}
    }
    Ok(())
}

/// One merge step of both tables, if no other replica is merging; the most groups' deltas it
/// moved from one table.
async fn merge_step(client: &mut Client) -> Result<i64, Error> {
    let tx = client.transaction().await?;
    let mine: bool =
        tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&MERGE_LOCK]).await?.get(0);
    if !mine {
        return Ok(0);
    }
    let mut moved = 0;
    for sql in MERGES.iter() {
        moved = moved.max(tx.query_one(sql, &[&MERGE_CHUNK]).await?.get::<_, i64>(0));
    }
    tx.commit().await?;
    Ok(moved)
}

/// The merge of each tier table.
fn merge_statements() -> [String; 2] {
    [
        merge_sql(
            "metric_rollups",
            "agent_id, tier_ms, bucket_ms",
            &[
                "cpu_sum",
                "cpu_n",
                "mem_used_sum",
                "mem_used_n",
                "mem_total_sum",
                "mem_total_n",
                "disk_used_sum",
                "disk_used_n",
                "disk_total_sum",
                "disk_total_n",
                "rx_sum",
                "rx_n",
                "tx_sum",
                "tx_n",
            ],
            &["cpu_max"],
        ),
        merge_sql(
            "proc_rollups",
            "agent_id, tier_ms, name, bucket_ms",
            &["cpu_sum", "cpu_n", "rss_sum", "rss_n"],
            &["cpu_max"],
        ),
    ]
}

/// Merges the deltas every `every` ([`MERGE_EVERY`]) until aborted, on a connection of its own;
/// an aborted merge rolls back whole, and its deltas wait for the next.
pub(super) async fn run_merges(url: Secret, every: Duration) {
    let mut client: Option<Client> = None;
    loop {
        tokio::time::sleep(every).await;
        if client.as_ref().is_none_or(Client::is_closed) {
            client = super::pool::connect(&url)
                .await
                .inspect_err(|e| {
                    tracing::warn!(error = %chain(e), "tier merge cannot connect; will retry");
                })
                .ok();
        }
        let Some(c) = client.as_mut() else { continue };
        loop {
            match merge_step(c).await {
                Ok(moved) if moved >= MERGE_CHUNK => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "tier merge failed; will retry");
                    client = None;
                    break;
                }
            }
        }
    }
}

/// Each tier's buckets that start before its cutoff, a chunk per table and tier at most;
/// returns the counts deleted.
pub(super) async fn prune(
    tx: &Transaction<'_>,
    cutoffs: [Option<i64>; 2],
) -> Result<Vec<u64>, Error> {
    if cutoffs.iter().any(Option::is_some) {
        // Or a later merge would bring back buckets pruned here.
        merge_all(tx).await?;
    }
    let chunk = PRUNE_CHUNK as i64;
    let mut deleted = Vec::new();
    for (tier, before) in TIERS.into_iter().zip(cutoffs) {
        let Some(before) = before else { continue };
        for (table, key) in [
            ("metric_rollups", "agent_id, tier_ms, bucket_ms"),
            ("proc_rollups", "agent_id, tier_ms, name, bucket_ms"),
        ] {
            let sql = format!(
                "DELETE FROM {table} WHERE ({key}) IN
                    (SELECT {key} FROM {table} WHERE tier_ms = $1 AND bucket_ms < $2
                     LIMIT $3 FOR UPDATE SKIP LOCKED)"
            );
            deleted.push(tx.execute(&sql, &[&tier, &before, &chunk]).await?);
        }
    }
    Ok(deleted)
}

/// The chart's bucket of a tier bucket: where it starts, the first for one begun before `$3`.
const CHART_BUCKET: &str = "(greatest(bucket_ms, $3) - $3) / $5";
/// Tier buckets that overlap `[$3, $4)`: those starting in it and the one running into it.
const OVERLAPS: &str = "agent_id = $1 AND tier_ms = $2 AND bucket_ms > $3 - $2 AND bucket_ms < $4";

/// The rows of `table` that overlap the range, and those still waiting in its deltas: one
/// statement, one snapshot, so a merge in between cannot count a batch twice or drop it.
fn with_deltas(table: &str, filter: &str) -> String {
    let deltas = deltas_of(table);
    format!(
        "(SELECT * FROM {table} WHERE {OVERLAPS}{filter}
          UNION ALL SELECT s.* FROM {deltas} d, unnest(d.sums) s WHERE {OVERLAPS}{filter}) r"
    )
}

fn avg(column: &str) -> String {
    format!("(sum({column}_sum) / nullif(sum({column}_n), 0))::float8")
}

pub(super) async fn series(
    client: &Client,
    agent_id: &str,
    range: Range,
    tier: i64,
) -> Result<Series, Error> {
    let sql = format!(
        "SELECT {CHART_BUCKET} AS bucket, {}, max(cpu_max), {}, {}, {}, {}, {}, {}
         FROM {} GROUP BY bucket ORDER BY bucket",
        avg("cpu"),
        avg("mem_used"),
        avg("mem_total"),
        avg("disk_used"),
        avg("disk_total"),
        avg("rx"),
        avg("tx"),
        with_deltas("metric_rollups", ""),
    );
    let rows = client
        .query(&sql, &[&agent_id, &tier, &range.from_ms, &range.to_ms, &range.step_ms])
        .await?;
    Ok(super::queries::series_of(agent_id, range, &rows))
}

pub(super) async fn process_history(
    client: &Client,
    agent_id: &str,
    name: &str,
    range: Range,
    tier: i64,
) -> Result<ProcessHistory, Error> {
    let sql = format!(
        "SELECT {CHART_BUCKET} AS bucket, {}, max(cpu_max), {}
         FROM {} GROUP BY bucket ORDER BY bucket",
        avg("cpu"),
        avg("rss"),
        with_deltas("proc_rollups", " AND name = $6"),
    );
    let rows = client
        .query(&sql, &[&agent_id, &tier, &range.from_ms, &range.to_ms, &range.step_ms, &name])
        .await?;
    Ok(super::queries::history_of(agent_id, name, range, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn database() -> Client {
        let admin = harness::postgres::server_url();
        let name = format!("telemetry_test_{}", uuid::Uuid::new_v4().simple());
        let url = Secret::new(super::super::create_database(&admin, &name).await.unwrap());
        let mut client = super::super::pool::connect(&url).await.unwrap();
        super::super::schema::migrate(&mut client).await.unwrap();
        client
    }

    async fn delta(client: &Client, bucket: i64, cpu: f64) {
        client
            .execute(
                "INSERT INTO metric_rollup_deltas (sums) VALUES (ARRAY[ROW('a', 60000, $1, $2, 1,
                    $2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)::metric_rollups])",
                &[&bucket, &cpu],
            )
            .await
            .unwrap();
    }

    async fn tiers(client: &Client) -> Vec<(i64, f64, i64, Option<f64>)> {
        let rows = client
            .query("SELECT bucket_ms, cpu_sum, cpu_n, cpu_max FROM metric_rollups ORDER BY 1", &[])
            .await
            .unwrap();
        rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect()
    }

    /// Deltas of one bucket are summed into one row, a later merge adds to it, and each delta
    /// is moved once.
    #[tokio::test]
    async fn a_merge_sums_the_deltas_into_the_tiers_and_empties_them() {
        let mut client = database().await;
        for (bucket, cpu) in [(0, 0.25), (0, 0.5), (60_000, 0.75)] {
            delta(&client, bucket, cpu).await;
        }
        assert_eq!(merge_step(&mut client).await.unwrap(), 3);
        assert_eq!(tiers(&client).await, [(0, 0.75, 2, Some(0.5)), (60_000, 0.75, 1, Some(0.75))]);
        delta(&client, 0, 1.0).await;
        assert_eq!(merge_step(&mut client).await.unwrap(), 1);
        assert_eq!(merge_step(&mut client).await.unwrap(), 0, "nothing twice");
        assert_eq!(tiers(&client).await[0], (0, 1.75, 3, Some(1.0)));
    }

    /// While another replica merges (or a clear runs), a merge leaves the deltas alone.
    #[tokio::test]
    async fn one_merge_at_a_time() {
        let mut client = database().await;
        delta(&client, 0, 0.5).await;
        let mut other = database_of(&client).await;
        let held = other.transaction().await.unwrap();
        held.execute("SELECT pg_advisory_xact_lock($1)", &[&MERGE_LOCK]).await.unwrap();
        assert_eq!(merge_step(&mut client).await.unwrap(), 0);
        held.rollback().await.unwrap();
        assert_eq!(merge_step(&mut client).await.unwrap(), 1);
    }

    /// A second connection to the database `client` is connected to.
    async fn database_of(client: &Client) -> Client {
        let name: String = client.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
        let admin = harness::postgres::server_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base);
        super::super::pool::connect(&Secret::new(format!("{base}/{name}"))).await.unwrap()
    }
}
