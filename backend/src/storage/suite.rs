//! One test suite for every [`Store`]: each case runs against SQLite (a temporary file) and
//! against a real PostgreSQL (a fresh database per case, on the server of
//! `harness::postgres`: `TEST_DATABASE_URL`, or one the tests start themselves).

use super::postgres::PgStorage;
use super::sqlite::SqliteStorage;
use super::sqlite::backlog::FlushPolicy;
use super::{Compaction, Cutoffs, EventFilter, PRUNE_CHUNK, Range, StorageError, Store, prune};
use crate::clock::now_ms;
use crate::live::{Hub, LiveFrame};
use crate::security::Verified;
use crate::settings::Synchronous;
use protocol::{Event, EventKind, IngestBatch, NoticeKind, NoticeLevel, Secret, ServiceState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A store under test, with what keeps it alive.
struct Subject {
    store: Box<dyn Store>,
    hub: Hub,
    _dir: Option<tempfile::TempDir>,
}

/// SQLite with every batch waiting for the index (the cases are too short to reach the default
/// policy), with every other one indexed, or with all indexed right after each commit.
async fn sqlite_with(policy: FlushPolicy) -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::new(64);
    let opened = SqliteStorage::open_with(
        &dir.path().join("t.db"),
        Synchronous::Normal,
        hub.clone(),
        Arc::default(),
        policy,
    )
    .unwrap();
    Subject { store: Box::new(opened.storage), hub, _dir: Some(dir) }
}

async fn sqlite() -> Subject {
    sqlite_with(FlushPolicy::default()).await
}

async fn sqlite_half_indexed() -> Subject {
    sqlite_with(FlushPolicy { batches: 2, after: Duration::from_secs(3600) }).await
}

async fn sqlite_indexed() -> Subject {
    sqlite_with(FlushPolicy { batches: 1, after: Duration::ZERO }).await
}

/// A new, empty database on the test server, so that cases never see each other's rows.
async fn fresh_postgres_database() -> Secret {
    let admin = harness::postgres::server_url();
    let name = format!("telemetry_test_{}", uuid::Uuid::new_v4().simple());
    Secret::new(super::postgres::create_database(&admin, &name).await.unwrap())
}

async fn postgres_on(url: &Secret) -> Subject {
    let hub = Hub::new(64);
    let store = PgStorage::open(url, hub.clone(), Arc::default()).await.unwrap();
    Subject { store: Box::new(store), hub, _dir: None }
}

async fn postgres() -> Subject {
    postgres_on(&fresh_postgres_database().await).await
}

/// PostgreSQL merging the tiers' deltas all the time, so that the cases' reads meet sums in
/// the deltas, in the tiers, and moving between them.
async fn postgres_merging() -> Subject {
    let hub = Hub::new(64);
    let url = fresh_postgres_database().await;
    let every = Duration::from_millis(5);
    let store = PgStorage::open_with(&url, hub.clone(), Arc::default(), every).await.unwrap();
    Subject { store: Box::new(store), hub, _dir: None }
}

/// Each case as a test on one store.
macro_rules! cases_on {
    ($module:ident, $subject:ident, $($case:ident),*) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::$subject().await).await })*
        }
    };
}

/// Each case once per store.
macro_rules! every_store {
    ($($case:ident),* $(,)?) => {
        cases_on!(on_sqlite, sqlite, $($case),*);
        cases_on!(on_sqlite_half_indexed, sqlite_half_indexed, $($case),*);
        cases_on!(on_sqlite_indexed, sqlite_indexed, $($case),*);
        cases_on!(on_postgres, postgres, $($case),*);
        cases_on!(on_postgres_merging, postgres_merging, $($case),*);
    };
}

every_store!(
    rows_read_back_newest_first_with_paging_and_filters,
    pages_walk_every_row_once_under_every_filter,
    a_batch_id_is_stored_once,
    agents_keep_their_latest_metric_and_learn_their_interval,
    series_and_processes_come_from_the_agents_own_clock,
    long_charts_read_the_tiers_and_late_batches_join_their_bucket,
    figures_left_out_stay_gaps_and_other_types_are_kept,
    clearing_one_agent_leaves_the_others,
    a_clear_right_after_a_batch_leaves_no_agent_behind,
    retention_removes_old_events_in_steps,
    batch_ids_that_outlive_their_events_are_pruned_in_steps,
    the_live_feed_gets_each_stored_row,
    compacted_batches_read_back_as_they_were,
    services_notices_and_cores_are_kept_once_and_newest,
);

static SIGNATURES: AtomicU64 = AtomicU64::new(1);

fn verified() -> Verified {
    let mut signature = [0u8; 32];
    signature[..8].copy_from_slice(&SIGNATURES.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    signature[8..16].copy_from_slice(&now_ms().to_le_bytes());
    Verified { signature, expires_ms: now_ms() + 120_000 }
}

const T0: i64 = 1_762_948_800_000;

fn batch(agent: &str, ts_ms: i64, cpu: f64, procs: &[(&str, f64)]) -> IngestBatch {
    let mut events = vec![Event {
        cpu: Some(cpu),
        mem_free: Some(1_000),
        mem_total: Some(4_000),
        disk_free: Some(10),
        disk_total: Some(100),
        net_rx_bps: Some(1.5),
        uptime_s: Some(60),
        ..Event::empty(EventKind::Metric)
    }];
    events.extend(
        procs
            .iter()
            .enumerate()
            .map(|(i, (name, cpu))| Event::process(100 + i as u32, *name, *cpu, 4096)),
    );
    IngestBatch {
        agent_id: agent.into(),
        ts: crate::clock::format_ms(ts_ms),
        platform: "windows".into(),
        batch_id: Some(uuid::Uuid::now_v7().to_string()),
        events,
        agent: None,
        drives: None,
        host: None,
        notices: None,
        services: None,
    }
}

async fn put(s: &Subject, b: IngestBatch) -> usize {
    let ts_ms = b.validate().unwrap();
    let outcome = s.store.ingest(b, ts_ms, verified()).await.unwrap();
    assert!(!outcome.duplicate);
    outcome.stored
}

fn filter(agent: Option<&str>, kind: Option<&str>, before: Option<i64>, limit: u32) -> EventFilter {
    EventFilter {
        agent_id: agent.map(Into::into),
        event_type: kind.map(Into::into),
        before_id: before,
        limit,
    }
}

async fn rows_read_back_newest_first_with_paging_and_filters(s: Subject) {
    assert_eq!(put(&s, batch("a", T0, 0.25, &[("x.exe", 0.1), ("y.exe", 0.2)])).await, 3);
    assert_eq!(put(&s, batch("b", T0, 0.5, &[("z.exe", 0.3)])).await, 2);
    let all = s.store.events(filter(None, None, None, 50)).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first, strictly");
    assert_eq!(all[0].agent_id, "b");
    let metric = all.iter().find(|r| r.agent_id == "a" && r.event_type == "metric").unwrap();
    assert_eq!(
        (metric.cpu, metric.mem_free, metric.mem_total, metric.net_tx_bps, metric.pid),
        (Some(0.25), Some(1_000), Some(4_000), None, None)
    );
    let proc = all.iter().find(|r| r.proc_name.as_deref() == Some("y.exe")).unwrap();
    assert_eq!(
        (proc.pid, proc.rss, proc.cpu, proc.mem_free),
        (Some(101), Some(4096), Some(0.2), None)
    );
    let page = s.store.events(filter(None, None, Some(all[1].id), 2)).await.unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [all[2].id, all[3].id]);
    let a_procs = s.store.events(filter(Some("a"), Some("proc"), None, 50)).await.unwrap();
    assert_eq!(a_procs.len(), 2);
    assert!(a_procs.iter().all(|r| r.agent_id == "a" && r.event_type == "proc"));
    let metrics = s.store.events(filter(None, Some("metric"), None, 50)).await.unwrap();
    assert_eq!(metrics.len(), 2);
    assert!(s.store.agent_exists("a".into()).await.unwrap());
    assert!(!s.store.agent_exists("nobody".into()).await.unwrap());
    s.store.close().await;
}

/// More batches than one read round fetches, of uneven sizes and kinds, across agents: every
/// filter's pages, cut anywhere inside a batch, give its rows once each, in order.
async fn pages_walk_every_row_once_under_every_filter(s: Subject) {
    let mut sent: Vec<(String, String)> = Vec::new();
    for i in 0..90_i64 {
        let agent = ["a", "b", "c"][(i % 3) as usize];
        let procs: Vec<(&str, f64)> =
            (0..i % 4).map(|p| (["x", "y", "z"][p as usize % 3], 0.1)).collect();
        let mut b = batch(agent, T0 + i * 1_000, 0.5, &procs);
        match i % 5 {
            // Only another type: a batch that a metric or process filter skips whole.
            0 => b.events = vec![Event { cpu: Some(0.7), ..Event::empty(EventKind::parse("gpu")) }],
            // Processes only.
            1 if b.events.len() > 1 => {
                b.events.remove(0);
            }
            _ => {}
        }
        sent.extend(b.events.iter().map(|e| (agent.to_owned(), e.type_name().to_owned())));
        put(&s, b).await;
    }
    sent.reverse();
    let all = s.store.events(filter(None, None, None, 10_000)).await.unwrap();
    let seen: Vec<(String, String)> =
        all.iter().map(|r| (r.agent_id.clone(), r.event_type.clone())).collect();
    assert_eq!(seen, sent, "every row once, newest first");
    for agent in [None, Some("a"), Some("c")] {
        for kind in [None, Some("metric"), Some("proc"), Some("gpu")] {
            let expected: Vec<i64> = all
                .iter()
                .filter(|r| agent.is_none_or(|a| a == r.agent_id))
                .filter(|r| kind.is_none_or(|k| k == r.event_type))
                .map(|r| r.id)
                .collect();
            let mut walked: Vec<i64> = Vec::new();
            let mut before = None;
            loop {
                let page = s.store.events(filter(agent, kind, before, 7)).await.unwrap();
                walked.extend(page.iter().map(|r| r.id));
                match page.last() {
                    Some(last) if page.len() == 7 => before = Some(last.id),
                    _ => break,
                }
            }
            assert_eq!(walked, expected, "agent {agent:?}, type {kind:?}");
        }
    }
    s.store.close().await;
}

async fn a_batch_id_is_stored_once(s: Subject) {
    let b = batch("a", T0, 0.1, &[("x.exe", 0.1)]);
    let ts_ms = b.validate().unwrap();
    let first = s.store.ingest(b.clone(), ts_ms, verified()).await.unwrap();
    let again = s.store.ingest(b, ts_ms, verified()).await.unwrap();
    assert_eq!((first.stored, first.duplicate), (2, false));
    assert_eq!((again.stored, again.duplicate), (0, true));
    assert_eq!(s.store.events(filter(None, None, None, 50)).await.unwrap().len(), 2);
    s.store.close().await;
}

async fn agents_keep_their_latest_metric_and_learn_their_interval(s: Subject) {
    let built =
        |version: &str, uptime_s| Some(protocol::AgentInfo { version: version.into(), uptime_s });
    let drive = |free| protocol::Drive {
        mount: "D:\\".into(),
        free,
        total: 100,
        read_bps: Some(1.5),
        write_bps: None,
    };
    let first = IngestBatch {
        agent: built("0.1.0", 10),
        drives: Some(vec![drive(40)]),
        ..batch("a", T0, 0.1, &[])
    };
    put(&s, first).await;
    put(&s, IngestBatch { agent: built("0.2.0", 15), ..batch("a", T0 + 5_000, 0.2, &[]) }).await;
    // A queued batch from before arrives late: stored, but not the latest reading (nor the
    // agent's version or drives then).
    let late = IngestBatch {
        agent: built("0.0.9", 99),
        drives: Some(vec![drive(90)]),
        ..batch("a", T0 - 60_000, 0.9, &[])
    };
    put(&s, late).await;
    put(&s, batch("b", T0, 0.3, &[])).await;
    let agents = s.store.agents(now_ms(), None).await.unwrap();
    assert_eq!(agents.iter().map(|a| a.agent_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    let a = &agents[0];
    assert_eq!((a.cpu, a.interval_s, a.online), (Some(0.2), 5.0, true));
    assert_eq!(a.metric_ts.as_deref(), Some(crate::clock::format_ms(T0 + 5_000).as_str()));
    assert_eq!(
        (a.mem_free, a.mem_total, a.platform.as_str()),
        (Some(1_000), Some(4_000), "windows")
    );
    assert_eq!((a.agent_version.as_deref(), a.agent_uptime_s), (Some("0.2.0"), Some(15)));
    assert_eq!(agents[1].agent_version, None, "a batch without it says nothing");
    assert_eq!(a.drives, [drive(40)], "the newest list, not cleared by batches without one");
    assert_eq!(agents[1].interval_s, 5.0, "the seed's interval until two batches are in");
    let later = s.store.agents(now_ms() + 60_000, None).await.unwrap();
    assert!(!later[0].online, "three intervals without a batch is offline");
    s.store.close().await;
}

async fn series_and_processes_come_from_the_agents_own_clock(s: Subject) {
    for i in 0..6 {
        let procs = [("x.exe", 0.1 * f64::from(i)), ("y.exe", 0.05)];
        put(&s, batch("a", T0 + i64::from(i) * 10_000, 0.1 * f64::from(i), &procs)).await;
    }
    let range = Range { from_ms: T0, to_ms: T0 + 60_000, step_ms: 20_000 };
    let series = s.store.series("a".into(), range).await.unwrap();
    assert_eq!(series.t, [T0 / 1000, T0 / 1000 + 20, T0 / 1000 + 40]);
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-9;
    assert!(close(series.cpu_avg[1], 0.25) && close(series.cpu_max[2], 0.5), "{series:?}");
    assert!(close(series.mem_used[0], 3_000.0) && close(series.disk_used[0], 90.0));
    assert_eq!(series.net_tx_bps[0], None);
    let latest = s.store.latest_processes("a".into()).await.unwrap();
    assert_eq!(latest.ts.as_deref(), Some(crate::clock::format_ms(T0 + 50_000).as_str()));
    let names: Vec<_> = latest.processes.iter().filter_map(|p| p.proc_name.clone()).collect();
    assert_eq!(names, ["x.exe", "y.exe"], "busiest first");
    let history = s.store.process_history("a".into(), "x.exe".into(), range).await.unwrap();
    assert_eq!(history.t.len(), 3);
    assert!(close(history.cpu_max[2], 0.5) && close(history.rss_avg[0], 4096.0));
    let none = s.store.latest_processes("nobody".into()).await.unwrap();
    assert!(none.processes.is_empty() && none.ts.is_none());
    s.store.close().await;
}

/// Charts with a step of a minute or more read the tiers: the averages and maxima the readings
/// give, a late batch in the bucket of its own time, old buckets pruned tier by tier, and
/// nothing left after a clear.
async fn long_charts_read_the_tiers_and_late_batches_join_their_bucket(s: Subject) {
    const HOUR: i64 = 3_600_000;
    // Two hours of readings every 10 minutes; the sixth arrives last, from a queue.
    for i in (0..12).filter(|i| *i != 5).chain([5]) {
        let cpu = 0.05 * i as f64;
        put(&s, batch("a", T0 + i * 600_000, cpu, &[("x.exe", cpu / 5.0)])).await;
    }
    let close = |got: &[Option<f64>], want: &[f64]| {
        got.len() == want.len()
            && got.iter().zip(want).all(|(g, w)| g.is_some_and(|g| (g - w).abs() < 1e-9))
    };
    let hourly = Range { from_ms: T0, to_ms: T0 + 2 * HOUR, step_ms: HOUR };
    let series = s.store.series("a".into(), hourly).await.unwrap();
    assert!(close(&series.cpu_avg, &[0.125, 0.425]), "{series:?}");
    assert!(close(&series.cpu_max, &[0.25, 0.55]) && close(&series.mem_used, &[3000.0; 2]));
    let history = s.store.process_history("a".into(), "x.exe".into(), hourly).await.unwrap();
    assert!(close(&history.cpu_avg, &[0.025, 0.085]) && close(&history.rss_avg, &[4096.0; 2]));
    let twenty_min = Range { step_ms: 1_200_000, ..hourly };
    let series = s.store.series("a".into(), twenty_min).await.unwrap();
    assert!(close(&series.cpu_avg, &[0.025, 0.125, 0.225, 0.325, 0.425, 0.525]), "{series:?}");

    // The per-minute tier keeps the second hour, the hourly one both.
    let cutoffs =
        Cutoffs { raw: Some(now_ms() + 1_000), tiers: [Some(T0 + HOUR), None], compact: None };
    prune(&*s.store, cutoffs).await.unwrap();
    let series = s.store.series("a".into(), twenty_min).await.unwrap();
    assert_eq!(series.t, [3, 4, 5].map(|k| (T0 + k * 1_200_000) / 1000));
    assert_eq!(s.store.series("a".into(), hourly).await.unwrap().t.len(), 2);

    s.store.clear(Some("a".into())).await.unwrap();
    assert!(s.store.series("a".into(), hourly).await.unwrap().t.is_empty());
    let history = s.store.process_history("a".into(), "x.exe".into(), hourly).await.unwrap();
    assert!(history.t.is_empty());
    s.store.close().await;
}

/// The seed's clients may leave any figure out and send types of their own.
async fn figures_left_out_stay_gaps_and_other_types_are_kept(s: Subject) {
    let mut b = batch("a", T0, 0.0, &[]);
    b.events = vec![
        Event { cpu: Some(0.3), ..Event::empty(EventKind::Metric) },
        Event { pid: Some(7), name: Some("x.exe".into()), ..Event::empty(EventKind::Proc) },
        Event::process(8, "busy.exe", 0.2, 1 << 20),
        Event {
            cpu: Some(0.9),
            name: Some("gpu0".into()),
            ..Event::empty(EventKind::parse("GPU"))
        },
    ];
    assert_eq!(put(&s, b).await, 4);
    let rows = s.store.events(filter(None, None, None, 50)).await.unwrap();
    let types: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(types, ["gpu", "proc", "proc", "metric"]);
    assert_eq!((rows[2].cpu, rows[2].rss, rows[3].mem_free), (None, None, None));
    let gpu = s.store.events(filter(Some("a"), Some("gpu"), None, 50)).await.unwrap();
    assert_eq!((gpu.len(), gpu[0].cpu, gpu[0].proc_name.as_deref()), (1, Some(0.9), Some("gpu0")));

    let agent = &s.store.agents(now_ms(), None).await.unwrap()[0];
    assert_eq!((agent.cpu, agent.mem_free, agent.mem_total), (Some(0.3), None, None));
    let range = Range { from_ms: T0, to_ms: T0 + 60_000, step_ms: 60_000 };
    let series = s.store.series("a".into(), range).await.unwrap();
    assert_eq!((series.cpu_avg.clone(), series.mem_used.clone()), (vec![Some(0.3)], vec![None]));
    let latest = s.store.latest_processes("a".into()).await.unwrap();
    let names: Vec<_> = latest.processes.iter().map(|p| p.proc_name.as_deref()).collect();
    assert_eq!(names, [Some("busy.exe"), Some("x.exe")], "busiest first, no cpu last");
    let history = s.store.process_history("a".into(), "x.exe".into(), range).await.unwrap();
    assert_eq!((history.cpu_avg.clone(), history.rss_avg.clone()), (vec![None], vec![None]));
    s.store.close().await;
}

async fn clearing_one_agent_leaves_the_others(s: Subject) {
    put(&s, batch("a", T0, 0.1, &[("x.exe", 0.1)])).await;
    put(&s, batch("b", T0, 0.1, &[])).await;
    assert_eq!(s.store.clear(Some("a".into())).await.unwrap(), 2);
    let left = s.store.events(filter(None, None, None, 50)).await.unwrap();
    assert!(left.iter().all(|r| r.agent_id == "b") && left.len() == 1);
    assert!(!s.store.agent_exists("a".into()).await.unwrap());
    // The agent comes back afresh, with new ids above every earlier one.
    put(&s, batch("a", T0 + 5_000, 0.1, &[])).await;
    let back = s.store.events(filter(Some("a"), None, None, 50)).await.unwrap();
    assert!(back[0].id > left[0].id);
    assert_eq!(s.store.clear(None).await.unwrap(), 2);
    assert!(s.store.agents(now_ms(), None).await.unwrap().is_empty());
    s.store.close().await;
}

async fn a_clear_right_after_a_batch_leaves_no_agent_behind(s: Subject) {
    for _ in 0..20 {
        // Sent in this order, most often into one commit.
        let b = batch("a", T0, 0.1, &[]);
        let ts_ms = b.validate().unwrap();
        let (stored, cleared) =
            tokio::join!(s.store.ingest(b, ts_ms, verified()), s.store.clear(Some("a".into())));
        assert_eq!((stored.unwrap().stored, cleared.unwrap()), (1, 1));
        assert!(s.store.agents(now_ms(), None).await.unwrap().is_empty());
    }
    s.store.close().await;
}

async fn retention_removes_old_events_in_steps(s: Subject) {
    let procs: Vec<(String, f64)> = (0..999).map(|i| (format!("p{i}"), 0.0)).collect();
    let procs: Vec<(&str, f64)> = procs.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    for i in 0..6 {
        put(&s, batch("a", T0 + i * 5_000, 0.1, &procs)).await;
    }
    assert_eq!(prune(&*s.store, Cutoffs::raw(Some(now_ms() - 3_600_000))).await.unwrap(), 0);
    // Everything ingested before a moment from now: all of it, more than one step's worth.
    let removed = prune(&*s.store, Cutoffs::raw(Some(now_ms() + 1_000))).await.unwrap();
    assert_eq!(removed, 6_000);
    assert!(removed > PRUNE_CHUNK);
    assert!(s.store.events(filter(None, None, None, 10)).await.unwrap().is_empty());
    s.store.close().await;
}

async fn batch_ids_that_outlive_their_events_are_pruned_in_steps(s: Subject) {
    // More batch ids than one step deletes, and no event left for the steps to count.
    let batches: Vec<IngestBatch> =
        (0..=PRUNE_CHUNK).map(|i| batch("a", T0 + i as i64, 0.1, &[])).collect();
    for chunk in batches.chunks(500) {
        let stored = futures_util::future::join_all(chunk.iter().cloned().map(|b| put(&s, b)));
        assert!(stored.await.iter().all(|&n| n == 1));
    }
    assert_eq!(s.store.clear(None).await.unwrap(), PRUNE_CHUNK + 1);
    let (first, last) = (&batches[0], &batches[PRUNE_CHUNK]);
    let ts_ms = first.validate().unwrap();
    let again = s.store.ingest(first.clone(), ts_ms, verified()).await.unwrap();
    assert!(again.duplicate, "a clear keeps the batch ids, so a late retry stays harmless");
    assert_eq!(prune(&*s.store, Cutoffs::raw(Some(now_ms() + 1_000))).await.unwrap(), 0);
    // All forgotten, the last one too: the same batches are new again.
    assert_eq!(put(&s, first.clone()).await, 1);
    assert_eq!(put(&s, last.clone()).await, 1);
    s.store.close().await;
}

/// Signatures expire whatever the events' age, so the steps go on while a chunk of them is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_expired_signatures_are_pruned_in_steps() {
    let url = fresh_postgres_database().await;
    let s = postgres_on(&url).await;
    let (client, connection) =
        tokio_postgres::connect(url.expose(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let backlog = 2 * PRUNE_CHUNK + 10;
    client
        .execute(
            "INSERT INTO replay_guard(signature, expires_ms)
             SELECT sha256(i::text::bytea), i FROM generate_series(1, $1::int) i",
            &[&(backlog as i32)],
        )
        .await
        .unwrap();
    put(&s, batch("a", T0, 0.1, &[])).await;
    let count = || async {
        client.query_one("SELECT count(*) FROM replay_guard", &[]).await.unwrap().get::<_, i64>(0)
    };
    let step = s.store.prune_step(Cutoffs::default()).await.unwrap();
    assert_eq!((step.events, step.more), (0, true));
    assert_eq!(count().await, (backlog - PRUNE_CHUNK + 1) as i64, "one chunk a step");
    assert_eq!(prune(&*s.store, Cutoffs::default()).await.unwrap(), 0);
    assert_eq!(count().await, 1, "every expired one went, the live one stayed");
    s.store.close().await;
}

async fn next_frame(rx: &mut tokio::sync::broadcast::Receiver<LiveFrame>) -> LiveFrame {
    tokio::time::timeout(Duration::from_secs(1), rx.recv())
        .await
        .expect("a live frame within a second")
        .unwrap()
}

async fn the_live_feed_gets_each_stored_row(s: Subject) {
    let mut rx = s.hub.subscribe();
    put(&s, batch("a", T0, 0.1, &[("x.exe", 0.1)])).await;
    let frame = next_frame(&mut rx).await;
    assert_eq!(frame.agent_id.as_deref(), Some("a"));
    assert_eq!(frame.messages.len(), 2);
    let stored = s.store.events(filter(None, None, None, 50)).await.unwrap();
    let pushed: Vec<protocol::EventRow> =
        frame.messages.iter().map(|m| serde_json::from_str(m.as_str()).unwrap()).collect();
    assert_eq!(pushed.iter().rev().cloned().collect::<Vec<_>>(), stored);
    s.store.clear(None).await.unwrap();
    assert_eq!(next_frame(&mut rx).await.agent_id, None);
    s.store.close().await;
}

/// Two replicas on one PostgreSQL database act as one.
mod replicas {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn share_rows_replays_batch_ids_and_the_live_feed() {
        let url = fresh_postgres_database().await;
        let a = postgres_on(&url).await;
        let b = postgres_on(&url).await;
        let mut b_live = b.hub.subscribe();

        let first = batch("host", T0, 0.4, &[("x.exe", 0.2)]);
        let ts_ms = first.validate().unwrap();
        let signed = verified();
        assert_eq!(a.store.ingest(first.clone(), ts_ms, signed).await.unwrap().stored, 2);

        let frame = next_frame(&mut b_live).await;
        assert_eq!((frame.agent_id.as_deref(), frame.messages.len()), (Some("host"), 2));
        assert_eq!(b.store.events(filter(Some("host"), None, None, 50)).await.unwrap().len(), 2);

        // The same signed request at the other replica is a replay.
        let replay = b.store.ingest(first.clone(), ts_ms, signed).await;
        assert!(matches!(replay, Err(StorageError::Replay)), "{replay:?}");
        // The same batch, signed anew, is a duplicate there too.
        let again = b.store.ingest(first, ts_ms, verified()).await.unwrap();
        assert!(again.duplicate);

        // One new batch id sent to both at once is stored once.
        let twin = batch("host", T0 + 5_000, 0.1, &[]);
        let (ra, rb) = tokio::join!(
            a.store.ingest(twin.clone(), ts_ms + 5_000, verified()),
            b.store.ingest(twin, ts_ms + 5_000, verified()),
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(ra.duplicate != rb.duplicate, "{ra:?} {rb:?}");
        assert_eq!(a.store.events(filter(None, None, None, 50)).await.unwrap().len(), 3);

        // When B's feed from the others breaks, B's clients are told to refetch.
        let (admin, connection) =
            tokio_postgres::connect(url.expose(), tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        // Only this case's database: other cases run beside it on the same server.
        let cut = admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND query LIKE 'LISTEN telemetry_live%'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(cut, 2, "each replica listens once");
        loop {
            if next_frame(&mut b_live).await.gap {
                break;
            }
        }
        // Clears reach the other replica's clients too, for one agent and for all.
        for agent in [Some("host"), None] {
            a.store.clear(agent.map(Into::into)).await.unwrap();
            loop {
                let frame = next_frame(&mut b_live).await;
                if frame.messages.iter().any(|m| m.as_str().contains(r#""type":"clear""#)) {
                    assert_eq!(frame.agent_id.as_deref(), agent);
                    break;
                }
            }
        }
        a.store.close().await;
        b.store.close().await;
    }
}

/// Every read gives the same answers after the batches are compacted (on SQLite; PostgreSQL
/// keeps its rows and must answer the same anyway), a resent batch is still known, a clear and
/// retention take the compacted batches too.
async fn compacted_batches_read_back_as_they_were(s: Subject) {
    let mut sent = Vec::new();
    for i in 0..40i64 {
        let agent = if i % 3 == 0 { "b" } else { "a" };
        let procs = [("x.exe", 0.01 * i as f64), ("y.exe", 0.5)];
        let mut b = batch(agent, T0 + i * 5_000, 0.1 + 0.001 * i as f64, &procs);
        if i == 7 {
            b.events.push(Event { rss: Some(5), ..Event::empty(EventKind::parse("gpu")) });
            b.ts = "2025-11-12T12:00:35Z".into();
        }
        put(&s, b.clone()).await;
        sent.push(b);
    }
    let range = Range { from_ms: T0, to_ms: T0 + 200_000, step_ms: 10_000 };
    let filters = [
        filter(None, None, None, 1000),
        filter(None, None, None, 7),
        filter(Some("a"), None, None, 1000),
        filter(Some("b"), Some("proc"), None, 5),
        filter(None, Some("gpu"), None, 10),
    ];
    let mut before = Vec::new();
    for f in &filters {
        before.push(s.store.events(f.clone()).await.unwrap());
    }
    let minutes = Range { step_ms: 60_000, ..range };
    let hours = Range { from_ms: T0, to_ms: T0 + 7_200_000, step_ms: 3_600_000 };
    let reads = || async {
        let mut charts = Vec::new();
        for r in [range, minutes, hours] {
            let series = s.store.series("a".into(), r).await.unwrap();
            let history = s.store.process_history("a".into(), "x.exe".into(), r).await.unwrap();
            charts.push((series, history));
        }
        (charts, s.store.latest_processes("b".into()).await.unwrap())
    };
    let charts = reads().await;
    let middle = before[0][before[0].len() / 2].id;

    let soon = now_ms() + 1_000;
    let all = Compaction { before_ms: soon, due_before_ms: soon };
    prune(&*s.store, Cutoffs { compact: Some(all), ..Cutoffs::raw(None) }).await.unwrap();
    for (f, want) in filters.iter().zip(&before) {
        assert_eq!(&s.store.events(f.clone()).await.unwrap(), want, "{f:?}");
    }
    let page = s.store.events(filter(None, None, Some(middle), 5)).await.unwrap();
    let want: Vec<i64> = before[0].iter().map(|r| r.id).filter(|id| *id < middle).take(5).collect();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), want);
    assert_eq!(reads().await, charts);
    for b in [&sent[0], &sent[7]] {
        let again = s.store.ingest(b.clone(), b.validate().unwrap(), verified()).await.unwrap();
        assert!(again.duplicate, "a compacted batch is still known by its id");
    }

    // A late batch adds to a compacted minute, as a row beside the chunk, then in a chunk.
    put(&s, batch("a", T0 + 1_000, 0.99, &[("x.exe", 0.98)])).await;
    let late = reads().await;
    let (series, history) = &late.0[1];
    assert_eq!((series.cpu_max[0], history.cpu_max[0]), (Some(0.99), Some(0.98)));
    assert_eq!(series.cpu_max[1..], charts.0[1].0.cpu_max[1..]);
    prune(&*s.store, Cutoffs { compact: Some(all), ..Cutoffs::raw(None) }).await.unwrap();
    assert_eq!(reads().await, late);

    // New batches land in the log beside the chunks, and the reads merge both.
    put(&s, batch("a", T0 + 300_000, 0.9, &[])).await;
    let newest = s.store.events(filter(Some("a"), None, None, 4)).await.unwrap();
    assert_eq!(newest[0].cpu, Some(0.9));
    assert_eq!((newest[1].cpu, newest[2].cpu), (Some(0.98), Some(0.99)), "the late batch");
    assert_eq!(newest[3], before[2][0]);

    let a_events = before[2].len() + 3;
    assert_eq!(s.store.clear(Some("a".into())).await.unwrap(), a_events);
    let again = s.store.ingest(sent[1].clone(), sent[1].validate().unwrap(), verified());
    assert!(again.await.unwrap().duplicate, "a clear keeps the ids of compacted batches too");
    assert!(s.store.events(filter(Some("a"), None, None, 10)).await.unwrap().is_empty());
    let b_events = before[0].len() - before[2].len();
    let removed = prune(&*s.store, Cutoffs::raw(Some(soon))).await.unwrap();
    assert_eq!(removed, b_events);
    assert!(s.store.events(filter(None, None, None, 10)).await.unwrap().is_empty());
    s.store.close().await;
}

fn notice(ts_ms: i64, kind: NoticeKind, level: NoticeLevel, message: &str) -> protocol::Notice {
    protocol::Notice {
        ts: crate::clock::format_ms(ts_ms),
        kind,
        level,
        source: "System/disk".into(),
        code: Some(7),
        message: message.into(),
    }
}

fn spooler(state: ServiceState) -> Vec<protocol::Service> {
    vec![protocol::Service {
        name: "Spooler".into(),
        display_name: Some("Print Spooler".into()),
        state,
        start: Some(protocol::StartMode::Auto),
    }]
}

async fn services_notices_and_cores_are_kept_once_and_newest(s: Subject) {
    let host = |cores: Vec<f64>| Some(protocol::Host { cores, ..protocol::Host::default() });
    let (log, service) = (NoticeKind::Log, NoticeKind::Service);
    let first = IngestBatch {
        host: host(vec![0.1, 0.2]),
        services: Some(spooler(ServiceState::Running)),
        notices: Some(vec![
            notice(T0 - 1_000, log, NoticeLevel::Error, "bad block"),
            notice(T0, service, NoticeLevel::Info, "running (was stopped)"),
        ]),
        ..batch("a", T0, 0.1, &[])
    };
    let ts_ms = first.validate().unwrap();
    s.store.ingest(first.clone(), ts_ms, verified()).await.unwrap();
    let again = s.store.ingest(first, ts_ms, verified()).await.unwrap();
    assert!(again.duplicate, "a retried batch stores its notices once");
    let second = IngestBatch {
        services: Some(spooler(ServiceState::Stopped)),
        notices: Some(vec![notice(T0 + 4_000, log, NoticeLevel::Error, "bad block again")]),
        ..batch("a", T0 + 5_000, 0.1, &[])
    };
    put(&s, second).await;
    // Sent late from a queue: its notice is news, its list and cores are not.
    let late = IngestBatch {
        host: host(vec![0.9]),
        services: Some(spooler(ServiceState::Paused)),
        notices: Some(vec![notice(T0 - 70_000, log, NoticeLevel::Warning, "old")]),
        ..batch("a", T0 - 60_000, 0.1, &[])
    };
    put(&s, late).await;
    put(&s, batch("b", T0, 0.1, &[])).await;

    let agents = s.store.agents(now_ms(), None).await.unwrap();
    assert_eq!(agents[0].host.as_ref().map(|h| h.cores.clone()), Some(vec![0.1, 0.2]));
    assert_eq!(agents[1].host, None);
    let listed = s.store.services("a".into()).await.unwrap();
    assert_eq!(listed.services, spooler(ServiceState::Stopped));
    assert_eq!(listed.ts, Some(crate::clock::format_ms(T0 + 5_000)));
    let none = s.store.services("b".into()).await.unwrap();
    assert!(none.ts.is_none() && none.services.is_empty());

    let all = s.store.notices(notices_of("a", None, None, None)).await.unwrap();
    let messages: Vec<&str> = all.iter().map(|n| n.message.as_str()).collect();
    assert_eq!(messages, ["old", "bad block again", "running (was stopped)", "bad block"]);
    assert_eq!(
        (all[1].code, all[1].source.as_str(), all[1].level),
        (Some(7), "System/disk", NoticeLevel::Error)
    );
    let logs = s.store.notices(notices_of("a", Some(log), None, None)).await.unwrap();
    assert_eq!(logs.len(), 3);
    let errors =
        s.store.notices(notices_of("a", None, Some(NoticeLevel::Error), None)).await.unwrap();
    assert_eq!(errors.len(), 2);
    let page = s.store.notices(notices_of("a", None, None, Some(all[1].id))).await.unwrap();
    assert_eq!(page, all[2..]);
    let count = |since| s.store.count_log_notices("a".into(), NoticeLevel::Error, since);
    assert_eq!((count(T0 - 1_000).await.unwrap(), count(T0).await.unwrap()), (2, 1));

    s.store.clear(Some("a".into())).await.unwrap();
    assert!(s.store.notices(notices_of("a", None, None, None)).await.unwrap().is_empty());
    assert!(s.store.services("a".into()).await.unwrap().services.is_empty());
    let back = IngestBatch {
        notices: Some(vec![notice(T0, log, NoticeLevel::Error, "x")]),
        ..batch("a", T0 + 10_000, 0.1, &[])
    };
    put(&s, back).await;
    prune(&*s.store, Cutoffs::raw(Some(now_ms() + 1_000))).await.unwrap();
    assert!(s.store.notices(notices_of("a", None, None, None)).await.unwrap().is_empty());
    s.store.close().await;
}

fn notices_of(
    agent: &str,
    kind: Option<NoticeKind>,
    level: Option<NoticeLevel>,
    before_id: Option<i64>,
) -> crate::storage::NoticeFilter {
    crate::storage::NoticeFilter { agent_id: agent.into(), kind, level, before_id, limit: 100 }
}
