//! The batches in the log that the per-agent index does not hold yet.
//!
//! A request appends one row to `batch_log`. Writing each batch into its agent's index pages
//! at once would cost a page write per index for every request in a commit, one agent's pages
//! each. Instead an agent's new batches wait here, in memory, and are written together (with the
//! agent's row) once it has gathered enough of them or the oldest has waited long enough (see
//! [`FlushPolicy`]): one page write per index carries many batches. Readers take an agent's
//! waiting batches from here and the rest from the index. `log_state.floor` is the first id of
//! the oldest waiting batch, so start-up replays only the log from there.

use super::agents::Agents;
use super::write_transaction;
use crate::storage::codec::kinds;
use crate::storage::rollup::{ProcReading, Rollup};
use protocol::{Event, IngestBatch};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// When an agent's waiting batches are written into the index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlushPolicy {
    /// Once it has gathered this many.
    pub batches: usize,
    /// Once the oldest has waited this long.
    pub after: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self { batches: 64, after: Duration::from_secs(20) }
    }
}

/// Batches (at least one agent's) and agents written per flush step, so that a step never
/// holds the writer for long, even when every agent is due at once. Each agent costs a few
/// page writes of its own (its index leaves and its row): 1,000 agents in one step took 0.5 s.
const FLUSH_STEP_BATCHES: usize = 2048;
const FLUSH_STEP_AGENTS: usize = 32;

/// Which agents a flush writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// One short step of those that gathered enough or waited long enough.
    Step,
    /// Every agent whose oldest waiting batch was ingested before this time (retention prunes
    /// only indexed batches).
    IngestedBefore(i64),
    /// Every agent (at shutdown).
    All,
}

/// A logged batch as the index holds it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub first_id: i64,
    pub ts_ms: i64,
    pub kinds: i64,
    /// The batch's metric events with their ids, for the series.
    pub metrics: Vec<(i64, Event)>,
    /// Its process readings, for the tiers and the histories read from them.
    pub procs: Vec<ProcReading>,
    ingested_ms: i64,
    logged: Instant,
}

impl Entry {
    fn of(first_id: i64, ts_ms: i64, ingested_ms: i64, events: &[Event]) -> Self {
        let metrics = (first_id..)
            .zip(events)
            .filter(|(_, e)| e.is_metric())
            .map(|(id, e)| (id, e.clone()))
            .collect();
        Entry {
            first_id,
            ts_ms,
            kinds: kinds(events),
            metrics,
            procs: events.iter().filter_map(ProcReading::of).collect(),
            ingested_ms,
            logged: Instant::now(),
        }
    }
}

/// One agent's waiting batches as a reader saw them.
#[derive(Debug, Clone, Default)]
pub(crate) struct BacklogView {
    /// Oldest first.
    pub entries: Vec<Entry>,
}

impl BacklogView {
    /// Index rows from this id up were written after the view was taken, and are in `entries`.
    pub(crate) fn boundary(&self) -> i64 {
        self.entries.first().map_or(i64::MAX, |e| e.first_id)
    }
}

/// Every agent's waiting batches, as the readers see them.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedBacklog(Arc<RwLock<HashMap<String, Vec<Entry>>>>);

impl SharedBacklog {
    pub(crate) fn view(&self, agent_id: &str) -> BacklogView {
        BacklogView { entries: self.read().get(agent_id).cloned().unwrap_or_default() }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<Entry>>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Vec<Entry>>> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps a deleted batch's id key (if it had one) until retention, so that a retry of it is
/// still known.
pub(crate) const KEEP_KEY: &str = "INSERT OR IGNORE INTO batch_seen(received_ms, key)
    SELECT ?1, ?2 WHERE ?2 IS NOT NULL";

#[derive(Debug)]
pub(crate) struct IndexBacklog {
    policy: FlushPolicy,
    shared: SharedBacklog,
    next_id: i64,
    /// `next_id` when the open transaction began, for a rollback.
    begun_at: i64,
    /// The open transaction's batches and clears, in order, applied once it commits.
    staged: Vec<Staged>,
    /// The agents with waiting batches by the first id of their oldest one: ids grow with
    /// time, so the first is both the floor and the agent that has waited longest.
    waiting: BTreeMap<i64, String>,
    /// Agents that gathered [`FlushPolicy::batches`].
    full: HashSet<String>,
    /// How many batches wait, all agents together.
    count: usize,
}

#[derive(Debug)]
enum Staged {
    Batch(String, Entry),
    Clear(Option<String>),
}

impl IndexBacklog {
    /// Reads the log's state and replays the batches not indexed yet into `agents`.
    pub(crate) fn load(
        conn: &Connection,
        agents: &mut Agents,
        policy: FlushPolicy,
    ) -> rusqlite::Result<Self> {
        let (floor, next_id): (i64, i64) =
            conn.query_row("SELECT floor, next_id FROM log_state", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let mut backlog = IndexBacklog {
            policy,
            shared: SharedBacklog::default(),
            next_id,
            begun_at: next_id,
            staged: Vec::new(),
            waiting: BTreeMap::new(),
            full: HashSet::new(),
            count: 0,
        };
        let mut indexed =
            conn.prepare("SELECT 1 FROM agent_batches WHERE agent_id = ?1 AND first_id = ?2")?;
        let mut stmt = conn.prepare(
            "SELECT first_id, agent_id, ts, ts_ms, platform, ingested_ms, count, events
             FROM batch_log WHERE first_id >= ?1 ORDER BY first_id",
        )?;
        let mut rows = stmt.query([floor])?;
        while let Some(r) = rows.next()? {
            let (first_id, agent_id, ts_ms): (i64, String, i64) = (r.get(0)?, r.get(1)?, r.get(3)?);
            backlog.next_id = backlog.next_id.max(first_id + r.get::<_, i64>(6)?);
            if indexed.exists(params![agent_id, first_id])? {
                continue;
            }
            let batch = IngestBatch {
                agent_id,
                ts: r.get(2)?,
                platform: r.get(4)?,
                batch_id: None,
                events: decode(&r.get::<_, String>(7)?)?,
                agent: None,
                drives: None,
                host: None,
                notices: None,
                services: None,
            };
            let ingested_ms = r.get(5)?;
            agents.observe(&batch, ts_ms, ingested_ms);
            let entry = Entry::of(first_id, ts_ms, ingested_ms, &batch.events);
            backlog.staged.push(Staged::Batch(batch.agent_id, entry));
        }
        agents.commit();
        backlog.commit();
        Ok(backlog)
    }

    pub(crate) fn shared(&self) -> SharedBacklog {
        self.shared.clone()
    }

    /// How many batches wait for the index.
    pub(crate) fn waiting_count(&self) -> usize {
        self.count
    }

    /// The first id of the oldest batch still waiting (everything below it is indexed).
    pub(crate) fn floor(&self) -> i64 {
        self.waiting.keys().next().copied().unwrap_or(self.next_id)
    }

    pub(crate) fn begin(&mut self) {
        self.begun_at = self.next_id;
    }

    /// Appends the batch to the log inside the open transaction, under its id's `key`; returns
    /// its first event id, or `None` when a batch with that key is in the log already.
    pub(crate) fn log(
        &mut self,
        conn: &Connection,
        batch: &IngestBatch,
        key: Option<&[u8]>,
        ts_ms: i64,
        now_ms: i64,
    ) -> rusqlite::Result<Option<i64>> {
        let first_id = self.next_id;
        let events = crate::storage::codec::encode(&batch.events)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        let kinds = kinds(&batch.events);
        let added = conn
            .prepare_cached(
                "INSERT INTO batch_log(first_id, agent_id, ts, ts_ms, platform, ingested_ms, count,
                    kinds, events, batch_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                first_id,
                batch.agent_id,
                batch.ts,
                ts_ms,
                batch.platform,
                now_ms,
                batch.events.len(),
                kinds,
                events,
                key
            ])?;
        if added == 0 {
            return Ok(None);
        }
        self.next_id += batch.events.len() as i64;
        self.staged.push(Staged::Batch(
            batch.agent_id.clone(),
            Entry::of(first_id, ts_ms, now_ms, &batch.events),
        ));
        Ok(Some(first_id))
    }

    /// Deletes one agent's batches (or all) inside the open transaction, waiting ones included;
    /// returns how many events went.
    pub(crate) fn clear(
        &mut self,
        conn: &Connection,
        agent_id: Option<&str>,
    ) -> rusqlite::Result<usize> {
        let events = match agent_id {
            Some(agent) => {
                let mut waiting: Vec<i64> = self
                    .shared
                    .read()
                    .get(agent)
                    .map(|e| e.iter().map(|e| e.first_id).collect())
                    .unwrap_or_default();
                waiting.extend(self.staged.iter().filter_map(|s| match s {
                    Staged::Batch(a, e) if a == agent => Some(e.first_id),
                    _ => None,
                }));
                let mut by_id = conn.prepare_cached(
                    "DELETE FROM batch_log WHERE first_id = ?1
                     RETURNING count, ingested_ms, batch_key",
                )?;
                let mut keep_key = conn.prepare_cached(KEEP_KEY)?;
                let mut n = 0;
                for id in waiting {
                    let gone = by_id
                        .query_row([id], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, Option<Vec<u8>>>(2)?,
                            ))
                        })
                        .optional()?;
                    if let Some((count, ingested_ms, key)) = gone {
                        n += count;
                        keep_key.execute(params![ingested_ms, key])?;
                    }
                }
                conn.execute(
                    "INSERT OR IGNORE INTO batch_seen(received_ms, key)
                     SELECT l.ingested_ms, l.batch_key FROM agent_batches a
                     JOIN batch_log l ON l.first_id = a.first_id
                     WHERE a.agent_id = ?1 AND l.batch_key IS NOT NULL",
                    [agent],
                )?;
                n += conn.query_row(
                    "SELECT coalesce(sum(l.count), 0) FROM agent_batches a
                     JOIN batch_log l ON l.first_id = a.first_id WHERE a.agent_id = ?1",
                    [agent],
                    |r| r.get::<_, i64>(0),
                )?;
                conn.execute(
                    "DELETE FROM batch_log WHERE first_id IN
                        (SELECT first_id FROM agent_batches WHERE agent_id = ?1)",
                    [agent],
                )?;
                conn.execute("DELETE FROM agent_batches WHERE agent_id = ?1", [agent])?;
                conn.execute("DELETE FROM agent_metrics WHERE agent_id = ?1", [agent])?;
                super::rollups::clear(conn, Some(agent))?;
                n
            }
            None => {
                let n =
                    conn.query_row("SELECT coalesce(sum(count), 0) FROM batch_log", [], |r| {
                        r.get::<_, i64>(0)
                    })?;
                conn.execute_batch(
                    "INSERT OR IGNORE INTO batch_seen(received_ms, key)
                        SELECT ingested_ms, batch_key FROM batch_log WHERE batch_key IS NOT NULL;
                     DELETE FROM batch_log; DELETE FROM agent_batches; DELETE FROM agent_metrics;",
                )?;
                super::rollups::clear(conn, None)?;
                n
            }
        };
        self.staged.retain(|s| match (s, agent_id) {
            (Staged::Batch(a, _), Some(agent)) => a != agent,
            (Staged::Batch(..), None) => false,
            (Staged::Clear(_), _) => true,
        });
        self.staged.push(Staged::Clear(agent_id.map(str::to_owned)));
        Ok(events as usize)
    }

    /// After the open transaction committed: its batches wait for the index, readers see them.
    pub(crate) fn commit(&mut self) {
        let mut map = self.shared.write();
        for staged in self.staged.drain(..) {
            match staged {
                Staged::Clear(Some(agent)) => {
                    if let Some(entries) = map.remove(&agent) {
                        self.count -= entries.len();
                        if let Some(first) = entries.first() {
                            self.waiting.remove(&first.first_id);
                        }
                    }
                    self.full.remove(&agent);
                }
                Staged::Clear(None) => {
                    map.clear();
                    self.waiting.clear();
                    self.full.clear();
                    self.count = 0;
                }
                Staged::Batch(agent, entry) => {
                    let waiting = map.entry(agent.clone()).or_default();
                    if waiting.is_empty() {
                        self.waiting.insert(entry.first_id, agent.clone());
                    }
                    waiting.push(entry);
                    self.count += 1;
                    if waiting.len() >= self.policy.batches {
                        self.full.insert(agent);
                    }
                }
            }
        }
    }

    pub(crate) fn rollback(&mut self) {
        self.staged.clear();
        self.next_id = self.begun_at;
    }

    /// Writes the waiting batches of the agents that are `due` into the index, with their agent
    /// rows, in one transaction of its own. Returns how many agents. Nothing changes in memory
    /// unless it commits, so a failed flush is simply tried again.
    pub(crate) fn flush(
        &mut self,
        conn: &Connection,
        agents: &Agents,
        due: Due,
    ) -> rusqlite::Result<usize> {
        let batches = self.due(due);
        if batches.is_empty() {
            return Ok(0);
        }
        let floor = self
            .waiting
            .keys()
            .copied()
            .find(|id| !batches.iter().any(|(_, e)| e[0].first_id == *id))
            .unwrap_or(self.next_id);
        let next_id = self.next_id;
        write_transaction(conn, |tx| {
            let mut index = tx.prepare_cached(
                "INSERT OR IGNORE INTO agent_batches(agent_id, first_id, ts_ms, kinds)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut metric = tx.prepare_cached(
                "INSERT OR IGNORE INTO agent_metrics(agent_id, ts_ms, id, cpu, mem_free,
                    mem_total, disk_free, disk_total, net_rx_bps, net_tx_bps)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            // Validation keeps every integer within i64, so these casts never wrap.
            let int = |v: Option<u64>| v.map(|v| v as i64);
            for (agent, entries) in &batches {
                for e in entries {
                    index.execute(params![agent, e.first_id, e.ts_ms, e.kinds])?;
                }
                let mut metrics: Vec<(i64, i64, &Event)> = entries
                    .iter()
                    .flat_map(|e| e.metrics.iter().map(|(id, m)| (e.ts_ms, *id, m)))
                    .collect();
                metrics.sort_unstable_by_key(|(ts, id, _)| (*ts, *id));
                for (ts_ms, id, m) in metrics {
                    metric.execute(params![
                        agent,
                        ts_ms,
                        id,
                        m.cpu,
                        int(m.mem_free),
                        int(m.mem_total),
                        int(m.disk_free),
                        int(m.disk_total),
                        m.net_rx_bps,
                        m.net_tx_bps
                    ])?;
                }
                let mut rollup = Rollup::default();
                for e in entries {
                    e.metrics.iter().for_each(|(_, m)| rollup.add_metric(e.ts_ms, m));
                    e.procs.iter().for_each(|p| rollup.add_proc(e.ts_ms, p));
                }
                super::rollups::write(tx, agent, &rollup)?;
                agents.write_row(tx, agent)?;
            }
            tx.prepare_cached("UPDATE log_state SET floor = ?1, next_id = ?2")?
                .execute(params![floor, next_id])?;
            Ok(())
        })?;
        let mut map = self.shared.write();
        for (agent, entries) in &batches {
            map.remove(agent);
            self.waiting.remove(&entries[0].first_id);
            self.full.remove(agent);
            self.count -= entries.len();
        }
        Ok(batches.len())
    }

    /// The agents to flush now, with their waiting batches: for a step, those that gathered
    /// enough, then those waiting longest, within the step's bounds.
    fn due(&self, due: Due) -> Vec<(String, Vec<Entry>)> {
        let map = self.shared.read();
        let oldest = |agent: &String| map.get(agent).and_then(|e| e.first());
        let agents: Vec<&String> = match due {
            Due::All => self.waiting.values().collect(),
            Due::IngestedBefore(ms) => self
                .waiting
                .values()
                .take_while(|a| oldest(a).is_some_and(|e| e.ingested_ms < ms))
                .collect(),
            Due::Step => {
                let waited_enough =
                    |a: &String| oldest(a).is_some_and(|e| e.logged.elapsed() >= self.policy.after);
                let time_due = self.waiting.values().take_while(|a| waited_enough(a));
                let candidates =
                    self.full.iter().chain(time_due.filter(|a| !self.full.contains(*a)));
                let mut batches = 0;
                let mut step = Vec::new();
                for agent in candidates {
                    let n = map.get(agent).map_or(0, Vec::len);
                    if step.len() >= FLUSH_STEP_AGENTS
                        || (batches > 0 && batches + n > FLUSH_STEP_BATCHES)
                    {
                        break;
                    }
                    batches += n;
                    step.push(agent);
                }
                step
            }
        };
        agents.into_iter().filter_map(|a| map.get(a).map(|e| (a.clone(), e.clone()))).collect()
    }
}

/// A batch's events from the log's JSON.
pub(crate) fn decode(events: &str) -> rusqlite::Result<Vec<Event>> {
    crate::storage::codec::decode(events).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Synchronous;
    use crate::storage::sqlite::tests::batch;

    #[test]
    fn a_flush_step_stays_short_when_every_agent_is_due_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn =
            super::super::schema::open_writer(&dir.path().join("t.db"), Synchronous::Normal)
                .unwrap();
        let mut agents = Agents::default();
        let policy = FlushPolicy { batches: usize::MAX, after: Duration::ZERO };
        let mut backlog = IndexBacklog::load(&conn, &mut agents, policy).unwrap();
        let per_agent = FLUSH_STEP_BATCHES * 3 / 4;
        for agent in ["a", "b", "c"] {
            let b = batch(agent);
            let tx = conn.transaction().unwrap();
            for _ in 0..per_agent {
                backlog.log(&tx, &b, None, 0, 0).unwrap();
                agents.observe(&b, 0, 0);
            }
            tx.commit().unwrap();
            agents.commit();
            backlog.commit();
        }
        assert_eq!(backlog.waiting_count(), 3 * per_agent);
        let floor = |conn: &Connection| -> i64 {
            conn.query_row("SELECT floor FROM log_state", [], |r| r.get(0)).unwrap()
        };
        // One agent per step (two would exceed the step), oldest first; the floor follows.
        for (step, agent) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(backlog.flush(&conn, &agents, Due::Step).unwrap(), 1);
            assert!(backlog.shared().view(agent).entries.is_empty());
            let next_first = (step as i64 + 1) * per_agent as i64 * 2 + 1;
            assert_eq!(floor(&conn), next_first.min(backlog.next_id));
        }
        assert_eq!(backlog.flush(&conn, &agents, Due::Step).unwrap(), 0);
        assert_eq!(backlog.waiting_count(), 0);
        let (indexed, rows): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM agent_batches), (SELECT count(*) FROM agents)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((indexed, rows), (3 * per_agent as i64, 3));
    }
}
