use super::*;
use crate::fixtures::{NOW_MS, live, metric, process, summary};
use protocol::ClearMessage;

#[test]
fn a_burst_is_applied_in_one_call() {
    let mut store = Store::default();
    let burst = (1..=300).map(|i| live(metric(i, "pc-1", NOW_MS + i as f64 * 5000.0, 0.5)));
    let applied = store.apply(burst);
    assert_eq!(applied, Applied { rows: 300, new_agents: true });
    assert_eq!(store.max_id, 300);
    assert_eq!(store.agents["pc-1"].points.len(), 300);
}

#[test]
fn rows_seen_twice_are_applied_once() {
    let mut store = Store::default();
    store.apply((1..=10).map(|i| live(metric(i, "pc-1", NOW_MS + i as f64 * 1000.0, 0.1))));
    // A gap fill after reconnecting overlaps what the socket already delivered.
    let page = (5..=15).map(|i| live(metric(i, "pc-1", NOW_MS + i as f64 * 1000.0, 0.1)));
    let applied = store.apply(page);
    assert_eq!(applied, Applied { rows: 5, new_agents: false });
    assert_eq!(store.events.len(), 15);
    assert_eq!(store.agents["pc-1"].points.len(), 15);
    assert_eq!(store.max_id, 15);
}

#[test]
fn memory_per_agent_and_for_events_is_bounded() {
    let mut store = Store::default();
    let n = (RECENT_EVENTS + POINTS_PER_AGENT) as i64;
    store.apply((1..=n).map(|i| live(metric(i, "pc-1", NOW_MS + i as f64 * 5000.0, 0.2))));
    let agent = &store.agents["pc-1"];
    assert_eq!(agent.points.len(), POINTS_PER_AGENT);
    assert_eq!(store.events.len(), RECENT_EVENTS);
    // The newest are the ones kept.
    assert_eq!(*agent.points.keys().next_back().unwrap(), n);
    assert_eq!(*store.events.keys().next().unwrap(), n - RECENT_EVENTS as i64 + 1);
    // A row older than everything kept cannot come back in through a late gap fill.
    assert_eq!(store.apply([live(metric(1, "pc-1", NOW_MS, 0.2))]).rows, 0);
}

#[test]
fn latest_figures_follow_the_newest_reading_only() {
    let mut store = Store::default();
    store.apply([live(metric(2, "pc-1", NOW_MS, 0.9))]);
    // Delivered late (an agent's disk queue draining): charted, but not the current figure.
    store.apply([live(metric(3, "pc-1", NOW_MS - 60_000.0, 0.1))]);
    let agent = &store.agents["pc-1"];
    assert_eq!(agent.summary.cpu, Some(0.9));
    let timeline = agent.timeline();
    assert_eq!(timeline.len(), 2);
    assert!(timeline[0].t_ms < timeline[1].t_ms);
    assert_eq!(agent.mem_fraction(), Some(0.75));
}

#[test]
fn processes_keep_only_the_latest_batch() {
    let mut store = Store::default();
    store.apply([
        live(process(1, "pc-1", NOW_MS, 10, "a.exe", 0.2)),
        live(process(2, "pc-1", NOW_MS, 11, "b.exe", 0.1)),
        live(process(3, "pc-1", NOW_MS + 5000.0, 12, "c.exe", 0.3)),
        live(process(4, "pc-1", NOW_MS, 13, "stale.exe", 0.3)),
    ]);
    let names: Vec<_> =
        store.agents["pc-1"].processes.values().map(|p| p.proc_name.clone().unwrap()).collect();
    assert_eq!(names, ["c.exe"]);
}

#[test]
fn online_follows_the_learnt_interval() {
    let mut store = Store::default();
    store.set_agents(vec![summary("fresh", 2.0, 0.3), summary("stale", 120.0, 0.6)], NOW_MS);
    assert_eq!(store.counts(NOW_MS), (1, 1));
    assert!(store.agents["fresh"].online(NOW_MS + 12_000.0));
    assert!(!store.agents["fresh"].online(NOW_MS + 14_000.0));
    assert_eq!(store.agents["stale"].seen_ago_s(NOW_MS).round(), 120.0);
    // Offline agents keep their last figures.
    assert_eq!(store.agents["stale"].summary.cpu, Some(0.6));
}

#[test]
fn live_rows_are_dated_by_the_backend_clock_corrected_for_skew() {
    let mut store = Store::default();
    // The browser clock runs 10 s ahead of the backend.
    store.set_agents(vec![summary("pc-1", 1.0, 0.3)], NOW_MS + 10_000.0);
    let row = metric(7, "pc-1", NOW_MS, 0.4);
    store.apply([live(row)]);
    assert!(store.agents["pc-1"].seen_ago_s(NOW_MS + 10_000.0).abs() < 0.01);
}

#[test]
fn a_refetch_does_not_roll_back_newer_live_figures() {
    let mut store = Store::default();
    store.apply([live(metric(9, "pc-1", NOW_MS + 30_000.0, 0.8))]);
    let mut fetched = summary("pc-1", 0.0, 0.3);
    fetched.host = Some(protocol::Host { cores: vec![0.5, 0.25], ..protocol::Host::default() });
    fetched.agent_version = Some("0.2.0".into());
    store.set_agents(vec![fetched], NOW_MS);
    let agent = &store.agents["pc-1"];
    assert_eq!(agent.summary.cpu, Some(0.8));
    assert_eq!(agent.interval_s(), 5.0);
    // Live rows carry no host figures: the answer's are kept.
    assert_eq!(agent.summary.host.as_ref().map(|h| h.cores.len()), Some(2));
    assert_eq!(agent.summary.agent_version.as_deref(), Some("0.2.0"));
}

#[test]
fn clear_notices_drop_one_agent_or_everything() {
    let mut store = Store::default();
    store.apply([live(metric(1, "a", NOW_MS, 0.1)), live(metric(2, "b", NOW_MS, 0.1))]);
    store.apply([LiveMessage::Clear(ClearMessage::new(Some("a".into())))]);
    assert_eq!(store.events.keys().copied().collect::<Vec<_>>(), [2]);
    assert!(store.agents["a"].points.is_empty());
    assert_eq!(store.agents["b"].points.len(), 1);
    store.apply([LiveMessage::Clear(ClearMessage::new(None))]);
    assert!(store.events.is_empty());
    assert!(store.agents["b"].points.is_empty());
    // Ids are never reused after a clear, so the cursor stays.
    assert_eq!(store.max_id, 2);
}

#[test]
fn alert_notices_keep_the_open_set_and_survive_a_clear() {
    use crate::fixtures::alert;
    use protocol::alerts::{AlertMessage, AlertState};
    let notice = |state| LiveMessage::Alert(Box::new(AlertMessage::new(alert(5, "pc-1", state))));
    let mut store = Store::default();
    let applied = store.apply([notice(AlertState::Pending), notice(AlertState::Firing)]);
    assert_eq!(applied, Applied::default(), "alerts are not rows");
    assert_eq!(store.alerts.firing_on("pc-1"), 1);
    store.apply([LiveMessage::Clear(ClearMessage::new(None))]);
    assert_eq!(store.alerts.firing_on("pc-1"), 1);
    store.apply([notice(AlertState::Resolved)]);
    assert!(store.alerts.open(None).is_empty());
    assert_eq!(store.alerts.history().len(), 1);
}
