//! What a round measures: for each enabled rule and each agent in its scope, the window's
//! figure from the per-minute tier, and whether it breaches. The same window of one agent is
//! read once for all the rules that use it.

use super::decide::{Measure, Measures};
use super::in_scope;
use crate::storage::{Range, StorageError, Store};
use protocol::alerts::{Aggregate, Comparison, Metric, Rule};
use protocol::{AgentSummary, NoticeLevel, ProcessHistory, Series, ServiceState, ServicesResponse};
use std::collections::HashMap;

/// Readings stamped this far ahead of the backend's clock still count (agents' clocks drift).
const AHEAD_MS: i64 = 60_000;

/// The range read for a window ending now: one bucket wide, so the store sums it for us. The
/// tier's minute that the window starts in counts whole.
fn window(now_ms: i64, window_s: u32) -> Range {
    let from_ms = now_ms - i64::from(window_s) * 1000;
    let to_ms = now_ms + AHEAD_MS;
    Range { from_ms, to_ms, step_ms: to_ms - from_ms }
}

fn first(v: &[Option<f64>]) -> Option<f64> {
    v.first().copied().flatten()
}

fn pct(part: Option<f64>, whole: Option<f64>) -> Option<f64> {
    let (part, whole) = (part?, whole?);
    (whole > 0.0).then(|| part / whole * 100.0)
}

/// The rule's figure in a one-bucket series; `None` without readings.
fn series_value(rule: &Rule, s: &Series) -> Option<f64> {
    let max = rule.spec.aggregate == Aggregate::Max;
    match rule.spec.metric {
        Metric::Cpu => first(if max { &s.cpu_max } else { &s.cpu_avg }).map(|c| c * 100.0),
        Metric::MemUsedPct => pct(first(&s.mem_used), first(&s.mem_total)),
        Metric::DiskFreePct => {
            let (used, total) = (first(&s.disk_used), first(&s.disk_total));
            pct(total.zip(used).map(|(t, u)| t - u), total)
        }
        Metric::NetRxBps => first(&s.net_rx_bps),
        Metric::NetTxBps => first(&s.net_tx_bps),
        _ => None,
    }
}

fn process_value(rule: &Rule, h: &ProcessHistory) -> Option<f64> {
    match (rule.spec.metric, rule.spec.aggregate) {
        (Metric::ProcCpu, Aggregate::Max) => first(&h.cpu_max).map(|c| c * 100.0),
        (Metric::ProcCpu, Aggregate::Avg) => first(&h.cpu_avg).map(|c| c * 100.0),
        (Metric::ProcRss, _) => first(&h.rss_avg),
        _ => None,
    }
}

fn compared(rule: &Rule, value: Option<f64>) -> Option<Measure> {
    let (v, t) = (value?, rule.spec.threshold?);
    let breach = match rule.spec.comparison {
        Comparison::Above => v > t,
        Comparison::Below => v < t,
    };
    Some(Measure { breach, value: Some(v) })
}

/// Reads shared within one round.
#[derive(Default)]
struct Cache {
    series: HashMap<(String, u32), Series>,
    processes: HashMap<(String, String, u32), ProcessHistory>,
    services: HashMap<String, ServicesResponse>,
    log_errors: HashMap<(String, u32), u64>,
}

/// Measures every enabled rule on every agent in its scope. An agent that is offline measures
/// only for `offline` rules: its other alerts wait for its data.
pub(crate) async fn measure(
    store: &dyn Store,
    rules: &[Rule],
    now_ms: i64,
) -> Result<Measures, StorageError> {
    let mut out = Measures::default();
    let rules: Vec<&Rule> = rules.iter().filter(|r| r.spec.enabled).collect();
    if rules.is_empty() {
        // Every open alert belongs to a disabled or deleted rule and resolves anyway.
        return Ok(out);
    }
    let agents: Vec<AgentSummary> = store.agents(now_ms, None).await?;
    out.agents = agents.iter().map(|a| a.agent_id.clone()).collect();
    let mut cache = Cache::default();
    for agent in &agents {
        let id = &agent.agent_id;
        for rule in rules.iter().filter(|r| in_scope(&r.spec, id)) {
            let m = if rule.spec.metric == Metric::Offline {
                Some(Measure { breach: !agent.online, value: Some(agent.last_seen_ago_s) })
            } else if !agent.online {
                None
            } else {
                measure_one(store, &mut cache, rule, id, now_ms).await?
            };
            if let Some(m) = m {
                out.of.insert((rule.id, id.clone()), m);
            }
        }
    }
    Ok(out)
}

async fn measure_one(
    store: &dyn Store,
    cache: &mut Cache,
    rule: &Rule,
    agent: &str,
    now_ms: i64,
) -> Result<Option<Measure>, StorageError> {
    let w = rule.spec.window_s;
    match rule.spec.metric {
        Metric::ServiceDown => {
            // Rules are checked to name one; a row changed by hand measures nothing.
            let Some(name) = &rule.spec.service else { return Ok(None) };
            if !cache.services.contains_key(agent) {
                let listed = store.services(agent.to_owned()).await?;
                cache.services.insert(agent.to_owned(), listed);
            }
            // A service the agent does not list is not watched there: nothing to say.
            let listed = cache.services[agent].services.iter().find(|s| &s.name == name);
            return Ok(
                listed.map(|s| Measure { breach: s.state != ServiceState::Running, value: None })
            );
        }
        Metric::LogErrors => {
            let key = (agent.to_owned(), w);
            if !cache.log_errors.contains_key(&key) {
                let since = now_ms - i64::from(w) * 1000;
                let n =
                    store.count_log_notices(agent.to_owned(), NoticeLevel::Error, since).await?;
                cache.log_errors.insert(key.clone(), n);
            }
            return Ok(compared(rule, Some(cache.log_errors[&key] as f64)));
        }
        _ => {}
    }
    let Some(process) = rule.spec.process.clone() else {
        let key = (agent.to_owned(), w);
        if !cache.series.contains_key(&key) {
            let s = store.series(agent.to_owned(), window(now_ms, w)).await?;
            cache.series.insert(key.clone(), s);
        }
        return Ok(compared(rule, series_value(rule, &cache.series[&key])));
    };
    let key = (agent.to_owned(), process, w);
    if !cache.processes.contains_key(&key) {
        let h = store.process_history(agent.to_owned(), key.1.clone(), window(now_ms, w)).await?;
        cache.processes.insert(key.clone(), h);
    }
    let h = &cache.processes[&key];
    if rule.spec.metric == Metric::ProcMissing {
        return Ok(Some(Measure { breach: h.t.is_empty(), value: None }));
    }
    Ok(compared(rule, process_value(rule, h)))
}
