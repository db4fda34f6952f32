//! The tiers in PostgreSQL: the same tables as SQLite's, summed in each ingest transaction (one
//! statement per table for the whole group) and read for any chart whose step is a minute or
//! more. Replicas add into the same rows; each commit takes its rows in key order, so two
//! commits cannot wait for each other.

use crate::storage::rollup::{Rollup, TIERS};
use crate::storage::{PRUNE_CHUNK, Range, StorageError};
use protocol::{IngestBatch, ProcessHistory, Series};
use std::collections::BTreeMap;
use tokio_postgres::{Client, Error, Transaction};

/// Adds the group's stored batches into their buckets.
pub(super) async fn write(
    tx: &Transaction<'_>,
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
    if !agents.is_empty() {
        let [c, mu, mt, du, dt, rx, txb] = &sums;
        let [cn, mun, mtn, dun, dtn, rxn, txn] = &counts;
        tx.execute(
            "INSERT INTO metric_rollups (agent_id, tier_ms, bucket_ms, cpu_sum, cpu_n, cpu_max,
                mem_used_sum, mem_used_n, mem_total_sum, mem_total_n, disk_used_sum, disk_used_n,
                disk_total_sum, disk_total_n, rx_sum, rx_n, tx_sum, tx_n)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::float8[],
                $5::bigint[], $6::float8[], $7::float8[], $8::bigint[], $9::float8[],
                $10::bigint[], $11::float8[], $12::bigint[], $13::float8[], $14::bigint[],
                $15::float8[], $16::bigint[], $17::float8[], $18::bigint[])
             ON CONFLICT (agent_id, tier_ms, bucket_ms) DO UPDATE SET
                cpu_sum = metric_rollups.cpu_sum + excluded.cpu_sum,
                cpu_n = metric_rollups.cpu_n + excluded.cpu_n,
                cpu_max = greatest(metric_rollups.cpu_max, excluded.cpu_max),
                mem_used_sum = metric_rollups.mem_used_sum + excluded.mem_used_sum,
                mem_used_n = metric_rollups.mem_used_n + excluded.mem_used_n,
                mem_total_sum = metric_rollups.mem_total_sum + excluded.mem_total_sum,
                mem_total_n = metric_rollups.mem_total_n + excluded.mem_total_n,
                disk_used_sum = metric_rollups.disk_used_sum + excluded.disk_used_sum,
                disk_used_n = metric_rollups.disk_used_n + excluded.disk_used_n,
                disk_total_sum = metric_rollups.disk_total_sum + excluded.disk_total_sum,
                disk_total_n = metric_rollups.disk_total_n + excluded.disk_total_n,
                rx_sum = metric_rollups.rx_sum + excluded.rx_sum,
                rx_n = metric_rollups.rx_n + excluded.rx_n,
                tx_sum = metric_rollups.tx_sum + excluded.tx_sum,
                tx_n = metric_rollups.tx_n + excluded.tx_n",
            &[
                &agents, &tiers, &buckets, c, cn, &cpu_max, mu, mun, mt, mtn, du, dun, dt, dtn, rx,
                rxn, txb, txn,
            ],
        )
        .await?;
    }
    if !p_agents.is_empty() {
        let ([cpu, rss], [cpu_n, rss_n]) = (&p_sums, &p_counts);
        tx.execute(
            "INSERT INTO proc_rollups (agent_id, tier_ms, name, bucket_ms, cpu_sum, cpu_n, cpu_max,
                rss_sum, rss_n)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[],
                $5::float8[], $6::bigint[], $7::float8[], $8::float8[], $9::bigint[])
             ON CONFLICT (agent_id, tier_ms, name, bucket_ms) DO UPDATE SET
                cpu_sum = proc_rollups.cpu_sum + excluded.cpu_sum,
                cpu_n = proc_rollups.cpu_n + excluded.cpu_n,
                cpu_max = greatest(proc_rollups.cpu_max, excluded.cpu_max),
                rss_sum = proc_rollups.rss_sum + excluded.rss_sum,
                rss_n = proc_rollups.rss_n + excluded.rss_n",
            &[&p_agents, &p_tiers, &p_names, &p_buckets, cpu, cpu_n, &p_max, rss, rss_n],
        )
        .await?;
    }
    Ok(())
}

/// One agent's rows of both tables (`None`: everyone's).
pub(super) async fn clear(tx: &Transaction<'_>, agent: Option<&str>) -> Result<(), Error> {
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

/// Each tier's buckets that start before its cutoff, a chunk per table and tier at most;
/// returns the counts deleted.
pub(super) async fn prune(
    tx: &Transaction<'_>,
    cutoffs: [Option<i64>; 2],
) -> Result<Vec<u64>, Error> {
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
         FROM metric_rollups WHERE {OVERLAPS} GROUP BY bucket ORDER BY bucket",
        avg("cpu"),
        avg("mem_used"),
        avg("mem_total"),
        avg("disk_used"),
        avg("disk_total"),
        avg("rx"),
        avg("tx"),
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
         FROM proc_rollups WHERE {OVERLAPS} AND name = $6 GROUP BY bucket ORDER BY bucket",
        avg("cpu"),
        avg("rss"),
    );
    let rows = client
        .query(&sql, &[&agent_id, &tier, &range.from_ms, &range.to_ms, &range.step_ms, &name])
        .await?;
    Ok(super::queries::history_of(agent_id, name, range, &rows))
}
