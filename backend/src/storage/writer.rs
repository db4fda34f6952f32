//! The one writer thread. It commits the jobs of all concurrent requests in one transaction
//! (group commit), answers each request only after that commit, then publishes the rows live.

use super::StorageError;
use crate::clock::{format_ms, now_ms};
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::security::Verified;
use protocol::{Event, EventRow, IngestBatch};
use rusqlite::{Connection, TransactionBehavior, params};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// At most this many requests share one transaction, so one commit never grows unbounded.
const MAX_GROUP: usize = 256;
/// Rows deleted per retention step, so pruning never holds the write lock for long.
pub const PRUNE_CHUNK: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    pub stored: usize,
    pub duplicate: bool,
}

type Reply<T> = oneshot::Sender<Result<T, StorageError>>;

#[derive(Debug)]
pub enum Job {
    Ingest {
        batch: IngestBatch,
        ts_ms: i64,
        verified: Verified,
        reply: Reply<IngestOutcome>,
    },
    Clear {
        agent_id: Option<String>,
        reply: Reply<usize>,
    },
    /// Takes the write lock and commits nothing: proves the database is writable.
    Ping {
        reply: Reply<()>,
    },
    /// Deletes up to [`PRUNE_CHUNK`] events older than `before_ms` and expired guard entries.
    Prune {
        before_ms: Option<i64>,
        reply: Reply<usize>,
    },
    /// Ends the thread once the jobs queued before it are committed.
    Shutdown,
}

/// What a job produced inside the transaction, released only if the commit succeeds.
enum Done {
    Ingest(Reply<IngestOutcome>, IngestOutcome, Vec<EventRow>),
    Clear(Reply<usize>, Option<String>, usize),
    Ping(Reply<()>),
    Prune(Reply<usize>, usize),
}

pub fn run(mut conn: Connection, mut rx: mpsc::Receiver<Job>, hub: Hub, metrics: Arc<Metrics>) {
    let mut stop = false;
    while !stop {
        let Some(first) = rx.blocking_recv() else { break };
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if let Some(pos) = jobs.iter().position(|j| matches!(j, Job::Shutdown)) {
            jobs.truncate(pos);
            stop = true;
        }
        if !jobs.is_empty() {
            commit_group(&mut conn, jobs, &hub, &metrics);
        }
    }
    tracing::info!("storage writer stopped; every acknowledged batch is committed");
}

fn commit_group(conn: &mut Connection, jobs: Vec<Job>, hub: &Hub, metrics: &Metrics) {
    let started = Instant::now();
    let count = jobs.len();
    let want_rows = hub.has_subscribers();
    let now = now_ms();
    let mut done = Vec::with_capacity(count);
    let mut failed: Vec<(Job, StorageError)> = Vec::new();
    let outcome = (|| -> rusqlite::Result<()> {
        let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for job in jobs {
            // A savepoint per job: one bad job is rolled back alone, the group still commits.
            let mut sp = tx.savepoint()?;
            match apply(&sp, &job, now, want_rows) {
                Ok(result) => {
                    sp.commit()?;
                    done.push(finish(job, result));
                }
                Err(e) => {
                    sp.rollback()?;
                    drop(sp);
                    failed.push((job, e.into()));
                }
            }
        }
        tx.commit()
    })();
    if let Err(e) = outcome {
        // Nothing of this group is stored, and every waiting request is told so.
        tracing::error!(error = %e, requests = count, "group commit failed; no batch of it was stored");
        for d in done {
            d.fail(StorageError::from_commit(&e));
        }
        for (job, err) in failed {
            job.fail(err);
        }
        return;
    }
    metrics.commit_jobs.observe(count as f64);
    metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
    for (job, err) in failed {
        tracing::warn!(error = %err, "a request was rolled back on its own");
        job.fail(err);
    }
    for d in done {
        d.release(hub, metrics);
    }
}

enum Applied {
    Ingest(IngestOutcome, Vec<EventRow>),
    Count(usize),
    Unit,
}

fn finish(job: Job, result: Applied) -> Done {
    match (job, result) {
        (Job::Ingest { reply, .. }, Applied::Ingest(o, rows)) => Done::Ingest(reply, o, rows),
        (Job::Clear { reply, agent_id }, Applied::Count(n)) => Done::Clear(reply, agent_id, n),
        (Job::Prune { reply, .. }, Applied::Count(n)) => Done::Prune(reply, n),
        (Job::Ping { reply }, _) => Done::Ping(reply),
        _ => unreachable!("apply returns the result kind of its job"),
    }
}

impl Job {
    fn fail(self, err: StorageError) {
        match self {
            Job::Ingest { reply, .. } => drop(reply.send(Err(err))),
            Job::Clear { reply, .. } | Job::Prune { reply, .. } => drop(reply.send(Err(err))),
            Job::Ping { reply } => drop(reply.send(Err(err))),
            Job::Shutdown => {}
        }
    }
}

impl Done {
    fn fail(self, err: StorageError) {
        match self {
            Done::Ingest(reply, ..) => drop(reply.send(Err(err))),
            Done::Clear(reply, ..) | Done::Prune(reply, _) => drop(reply.send(Err(err))),
            Done::Ping(reply) => drop(reply.send(Err(err))),
        }
    }

    fn release(self, hub: &Hub, metrics: &Metrics) {
        use std::sync::atomic::Ordering::Relaxed;
        match self {
            Done::Ingest(reply, outcome, rows) => {
                if outcome.duplicate {
                    metrics.batches_duplicate.fetch_add(1, Relaxed);
                } else {
                    metrics.batches_stored.fetch_add(1, Relaxed);
                    metrics.events_stored.fetch_add(outcome.stored as u64, Relaxed);
                }
                hub.publish_rows(&rows);
                let _ = reply.send(Ok(outcome));
            }
            Done::Clear(reply, agent_id, n) => {
                hub.publish_clear(agent_id.as_deref());
                let _ = reply.send(Ok(n));
            }
            Done::Prune(reply, n) => {
                metrics.events_pruned.fetch_add(n as u64, Relaxed);
                let _ = reply.send(Ok(n));
            }
            Done::Ping(reply) => drop(reply.send(Ok(()))),
        }
    }
}

fn apply(conn: &Connection, job: &Job, now: i64, want_rows: bool) -> rusqlite::Result<Applied> {
    match job {
        Job::Ingest { batch, ts_ms, verified, .. } => {
            ingest(conn, batch, *ts_ms, verified, now, want_rows)
                .map(|(o, r)| Applied::Ingest(o, r))
        }
        Job::Clear { agent_id, .. } => clear(conn, agent_id.as_deref()).map(Applied::Count),
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
    conn.prepare_cached(
        "INSERT OR REPLACE INTO replay_guard(signature, expires_ms) VALUES (?1, ?2)",
    )?
    .execute(params![&verified.signature[..], verified.expires_ms])?;
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
    let mut latest_metric = None;
    for event in &batch.events {
        let mut row = EventRow {
            id: 0,
            agent_id: String::new(),
            ts: String::new(),
            platform: String::new(),
            event_type: event.type_name().to_owned(),
            cpu: None,
            mem_free: None,
            pid: None,
            proc_name: None,
            rss: None,
            ingested_at: String::new(),
            mem_total: None,
            disk_free: None,
            disk_total: None,
            net_rx_bps: None,
            net_tx_bps: None,
            uptime_s: None,
        };
        match event {
            Event::Metric(m) => {
                row.cpu = Some(m.cpu);
                row.mem_free = Some(m.mem_free);
                row.mem_total = m.mem_total;
                row.disk_free = m.disk_free;
                row.disk_total = m.disk_total;
                row.net_rx_bps = m.net_rx_bps;
                row.net_tx_bps = m.net_tx_bps;
                row.uptime_s = m.uptime_s;
                latest_metric = Some(m);
            }
            Event::Proc(p) => {
                row.cpu = Some(p.cpu);
                row.pid = Some(p.pid);
                row.proc_name = Some(p.name.clone());
                row.rss = Some(p.rss);
            }
        }
        // Validation keeps every integer within i64, so these casts never wrap.
        let int = |v: Option<u64>| v.map(|v| v as i64);
        insert.execute(params![
            batch.agent_id,
            batch.ts,
            ts_ms,
            batch.platform,
            row.event_type,
            row.cpu,
            int(row.mem_free),
            int(row.mem_total),
            int(row.disk_free),
            int(row.disk_total),
            row.net_rx_bps,
            row.net_tx_bps,
            int(row.uptime_s),
            row.pid,
            row.proc_name,
            int(row.rss),
            now,
        ])?;
        if want_rows {
            row.id = conn.last_insert_rowid();
            row.agent_id.clone_from(&batch.agent_id);
            row.ts.clone_from(&batch.ts);
            row.platform.clone_from(&batch.platform);
            row.ingested_at.clone_from(&ingested_at);
            rows.push(row);
        }
    }
    // The interval is learnt from the agent's own timestamps (an EWMA of the gaps between
    // consecutive batches), ignoring replays of old queued batches and implausible gaps.
    conn.prepare_cached(
        "INSERT INTO agents(agent_id, platform, first_seen_ms, last_seen_ms, last_ts_ms)
         VALUES (?1, ?2, ?3, ?3, ?4)
         ON CONFLICT(agent_id) DO UPDATE SET
            platform = excluded.platform,
            last_seen_ms = excluded.last_seen_ms,
            interval_ms = CASE
                WHEN excluded.last_ts_ms - agents.last_ts_ms BETWEEN 500 AND 3600000
                THEN COALESCE(agents.interval_ms * 0.75 + (excluded.last_ts_ms - agents.last_ts_ms) * 0.25,
                              excluded.last_ts_ms - agents.last_ts_ms)
                ELSE agents.interval_ms END,
            last_ts_ms = MAX(agents.last_ts_ms, excluded.last_ts_ms)",
    )?
    .execute(params![batch.agent_id, batch.platform, now, ts_ms])?;
    if let Some(m) = latest_metric {
        let int = |v: Option<u64>| v.map(|v| v as i64);
        conn.prepare_cached(
            "UPDATE agents SET metric_ts = ?2, metric_ts_ms = ?3, cpu = ?4, mem_free = ?5,
                mem_total = ?6, disk_free = ?7, disk_total = ?8, net_rx_bps = ?9, net_tx_bps = ?10,
                uptime_s = ?11
             WHERE agent_id = ?1 AND (metric_ts_ms IS NULL OR metric_ts_ms <= ?3)",
        )?
        .execute(params![
            batch.agent_id,
            batch.ts,
            ts_ms,
            m.cpu,
            m.mem_free as i64,
            int(m.mem_total),
            int(m.disk_free),
            int(m.disk_total),
            m.net_rx_bps,
            m.net_tx_bps,
            int(m.uptime_s),
        ])?;
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
    conn.execute("DELETE FROM replay_guard WHERE expires_ms <= ?1", [now])?;
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
        conn.prepare("SELECT expires_ms, signature FROM replay_guard WHERE expires_ms > ?1")?;
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
