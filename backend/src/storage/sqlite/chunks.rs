//! Old raw batches in compressed chunks (`batch_chunks`, encoded by [`crate::storage::chunk`]):
//! moving an agent's old log rows there, and finding them again for every read the log serves.
//!
//! A chunk holds one agent's batches that are consecutive among its own, so an agent's chunks
//! never overlap in event ids, and everything of the agent still in the log is newer than its
//! chunks. Chunks of different agents interleave in ids, as the agents' batches did.

use crate::storage::chunk::{self, ChunkBatch};
use crate::storage::codec;
use crate::storage::{Compaction, PRUNE_CHUNK};
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OptionalExtension, params};

/// Batches in one chunk, at most: an hour at a 1 s interval, and a drained queue in pieces that
/// decode in a few milliseconds each.
const CHUNK_MAX: i64 = 4096;

/// Chunks deleted per retention step: some thousands of batches, as a step of log rows.
const PRUNE_CHUNKS: i64 = (PRUNE_CHUNK / 720) as i64;

fn encode_error(e: chunk::ChunkError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

fn decode_error(e: chunk::ChunkError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
}

pub(crate) fn decode(data: &[u8]) -> rusqlite::Result<Vec<ChunkBatch>> {
    chunk::decode(data).map_err(decode_error)
}

/// Moves the batches of the agent that owns the log's oldest row into a chunk, if that row is
/// due (see [`Compaction`]) and indexed (below `floor`). Returns how many batches moved: the
/// next step looks again after some did.
pub(crate) fn compact_step(
    conn: &Connection,
    floor: i64,
    c: Compaction,
) -> rusqlite::Result<usize> {
    let oldest: Option<(i64, String, i64)> = conn
        .prepare_cached(
            "SELECT first_id, agent_id, ingested_ms FROM batch_log ORDER BY first_id LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((oldest_id, agent, ingested_ms)) = oldest else { return Ok(0) };
    if oldest_id >= floor || ingested_ms >= c.due_before_ms {
        return Ok(0);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT l.first_id, l.ts, l.ts_ms, l.platform, l.ingested_ms, l.events, l.batch_key, l.kinds
         FROM agent_batches a JOIN batch_log l ON l.first_id = a.first_id
         WHERE a.agent_id = ?1 AND a.first_id < ?2 ORDER BY a.first_id LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![agent, floor, CHUNK_MAX])?;
    let (mut batches, mut kinds) = (Vec::new(), 0i64);
    while let Some(r) = rows.next()? {
        let ingested_ms: i64 = r.get(4)?;
        if ingested_ms >= c.before_ms {
            break;
        }
        kinds |= r.get::<_, i64>(7)?;
        batches.push(ChunkBatch {
            first_id: r.get(0)?,
            ts: r.get(1)?,
            ts_ms: r.get(2)?,
            platform: r.get(3)?,
            ingested_ms,
            events: super::backlog::decode(&r.get::<_, String>(5)?)?,
            key: r.get(6)?,
        });
    }
    drop(rows);
    if batches.first().map(|b| b.first_id) != Some(oldest_id) {
        // Below the floor every row is indexed; one that is not would stop compaction here
        // rather than be skipped for ever.
        tracing::warn!(
            first_id = oldest_id,
            "the log's oldest row is not indexed; compaction waits"
        );
        return Ok(0);
    }
    let data = chunk::encode(&batches).map_err(encode_error)?;
    let events: i64 = batches.iter().map(|b| b.events.len() as i64).sum();
    let last = batches.last().expect("not empty");
    let last_id = last.first_id + (last.events.len() as i64).max(1) - 1;
    let ts = batches.iter().map(|b| b.ts_ms);
    let (ts_min, ts_max) = (ts.clone().min().unwrap_or(0), ts.max().unwrap_or(0));
    conn.prepare_cached(
        "INSERT INTO batch_chunks(last_id, agent_id, first_id, ts_min_ms, ts_max_ms,
            ingested_max_ms, batches, events, kinds, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        last_id,
        agent,
        batches[0].first_id,
        ts_min,
        ts_max,
        last.ingested_ms,
        batches.len() as i64,
        events,
        kinds,
        data
    ])?;
    let mut log = conn.prepare_cached("DELETE FROM batch_log WHERE first_id = ?1")?;
    let mut index =
        conn.prepare_cached("DELETE FROM agent_batches WHERE agent_id = ?1 AND first_id = ?2")?;
    let mut metrics = conn.prepare_cached(
        "DELETE FROM agent_metrics WHERE agent_id = ?1 AND ts_ms = ?2 AND id >= ?3 AND id < ?4",
    )?;
    for b in &batches {
        log.execute([b.first_id])?;
        index.execute(params![agent, b.first_id])?;
        let end = b.first_id + b.events.len() as i64;
        metrics.execute(params![agent, b.ts_ms, b.first_id, end])?;
    }
    sync_view(conn)?;
    Ok(batches.len())
}

/// Whether one of the agent's chunks around `ts_ms` holds a batch with this id key.
pub(crate) fn seen(
    conn: &Connection,
    agent: &str,
    ts_ms: i64,
    key: &[u8],
) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT data FROM batch_chunks WHERE agent_id = ?1 AND ts_max_ms >= ?2 AND ts_min_ms <= ?2",
    )?;
    let mut rows = stmt.query(params![agent, ts_ms])?;
    while let Some(r) = rows.next()? {
        let data = r.get_ref(0)?.as_blob()?;
        if decode(data)?.iter().any(|b| b.ts_ms == ts_ms && b.key.as_deref() == Some(key)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The agent's compacted batches with times in `[from_ms, to_ms)` holding a kind in `mask`.
pub(crate) fn in_range(
    conn: &Connection,
    agent: &str,
    from_ms: i64,
    to_ms: i64,
    mask: i64,
) -> rusqlite::Result<Vec<ChunkBatch>> {
    let mut stmt = conn.prepare_cached(
        "SELECT data FROM batch_chunks
         WHERE agent_id = ?1 AND ts_max_ms >= ?2 AND ts_min_ms < ?3 AND kinds & ?4 != 0",
    )?;
    let mut rows = stmt.query(params![agent, from_ms, to_ms, mask])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let batches = decode(r.get_ref(0)?.as_blob()?)?;
        out.extend(batches.into_iter().filter(|b| (from_ms..to_ms).contains(&b.ts_ms)));
    }
    Ok(out)
}

/// The newest time of a compacted batch of the agent holding a kind in `mask`, if later than
/// `after`.
pub(crate) fn latest_after(
    conn: &Connection,
    agent: &str,
    mask: i64,
    after: i64,
) -> rusqlite::Result<Option<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT data FROM batch_chunks WHERE agent_id = ?1 AND ts_max_ms > ?2 AND kinds & ?3 != 0",
    )?;
    let mut rows = stmt.query(params![agent, after, mask])?;
    let mut latest = None;
    while let Some(r) = rows.next()? {
        for b in decode(r.get_ref(0)?.as_blob()?)? {
            if b.ts_ms > after && codec::kinds(&b.events) & mask != 0 {
                latest = latest.max(Some(b.ts_ms));
            }
        }
    }
    Ok(latest)
}

/// Chunks holding events below `before` with a kind in `mask` (of one agent or all), newest
/// first by their highest id; each as that id, its agent and its batches. `visit` returns false
/// to stop.
pub(crate) fn newest_first(
    conn: &Connection,
    agent: Option<&str>,
    before: i64,
    mask: i64,
    mut visit: impl FnMut(i64, &str, Vec<ChunkBatch>) -> bool,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT last_id, agent_id, data FROM batch_chunks
         WHERE (?1 IS NULL OR agent_id = ?1) AND first_id < ?2 AND kinds & ?3 != 0
         ORDER BY last_id DESC",
    )?;
    let mut rows = stmt.query(params![agent, before, mask])?;
    while let Some(r) = rows.next()? {
        let agent = r.get_ref(1)?.as_str()?;
        if !visit(r.get(0)?, agent, decode(r.get_ref(2)?.as_blob()?)?) {
            break;
        }
    }
    Ok(())
}

/// Deletes the chunks of `agent` (or all) and keeps their batch ids until retention, as a
/// clear of log rows does; returns how many events went.
pub(crate) fn clear(conn: &Connection, agent: Option<&str>) -> rusqlite::Result<usize> {
    let mut gone = conn.prepare_cached(
        "DELETE FROM batch_chunks WHERE (?1 IS NULL OR agent_id = ?1) RETURNING events, data",
    )?;
    let mut keep = conn.prepare_cached(super::backlog::KEEP_KEY)?;
    let mut rows = gone.query([agent])?;
    let mut events = 0;
    let mut keys = Vec::new();
    while let Some(r) = rows.next()? {
        events += r.get::<_, i64>(0)? as usize;
        for b in decode(r.get_ref(1)?.as_blob()?)? {
            keys.push((b.ingested_ms, b.key));
        }
    }
    drop(rows);
    for (ingested_ms, key) in keys {
        keep.execute(params![ingested_ms, key])?;
    }
    sync_view(conn)?;
    Ok(events)
}

/// Deletes a few chunks whose newest batch was received before `before` (a chunk goes whole,
/// so its older batches outstay retention by up to one chunk's span). Returns the events
/// deleted and whether more may be left.
pub(crate) fn prune(conn: &Connection, before: i64) -> rusqlite::Result<(usize, bool)> {
    let mut stmt = conn.prepare_cached(
        "DELETE FROM batch_chunks WHERE last_id IN
            (SELECT last_id FROM batch_chunks WHERE ingested_max_ms < ?1 LIMIT ?2)
         RETURNING events",
    )?;
    let counts = stmt
        .query_map(params![before, PRUNE_CHUNKS], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !counts.is_empty() {
        sync_view(conn)?;
    }
    Ok((counts.iter().sum::<i64>() as usize, counts.len() as i64 >= PRUNE_CHUNKS))
}

/// `chunk_batches(data)`: a chunk's batches as JSON for the `events` view, each
/// `[first_id, ts, ts_ms, platform, ingested_ms, events]` with the events as the log writes them.
pub(crate) fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "chunk_batches",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let data = ctx
                .get_raw(0)
                .as_blob()
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            let batches =
                chunk::decode(data).map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
            let mut out = String::from("[");
            for (i, b) in batches.iter().enumerate() {
                let events = codec::encode(&b.events)
                    .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
                let head = serde_json::to_string(&(
                    b.first_id,
                    &b.ts,
                    b.ts_ms,
                    &b.platform,
                    b.ingested_ms,
                ))
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?;
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&head[..head.len() - 1]);
                out.push(',');
                out.push_str(&events);
                out.push(']');
            }
            out.push(']');
            Ok(out)
        },
    )
}

/// The `events` view reads the chunks only while there are any: then it needs the backend's
/// `chunk_batches`, which the sqlite3 shell does not have; without chunks it is plain SQL.
pub(crate) fn sync_view(conn: &Connection) -> rusqlite::Result<()> {
    let has_chunks = conn.prepare_cached("SELECT 1 FROM batch_chunks LIMIT 1")?.exists([])?;
    let reads_chunks: bool = conn
        .prepare_cached(
            "SELECT instr(sql, 'chunk_batches') > 0 FROM sqlite_schema WHERE name = 'events'",
        )?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(false);
    if has_chunks != reads_chunks {
        conn.execute_batch(if has_chunks {
            super::schema::EVENTS_VIEW_WITH_CHUNKS
        } else {
            super::schema::EVENTS_VIEW
        })?;
    }
    Ok(())
}
