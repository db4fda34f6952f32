//! The tiers in SQLite (`metric_rollups`, `proc_rollups`): written with the per-agent index, an
//! agent's waiting batches at a time, and read for any chart whose step is a minute or more.
//!
//! A reader adds the agent's waiting batches from its [`BacklogView`] to the buckets, but only
//! those above the agent's indexed frontier read in the same transaction: a batch indexed (and
//! so summed) after the view was taken is then counted once, from the tables.

use super::backlog::BacklogView;
use crate::storage::rollup::{
    MetricSums, ProcSums, Rollup, Sum, TIERS, bucket_start, metric_values,
};
use crate::storage::tier_chunk::TierRow;
use crate::storage::{Range, empty_history, empty_series, push_history, push_series};
use protocol::{ProcessHistory, Series};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::BTreeMap;

/// Metric columns after the key: a sum and a count per figure, and cpu's maximum.
const METRIC_SUMS: &str = "cpu_sum, cpu_n, cpu_max, mem_used_sum, mem_used_n, mem_total_sum,
    mem_total_n, disk_used_sum, disk_used_n, disk_total_sum, disk_total_n, rx_sum, rx_n, tx_sum,
    tx_n";

/// Adds one agent's batches into its buckets.
pub(crate) fn write(tx: &Connection, agent: &str, rollup: &Rollup) -> rusqlite::Result<()> {
    let mut metric = tx.prepare_cached(&format!(
        "INSERT INTO metric_rollups (agent_id, tier_ms, bucket_ms, {METRIC_SUMS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (agent_id, tier_ms, bucket_ms) DO UPDATE SET
            cpu_sum = cpu_sum + excluded.cpu_sum, cpu_n = cpu_n + excluded.cpu_n,
            cpu_max = coalesce(max(cpu_max, excluded.cpu_max), cpu_max, excluded.cpu_max),
            mem_used_sum = mem_used_sum + excluded.mem_used_sum,
            mem_used_n = mem_used_n + excluded.mem_used_n,
            mem_total_sum = mem_total_sum + excluded.mem_total_sum,
            mem_total_n = mem_total_n + excluded.mem_total_n,
            disk_used_sum = disk_used_sum + excluded.disk_used_sum,
            disk_used_n = disk_used_n + excluded.disk_used_n,
            disk_total_sum = disk_total_sum + excluded.disk_total_sum,
            disk_total_n = disk_total_n + excluded.disk_total_n,
            rx_sum = rx_sum + excluded.rx_sum, rx_n = rx_n + excluded.rx_n,
            tx_sum = tx_sum + excluded.tx_sum, tx_n = tx_n + excluded.tx_n"
    ))?;
    for ((tier, bucket), s) in &rollup.metrics {
        metric.execute(params![
            agent, tier, bucket, s[0].sum, s[0].n, s[0].max, s[1].sum, s[1].n, s[2].sum, s[2].n,
            s[3].sum, s[3].n, s[4].sum, s[4].n, s[5].sum, s[5].n, s[6].sum, s[6].n
        ])?;
    }
    let mut proc = tx.prepare_cached(
        "INSERT INTO proc_rollups (agent_id, tier_ms, name, bucket_ms, cpu_sum, cpu_n, cpu_max,
            rss_sum, rss_n)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (agent_id, tier_ms, name, bucket_ms) DO UPDATE SET
            cpu_sum = cpu_sum + excluded.cpu_sum, cpu_n = cpu_n + excluded.cpu_n,
            cpu_max = coalesce(max(cpu_max, excluded.cpu_max), cpu_max, excluded.cpu_max),
            rss_sum = rss_sum + excluded.rss_sum, rss_n = rss_n + excluded.rss_n",
    )?;
    for ((tier, name, bucket), [cpu, rss]) in &rollup.procs {
        proc.execute(params![agent, tier, name, bucket, cpu.sum, cpu.n, cpu.max, rss.sum, rss.n])?;
    }
    Ok(())
}

/// Agents whose old buckets one retention step deletes at most; the next step skips those
/// already done at the cost of one seek each.
const PRUNE_AGENTS: usize = 64;

/// Deletes each tier's buckets that start before its cutoff, for [`PRUNE_AGENTS`] agents at
/// most; returns whether agents were left for another step.
pub(crate) fn prune(conn: &Connection, cutoffs: [Option<i64>; 2]) -> rusqlite::Result<bool> {
    let mut oldest = conn.prepare_cached(
        "SELECT min(bucket_ms) FROM metric_rollups WHERE agent_id = ?1 AND tier_ms = ?2",
    )?;
    let mut metrics = conn.prepare_cached(
        "DELETE FROM metric_rollups WHERE agent_id = ?1 AND tier_ms = ?2 AND bucket_ms < ?3",
    )?;
    // Name by name along the key (a skip scan): the key leads with the name for the histories.
    let mut procs = conn.prepare_cached(
        "WITH RECURSIVE names(name) AS (
             SELECT min(name) FROM proc_rollups WHERE agent_id = ?1 AND tier_ms = ?2
             UNION ALL
             SELECT (SELECT min(name) FROM proc_rollups
                     WHERE agent_id = ?1 AND tier_ms = ?2 AND name > names.name)
             FROM names WHERE names.name IS NOT NULL)
         DELETE FROM proc_rollups WHERE agent_id = ?1 AND tier_ms = ?2
             AND name IN (SELECT name FROM names) AND bucket_ms < ?3",
    )?;
    let agents: Vec<String> = conn
        .prepare_cached("SELECT agent_id FROM agents")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(before) = cutoffs[0] {
        super::tier_chunks::prune(conn, before)?;
    }
    let (mut deleted, mut pruned) = (0, 0);
    for agent in &agents {
        let before_agent = deleted;
        for (tier, before) in TIERS.into_iter().zip(cutoffs) {
            let Some(before) = before else { continue };
            // An agent's processes age with its metrics; one without metrics is looked at in
            // full, which finds nothing to do once its old buckets are gone.
            let first: Option<i64> = oldest.query_row(params![agent, tier], |r| r.get(0))?;
            if first.is_none_or(|first| first < before) {
                deleted += metrics.execute(params![agent, tier, before])? as u64;
                deleted += procs.execute(params![agent, tier, before])? as u64;
            }
        }
        pruned += usize::from(deleted > before_agent);
        if pruned >= PRUNE_AGENTS {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One agent's rows of both tables and its compacted days (`None`: everyone's).
pub(crate) fn clear(conn: &Connection, agent: Option<&str>) -> rusqlite::Result<()> {
    super::tier_chunks::clear(conn, agent)?;
    for table in ["metric_rollups", "proc_rollups"] {
        match agent {
            Some(agent) => {
                conn.execute(&format!("DELETE FROM {table} WHERE agent_id = ?1"), [agent])
            }
            None => conn.execute(&format!("DELETE FROM {table}"), []),
        }?;
    }
    Ok(())
}

/// The chart's bucket for a tier bucket starting at `bucket_ms`: the one where it starts, the
/// first for a bucket that began before the range.
fn chart_bucket(range: Range, bucket_ms: i64) -> i64 {
    (bucket_ms.max(range.from_ms) - range.from_ms) / range.step_ms
}

/// The chart's bucket for a waiting reading at `ts_ms`, through its `tier` bucket, when that
/// overlaps the range as [`OVERLAPS`] has it.
fn waiting_bucket(range: Range, tier: i64, ts_ms: i64) -> Option<i64> {
    let start = bucket_start(tier, ts_ms);
    (start + tier > range.from_ms && start < range.to_ms).then(|| chart_bucket(range, start))
}

/// Tier buckets that overlap the range: those starting in it and the one running into it.
const OVERLAPS: &str = "agent_id = ?1 AND tier_ms = ?2 AND bucket_ms > ?3 - ?2 AND bucket_ms < ?4";

/// The per-minute buckets compacted into chunks that overlap the range as [`OVERLAPS`] has it
/// (the hourly tier is never compacted: a few rows a day).
fn compacted(
    conn: &Connection,
    agent: &str,
    proc_name: Option<&str>,
    range: Range,
    tier: i64,
) -> rusqlite::Result<Vec<TierRow>> {
    if tier != TIERS[0] {
        return Ok(Vec::new());
    }
    super::tier_chunks::buckets(conn, agent, proc_name, range.from_ms - tier, range.to_ms)
}

/// The highest id the index holds for the agent, in the reader's snapshot: waiting batches
/// above it are not in the tables yet.
fn frontier(conn: &Connection, agent: &str) -> rusqlite::Result<i64> {
    let top = conn
        .prepare_cached("SELECT max(first_id) FROM agent_batches WHERE agent_id = ?1")?
        .query_row([agent], |r| r.get::<_, Option<i64>>(0))
        .optional()?;
    Ok(top.flatten().unwrap_or(-1))
}

fn sum(r: &Row<'_>, at: usize, with_max: bool) -> rusqlite::Result<Sum> {
    let max = if with_max { r.get(at + 2)? } else { None };
    Ok(Sum { sum: r.get(at)?, n: r.get(at + 1)?, max })
}

/// `agent`'s series from the `tier`'s buckets and its waiting batches.
pub(crate) fn series(
    conn: &Connection,
    agent: &str,
    backlog: &BacklogView,
    range: Range,
    tier: i64,
) -> rusqlite::Result<Series> {
    // The read's one snapshot (see `SqliteStorage::read`): the frontier and the buckets agree.
    let top = frontier(conn, agent)?;
    let mut buckets: BTreeMap<i64, MetricSums> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT bucket_ms, {METRIC_SUMS} FROM metric_rollups WHERE {OVERLAPS}"
    ))?;
    let mut rows = stmt.query(params![agent, tier, range.from_ms, range.to_ms])?;
    while let Some(r) = rows.next()? {
        let sums = buckets.entry(chart_bucket(range, r.get(0)?)).or_default();
        sums[0].merge(sum(r, 1, true)?);
        for (i, s) in sums.iter_mut().enumerate().skip(1) {
            s.merge(sum(r, 2 + 2 * i, false)?);
        }
    }
    for row in compacted(conn, agent, None, range, tier)? {
        let sums = buckets.entry(chart_bucket(range, row.bucket_ms)).or_default();
        sums.iter_mut().zip(row.sums).for_each(|(s, c)| s.merge(c));
    }
    for e in backlog.entries.iter().filter(|e| e.first_id > top) {
        let Some(bucket) = waiting_bucket(range, tier, e.ts_ms) else { continue };
        for (_, m) in &e.metrics {
            let sums = buckets.entry(bucket).or_default();
            for (s, v) in sums.iter_mut().zip(metric_values(m)) {
                s.add(v);
            }
        }
    }
    let mut out = empty_series(agent, range);
    for (bucket, [cpu, rest @ ..]) in buckets {
        let [mem_used, mem_total, disk_used, disk_total, rx, tx] = rest.map(Sum::avg);
        let values = [cpu.avg(), cpu.max, mem_used, mem_total, disk_used, disk_total, rx, tx];
        push_series(&mut out, range, bucket, values);
    }
    Ok(out)
}

/// The history of `agent`'s processes called `name` from the `tier`'s buckets and its waiting
/// batches.
pub(crate) fn process_history(
    conn: &Connection,
    agent: &str,
    backlog: &BacklogView,
    name: &str,
    range: Range,
    tier: i64,
) -> rusqlite::Result<ProcessHistory> {
    // The read's one snapshot (see `SqliteStorage::read`): the frontier and the buckets agree.
    let top = frontier(conn, agent)?;
    let mut buckets: BTreeMap<i64, ProcSums> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT bucket_ms, cpu_sum, cpu_n, cpu_max, rss_sum, rss_n FROM proc_rollups
         WHERE {OVERLAPS} AND name = ?5"
    ))?;
    let mut rows = stmt.query(params![agent, tier, range.from_ms, range.to_ms, name])?;
    while let Some(r) = rows.next()? {
        let [cpu, rss] = buckets.entry(chart_bucket(range, r.get(0)?)).or_default();
        cpu.merge(sum(r, 1, true)?);
        rss.merge(sum(r, 4, false)?);
    }
    for row in compacted(conn, agent, Some(name), range, tier)? {
        let sums = buckets.entry(chart_bucket(range, row.bucket_ms)).or_default();
        sums.iter_mut().zip(row.sums).for_each(|(s, c)| s.merge(c));
    }
    for e in backlog.entries.iter().filter(|e| e.first_id > top) {
        let Some(bucket) = waiting_bucket(range, tier, e.ts_ms) else { continue };
        for p in e.procs.iter().filter(|p| p.name == name) {
            let [cpu, rss] = buckets.entry(bucket).or_default();
            cpu.add(p.cpu);
            rss.add(p.rss);
        }
    }
    let mut out = empty_history(agent, name, range);
    for (bucket, [cpu, rss]) in buckets {
        push_history(&mut out, range, bucket, [cpu.avg(), cpu.max, rss.avg()]);
    }
    Ok(out)
}
