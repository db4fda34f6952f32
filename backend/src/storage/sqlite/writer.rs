//! The one SQLite writer thread. It commits the jobs of all concurrent requests in one
//! transaction (group commit), answers each request only after that commit, then publishes the
//! rows live.

use super::agents::Agents;
use crate::clock::{format_ms, now_ms};
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::security::Verified;
use crate::storage::jobs::{Applied, Columns, Job, take_group};
use crate::storage::{IngestOutcome, PRUNE_CHUNK, StorageError};
use protocol::{EventRow, IngestBatch};
use rusqlite::{Connection, TransactionBehavior, params};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

pub fn run(
    mut conn: Connection,
    mut agents: Agents,
    mut rx: mpsc::Receiver<Job>,
    hub: Hub,
    metrics: Arc<Metrics>,
) {
    loop {
        let Some(first) = rx.blocking_recv() else { break };
        let (jobs, stop) = take_group(first, || rx.try_recv().ok());
        if !jobs.is_empty() {
            commit_group(&mut conn, &mut agents, jobs, &hub, &metrics);
        }
        if stop {
            break;
        }
    }
    tracing::info!("storage writer stopped; every acknowledged batch is committed");
}

/// Commits the jobs in one transaction. A failure rolls the group back and commits its jobs one
/// by one, so one bad job fails alone; savepoints per job would cost every request two more
/// statements for a case that almost never happens.
fn commit_group(
    conn: &mut Connection,
    agents: &mut Agents,
    jobs: Vec<Job>,
    hub: &Hub,
    metrics: &Metrics,
) {
    let started = Instant::now();
    let count = jobs.len();
    let want_rows = hub.has_subscribers();
    let now = now_ms();
    let outcome = (|| -> rusqlite::Result<Vec<Applied>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied = jobs
            .iter()
            .map(|job| apply(&tx, agents, job, now, want_rows))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        agents.write_pending(&tx)?;
        tx.commit()?;
        Ok(applied)
    })();
    let applied = match outcome {
        Ok(applied) => applied,
        Err(e) => {
            agents.rollback();
            if count == 1 {
                tracing::warn!(error = %e, "a request could not be stored; it was refused");
                jobs.into_iter().for_each(|job| job.fail(StorageError::from_commit(&e)));
            } else {
                tracing::warn!(error = %e, requests = count, "group commit failed; retrying one by one");
                for job in jobs {
                    commit_group(conn, agents, vec![job], hub, metrics);
                }
            }
            return;
        }
    };
    agents.commit();
    metrics.commit_jobs.observe(count as f64);
    metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
    for (job, result) in jobs.into_iter().zip(applied) {
        job.release(result, hub, metrics);
    }
}

fn apply(
    conn: &Connection,
    agents: &mut Agents,
    job: &Job,
    now: i64,
    want_rows: bool,
) -> rusqlite::Result<Applied> {
    match job {
        Job::Ingest { batch, ts_ms, verified, .. } => {
            let (outcome, rows) = ingest(conn, batch, *ts_ms, verified, now, want_rows)?;
            if !outcome.duplicate {
                agents.observe(batch, *ts_ms, now);
            }
            Ok(Applied::Ingest(outcome, rows))
        }
        Job::Clear { agent_id, .. } => {
            let n = clear(conn, agent_id.as_deref())?;
            agents.clear(agent_id.as_deref());
            Ok(Applied::Count(n))
        }
        Job::Prune { before_ms, .. } => prune(conn, *before_ms, now).map(Applied::Count),
        Job::Ping { .. } | Job::Shutdown => Ok(Applied::Unit),
    }
}

fn ingest(
    conn: &Connection,
    batch: &IngestBatch,
    ts_ms: i64,
    verified: &Verified,
    now: i64,
    want_rows: bool,
) -> rusqlite::Result<(IngestOutcome, Vec<EventRow>)> {
    conn.prepare_cached("INSERT INTO replay_log(expires_ms, signature) VALUES (?1, ?2)")?
        .execute(params![verified.expires_ms, &verified.signature[..]])?;
    if let Some(batch_id) = &batch.batch_id {
        let fresh = conn
            .prepare_cached(
                "INSERT INTO batches(agent_id, batch_id, received_ms, stored) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![batch.agent_id, batch_id, now, batch.events.len()])?;
        if fresh == 0 {
            return Ok((IngestOutcome { stored: 0, duplicate: true }, Vec::new()));
        }
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO events(agent_id, ts, ts_ms, platform, event_type, cpu, mem_free, mem_total,
            disk_free, disk_total, net_rx_bps, net_tx_bps, uptime_s, pid, proc_name, rss, ingested_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?;
    let ingested_at = if want_rows { format_ms(now) } else { String::new() };
    let mut rows = Vec::with_capacity(if want_rows { batch.events.len() } else { 0 });
    for event in &batch.events {
        let c = Columns::of(event);
        insert.execute(params![
            batch.agent_id,
            batch.ts,
            ts_ms,
            batch.platform,
            c.event_type,
            c.cpu,
            c.mem_free,
            c.mem_total,
            c.disk_free,
            c.disk_total,
            c.net_rx_bps,
            c.net_tx_bps,
            c.uptime_s,
            c.pid,
            c.proc_name,
            c.rss,
            now,
        ])?;
        if want_rows {
            rows.push(c.to_row(batch, conn.last_insert_rowid(), &ingested_at));
        }
    }
    Ok((IngestOutcome { stored: batch.events.len(), duplicate: false }, rows))
}

fn clear(conn: &Connection, agent_id: Option<&str>) -> rusqlite::Result<usize> {
    match agent_id {
        Some(agent) => {
            let n = conn.execute("DELETE FROM events WHERE agent_id = ?1", [agent])?;
            conn.execute("DELETE FROM agents WHERE agent_id = ?1", [agent])?;
            Ok(n)
        }
        None => {
            let n = conn.execute("DELETE FROM events", [])?;
            conn.execute("DELETE FROM agents", [])?;
            Ok(n)
        }
    }
}

fn prune(conn: &Connection, before_ms: Option<i64>, now: i64) -> rusqlite::Result<usize> {
    conn.execute("DELETE FROM replay_log WHERE expires_ms <= ?1", [now])?;
    let Some(before) = before_ms else { return Ok(0) };
    conn.execute("DELETE FROM batches WHERE received_ms < ?1", [before])?;
    // Ids grow with ingest time, so the oldest events are the lowest ids: look only at the
    // first chunk instead of scanning the table for old rows.
    conn.execute(
        "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?2)
            AND ingested_ms < ?1",
        params![before, PRUNE_CHUNK as i64],
    )
}

/// The signatures the replay guard must still refuse after a restart.
pub fn load_replay_guard(conn: &Connection, now: i64) -> rusqlite::Result<Vec<(i64, [u8; 32])>> {
    let mut stmt =
        conn.prepare("SELECT expires_ms, signature FROM replay_log WHERE expires_ms > ?1")?;
    let rows = stmt.query_map([now], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (expires, sig) = row?;
        if let Ok(sig) = <[u8; 32]>::try_from(sig.as_slice()) {
            out.push((expires, sig));
        }
    }
    Ok(out)
}
