//! Read queries, the SQLite ones in PostgreSQL's dialect.

use crate::clock::format_ms;
use crate::storage::chunk::ChunkBatch;
use crate::storage::codec::{self, KIND_PROC, kind_mask};
use crate::storage::notices::{self, NoticeFilter};
use crate::storage::rollup::tier_for;
use crate::storage::{
    EVENT_COLUMNS, EventFilter, Range, StorageError, empty_history, empty_series, liveness,
    push_history, push_series,
};
use protocol::{
    AgentSummary, EventRow, NoticeLevel, NoticeRow, ProcessHistory, ProcessesResponse, Series,
    ServicesResponse,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row};

/// `batch_log.kinds` of a batch with processes.
const PROC: i16 = KIND_PROC as i16;

fn uint(r: &Row, i: usize) -> Option<u64> {
    r.get::<_, Option<i64>>(i).map(|v| v.max(0) as u64)
}

fn event_row(r: &Row) -> EventRow {
    EventRow {
        id: r.get(0),
        agent_id: r.get(1),
        ts: r.get(2),
        platform: r.get(3),
        event_type: r.get(4),
        cpu: r.get(5),
        mem_free: uint(r, 6),
        pid: r.get::<_, Option<i64>>(7).and_then(|p| u32::try_from(p).ok()),
        proc_name: r.get(8),
        rss: uint(r, 9),
        ingested_at: format_ms(r.get(10)),
        mem_total: uint(r, 11),
        disk_free: uint(r, 12),
        disk_total: uint(r, 13),
        net_rx_bps: r.get(14),
        net_tx_bps: r.get(15),
        uptime_s: uint(r, 16),
    }
}

/// The columns [`logged`] reads from `batch_log`.
const LOGGED: &str = "first_id, agent_id, ts, ts_ms, platform, ingested_ms, events::text";

/// A log row: its agent and its batch.
fn logged(r: &Row) -> Result<(String, ChunkBatch), StorageError> {
    let events = codec::decode(r.get::<_, &str>(6)).map_err(StorageError::Damaged)?;
    let batch = ChunkBatch {
        first_id: r.get(0),
        ts: r.get(2),
        ts_ms: r.get(3),
        platform: r.get(4),
        ingested_ms: r.get(5),
        key: None,
        events,
    };
    Ok((r.get(1), batch))
}

/// Batches fetched by the first round of a page; each round after fetches twice as many, and
/// none more than the page still needs plus the batch that straddles `before_id`.
const FIRST_ROUND: usize = 32;

/// Newest first by id, which is insertion order: the log's rows by `first_id`, a round of
/// batches at a time, until the page is full.
pub(crate) async fn events(
    client: &Client,
    f: &EventFilter,
) -> Result<Vec<EventRow>, StorageError> {
    let limit = f.limit as usize;
    let before = f.before_id.unwrap_or(i64::MAX);
    let mask = i16::try_from(kind_mask(f.event_type.as_deref())).unwrap_or(i16::MAX);
    let sql = format!(
        "SELECT {LOGGED} FROM batch_log WHERE first_id < $1 AND kinds & $2 != 0 {}
         ORDER BY first_id DESC LIMIT $3",
        if f.agent_id.is_some() { "AND agent_id = $4" } else { "" }
    );
    let statement = client.prepare(&sql).await?;
    let mut out: Vec<EventRow> = Vec::with_capacity(limit.min(500));
    let (mut below, mut round) = (before, FIRST_ROUND);
    while out.len() < limit {
        let want = round.min(limit - out.len() + 1);
        let n = i64::try_from(want).unwrap_or(i64::MAX);
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&below, &mask, &n];
        if let Some(agent) = &f.agent_id {
            args.push(agent);
        }
        let rows = client.query(&statement, &args).await?;
        for r in &rows {
            let (agent, batch) = logged(r)?;
            below = batch.first_id;
            let wanted = codec::rows(agent, batch).into_iter().filter(|row| {
                row.id < before && f.event_type.as_deref().is_none_or(|t| t == row.event_type)
            });
            out.extend(wanted.take(limit - out.len()));
        }
        if rows.len() < want {
            break;
        }
        round = round.saturating_mul(2);
    }
    Ok(out)
}

/// The rows of other replicas' commits, for the live feed: each id's batch is the log row with
/// the highest `first_id` at or below it.
pub(crate) async fn events_by_id(
    client: &Client,
    ids: &[i64],
) -> Result<Vec<EventRow>, StorageError> {
    let sql = format!(
        "SELECT {LOGGED} FROM batch_log WHERE first_id IN (
             SELECT (SELECT max(first_id) FROM batch_log WHERE first_id <= x.id)
             FROM unnest($1::int8[]) AS x(id))"
    );
    let wanted: std::collections::HashSet<i64> = ids.iter().copied().collect();
    let mut out = Vec::with_capacity(ids.len());
    for r in client.query(&sql, &[&ids]).await? {
        let (agent, batch) = logged(&r)?;
        out.extend(codec::rows(agent, batch).into_iter().filter(|row| wanted.contains(&row.id)));
    }
    out.sort_unstable_by_key(|row| row.id);
    Ok(out)
}

pub(crate) async fn agents(
    client: &Client,
    now_ms: i64,
    only: Option<&str>,
) -> Result<Vec<AgentSummary>, Error> {
    let rows = client
        .query(
            "SELECT agent_id, platform, first_seen_ms, last_seen_ms, interval_ms, metric_ts, cpu,
                    mem_free, mem_total, disk_free, disk_total, net_rx_bps, net_tx_bps, uptime_s,
                    agent_version, agent_uptime_s, drives, host
             FROM agents WHERE agent_id = $1 OR $1 IS NULL ORDER BY agent_id COLLATE \"C\"",
            &[&only],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let last_seen_ms: i64 = r.get(3);
            let interval = r.get::<_, Option<f64>>(4);
            let (ago_s, interval_s, online) = liveness(now_ms, last_seen_ms, interval);
            AgentSummary {
                agent_id: r.get(0),
                platform: r.get(1),
                first_seen: format_ms(r.get(2)),
                last_seen: format_ms(last_seen_ms),
                last_seen_ago_s: ago_s,
                interval_s,
                online,
                metric_ts: r.get(5),
                cpu: r.get(6),
                mem_free: uint(r, 7),
                mem_total: uint(r, 8),
                disk_free: uint(r, 9),
                disk_total: uint(r, 10),
                net_rx_bps: r.get(11),
                net_tx_bps: r.get(12),
                uptime_s: uint(r, 13),
                agent_version: r.get(14),
                agent_uptime_s: uint(r, 15),
                drives: r
                    .get::<_, Option<&str>>(16)
                    .and_then(|d| serde_json::from_str(d).ok())
                    .unwrap_or_default(),
                host: r.get::<_, Option<&str>>(17).and_then(|h| serde_json::from_str(h).ok()),
            }
        })
        .collect())
}

pub(crate) async fn agent_exists(client: &Client, agent_id: &str) -> Result<bool, Error> {
    Ok(client.query_opt("SELECT 1 FROM agents WHERE agent_id = $1", &[&agent_id]).await?.is_some())
}

/// From a tier when the step allows one, otherwise from every reading.
pub(crate) async fn series(client: &Client, agent_id: &str, range: Range) -> Result<Series, Error> {
    if let Some(tier) = tier_for(range.step_ms) {
        return super::rollups::series(client, agent_id, range, tier).await;
    }
    let rows = client
        .query(
            "SELECT (ts_ms - $2) / $4 AS bucket, avg(cpu), max(cpu),
                    avg(mem_total - mem_free)::float8, avg(mem_total)::float8,
                    avg(disk_total - disk_free)::float8, avg(disk_total)::float8,
                    avg(net_rx_bps), avg(net_tx_bps)
             FROM events
             WHERE agent_id = $1 AND event_type = 'metric' AND ts_ms >= $2 AND ts_ms < $3
             GROUP BY bucket ORDER BY bucket",
            &[&agent_id, &range.from_ms, &range.to_ms, &range.step_ms],
        )
        .await?;
    Ok(series_of(agent_id, range, &rows))
}

pub(crate) async fn latest_processes(
    client: &Client,
    agent_id: &str,
) -> Result<ProcessesResponse, Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE agent_id = $1 AND event_type = 'proc' AND ts_ms = (
             SELECT max(ts_ms) FROM batch_log WHERE agent_id = $1 AND kinds & $2 != 0)
         ORDER BY cpu DESC NULLS LAST, id"
    );
    let processes: Vec<EventRow> =
        client.query(&sql, &[&agent_id, &PROC]).await?.iter().map(event_row).collect();
    let ts = processes.first().map(|p| p.ts.clone());
    Ok(ProcessesResponse { agent_id: agent_id.to_owned(), ts, processes })
}

/// From a tier when the step allows one, otherwise from every reading.
pub(crate) async fn process_history(
    client: &Client,
    agent_id: &str,
    name: &str,
    range: Range,
) -> Result<ProcessHistory, Error> {
    if let Some(tier) = tier_for(range.step_ms) {
        return super::rollups::process_history(client, agent_id, name, range, tier).await;
    }
    let rows = client
        .query(
            "SELECT (ts_ms - $3) / $5 AS bucket, avg(cpu), max(cpu), avg(rss)::float8
             FROM events
             WHERE agent_id = $1 AND event_type = 'proc' AND ts_ms >= $3 AND ts_ms < $4
               AND proc_name = $2
             GROUP BY bucket ORDER BY bucket",
            &[&agent_id, &name, &range.from_ms, &range.to_ms, &range.step_ms],
        )
        .await?;
    Ok(history_of(agent_id, name, range, &rows))
}

/// Rows of (bucket, cpu avg, cpu max, memory used and total, disk used and total, network in
/// and out) as a series.
pub(super) fn series_of(agent_id: &str, range: Range, rows: &[Row]) -> Series {
    let mut s = empty_series(agent_id, range);
    for r in rows {
        let v = [1, 2, 3, 4, 5, 6, 7, 8].map(|i| r.get::<_, Option<f64>>(i));
        push_series(&mut s, range, r.get(0), v);
    }
    s
}

/// Rows of (bucket, cpu avg, cpu max, rss avg) as a process's history.
pub(super) fn history_of(agent_id: &str, name: &str, range: Range, rows: &[Row]) -> ProcessHistory {
    let mut h = empty_history(agent_id, name, range);
    for r in rows {
        push_history(&mut h, range, r.get(0), [1, 2, 3].map(|i| r.get::<_, Option<f64>>(i)));
    }
    h
}

pub(crate) async fn services(client: &Client, agent_id: &str) -> Result<ServicesResponse, Error> {
    let row = client.query_opt(notices::SELECT_SERVICES, &[&agent_id]).await?;
    Ok(notices::services_of(agent_id, row.map(|r| (r.get(0), r.get(1)))))
}

pub(crate) async fn notices(client: &Client, f: &NoticeFilter) -> Result<Vec<NoticeRow>, Error> {
    let rows = client
        .query(
            notices::SELECT_NOTICES,
            &[&f.agent_id, &f.before(), &f.kind(), &f.level(), &i64::from(f.limit)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            notices::notice_row(
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
                r.get(7),
            )
        })
        .collect())
}

pub(crate) async fn count_log_notices(
    client: &Client,
    agent_id: &str,
    level: NoticeLevel,
    since_ms: i64,
) -> Result<u64, Error> {
    let n: i64 = client
        .query_one(notices::COUNT_LOG_NOTICES, &[&agent_id, &level.as_str(), &since_ms])
        .await?
        .get(0);
    Ok(n.max(0) as u64)
}
