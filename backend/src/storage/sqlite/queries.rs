//! Read queries. Each takes a plain connection so it runs on the reader pool, and the view of the
//! agent's batches that are not indexed yet (taken before the query, so that what the index
//! gained since is found below [`BacklogView::boundary`] and not counted twice).

use super::backlog::{BacklogView, decode};
use super::{chunks, rollups};
use crate::storage::chunk::ChunkBatch;
use crate::storage::codec::{self, KIND_METRIC, KIND_PROC, kind_mask};
use crate::storage::notices::{self, NoticeFilter};
use crate::storage::rollup::{MetricSums, ProcSums, Sum, metric_values, tier_for};
use crate::storage::{EventFilter, Range, empty_history, empty_series, push_history, push_series};
use protocol::{
    EventRow, NoticeLevel, NoticeRow, ProcessHistory, ProcessesResponse, Series, ServicesResponse,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::BTreeMap;

/// The columns [`logged`] reads, from `batch_log` aliased `l`.
const LOGGED: &str = "l.first_id, l.agent_id, l.ts, l.ts_ms, l.platform, l.ingested_ms, l.events";

/// A batch read back from the log or from a chunk.
struct Logged {
    agent_id: String,
    b: ChunkBatch,
}

fn logged(r: &Row<'_>) -> rusqlite::Result<Logged> {
    Ok(Logged {
        agent_id: r.get(1)?,
        b: ChunkBatch {
            first_id: r.get(0)?,
            ts: r.get(2)?,
            ts_ms: r.get(3)?,
            platform: r.get(4)?,
            ingested_ms: r.get(5)?,
            key: None,
            events: decode(&r.get::<_, String>(6)?)?,
        },
    })
}

impl Logged {
    fn compacted(agent_id: &str, b: ChunkBatch) -> Self {
        Logged { agent_id: agent_id.to_owned(), b }
    }

    /// The batch's events as rows, newest first.
    fn rows(self) -> Vec<EventRow> {
        codec::rows(self.agent_id, self.b)
    }
}

/// The agent's waiting batches that pass `keep`, newest first, read from the log.
fn waiting(
    conn: &Connection,
    backlog: &BacklogView,
    keep: impl Fn(i64, i64, i64) -> bool,
) -> rusqlite::Result<Vec<Logged>> {
    let mut by_id =
        conn.prepare_cached(&format!("SELECT {LOGGED} FROM batch_log l WHERE first_id = ?1"))?;
    let mut out = Vec::new();
    for e in backlog.entries.iter().rev().filter(|e| keep(e.first_id, e.ts_ms, e.kinds)) {
        // Missing when a clear took it after the view was taken.
        if let Some(b) = by_id.query_row([e.first_id], logged).optional()? {
            out.push(b);
        }
    }
    Ok(out)
}

/// Newest first by id, which is insertion order, so rows of the same second keep their order.
/// The log's rows first; then the chunks, whose ids interleave with the log's (an agent's
/// chunks are older than its log, not than another agent's), until none can hold an id above
/// the page's lowest.
pub(crate) fn events(
    conn: &Connection,
    f: &EventFilter,
    backlog: &BacklogView,
) -> rusqlite::Result<Vec<EventRow>> {
    let before = f.before_id.unwrap_or(i64::MAX);
    let mask = kind_mask(f.event_type.as_deref());
    let limit = f.limit as usize;
    let mut out = Vec::with_capacity(limit.min(500));
    if limit == 0 {
        return Ok(out);
    }
    let wanted = |row: &EventRow| {
        row.id < before && f.event_type.as_deref().is_none_or(|t| t == row.event_type)
    };
    // Adds the batch's matching events, newest first; true once the page is full.
    let take = |b: Logged, out: &mut Vec<EventRow>| -> bool {
        for row in b.rows() {
            if wanted(&row) {
                out.push(row);
                if out.len() >= limit {
                    return true;
                }
            }
        }
        false
    };
    let (mut stmt, args) = match &f.agent_id {
        Some(agent) => {
            let mut full = false;
            for b in waiting(conn, backlog, |id, _, kinds| id < before && kinds & mask != 0)? {
                if take(b, &mut out) {
                    full = true;
                    break;
                }
            }
            let stmt = conn.prepare_cached(&format!(
                "SELECT {LOGGED} FROM agent_batches a JOIN batch_log l ON l.first_id = a.first_id
                 WHERE a.agent_id = ?1 AND a.first_id < ?2 AND a.kinds & ?3 != 0
                 ORDER BY a.first_id DESC"
            ))?;
            let args =
                vec![agent.clone().into(), before.min(backlog.boundary()).into(), mask.into()];
            (if full { None } else { Some(stmt) }, args)
        }
        None => {
            let stmt = conn.prepare_cached(&format!(
                "SELECT {LOGGED} FROM batch_log l WHERE l.first_id < ?1 AND l.kinds & ?2 != 0
                 ORDER BY l.first_id DESC"
            ))?;
            (Some(stmt), vec![rusqlite::types::Value::from(before), mask.into()])
        }
    };
    if let Some(stmt) = stmt.as_mut() {
        let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
        while let Some(r) = rows.next()? {
            if take(logged(r)?, &mut out) {
                break;
            }
        }
    }
    chunks::newest_first(conn, f.agent_id.as_deref(), before, mask, |last_id, agent, batches| {
        if out.len() >= limit && out.last().is_some_and(|lowest| lowest.id > last_id) {
            return false;
        }
        for b in batches {
            out.extend(Logged::compacted(agent, b).rows().into_iter().filter(&wanted));
        }
        out.sort_unstable_by_key(|r| std::cmp::Reverse(r.id));
        out.truncate(limit);
        true
    })?;
    Ok(out)
}

fn bucket_of(range: Range, ts_ms: i64) -> Option<i64> {
    (range.from_ms..range.to_ms).contains(&ts_ms).then(|| (ts_ms - range.from_ms) / range.step_ms)
}

/// A sum from SQL: `sum()` is NULL over no rows.
fn summed(r: &Row<'_>, at: usize, max: Option<f64>) -> rusqlite::Result<Sum> {
    Ok(Sum { sum: r.get::<_, Option<f64>>(at)?.unwrap_or(0.0), n: r.get(at + 1)?, max })
}

/// From a tier when the step allows one, otherwise from every reading.
pub(crate) fn series(
    conn: &Connection,
    agent_id: &str,
    backlog: &BacklogView,
    range: Range,
) -> rusqlite::Result<Series> {
    if let Some(tier) = tier_for(range.step_ms) {
        return rollups::series(conn, agent_id, backlog, range, tier);
    }
    let mut buckets: BTreeMap<i64, MetricSums> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT (ts_ms - ?2) / ?4 AS bucket,
                sum(cpu), count(cpu), max(cpu),
                sum(mem_total - mem_free), count(mem_total - mem_free),
                sum(mem_total), count(mem_total),
                sum(disk_total - disk_free), count(disk_total - disk_free),
                sum(disk_total), count(disk_total),
                sum(net_rx_bps), count(net_rx_bps), sum(net_tx_bps), count(net_tx_bps)
         FROM agent_metrics
         WHERE agent_id = ?1 AND ts_ms >= ?2 AND ts_ms < ?3 AND id < ?5
         GROUP BY bucket",
    )?;
    let mut rows = stmt.query(params![
        agent_id,
        range.from_ms,
        range.to_ms,
        range.step_ms,
        backlog.boundary()
    ])?;
    while let Some(r) = rows.next()? {
        let sums = buckets.entry(r.get(0)?).or_default();
        sums[0].merge(summed(r, 1, r.get(3)?)?);
        for (i, s) in sums.iter_mut().enumerate().skip(1) {
            s.merge(summed(r, 2 + 2 * i, None)?);
        }
    }
    let compacted = chunks::in_range(conn, agent_id, range.from_ms, range.to_ms, KIND_METRIC)?;
    let compacted = compacted.iter().filter(|b| b.first_id < backlog.boundary());
    let readings =
        backlog.entries.iter().flat_map(|e| e.metrics.iter().map(|(_, m)| (e.ts_ms, m))).chain(
            compacted.flat_map(|b| b.events.iter().filter(|e| e.is_metric()).map(|m| (b.ts_ms, m))),
        );
    for (ts_ms, m) in readings {
        let Some(bucket) = bucket_of(range, ts_ms) else { continue };
        let sums = buckets.entry(bucket).or_default();
        for (s, v) in sums.iter_mut().zip(metric_values(m)) {
            s.add(v);
        }
    }
    let mut s = empty_series(agent_id, range);
    for (bucket, [cpu, rest @ ..]) in buckets {
        let [mem_used, mem_total, disk_used, disk_total, rx, tx] = rest.map(Sum::avg);
        push_series(
            &mut s,
            range,
            bucket,
            [cpu.avg(), cpu.max, mem_used, mem_total, disk_used, disk_total, rx, tx],
        );
    }
    Ok(s)
}

/// The agent's batches holding processes with agent times in `[from, to)`. (`+first_id` keeps
/// SQLite on the time index: by the primary key it would read all of the agent's batches.)
fn proc_batches(
    conn: &Connection,
    agent_id: &str,
    backlog: &BacklogView,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<Logged>> {
    let in_range = |ts: i64| (from_ms..to_ms).contains(&ts);
    let mut out = waiting(conn, backlog, |_, ts, kinds| kinds & KIND_PROC != 0 && in_range(ts))?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {LOGGED} FROM agent_batches a JOIN batch_log l ON l.first_id = a.first_id
         WHERE a.agent_id = ?1 AND a.ts_ms >= ?2 AND a.ts_ms < ?3 AND a.kinds & ?4 != 0
           AND +a.first_id < ?5"
    ))?;
    let rows =
        stmt.query_map(params![agent_id, from_ms, to_ms, KIND_PROC, backlog.boundary()], logged)?;
    for b in rows {
        out.push(b?);
    }
    let compacted = chunks::in_range(conn, agent_id, from_ms, to_ms, KIND_PROC)?;
    out.extend(
        compacted
            .into_iter()
            .filter(|b| b.first_id < backlog.boundary())
            .map(|b| Logged::compacted(agent_id, b)),
    );
    Ok(out)
}

pub(crate) fn latest_processes(
    conn: &Connection,
    agent_id: &str,
    backlog: &BacklogView,
) -> rusqlite::Result<ProcessesResponse> {
    let mut out = ProcessesResponse { agent_id: agent_id.to_owned(), ts: None, processes: vec![] };
    let waiting =
        backlog.entries.iter().filter(|e| e.kinds & KIND_PROC != 0).map(|e| e.ts_ms).max();
    let indexed: Option<i64> = conn
        .prepare_cached(
            "SELECT ts_ms FROM agent_batches
             WHERE agent_id = ?1 AND kinds & ?2 != 0 AND +first_id < ?3
             ORDER BY ts_ms DESC LIMIT 1",
        )?
        .query_row(params![agent_id, KIND_PROC, backlog.boundary()], |r| r.get(0))
        .optional()?;
    let known = waiting.max(indexed);
    let compacted = chunks::latest_after(conn, agent_id, KIND_PROC, known.unwrap_or(i64::MIN))?;
    let Some(ts_ms) = known.max(compacted) else { return Ok(out) };
    for b in proc_batches(conn, agent_id, backlog, ts_ms, ts_ms + 1)? {
        out.processes.extend(b.rows().into_iter().filter(|r| r.event_type == "proc"));
    }
    out.processes.sort_by(|a, b| {
        let cpu = |r: &EventRow| r.cpu.unwrap_or(0.0);
        cpu(b).total_cmp(&cpu(a)).then(a.id.cmp(&b.id))
    });
    out.ts = out.processes.first().map(|p| p.ts.clone());
    Ok(out)
}

/// From a tier when the step allows one, otherwise from every reading.
pub(crate) fn process_history(
    conn: &Connection,
    agent_id: &str,
    backlog: &BacklogView,
    name: &str,
    range: Range,
) -> rusqlite::Result<ProcessHistory> {
    if let Some(tier) = tier_for(range.step_ms) {
        return rollups::process_history(conn, agent_id, backlog, name, range, tier);
    }
    let mut buckets: BTreeMap<i64, ProcSums> = BTreeMap::new();
    for Logged { b, .. } in proc_batches(conn, agent_id, backlog, range.from_ms, range.to_ms)? {
        let Some(bucket) = bucket_of(range, b.ts_ms) else { continue };
        for p in b.events {
            if p.is_proc() && p.name.as_deref() == Some(name) {
                let [cpu, rss] = buckets.entry(bucket).or_default();
                cpu.add(p.cpu);
                rss.add(p.rss.map(|r| r as f64));
            }
        }
    }
    let mut h = empty_history(agent_id, name, range);
    for (bucket, [cpu, rss]) in buckets {
        push_history(&mut h, range, bucket, [cpu.avg(), cpu.max, rss.avg()]);
    }
    Ok(h)
}

pub(super) fn services(conn: &Connection, agent_id: &str) -> rusqlite::Result<ServicesResponse> {
    let row = conn
        .prepare_cached(notices::SELECT_SERVICES)?
        .query_row([agent_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(notices::services_of(agent_id, row))
}

pub(super) fn notices(conn: &Connection, f: &NoticeFilter) -> rusqlite::Result<Vec<NoticeRow>> {
    let mut stmt = conn.prepare_cached(notices::SELECT_NOTICES)?;
    let rows = stmt.query_map(
        params![f.agent_id, f.before(), f.kind(), f.level(), i64::from(f.limit)],
        |r| {
            let (kind, level): (String, String) = (r.get(3)?, r.get(4)?);
            Ok(notices::notice_row(
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                &kind,
                &level,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        },
    )?;
    rows.collect()
}

pub(super) fn count_log_notices(
    conn: &Connection,
    agent_id: &str,
    level: NoticeLevel,
    since_ms: i64,
) -> rusqlite::Result<u64> {
    conn.prepare_cached(notices::COUNT_LOG_NOTICES)?
        .query_row(params![agent_id, level.as_str(), since_ms], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}
