//! The per-minute tier's finished days in compressed rows (`rollup_chunks`, encoded by
//! [`crate::storage::tier_chunk`]): one agent's day of metric buckets and process buckets.
//!
//! Chunks only add: a late batch's buckets in a compacted day are rows of `metric_rollups` and
//! `proc_rollups` again, and a reader sums the chunks and the rows alike.

use crate::storage::chunk::ChunkError;
use crate::storage::rollup::{Sum, TIERS};
use crate::storage::tier_chunk::{self, TierRow};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

const DAY_MS: i64 = 86_400_000;
const MINUTE: i64 = TIERS[0];
/// Days of one agent compacted per step, so that a first compaction of months of buckets
/// never holds the writer for long.
const DAYS_PER_STEP: i64 = 8;

fn encode_error(e: ChunkError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn decode(data: &[u8]) -> rusqlite::Result<Vec<TierRow>> {
    tier_chunk::decode(data).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
    })
}

fn day_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(DAY_MS)
}

fn sums(r: &rusqlite::Row<'_>, at: usize, n: usize) -> rusqlite::Result<Vec<Sum>> {
    (0..n)
        .map(|i| {
            let k = at + 2 * i + usize::from(i > 0);
            let max = if i == 0 { r.get(k + 2)? } else { None };
            Ok(Sum { sum: r.get(k)?, n: r.get(k + 1)?, max })
        })
        .collect()
}

/// Compacts the per-minute buckets of the first agent that has some from before the day
/// before `before_ms`'s (yesterday and today stay rows: late batches land there most), a few
/// days of them. True when it did, so that the next step looks again. An agent's processes
/// are taken with its metrics; one that sends no metrics keeps its process rows.
pub(crate) fn compact_step(conn: &Connection, before_ms: i64) -> rusqlite::Result<bool> {
    let done_before = day_of(before_ms) - DAY_MS;
    let oldest: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT a.agent_id, (SELECT min(bucket_ms) FROM metric_rollups m
                                 WHERE m.agent_id = a.agent_id AND m.tier_ms = ?1) AS first
             FROM agents a WHERE first < ?2 LIMIT 1",
        )?
        .query_row(params![MINUTE, done_before], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((agent, first)) = oldest else { return Ok(false) };
    let end = (day_of(first) + DAYS_PER_STEP * DAY_MS).min(done_before);
    let mut metrics: Vec<TierRow> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT bucket_ms, cpu_sum, cpu_n, cpu_max, mem_used_sum, mem_used_n, mem_total_sum,
            mem_total_n, disk_used_sum, disk_used_n, disk_total_sum, disk_total_n, rx_sum, rx_n,
            tx_sum, tx_n
         FROM metric_rollups WHERE agent_id = ?1 AND tier_ms = ?2 AND bucket_ms < ?3
         ORDER BY bucket_ms",
    )?;
    let mut rows = stmt.query(params![agent, MINUTE, end])?;
    while let Some(r) = rows.next()? {
        metrics.push(TierRow { name: None, bucket_ms: r.get(0)?, sums: sums(r, 1, 7)? });
    }
    let mut procs: Vec<TierRow> = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT name, bucket_ms, cpu_sum, cpu_n, cpu_max, rss_sum, rss_n FROM proc_rollups
         WHERE agent_id = ?1 AND tier_ms = ?2 AND bucket_ms < ?3",
    )?;
    let mut rows = stmt.query(params![agent, MINUTE, end])?;
    while let Some(r) = rows.next()? {
        procs.push(TierRow { name: Some(r.get(0)?), bucket_ms: r.get(1)?, sums: sums(r, 2, 2)? });
    }
    let mut days: BTreeMap<i64, [Vec<TierRow>; 2]> = BTreeMap::new();
    for (k, rows) in [metrics, procs].into_iter().enumerate() {
        for row in rows {
            days.entry(day_of(row.bucket_ms)).or_default()[k].push(row);
        }
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO rollup_chunks(agent_id, day_ms, metrics, procs) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (day, [m, p]) in days {
        let m = tier_chunk::encode(&m, 7).map_err(encode_error)?;
        let p = tier_chunk::encode(&p, 2).map_err(encode_error)?;
        insert.execute(params![agent, day, m, p])?;
    }
    for table in ["metric_rollups", "proc_rollups"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE agent_id = ?1 AND tier_ms = ?2 AND bucket_ms < ?3"
        ))?
        .execute(params![agent, MINUTE, end])?;
    }
    Ok(true)
}

/// The agent's compacted per-minute buckets of metrics (`procs`: of processes called `name`)
/// that start after `after` and before `before`.
pub(crate) fn buckets(
    conn: &Connection,
    agent: &str,
    proc_name: Option<&str>,
    after: i64,
    before: i64,
) -> rusqlite::Result<Vec<TierRow>> {
    let column = if proc_name.is_some() { "procs" } else { "metrics" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {column} FROM rollup_chunks WHERE agent_id = ?1 AND day_ms > ?2 AND day_ms < ?3"
    ))?;
    let mut rows = stmt.query(params![agent, after - DAY_MS, before])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.extend(decode(r.get_ref(0)?.as_blob()?)?.into_iter().filter(|b| {
            b.bucket_ms > after && b.bucket_ms < before && b.name.as_deref() == proc_name
        }));
    }
    Ok(out)
}

/// Deletes the chunks of days wholly before `before`.
pub(crate) fn prune(conn: &Connection, before: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM rollup_chunks WHERE day_ms <= ?1")?
        .execute([before - DAY_MS])?;
    Ok(())
}

pub(crate) fn clear(conn: &Connection, agent: Option<&str>) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM rollup_chunks WHERE ?1 IS NULL OR agent_id = ?1")?
        .execute([agent])?;
    Ok(())
}
