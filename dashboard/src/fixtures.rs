//! Fixed rows and agents for unit and snapshot tests.

use protocol::alerts::{Alert, AlertState, Severity};
use protocol::{AgentSummary, EventRow, LiveMessage};

/// 2025-11-12T12:00:00Z, the moment every fixture is seen from.
pub(crate) const NOW_MS: f64 = 1_762_948_800_000.0;

pub(crate) fn iso(unix_ms: f64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(unix_ms as i128 * 1_000_000).unwrap();
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

pub(crate) fn metric(id: i64, agent: &str, at_ms: f64, cpu: f64) -> EventRow {
    EventRow {
        id,
        agent_id: agent.to_owned(),
        ts: iso(at_ms),
        platform: "windows".to_owned(),
        event_type: "metric".to_owned(),
        cpu: Some(cpu),
        mem_free: Some(4 << 30),
        pid: None,
        proc_name: None,
        rss: None,
        ingested_at: iso(at_ms),
        mem_total: Some(16 << 30),
        disk_free: Some(200 << 30),
        disk_total: Some(500 << 30),
        net_rx_bps: Some(125_000.0),
        net_tx_bps: Some(20_000.0),
        uptime_s: Some(90_000),
    }
}

pub(crate) fn process(
    id: i64,
    agent: &str,
    at_ms: f64,
    pid: u32,
    name: &str,
    cpu: f64,
) -> EventRow {
    EventRow {
        event_type: "proc".to_owned(),
        cpu: Some(cpu),
        mem_free: None,
        pid: Some(pid),
        proc_name: Some(name.to_owned()),
        rss: Some(u64::from(pid) << 20),
        mem_total: None,
        disk_free: None,
        disk_total: None,
        net_rx_bps: None,
        net_tx_bps: None,
        uptime_s: None,
        ..metric(id, agent, at_ms, 0.0)
    }
}

pub(crate) fn live(row: EventRow) -> LiveMessage {
    LiveMessage::Row(Box::new(row))
}

pub(crate) fn summary(agent: &str, ago_s: f64, cpu: f64) -> AgentSummary {
    AgentSummary {
        agent_id: agent.to_owned(),
        platform: "windows".to_owned(),
        first_seen: iso(NOW_MS - 86_400_000.0),
        last_seen: iso(NOW_MS - ago_s * 1000.0),
        last_seen_ago_s: ago_s,
        interval_s: 5.0,
        online: ago_s <= 15.0,
        metric_ts: Some(iso(NOW_MS - ago_s * 1000.0)),
        cpu: Some(cpu),
        mem_free: Some(6 << 30),
        mem_total: Some(16 << 30),
        disk_free: Some(100 << 30),
        disk_total: Some(250 << 30),
        net_rx_bps: Some(1_000.0),
        net_tx_bps: Some(500.0),
        uptime_s: Some(7_200),
        agent_version: Some("0.1.0".into()),
        agent_uptime_s: Some(3_600),
        drives: vec![protocol::Drive {
            mount: "D:\\".into(),
            free: 100 << 30,
            total: 400 << 30,
            read_bps: Some(2_500_000.0),
            write_bps: Some(0.0),
        }],
        host: Some(protocol::Host {
            cores: vec![0.9, 0.05, 0.5, 1.0],
            swap_used: Some(1 << 30),
            swap_total: Some(4 << 30),
            commit_used: Some(10 << 30),
            commit_limit: Some(20 << 30),
        }),
    }
}

/// A CPU alert on `agent`, started two minutes before [`NOW_MS`] and fired a minute later.
pub(crate) fn alert(id: i64, agent: &str, state: AlertState) -> Alert {
    let started = (NOW_MS / 1000.0) as i64 - 120;
    Alert {
        id,
        rule_id: 1,
        rule_name: "busy".to_owned(),
        agent_id: agent.to_owned(),
        severity: Severity::Warning,
        state,
        value: Some(97.5),
        threshold: Some(90.0),
        started_at: started,
        fired_at: (state != AlertState::Pending).then_some(started + 60),
        resolved_at: (state == AlertState::Resolved).then_some(started + 110),
        summary: format!("CPU 97.5 % on {agent} (above 90)"),
    }
}
