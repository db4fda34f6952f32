//! History at fleet scale: back-fills agents through the signed API, then reports what each
//! storage tier costs per agent-day, the fill rate of old and current batches, and how long the
//! dashboard's charts take over 15 min, 24 h, 7 d, 30 d and 1 y.
//!
//! Each agent gets a year at one reading an hour, the 30 days before the last ones at one a
//! minute (the per-minute tier fills as at any finer interval), and its last four days at 5 s with
//! five processes: every tier holds as many rows per agent as at 5 s throughout, for a
//! fraction of the batches. Then `--current` batches stamped now, as live agents send them.
//!
//! `--fleet` more agents get a few hours each at one reading a minute, so that the charts are
//! read with a fleet's keys in the tables.
//!
//! `cargo bench -p backend --bench history [-- --agents 4 --minute-days 30 --fleet 1000]`

use anyhow::{Context, ensure};
use backend::clock::{format_ms, now_ms};
use clap::Parser;
use harness::TestBackend;
use protocol::{Event, EventKind, IngestBatch};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const DAY_MS: i64 = 86_400_000;
const NAMES: [&str; 8] = [
    "sqlservr.exe",
    "chrome.exe",
    "msedge.exe",
    "svchost.exe",
    "explorer.exe",
    "teams.exe",
    "outlook.exe",
    "MsMpEng.exe",
];

#[derive(Debug, Parser)]
struct Args {
    /// Agents back-filled.
    #[arg(long, default_value_t = 4)]
    agents: usize,
    /// Days at one reading an hour, counted back from now.
    #[arg(long, default_value_t = 365)]
    hour_days: i64,
    /// Days at one reading a minute, before the days at 5 s.
    #[arg(long, default_value_t = 30)]
    minute_days: i64,
    /// Days at the 5 s interval, up to now: the whole ones before yesterday give the cost of
    /// the per-minute tier's compacted days.
    #[arg(long, default_value_t = 4)]
    raw_days: i64,
    /// More agents with a few hours each at one reading a minute, so that the charts are read
    /// with a fleet's keys in the tables.
    #[arg(long, default_value_t = 1000)]
    fleet: usize,
    /// Hours of history of each fleet agent.
    #[arg(long, default_value_t = 6)]
    fleet_hours: i64,
    /// Batches stamped now, per agent, for the rate of live ingest.
    #[arg(long, default_value_t = 3000)]
    current: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Timed repeats of each read; the median is reported.
    #[arg(long, default_value_t = 15)]
    repeats: usize,
    /// `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// A number in `[0, 1)` from the agent, the time and `salt`, the same on every run.
fn noise(agent: usize, ts_ms: i64, salt: u64) -> f64 {
    let mut z = (agent as u64) << 48 ^ (ts_ms as u64) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / u64::MAX as f64
}

/// A share as the agent sends it: to 0.01 % of the machine.
fn share(x: f64) -> f64 {
    (x.clamp(0.0, 1.0) * 10_000.0).round() / 10_000.0
}

/// One agent's batch at `ts_ms`: a metric reading and five of the eight processes (the
/// charted `chrome.exe` always), the set drifting slowly as real top lists do, every figure moving at each reading as a busy PC's do
/// (memory by pages, rates by bytes, shares by 0.01 %), to the precision the agent sends.
fn batch(agent: usize, ts_ms: i64) -> Vec<u8> {
    let phase = (ts_ms / 600_000) as usize;
    let wave = ((ts_ms / 60_000) % 100) as f64 / 100.0;
    let n = |salt| noise(agent, ts_ms, salt);
    let pages = |salt, most: f64| 4096 * (n(salt) * most) as u64;
    let mut events = vec![Event {
        cpu: Some(share(0.2 + 0.6 * wave + 0.1 * n(1))),
        mem_free: Some((5 << 30) + pages(2, 50_000.0)),
        mem_total: Some(16 << 30),
        disk_free: Some((120 << 30) - 4096 * ((ts_ms / 1000) % 86_400) as u64),
        disk_total: Some(475 << 30),
        net_rx_bps: Some((250_000.0 * wave + 50_000.0 * n(3)).round()),
        net_tx_bps: Some((40_000.0 * n(4)).round()),
        uptime_s: Some((ts_ms / 1000 % 10_000_000) as u64),
        ..Event::empty(EventKind::Metric)
    }];
    for i in 0..5 {
        // The charted one always, four more of the others by turns.
        let name = if i == 0 { NAMES[1] } else { NAMES[[0, 2, 3, 4, 5, 6, 7][(phase + i) % 7]] };
        let cpu = share(wave / (i + 2) as f64 * (0.8 + 0.4 * n(10 + i as u64)));
        let rss = (300 << 20) + pages(20 + i as u64, 10_000.0);
        events.push(Event::process(4000 + i as u32, name, cpu, rss));
    }
    let b = IngestBatch {
        agent_id: format!("pc-{agent:04}"),
        ts: format_ms(ts_ms),
        platform: "windows".into(),
        batch_id: Some(uuid::Uuid::now_v7().to_string()),
        events,
        agent: None,
        drives: None,
        host: None,
        notices: None,
        services: None,
    };
    serde_json::to_vec(&b).unwrap()
}

/// Posts every body, `concurrency` at a time; the batches per second.
async fn fill(
    backend: &TestBackend,
    bodies: Vec<Vec<u8>>,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let (n, bodies) = (bodies.len(), Arc::new(bodies));
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (api, bodies, next) = ((**backend).clone(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { return Ok::<_, anyhow::Error>(()) };
                let (status, answer) = api.ingest_raw(body).await;
                ensure!(status.is_success(), "batch {i} refused: {status} {answer}");
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The median time of `repeats` reads of `path`, and the step the answer used.
async fn timed(backend: &TestBackend, path: &str, repeats: usize) -> anyhow::Result<(f64, i64)> {
    let (mut ms, mut step) = (Vec::new(), 0);
    for _ in 0..repeats {
        let started = Instant::now();
        let (status, body) = backend.get(path).await;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        ensure!(status.is_success(), "{path}: {status} {body}");
        ensure!(!body["t"].as_array().is_none_or(Vec::is_empty), "{path}: no buckets");
        step = body["step"].as_i64().unwrap_or(0);
    }
    Ok((median(ms), step))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Bytes of each table with its indexes, from SQLite's page statistics.
fn table_bytes(db: &std::path::Path) -> anyhow::Result<BTreeMap<String, f64>> {
    let conn = rusqlite::Connection::open(db)?;
    let mut stmt = conn.prepare(
        "SELECT coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s
         LEFT JOIN sqlite_schema m ON m.name = s.name GROUP BY 1",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Batches received before `ms` that are still rows of the log.
fn left_in_log(db: &std::path::Path, ms: i64) -> anyhow::Result<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(conn
        .query_row("SELECT count(*) FROM batch_log WHERE ingested_ms < ?1", [ms], |r| r.get(0))?)
}

fn count(db: &std::path::Path, sql: &str) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(db)?;
    Ok(conn.query_row(sql, [], |r| r.get(0))?)
}

fn share_of(db: &std::path::Path, table: &str, tier: i64) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open(db)?;
    let (part, all): (f64, f64) = conn.query_row(
        &format!("SELECT (SELECT count(*) FROM {table} WHERE tier_ms = ?1), count(*) FROM {table}"),
        [tier],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(if all > 0.0 { part / all } else { 0.0 })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keep_all = [
        ("RETENTION_DAYS", "0"),
        ("RETENTION_1M_DAYS", "0"),
        ("RETENTION_1H_DAYS", "0"),
        ("COMPACT_AFTER_MINUTES", "1"),
    ];
    let mut backend =
        TestBackend::start_with(&[keep_all.as_slice(), &[("RUST_LOG", "warn")]].concat());
    let now = now_ms() / 60_000 * 60_000;
    let raw_from = now - args.raw_days * DAY_MS;
    let minute_from = raw_from - args.minute_days * DAY_MS;
    let hour_from = now - args.hour_days * DAY_MS;
    let times = |from: i64, to: i64, every: i64| {
        (0..).map(move |k| from + k * every).take_while(move |t| *t < to)
    };
    let per_agent = |f: &dyn Fn(usize) -> Vec<i64>| -> Vec<Vec<u8>> {
        // Agents interleaved, each in time order, as a fleet draining its queues does.
        let lists: Vec<Vec<i64>> = (0..args.agents).map(f).collect();
        let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
        (0..longest)
            .flat_map(|k| {
                lists.iter().enumerate().filter_map(move |(a, l)| l.get(k).map(|t| (a, *t)))
            })
            .map(|(a, t)| batch(a, t))
            .collect()
    };

    let old = per_agent(&|_| {
        times(hour_from, minute_from.max(hour_from), 3_600_000)
            .chain(times(minute_from.max(hour_from), raw_from, 60_000))
            .collect()
    });
    let n_old = old.len();
    eprintln!("back-filling {n_old} old batches (hourly, then per minute) ...");
    let old_rate = fill(&backend, old, args.concurrency).await?;
    let recent = per_agent(&|_| times(raw_from, now, 5_000).collect());
    let n_recent = recent.len();
    eprintln!("back-filling {n_recent} batches of the last {} day(s) at 5 s ...", args.raw_days);
    let recent_rate = fill(&backend, recent, args.concurrency).await?;
    let fleet: Vec<Vec<u8>> = (0..args.fleet_hours * 60)
        .flat_map(|k| (0..args.fleet).map(move |a| (args.agents + a, now - k * 60_000)))
        .map(|(a, t)| batch(a, t))
        .collect();
    let n_fleet = fleet.len();
    eprintln!("back-filling {n_fleet} batches of {} more agents ...", args.fleet);
    let fleet_rate = fill(&backend, fleet, args.concurrency).await?;
    let current: Vec<Vec<u8>> = (0..args.current * args.agents)
        .map(|k| batch(k % args.agents, now_ms() + (k / args.agents) as i64))
        .collect();
    eprintln!("sending {} current batches ...", current.len());
    let current_rate = fill(&backend, current, args.concurrency).await?;

    // Compaction moves what was received over a minute ago once the oldest waited two; the
    // retention pass that does it runs every minute.
    let filled_ms = now_ms();
    let started = Instant::now();
    loop {
        let left = left_in_log(&backend.db_path, filled_ms)?;
        if left == 0 {
            break;
        }
        ensure!(started.elapsed().as_secs() < 600, "{left} batches still not compacted");
        eprintln!("compacting: {left} batches left in the log ...");
        tokio::time::sleep(std::time::Duration::from_secs(15)).await;
    }
    // Everything indexed and summed, as after the backend has run a while.
    backend.restart();
    let db = backend.db_path.clone();
    let bytes = table_bytes(&db).context("dbstat")?;
    let of = |t: &str| bytes.get(t).copied().unwrap_or(0.0);
    let compacted = count(&db, "SELECT coalesce(sum(batches), 0) FROM batch_chunks")?;
    let per_chunked = of("batch_chunks") / compacted.max(1.0);
    let agent_days = |days: i64| (args.agents as i64 * days) as f64;
    let tier_bytes = |tier: i64| -> anyhow::Result<f64> {
        Ok(of("metric_rollups") * share_of(&db, "metric_rollups", tier)?
            + of("proc_rollups") * share_of(&db, "proc_rollups", tier)?)
    };
    // Every batch sent is raw here (nothing is pruned), and all but the last minutes' are
    // compacted: their bytes per batch, at 5 s.
    let raw_per_day = per_chunked * (DAY_MS / 5_000) as f64;
    // The fleet's hours count as the fractions of a day they are.
    let fleet_days = (args.fleet as i64 * args.fleet_hours) as f64 / 24.0;
    // The per-minute tier's finished days are compacted, one row per agent-day; the whole
    // days at 5 s before yesterday give its cost (a bucket of twelve readings sums to a less
    // round figure than one of a single reading).
    let full_from = raw_from - raw_from.rem_euclid(DAY_MS) + DAY_MS;
    let done_before = now - now.rem_euclid(DAY_MS) - DAY_MS;
    let (full_len, full_days) = {
        let conn = rusqlite::Connection::open(&db)?;
        conn.query_row(
            "SELECT coalesce(sum(length(metrics) + length(procs)), 0), count(*)
             FROM rollup_chunks WHERE day_ms >= ?1 AND day_ms < ?2",
            [full_from, done_before],
            |r| Ok((r.get::<_, f64>(0)?, r.get::<_, f64>(1)?)),
        )?
    };
    let all_len =
        count(&db, "SELECT coalesce(sum(length(metrics) + length(procs)), 0) FROM rollup_chunks")?;
    // Each chunk's share of the table's pages, by its length.
    let minute_per_day = of("rollup_chunks") * full_len / all_len.max(1.0) / full_days.max(1.0);
    let minute_rows = tier_bytes(60_000)?;
    let hour_per_day = tier_bytes(3_600_000)? / (agent_days(args.hour_days) + fleet_days);

    println!("| tier | bytes per agent-day |\n| --- | --- |");
    println!(
        "| raw at 5 s, compacted ({per_chunked:.1} bytes a batch, {compacted} batches) | {raw_per_day:.0} |"
    );
    println!("| per minute, compacted ({full_days} agent-days) | {minute_per_day:.0} |");
    println!("| per hour | {:.0} |", hour_per_day);
    println!("| all tiers together | {:.0} |", raw_per_day + minute_per_day + hour_per_day);
    println!();
    println!(
        "Kept for a while, not per day of history: signatures {:.0} KB (until \
         `HMAC_REPLAY_TTL`), agent rows {:.0} KB, the per-minute buckets of yesterday and today \
         as rows {:.0} KB ({:.0} KB an agent); the log's last hour or two of batches (all \
         compacted here, before the measurement).",
        of("replay_log") / 1024.0,
        of("agents") / 1024.0,
        minute_rows / 1024.0,
        minute_rows / 1024.0 / (args.agents + args.fleet) as f64
    );
    println!();
    println!("| batches | count | per second |\n| --- | --- | --- |");
    println!("| old (hourly and per-minute history) | {n_old} | {old_rate:.0} |");
    println!("| last {} days at 5 s | {n_recent} | {recent_rate:.0} |", args.raw_days);
    println!(
        "| {} more agents, {} h each per minute | {n_fleet} | {fleet_rate:.0} |",
        args.fleet, args.fleet_hours
    );
    println!("| current (stamped now) | {} | {current_rate:.0} |", args.current * args.agents);
    println!();

    println!("| range | step (s) | series median ms | process history median ms |");
    println!("| --- | --- | --- | --- |");
    let to = now_ms() / 1000;
    for (label, span_s) in [
        ("15 min", 900),
        ("24 h", 86_400),
        ("7 d", 7 * 86_400),
        ("30 d", 30 * 86_400),
        ("1 y", 365 * 86_400),
    ] {
        let from = to - span_s;
        let series = format!("/api/agents/pc-0000/series?from={from}&to={to}");
        let history = format!("/api/agents/pc-0000/processes?name=chrome.exe&from={from}&to={to}");
        let (s, step) = timed(&backend, &series, args.repeats).await?;
        let (h, _) = timed(&backend, &history, args.repeats).await?;
        println!("| {label} | {step} | {s:.1} | {h:.1} |");
    }
    // The event list pages by id over every agent's chunks (their ids interleave) and the log.
    let (lo, hi) = {
        let conn = rusqlite::Connection::open(&db)?;
        conn.query_row("SELECT min(first_id), max(last_id) FROM batch_chunks", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?
    };
    let mid = lo + (hi - lo) / 2;
    println!();
    println!("| event list, 100 a page | median ms |\n| --- | --- |");
    for (label, path) in [
        ("newest", "/api/events?limit=100".to_owned()),
        ("mid-history", format!("/api/events?limit=100&before_id={mid}")),
        ("mid-history, processes", format!("/api/events?limit=100&type=proc&before_id={mid}")),
        (
            "mid-history, one agent",
            format!("/api/events?limit=100&agent_id=pc-0000&before_id={mid}"),
        ),
    ] {
        let mut ms = Vec::new();
        for _ in 0..args.repeats {
            let started = Instant::now();
            let (status, body) = backend.get(&path).await;
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
            ensure!(status.is_success(), "{path}: {status} {body}");
            ensure!(body.as_array().is_some_and(|a| a.len() == 100), "{path}: not a full page");
        }
        println!("| {label} | {:.1} |", median(ms));
    }
    backend.stop();
    Ok(())
}
