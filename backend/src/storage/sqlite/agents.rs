//! Per-agent state (platform, first and last seen, learnt interval, latest metric), kept in the
//! writer's memory, shared with the readers (so `GET /api/agents` never touches the database),
//! and written to the agents table with the agent's batches (see [`super::backlog`]) rather than
//! once per request. After a crash, the batches not written yet are replayed into it.

use crate::clock::format_ms;
use crate::storage::{learn_interval, liveness};
use protocol::{AgentInfo, AgentSummary, Drive, Event, EventKind, Host, IngestBatch};
use rusqlite::{Connection, Row, params};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

#[derive(Debug, Clone, PartialEq)]
pub(super) struct AgentState {
    platform: String,
    first_seen_ms: i64,
    last_seen_ms: i64,
    last_ts_ms: i64,
    interval_ms: Option<f64>,
    metric: Option<LatestMetric>,
    /// From the newest batch (by the agent's clock) that carried it.
    agent: Option<AgentInfo>,
    /// The same for its drives.
    drives: Option<Vec<Drive>>,
    /// The same for its cores, swap and commit.
    host: Option<Host>,
}

#[derive(Debug, Clone, PartialEq)]
struct LatestMetric {
    ts: String,
    ts_ms: i64,
    /// A metric event; a figure it lacks is unknown, not carried over from an older one.
    reading: Event,
}

impl AgentState {
    fn new(platform: &str, now_ms: i64, ts_ms: i64) -> Self {
        Self {
            platform: platform.to_owned(),
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            last_ts_ms: ts_ms,
            interval_ms: None,
            metric: None,
            agent: None,
            drives: None,
            host: None,
        }
    }

    /// The interval is learnt from the agent's own timestamps (an EWMA of the gaps between
    /// consecutive batches); the latest metric is the newest by the agent's clock, so a replay
    /// of an old queued batch does not hide a newer reading.
    fn observe(&mut self, batch: &IngestBatch, ts_ms: i64, now_ms: i64) {
        if ts_ms >= self.last_ts_ms {
            if batch.agent.is_some() {
                self.agent.clone_from(&batch.agent);
            }
            if batch.drives.is_some() {
                self.drives.clone_from(&batch.drives);
            }
            if batch.host.is_some() {
                self.host.clone_from(&batch.host);
            }
        }
        self.interval_ms = learn_interval(self.interval_ms, ts_ms - self.last_ts_ms);
        self.platform.clone_from(&batch.platform);
        self.last_seen_ms = now_ms;
        self.last_ts_ms = self.last_ts_ms.max(ts_ms);
        let newest = batch.events.iter().rev().find(|e| e.is_metric());
        if let Some(m) = newest
            && self.metric.as_ref().is_none_or(|old| old.ts_ms <= ts_ms)
        {
            self.metric = Some(LatestMetric { ts: batch.ts.clone(), ts_ms, reading: m.clone() });
        }
    }

    fn summary(&self, agent_id: &str, now_ms: i64) -> AgentSummary {
        let (ago_s, interval_s, online) = liveness(now_ms, self.last_seen_ms, self.interval_ms);
        let m = self.metric.as_ref();
        let r = m.map(|m| &m.reading);
        AgentSummary {
            agent_id: agent_id.to_owned(),
            platform: self.platform.clone(),
            first_seen: format_ms(self.first_seen_ms),
            last_seen: format_ms(self.last_seen_ms),
            last_seen_ago_s: ago_s,
            interval_s,
            online,
            metric_ts: m.map(|m| m.ts.clone()),
            cpu: r.and_then(|r| r.cpu),
            mem_free: r.and_then(|r| r.mem_free),
            mem_total: r.and_then(|r| r.mem_total),
            disk_free: r.and_then(|r| r.disk_free),
            disk_total: r.and_then(|r| r.disk_total),
            net_rx_bps: r.and_then(|r| r.net_rx_bps),
            net_tx_bps: r.and_then(|r| r.net_tx_bps),
            uptime_s: r.and_then(|r| r.uptime_s),
            agent_version: self.agent.as_ref().map(|a| a.version.clone()),
            agent_uptime_s: self.agent.as_ref().map(|a| a.uptime_s),
            drives: self.drives.clone().unwrap_or_default(),
            host: self.host.clone(),
        }
    }
}

/// The committed state of every agent, as the readers see it.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedAgents(Arc<RwLock<BTreeMap<String, AgentState>>>);

impl SharedAgents {
    fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, AgentState>) -> T) -> T {
        f(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn exists(&self, agent_id: &str) -> bool {
        self.read(|m| m.contains_key(agent_id))
    }

    /// Every agent by id, or the one `only` names; `online` is judged against its own interval.
    pub(crate) fn summaries(&self, now_ms: i64, only: Option<&str>) -> Vec<AgentSummary> {
        self.read(|m| match only {
            Some(id) => {
                m.get_key_value(id).map(|(id, s)| s.summary(id, now_ms)).into_iter().collect()
            }
            None => m.iter().map(|(id, s)| s.summary(id, now_ms)).collect(),
        })
    }
}

/// The committed state, and the changes of the commit being built (`None`: the agent was
/// cleared in it).
#[derive(Debug, Default)]
pub(crate) struct Agents {
    committed: SharedAgents,
    pending: HashMap<String, Option<AgentState>>,
    cleared_all: bool,
}

impl Agents {
    pub(crate) fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let mut stmt = conn.prepare(
            "SELECT agent_id, platform, first_seen_ms, last_seen_ms, last_ts_ms, interval_ms,
                    metric_ts, metric_ts_ms, cpu, mem_free, mem_total, disk_free, disk_total,
                    net_rx_bps, net_tx_bps, uptime_s, agent_version, agent_uptime_s, drives, host
             FROM agents",
        )?;
        let committed = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, state_of(r)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Self { committed: SharedAgents(Arc::new(RwLock::new(committed))), ..Self::default() })
    }

    /// The readers' view, which [`Agents::commit`] keeps current.
    pub(crate) fn shared(&self) -> SharedAgents {
        self.committed.clone()
    }

    /// Records a stored batch in the pending changes.
    pub(crate) fn observe(&mut self, batch: &IngestBatch, ts_ms: i64, now_ms: i64) {
        let base = match self.pending.get(&batch.agent_id) {
            Some(pending) => pending.clone(),
            None if self.cleared_all => None,
            None => self.committed.read(|m| m.get(&batch.agent_id).cloned()),
        };
        let mut state = base.unwrap_or_else(|| AgentState::new(&batch.platform, now_ms, ts_ms));
        state.observe(batch, ts_ms, now_ms);
        self.pending.insert(batch.agent_id.clone(), Some(state));
    }

    /// Records a clear of one agent (or of all) whose rows the transaction deleted.
    pub(crate) fn clear(&mut self, agent_id: Option<&str>) {
        match agent_id {
            Some(agent) => drop(self.pending.insert(agent.to_owned(), None)),
            None => {
                self.pending.clear();
                self.cleared_all = true;
            }
        }
    }

    /// Writes one agent's row inside the open transaction (at the flush of its batches, so the
    /// row always matches the index; see [`super::backlog`]).
    pub(crate) fn write_row(&self, conn: &Connection, agent_id: &str) -> rusqlite::Result<()> {
        let Some(s) = self.committed.read(|m| m.get(agent_id).cloned()) else { return Ok(()) };
        // Validation keeps every integer within i64, so these casts never wrap.
        let int = |v: Option<u64>| v.map(|v| v as i64);
        let m = s.metric.as_ref();
        let r = m.map(|m| &m.reading);
        conn.prepare_cached(
            "INSERT OR REPLACE INTO agents(agent_id, platform, first_seen_ms, last_seen_ms,
                last_ts_ms, interval_ms, metric_ts, metric_ts_ms, cpu, mem_free, mem_total,
                disk_free, disk_total, net_rx_bps, net_tx_bps, uptime_s, agent_version,
                agent_uptime_s, drives, host)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                ?18, ?19, ?20)",
        )?
        .execute(params![
            agent_id,
            s.platform,
            s.first_seen_ms,
            s.last_seen_ms,
            s.last_ts_ms,
            s.interval_ms,
            m.map(|m| &m.ts),
            m.map(|m| m.ts_ms),
            r.and_then(|r| r.cpu),
            int(r.and_then(|r| r.mem_free)),
            int(r.and_then(|r| r.mem_total)),
            int(r.and_then(|r| r.disk_free)),
            int(r.and_then(|r| r.disk_total)),
            r.and_then(|r| r.net_rx_bps),
            r.and_then(|r| r.net_tx_bps),
            int(r.and_then(|r| r.uptime_s)),
            s.agent.as_ref().map(|a| &a.version),
            int(s.agent.as_ref().map(|a| a.uptime_s)),
            s.drives.as_ref().and_then(|d| serde_json::to_string(d).ok()),
            s.host.as_ref().and_then(|h| serde_json::to_string(h).ok()),
        ])?;
        Ok(())
    }

    /// After a successful commit: the pending changes become the committed state. A cleared
    /// agent's row was deleted in that commit; the others are written when their batches are.
    pub(crate) fn commit(&mut self) {
        let mut committed = self.committed.0.write().unwrap_or_else(PoisonError::into_inner);
        if std::mem::take(&mut self.cleared_all) {
            committed.clear();
        }
        for (agent_id, state) in self.pending.drain() {
            match state {
                Some(state) => drop(committed.insert(agent_id, state)),
                None => drop(committed.remove(&agent_id)),
            }
        }
    }

    /// After a failed commit: the pending changes are forgotten with it.
    pub(crate) fn rollback(&mut self) {
        self.pending.clear();
        self.cleared_all = false;
    }
}

fn state_of(r: &Row<'_>) -> rusqlite::Result<AgentState> {
    let uint = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(|v| v.max(0) as u64));
    let metric = match (r.get::<_, Option<String>>(6)?, r.get::<_, Option<i64>>(7)?) {
        (Some(ts), Some(ts_ms)) => Some(LatestMetric {
            ts,
            ts_ms,
            reading: Event {
                cpu: r.get(8)?,
                mem_free: uint(9)?,
                mem_total: uint(10)?,
                disk_free: uint(11)?,
                disk_total: uint(12)?,
                net_rx_bps: r.get(13)?,
                net_tx_bps: r.get(14)?,
                uptime_s: uint(15)?,
                ..Event::empty(EventKind::Metric)
            },
        }),
        _ => None,
    };
    Ok(AgentState {
        platform: r.get(1)?,
        first_seen_ms: r.get(2)?,
        last_seen_ms: r.get(3)?,
        last_ts_ms: r.get(4)?,
        interval_ms: r.get(5)?,
        metric,
        agent: match (r.get::<_, Option<String>>(16)?, uint(17)?) {
            (Some(version), Some(uptime_s)) => Some(AgentInfo { version, uptime_s }),
            _ => None,
        },
        // Written by us as JSON; a row changed into something else reads as no drives.
        drives: r.get::<_, Option<String>>(18)?.and_then(|d| serde_json::from_str(&d).ok()),
        host: r.get::<_, Option<String>>(19)?.and_then(|h| serde_json::from_str(&h).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ts: &str, cpu: Option<f64>) -> IngestBatch {
        let events = match cpu {
            Some(cpu) => format!(r#"[{{"type":"metric","cpu":{cpu},"mem_free":5}}]"#),
            None => r#"[{"type":"proc","pid":1,"name":"x","cpu":0.1,"rss":1}]"#.to_owned(),
        };
        serde_json::from_str(&format!(
            r#"{{"agent_id":"a","ts":"{ts}","platform":"linux","events":{events}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn interval_is_learnt_from_plausible_gaps_only() {
        let mut s = AgentState::new("linux", 0, 0);
        let b = batch("2025-01-01T00:00:00Z", None);
        s.observe(&b, 0, 1);
        assert_eq!(s.interval_ms, None, "a gap of zero is no interval");
        s.observe(&b, 5000, 2);
        assert_eq!(s.interval_ms, Some(5000.0));
        s.observe(&b, 15_000, 3);
        assert_eq!(s.interval_ms, Some(6250.0));
        s.observe(&b, 1_000, 4);
        assert_eq!(s.interval_ms, Some(6250.0), "a replayed old batch changes nothing");
        assert_eq!(s.last_ts_ms, 15_000);
        s.observe(&b, 10_000_000, 5);
        assert_eq!(s.interval_ms, Some(6250.0), "an hour-long gap is an outage");
        assert_eq!(s.last_seen_ms, 5);
    }

    #[test]
    fn the_latest_metric_is_the_newest_by_the_agents_clock() {
        let mut s = AgentState::new("linux", 0, 0);
        s.observe(&batch("2025-01-01T00:00:10Z", Some(0.5)), 10_000, 1);
        s.observe(&batch("2025-01-01T00:00:05Z", Some(0.9)), 5_000, 2);
        s.observe(&batch("2025-01-01T00:00:20Z", None), 20_000, 3);
        let m = s.metric.unwrap();
        assert_eq!((m.ts_ms, m.reading.cpu), (10_000, Some(0.5)));
    }

    #[test]
    fn state_round_trips_through_the_table_and_a_rollback_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn =
            super::super::schema::open_writer(&path, crate::settings::Synchronous::Normal).unwrap();
        let mut agents = Agents::load(&conn).unwrap();
        agents.observe(&batch("2025-01-01T00:00:10Z", Some(0.5)), 10_000, 1);
        agents.commit();
        agents.write_row(&conn, "a").unwrap();
        agents.observe(&batch("2025-01-01T00:00:15Z", Some(0.7)), 15_000, 2);
        agents.rollback();
        let loaded = Agents::load(&conn).unwrap();
        let states = |a: &Agents| a.committed.read(BTreeMap::clone);
        assert_eq!(states(&loaded), states(&agents));
        assert_eq!(states(&loaded)["a"].metric.as_ref().unwrap().reading.cpu, Some(0.5));
    }

    #[test]
    fn a_clear_inside_a_commit_starts_the_agent_afresh() {
        let mut agents = Agents::default();
        agents.observe(&batch("2025-01-01T00:00:10Z", Some(0.5)), 10_000, 1);
        agents.commit();
        agents.observe(&batch("2025-01-01T00:00:15Z", Some(0.6)), 15_000, 2);
        agents.clear(None);
        agents.observe(&batch("2025-01-01T00:00:20Z", None), 20_000, 3);
        agents.commit();
        let a = agents.committed.read(|m| m["a"].clone());
        assert_eq!((a.first_seen_ms, a.metric.as_ref()), (3, None));
        agents.clear(Some("a"));
        agents.commit();
        assert!(!agents.shared().exists("a"));
    }
}
