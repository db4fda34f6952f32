//! Read queries. Each takes a plain connection so it runs on the reader pool.

use crate::clock::format_ms;
use crate::storage::{
    EVENT_COLUMNS, EventFilter, Range, empty_history, empty_series, liveness, push_history,
    push_series,
};
use protocol::{AgentSummary, EventRow, ProcessHistory, ProcessesResponse, Series};
use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

fn event_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        ts: r.get(2)?,
        platform: r.get(3)?,
        event_type: r.get(4)?,
        cpu: r.get(5)?,
        mem_free: r.get(6)?,
        pid: r.get(7)?,
        proc_name: r.get(8)?,
        rss: r.get(9)?,
        ingested_at: format_ms(r.get(10)?),
        mem_total: r.get(11)?,
        disk_free: r.get(12)?,
        disk_total: r.get(13)?,
        net_rx_bps: r.get(14)?,
        net_tx_bps: r.get(15)?,
        uptime_s: r.get(16)?,
    })
}

/// Newest first by id, which is insertion order, so rows of the same second keep their order.
pub fn events(conn: &Connection, f: &EventFilter) -> rusqlite::Result<Vec<EventRow>> {
    // Only the present filters enter the SQL, so SQLite can pick the matching index.
    let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    if let Some(agent) = &f.agent_id {
        sql.push_str(" AND agent_id = ?");
        args.push(agent.clone().into());
    }
    if let Some(kind) = &f.event_type {
        sql.push_str(" AND event_type = ?");
        args.push(kind.clone().into());
    }
    if let Some(before) = f.before_id {
        sql.push_str(" AND id < ?");
        args.push(before.into());
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(i64::from(f.limit).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), event_row)?;
    rows.collect()
}

/// Every agent with its latest figures; `online` is judged against its own interval.
pub fn agents(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<AgentSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT agent_id, platform, first_seen_ms, last_seen_ms, interval_ms, metric_ts, cpu,
                mem_free, mem_total, disk_free, disk_total, net_rx_bps, net_tx_bps, uptime_s
         FROM agents ORDER BY agent_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let last_seen_ms: i64 = r.get(3)?;
        let (ago_s, interval_s, online) = liveness(now_ms, last_seen_ms, r.get(4)?);
        Ok(AgentSummary {
            agent_id: r.get(0)?,
            platform: r.get(1)?,
            first_seen: format_ms(r.get(2)?),
            last_seen: format_ms(last_seen_ms),
            last_seen_ago_s: ago_s,
            interval_s,
            online,
            metric_ts: r.get(5)?,
            cpu: r.get(6)?,
            mem_free: r.get(7)?,
            mem_total: r.get(8)?,
            disk_free: r.get(9)?,
            disk_total: r.get(10)?,
            net_rx_bps: r.get(11)?,
            net_tx_bps: r.get(12)?,
            uptime_s: r.get(13)?,
        })
    })?;
    rows.collect()
}

pub fn agent_exists(conn: &Connection, agent_id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM agents WHERE agent_id = ?1")?.exists([agent_id])
}

pub fn series(conn: &Connection, agent_id: &str, range: Range) -> rusqlite::Result<Series> {
    let mut stmt = conn.prepare_cached(
        "SELECT (ts_ms - ?2) / ?4 AS bucket, avg(cpu), max(cpu),
                avg(mem_total - mem_free), avg(mem_total),
                avg(disk_total - disk_free), avg(disk_total),
                avg(net_rx_bps), avg(net_tx_bps)
         FROM events
         WHERE agent_id = ?1 AND event_type = 'metric' AND ts_ms >= ?2 AND ts_ms < ?3
         GROUP BY bucket ORDER BY bucket",
    )?;
    let mut s = empty_series(agent_id, range);
    let mut rows = stmt.query(params![agent_id, range.from_ms, range.to_ms, range.step_ms])?;
    while let Some(r) = rows.next()? {
        let mut v = [None; 8];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = r.get(i + 1)?;
        }
        push_series(&mut s, range, r.get(0)?, v);
    }
    Ok(s)
}

pub fn latest_processes(conn: &Connection, agent_id: &str) -> rusqlite::Result<ProcessesResponse> {
    let latest: Option<i64> = conn
        .prepare_cached(
            "SELECT max(ts_ms) FROM events WHERE agent_id = ?1 AND event_type = 'proc'",
        )?
        .query_row([agent_id], |r| r.get(0))?;
    let mut out = ProcessesResponse { agent_id: agent_id.to_owned(), ts: None, processes: vec![] };
    let Some(ts_ms) = latest else { return Ok(out) };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events
         WHERE agent_id = ?1 AND event_type = 'proc' AND ts_ms = ?2
         ORDER BY cpu DESC, id"
    ))?;
    out.processes =
        stmt.query_map(params![agent_id, ts_ms], event_row)?.collect::<Result<_, _>>()?;
    out.ts = out.processes.first().map(|p| p.ts.clone());
    Ok(out)
}

pub fn process_history(
    conn: &Connection,
    agent_id: &str,
    name: &str,
    range: Range,
) -> rusqlite::Result<ProcessHistory> {
    let mut stmt = conn.prepare_cached(
        "SELECT (ts_ms - ?3) / ?5 AS bucket, avg(cpu), max(cpu), avg(rss)
         FROM events
         WHERE agent_id = ?1 AND event_type = 'proc' AND ts_ms >= ?3 AND ts_ms < ?4
           AND proc_name = ?2
         GROUP BY bucket ORDER BY bucket",
    )?;
    let mut h = empty_history(agent_id, name, range);
    let mut rows =
        stmt.query(params![agent_id, name, range.from_ms, range.to_ms, range.step_ms])?;
    while let Some(r) = rows.next()? {
        push_history(&mut h, range, r.get(0)?, [r.get(1)?, r.get(2)?, r.get(3)?]);
    }
    Ok(h)
}
