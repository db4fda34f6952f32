//! What the dashboard knows: every agent with its latest figures and a bounded window of recent
//! readings, the recent event rows, the highest row id seen (the gap-fill cursor) and the alerts.
//!
//! Live rows and rows fetched over REST after a reconnect go through the same [`Store::apply`],
//! which is idempotent by row id, so a row is never counted or shown twice.

use crate::alerts::Alerts;
use crate::format::{parse_ts, used_fraction};
use protocol::{AgentSummary, EventRow, LiveMessage};
use std::collections::BTreeMap;

/// Recent readings kept per agent: one hour at the default five-second interval.
pub(crate) const POINTS_PER_AGENT: usize = 720;
/// Recent event rows kept for the live event log.
pub(crate) const RECENT_EVENTS: usize = 1000;

/// One whole-machine reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MetricPoint {
    pub t_ms: i64,
    pub cpu: Option<f64>,
    pub mem_used: Option<f64>,
    pub mem_total: Option<f64>,
    pub disk_used: Option<f64>,
    pub disk_total: Option<f64>,
    pub net_rx_bps: Option<f64>,
    pub net_tx_bps: Option<f64>,
}

impl MetricPoint {
    fn from_row(row: &EventRow) -> Option<Self> {
        let used = |free: Option<u64>, total: Option<u64>| match (free, total) {
            (Some(f), Some(t)) => Some(t.saturating_sub(f) as f64),
            _ => None,
        };
        Some(Self {
            t_ms: parse_ts(&row.ts)?,
            cpu: row.cpu,
            mem_used: used(row.mem_free, row.mem_total),
            mem_total: row.mem_total.map(|v| v as f64),
            disk_used: used(row.disk_free, row.disk_total),
            disk_total: row.disk_total.map(|v| v as f64),
            net_rx_bps: row.net_rx_bps,
            net_tx_bps: row.net_tx_bps,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentState {
    pub summary: AgentSummary,
    /// When we last heard from it, on the browser's clock (milliseconds).
    pub heard_at_ms: f64,
    /// Recent readings by row id, at most [`POINTS_PER_AGENT`].
    pub points: BTreeMap<i64, MetricPoint>,
    /// The latest batch's top processes, by row id.
    pub processes: BTreeMap<i64, EventRow>,
}

impl AgentState {
    fn new(summary: AgentSummary, heard_at_ms: f64) -> Self {
        Self { summary, heard_at_ms, points: BTreeMap::new(), processes: BTreeMap::new() }
    }

    /// The highest id of its readings and processes kept: it changes with each new batch, so
    /// views that fetch what rows do not carry refetch on it.
    pub(crate) fn newest_row_id(&self) -> i64 {
        let points = self.points.keys().next_back();
        points.max(self.processes.keys().next_back()).copied().unwrap_or(0)
    }

    pub(crate) fn interval_s(&self) -> f64 {
        protocol::liveness::interval_s(Some(self.summary.interval_s))
    }

    pub(crate) fn online(&self, now_ms: f64) -> bool {
        protocol::liveness::is_online(self.seen_ago_s(now_ms), self.interval_s())
    }

    pub(crate) fn seen_ago_s(&self, now_ms: f64) -> f64 {
        (now_ms - self.heard_at_ms) / 1000.0
    }

    pub(crate) fn mem_fraction(&self) -> Option<f64> {
        used_fraction(self.summary.mem_free, self.summary.mem_total)
    }

    /// Readings in time order (row ids follow arrival, which agents may reorder after an outage).
    pub(crate) fn timeline(&self) -> Vec<MetricPoint> {
        let mut points: Vec<MetricPoint> = self.points.values().copied().collect();
        points.sort_by_key(|p| p.t_ms);
        points
    }

    fn apply_metric(&mut self, row: &EventRow) {
        let newer = match (self.summary.metric_ts.as_deref().and_then(parse_ts), parse_ts(&row.ts))
        {
            (Some(old), Some(new)) => new >= old,
            _ => true,
        };
        if newer {
            // The figures `take_live_figures` keeps over an older answer.
            let s = &mut self.summary;
            s.metric_ts = Some(row.ts.clone());
            s.cpu = row.cpu;
            s.mem_free = row.mem_free;
            s.mem_total = row.mem_total.or(s.mem_total);
            s.disk_free = row.disk_free.or(s.disk_free);
            s.disk_total = row.disk_total.or(s.disk_total);
            s.net_rx_bps = row.net_rx_bps;
            s.net_tx_bps = row.net_tx_bps;
            s.uptime_s = row.uptime_s.or(s.uptime_s);
        }
        if let Some(point) = MetricPoint::from_row(row) {
            self.points.insert(row.id, point);
            while self.points.len() > POINTS_PER_AGENT {
                self.points.pop_first();
            }
        }
    }

    fn apply_process(&mut self, row: &EventRow) {
        let current = self.processes.values().next().and_then(|p| parse_ts(&p.ts));
        match (current, parse_ts(&row.ts)) {
            (Some(cur), Some(new)) if new < cur => return,
            (Some(cur), Some(new)) if new > cur => self.processes.clear(),
            _ => {}
        }
        self.processes.insert(row.id, row.clone());
    }
}

/// Whether applying changed which agents exist, so the caller refreshes `/api/agents`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    pub rows: usize,
    pub new_agents: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Store {
    pub agents: BTreeMap<String, AgentState>,
    /// Recent rows by id, at most [`RECENT_EVENTS`].
    pub events: BTreeMap<i64, EventRow>,
    /// The highest row id applied: gap fill fetches what came after it.
    pub max_id: i64,
    /// Browser clock minus backend clock, learnt from `/api/agents`.
    skew_ms: f64,
    /// `/api/agents` has answered at least once.
    pub loaded: bool,
    /// Counts clear notices, so views holding fetched rows know to refetch.
    pub clears: u64,
    /// Clearing events leaves them: alerts are kept apart from the rows they were measured on.
    pub alerts: Alerts,
}

impl Store {
    /// Takes the backend's view of the fleet; `now_ms` is the browser clock.
    pub(crate) fn set_agents(&mut self, list: Vec<AgentSummary>, now_ms: f64) {
        if let Some(a) = list.iter().find(|a| parse_ts(&a.last_seen).is_some()) {
            let server_now =
                parse_ts(&a.last_seen).unwrap_or_default() as f64 + a.last_seen_ago_s * 1000.0;
            self.skew_ms = now_ms - server_now;
        }
        for summary in list {
            let heard = now_ms - summary.last_seen_ago_s * 1000.0;
            match self.agents.get_mut(&summary.agent_id) {
                Some(state) => {
                    // The answer is taken, but live rows may be newer than it: the figures
                    // they own are kept then.
                    let live = std::mem::replace(&mut state.summary, summary);
                    if live.metric_ts.as_deref().and_then(parse_ts)
                        > state.summary.metric_ts.as_deref().and_then(parse_ts)
                    {
                        take_live_figures(&mut state.summary, live);
                    }
                    state.heard_at_ms = state.heard_at_ms.max(heard);
                }
                None => {
                    self.agents.insert(summary.agent_id.clone(), AgentState::new(summary, heard));
                }
            }
        }
        self.loaded = true;
    }

    /// Applies a burst of live messages (or a gap-fill page) at once, skipping rows already seen.
    pub(crate) fn apply(&mut self, messages: impl IntoIterator<Item = LiveMessage>) -> Applied {
        let mut applied = Applied::default();
        for message in messages {
            match message {
                LiveMessage::Row(row) => {
                    if self.apply_row(*row, &mut applied.new_agents) {
                        applied.rows += 1;
                    }
                }
                LiveMessage::Clear(clear) => self.clear(clear.agent_id.as_deref()),
                LiveMessage::Alert(notice) => self.alerts.apply(notice.alert),
            }
        }
        applied
    }

    fn apply_row(&mut self, row: EventRow, new_agent: &mut bool) -> bool {
        let full = self.events.len() >= RECENT_EVENTS;
        let older_than_kept = self.events.first_key_value().is_some_and(|(id, _)| row.id < *id);
        if self.events.contains_key(&row.id) || (full && older_than_kept) {
            return false;
        }
        let heard = parse_ts(&row.ingested_at).map(|t| t as f64 + self.skew_ms);
        let agent = self.agents.entry(row.agent_id.clone()).or_insert_with(|| {
            *new_agent = true;
            AgentState::new(summary_from_row(&row), heard.unwrap_or(f64::NEG_INFINITY))
        });
        if let Some(h) = heard {
            agent.heard_at_ms = agent.heard_at_ms.max(h);
        }
        agent.summary.platform.clone_from(&row.platform);
        match row.event_type.as_str() {
            "metric" => agent.apply_metric(&row),
            "proc" => agent.apply_process(&row),
            _ => {}
        }
        self.max_id = self.max_id.max(row.id);
        self.events.insert(row.id, row);
        while self.events.len() > RECENT_EVENTS {
            self.events.pop_first();
        }
        true
    }

    fn clear(&mut self, agent_id: Option<&str>) {
        self.clears += 1;
        self.events.retain(|_, r| agent_id.is_some_and(|a| r.agent_id != a));
        for (id, agent) in &mut self.agents {
            if agent_id.is_none_or(|a| a == id) {
                agent.points.clear();
                agent.processes.clear();
            }
        }
    }

    pub(crate) fn counts(&self, now_ms: f64) -> (usize, usize) {
        let online = self.agents.values().filter(|a| a.online(now_ms)).count();
        (online, self.agents.len() - online)
    }
}

/// Keeps over an older `/api/agents` answer what live metric rows own in a summary, and only
/// that: the figures [`AgentState::apply_metric`] writes.
fn take_live_figures(to: &mut AgentSummary, from: AgentSummary) {
    to.metric_ts = from.metric_ts;
    to.cpu = from.cpu;
    to.mem_free = from.mem_free;
    to.mem_total = from.mem_total;
    to.disk_free = from.disk_free;
    to.disk_total = from.disk_total;
    to.net_rx_bps = from.net_rx_bps;
    to.net_tx_bps = from.net_tx_bps;
    to.uptime_s = from.uptime_s;
}

fn summary_from_row(row: &EventRow) -> AgentSummary {
    AgentSummary {
        agent_id: row.agent_id.clone(),
        platform: row.platform.clone(),
        first_seen: row.ingested_at.clone(),
        last_seen: row.ingested_at.clone(),
        last_seen_ago_s: 0.0,
        interval_s: 0.0,
        online: true,
        metric_ts: None,
        cpu: None,
        mem_free: None,
        mem_total: None,
        disk_free: None,
        disk_total: None,
        net_rx_bps: None,
        net_tx_bps: None,
        uptime_s: None,
        agent_version: None,
        agent_uptime_s: None,
        drives: Vec::new(),
        host: None,
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
