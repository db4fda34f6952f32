//! The one SQLite writer thread. It commits the jobs of all concurrent requests in one
//! transaction (group commit), answers each request only after that commit, then publishes the
//! rows live. Between two groups it writes the per-agent index of the agents that are due (see
//! [`super::backlog`]).

use super::agents::Agents;
use super::backlog::{Due, IndexBacklog};
use super::write_transaction;
use crate::clock::{format_ms, now_ms};
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::security::Verified;
use crate::storage::jobs::{Applied, Columns, Job, take_group};
use crate::storage::{Cutoffs, IngestOutcome, PRUNE_CHUNK, Pruned, StorageError};
use crate::telemetry::chain;
use protocol::{EventRow, IngestBatch};
use rusqlite::{Connection, params};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the writer thread owns besides its queue.
#[derive(Debug)]
pub(crate) struct Writer {
    pub conn: Connection,
    pub agents: Agents,
    pub backlog: IndexBacklog,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
}

/// How often an idle writer looks for agents due for the index, so that a quiet spell is used
/// for it rather than leaving every agent due when traffic comes back.
const IDLE_FLUSH_EVERY: Duration = Duration::from_secs(1);

pub(crate) fn run(mut w: Writer, mut rx: mpsc::Receiver<Job>) {
    // A runtime of this thread's own, only to wait for the next job with a timeout.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %chain(&e), "cannot start the storage writer; nothing can be stored");
            return;
        }
    };
    loop {
        let next = rt.block_on(async { tokio::time::timeout(IDLE_FLUSH_EVERY, rx.recv()).await });
        let first = match next {
            Ok(Some(job)) => job,
            Ok(None) => break,
            Err(_idle) => {
                // Short steps until nothing is due or a job arrives.
                while rx.is_empty() && flush(&mut w, Due::Step) > 0 {}
                continue;
            }
        };
        let (jobs, stop) = take_group(first, || rx.try_recv().ok());
        if !jobs.is_empty() {
            commit_group(&mut w, jobs);
        }
        if stop {
            break;
        }
        flush(&mut w, Due::Step);
    }
    flush(&mut w, Due::All);
    tracing::info!("storage writer stopped; every acknowledged batch is committed");
}

/// Returns how many agents were written. A failed flush loses nothing: the batches are in the
/// log and stay waiting, to be tried again after the next group (or replayed at start-up).
fn flush(w: &mut Writer, due: Due) -> usize {
    let n = w.backlog.flush(&w.conn, &w.agents, due).unwrap_or_else(|e| {
        tracing::warn!(error = %chain(&e), "could not write the per-agent index; will retry");
        0
    });
    w.metrics.index_waiting.store(w.backlog.waiting_count() as u64, Relaxed);
    n
}

/// Commits the jobs in one transaction. A failure rolls the group back and commits its jobs one
/// by one, so one bad job fails alone; savepoints per job would cost every request two more
/// statements for a case that almost never happens.
fn commit_group(w: &mut Writer, jobs: Vec<Job>) {
    // Retention prunes only indexed batches, so what it would prune goes into the index first
    // (with a cutoff days back, nothing waits that long).
    for job in &jobs {
        if let Job::Prune { cutoffs, .. } = job {
            let compact = cutoffs.compact.map(|c| c.before_ms);
            if let Some(before) = cutoffs.raw.max(compact) {
                flush(w, Due::IngestedBefore(before));
            }
        }
    }
    let started = Instant::now();
    let count = jobs.len();
    let want_rows = w.hub.has_subscribers();
    let now = now_ms();
    w.backlog.begin();
    let (agents, backlog) = (&mut w.agents, &mut w.backlog);
    let outcome = write_transaction(&w.conn, |tx| {
        let applied = jobs
            .iter()
            .map(|job| apply(tx, agents, backlog, job, now, want_rows))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        forget_expired_signatures(tx, now)?;
        Ok(applied)
    });
    let applied = match outcome {
        Ok(applied) => applied,
        Err(e) => {
            w.agents.rollback();
            w.backlog.rollback();
            if count == 1 {
                // Logged with its cause where the request is answered.
                if let Some(job) = jobs.into_iter().next() {
                    job.fail(StorageError::Commit(e));
                }
            } else {
                tracing::warn!(error = %chain(&e), requests = count, "group commit failed; retrying one by one");
                for job in jobs {
                    commit_group(w, vec![job]);
                }
            }
            return;
        }
    };
    w.agents.commit();
    w.backlog.commit();
    // Before the answers, so that a client reading `/metrics` next sees its batch waiting.
    w.metrics.index_waiting.store(w.backlog.waiting_count() as u64, Relaxed);
    w.metrics.commit_jobs.observe(count as f64);
    w.metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
    for (job, result) in jobs.into_iter().zip(applied) {
        job.release(result, &w.hub, &w.metrics);
    }
}

fn apply(
    conn: &Connection,
    agents: &mut Agents,
    backlog: &mut IndexBacklog,
    job: &Job,
    now: i64,
    want_rows: bool,
) -> rusqlite::Result<Applied> {
    match job {
        Job::Ingest { batch, ts_ms, verified, .. } => {
            let (outcome, rows) = ingest(conn, backlog, batch, *ts_ms, verified, now, want_rows)?;
            if !outcome.duplicate {
                agents.observe(batch, *ts_ms, now);
            }
            Ok(Applied::Ingest(outcome, rows))
        }
        Job::Clear { agent_id, .. } => {
            let n = clear(conn, backlog, agent_id.as_deref())?;
            agents.clear(agent_id.as_deref());
            Ok(Applied::Count(n))
        }
        Job::Prune { cutoffs, .. } => prune(conn, backlog, *cutoffs).map(Applied::Pruned),
        Job::Ping { .. } | Job::Shutdown => Ok(Applied::Unit),
    }
}

fn ingest(
    conn: &Connection,
    backlog: &mut IndexBacklog,
    batch: &IngestBatch,
    ts_ms: i64,
    verified: &Verified,
    now: i64,
    want_rows: bool,
) -> rusqlite::Result<(IngestOutcome, Vec<EventRow>)> {
    conn.prepare_cached("INSERT INTO replay_log(expires_ms, signature) VALUES (?1, ?2)")?
        .execute(params![verified.expires_ms, &verified.signature[..]])?;
    let key = batch.batch_id.as_deref().map(|id| super::schema::batch_key(&batch.agent_id, id));
    let duplicate = IngestOutcome { stored: 0, duplicate: true };
    if let Some(key) = &key
        && seen_before(conn, batch, ts_ms, key)?
    {
        return Ok((duplicate, Vec::new()));
    }
    let Some(first_id) = backlog.log(conn, batch, key.as_deref(), ts_ms, now)? else {
        return Ok((duplicate, Vec::new()));
    };
    record_machine(conn, batch, ts_ms, now)?;
    let rows = if want_rows {
        let ingested_at = format_ms(now);
        (first_id..)
            .zip(&batch.events)
            .map(|(id, event)| Columns::of(event).to_row(batch, id, &ingested_at))
            .collect()
    } else {
        Vec::new()
    };
    Ok((IngestOutcome { stored: batch.events.len(), duplicate: false }, rows))
}

/// The batch's services and notices (see [`crate::storage::notices`]).
fn record_machine(
    conn: &Connection,
    batch: &IngestBatch,
    batch_ms: i64,
    now: i64,
) -> rusqlite::Result<()> {
    use crate::storage::notices;
    if let Some(json) = notices::services_json(batch) {
        conn.prepare_cached(notices::UPSERT_SERVICES)?.execute(params![
            batch.agent_id,
            batch.ts,
            batch_ms,
            json
        ])?;
    }
    let mut insert = conn.prepare_cached(notices::INSERT_NOTICE)?;
    for (ts, ts_ms, kind, level, source, code, message) in notices::notice_params(batch) {
        insert.execute(params![
            batch.agent_id,
            ts,
            ts_ms,
            now,
            kind,
            level,
            source,
            code,
            message
        ])?;
    }
    Ok(())
}

/// Whether a batch with this key was stored and is gone from the log: compacted into a chunk,
/// cleared (the ids outlive their events until retention, so that a late retry stays
/// harmless), or logged before the keys moved into the log. (One in the log is found by its
/// unique key.)
fn seen_before(
    conn: &Connection,
    batch: &IngestBatch,
    ts_ms: i64,
    key: &[u8],
) -> rusqlite::Result<bool> {
    Ok(conn.prepare_cached("SELECT 1 FROM batch_seen WHERE key = ?1")?.exists([key])?
        || super::chunks::seen(conn, &batch.agent_id, ts_ms, key)?)
}

fn clear(
    conn: &Connection,
    backlog: &mut IndexBacklog,
    agent_id: Option<&str>,
) -> rusqlite::Result<usize> {
    use crate::storage::notices::{CLEAR_AGENT, CLEAR_ALL};
    let n = backlog.clear(conn, agent_id)? + super::chunks::clear(conn, agent_id)?;
    match agent_id {
        Some(agent) => {
            conn.execute("DELETE FROM agents WHERE agent_id = ?1", [agent])?;
            for sql in CLEAR_AGENT {
                conn.execute(sql, [agent])?;
            }
        }
        None => {
            conn.execute("DELETE FROM agents", [])?;
            for sql in CLEAR_ALL {
                conn.execute(sql, [])?;
            }
        }
    }
    Ok(n)
}

/// Signatures deleted per commit, at most: more than a group adds, so the log never grows past
/// one TTL of them, and few enough that no commit waits on a large delete.
const EXPIRED_PER_COMMIT: i64 = 2 * crate::storage::jobs::MAX_GROUP as i64;

fn forget_expired_signatures(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM replay_log WHERE id IN (SELECT id FROM replay_log ORDER BY id LIMIT ?2)
            AND expires_ms <= ?1",
    )?
    .execute(params![now, EXPIRED_PER_COMMIT])?;
    Ok(())
}

/// Removes the oldest batches, up to [`PRUNE_CHUNK`] of them, with their index entries; only
/// below the floor, where every batch is indexed. Then old buckets of the tiers, a few agents'
/// at a time. (Expired signatures go with each commit.)
fn prune(conn: &Connection, backlog: &IndexBacklog, cutoffs: Cutoffs) -> rusqlite::Result<Pruned> {
    let tiers_left = super::rollups::prune(conn, cutoffs.tiers)?;
    let (compacted, compacting) = match cutoffs.compact {
        Some(c) => {
            let batches = super::chunks::compact_step(conn, backlog.floor(), c)?;
            (batches, super::tier_chunks::compact_step(conn, c.before_ms)? || batches > 0)
        }
        None => (0, false),
    };
    let Some(before) = cutoffs.raw else {
        return Ok(Pruned { compacted, more: tiers_left || compacting, ..Pruned::default() });
    };
    let (chunk_events, chunks_left) = super::chunks::prune(conn, before)?;
    let notices = conn
        .prepare_cached(crate::storage::notices::PRUNE_NOTICES)?
        .execute(params![before, PRUNE_CHUNK as i64])?;
    // In chunks too: a day's batch ids in one statement would hold the writer for seconds.
    let ids = conn
        .prepare_cached(
            "DELETE FROM batch_seen WHERE id IN
            (SELECT id FROM batch_seen WHERE received_ms < ?1 ORDER BY id LIMIT ?2)",
        )?
        .execute(params![before, PRUNE_CHUNK as i64])?;
    // Ids grow with ingest time, so the oldest batches are the lowest ids: look only at the
    // first chunk instead of scanning the log for old rows.
    let mut gone = conn.prepare_cached(
        "DELETE FROM batch_log
         WHERE first_id IN (SELECT first_id FROM batch_log WHERE first_id < ?3
                            ORDER BY first_id LIMIT ?2)
           AND ingested_ms < ?1
         RETURNING agent_id, first_id, ts_ms, count",
    )?;
    let gone = gone
        .query_map(params![before, PRUNE_CHUNK as i64, backlog.floor()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut index =
        conn.prepare_cached("DELETE FROM agent_batches WHERE agent_id = ?1 AND first_id = ?2")?;
    let mut metrics = conn.prepare_cached(
        "DELETE FROM agent_metrics WHERE agent_id = ?1 AND ts_ms = ?2 AND id >= ?3 AND id < ?4",
    )?;
    let mut events = 0;
    for (agent, first_id, ts_ms, count) in &gone {
        index.execute(params![agent, first_id])?;
        metrics.execute(params![agent, ts_ms, first_id, first_id + count])?;
        events += *count as usize;
    }
    let raw = Pruned::of(events + chunk_events, &[ids as u64, gone.len() as u64, notices as u64]);
    Ok(Pruned { compacted, more: raw.more || tiers_left || compacting || chunks_left, ..raw })
}

/// The signatures the replay guard must still refuse after a restart.
pub(crate) fn load_replay_guard(
    conn: &Connection,
    now: i64,
) -> rusqlite::Result<Vec<(i64, [u8; 32])>> {
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
