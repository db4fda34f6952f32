//! Signed ingest next to a bare axum server, side by side in one run.
//!
//! The bare server only reads the body and answers fixed JSON: what this machine and this load
//! generator can do at most. The servers live in this process and `wrk` drives them in
//! alternating rounds with the same pre-signed requests. Each request is sent once to each
//! store, so the backend does all its work (token, signature, replay guard, batch dedup, group
//! commit) every time. After each backend round the database is counted against the
//! acknowledged requests.
//!
//! `--stores sqlite,postgres,postgres-x2` compares the backend on SQLite with one and two
//! replicas on PostgreSQL (a fresh database on the server `BENCH_DATABASE_URL` names; two
//! replicas share one, each driven by its own wrk with half the connections).
//!
//! `--stores sqlite,null` adds the backend with a store that keeps nothing, to show what the
//! request path costs before any storage (nothing is checked for it).
//!
//! `cargo bench -p backend --bench ingest [-- --rounds 3 --seconds 10 --connections 64]`
//! (flags also read from `BENCH_ROUNDS`, `BENCH_SECONDS`, `BENCH_CONNECTIONS`, `BENCH_THREADS`,
//! `BENCH_STORES`). Needs `wrk` (`apt-get install wrk`).

use anyhow::{Context, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use backend::settings::Settings;
use backend::startup::Application;
use clap::Parser;
use protocol::{Event, EventKind, IngestBatch};
use rusqlite::{Connection, OpenFlags};
use serde::Deserialize;
use std::fmt::Write as _;
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

mod alert_rules;
mod checks;
mod null_store;
mod pool;
mod report;
mod servers;
mod wrk;

use alert_rules::*;
use checks::*;
use pool::*;
use report::*;
use servers::*;
use wrk::*;

const API_TOKEN: &str = "bench-token";
const HMAC_SECRET: &str = "bench-hmac-secret";
const PROCS_PER_BATCH: usize = 5;
const EVENTS_PER_BATCH: usize = 1 + PROCS_PER_BATCH;
/// Every body is padded with trailing spaces (valid JSON) to this length, so that all requests
/// have one size and a wrk thread can stream its file instead of loading it.
const BODY_BYTES: usize = 800;
const AGENTS: usize = 1000;
/// Pools are sized for this much more than the fastest bare round seen, so none runs out.
const POOL_MARGIN: f64 = 1.5;
const GOAL_RATIO: f64 = 0.5;
const GOAL_P99_MS: f64 = 20.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum StoreKind {
    Sqlite,
    Postgres,
    /// Two replicas on one PostgreSQL database.
    PostgresX2,
    /// The backend with a store that keeps nothing: the request path's own cost.
    Null,
    /// SQLite with 50 alert rules over every agent, evaluated every 10 s.
    SqliteRules,
}

impl StoreKind {
    fn label(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "pg",
            StoreKind::PostgresX2 => "pg x2",
            StoreKind::Null => "null",
            StoreKind::SqliteRules => "sq+rules",
        }
    }

    fn stores(self) -> bool {
        self != StoreKind::Null
    }
}

#[derive(Debug, Parser)]
#[command(name = "ingest", about = "Signed ingest against a bare axum server, in one run")]
struct Options {
    /// Rounds, each one bare run then one backend run.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 3)]
    rounds: usize,
    /// Seconds of each wrk run.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 10)]
    seconds: u64,
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = 64)]
    connections: usize,
    /// wrk threads.
    #[arg(long, env = "BENCH_THREADS", default_value_t = 2)]
    threads: usize,
    /// Requests per second the first pool is sized for; later pools follow the bare rounds.
    #[arg(long, env = "BENCH_EXPECT_RPS", default_value_t = 60_000.0)]
    expect_rps: f64,
    /// Backends to measure beside the bare server, in this order each round.
    #[arg(long, env = "BENCH_STORES", value_enum, value_delimiter = ',', default_value = "sqlite")]
    stores: Vec<StoreKind>,
    /// A PostgreSQL server where the bench may create databases (`--stores postgres...`).
    #[arg(long, env = "BENCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
    /// `cargo bench` passes a name filter, if one was given.
    #[arg(hide = true)]
    filter: Vec<String>,
}

fn main() -> ExitCode {
    let opts = Options::parse();
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("ingest bench: wrk is not installed; install it with `apt-get install wrk`");
        return ExitCode::from(2);
    }
    match run(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("ingest bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A backend under test: one server, or two replicas sharing a database.
#[derive(Debug)]
struct Target {
    kind: StoreKind,
    servers: Vec<Server>,
    db: Database,
    /// Events already stored before the current round.
    stored_before: u64,
}

impl Target {
    fn start(kind: StoreKind, opts: &Options, db_dir: &Path, n: usize) -> anyhow::Result<Self> {
        let db = match kind {
            StoreKind::Sqlite | StoreKind::SqliteRules => {
                Database::Sqlite(db_dir.join(format!("telemetry-{n}.db")))
            }
            StoreKind::Null => Database::Null,
            StoreKind::Postgres | StoreKind::PostgresX2 => {
                let admin = opts.database_url.as_deref().context(
                    "the PostgreSQL stores need BENCH_DATABASE_URL (or --database-url): a server                      where the bench may create databases, such as the one                      `PG_DURABLE=1 ci/postgres.sh start` prints",
                )?;
                Database::Postgres(create_database(admin, n)?)
            }
        };
        let replicas = if kind == StoreKind::PostgresX2 { 2 } else { 1 };
        ensure!(opts.threads >= replicas, "--threads must be at least {replicas} for {kind:?}");
        let alerting = kind == StoreKind::SqliteRules;
        let servers: Vec<Server> =
            (0..replicas).map(|_| start_backend(&db, alerting)).collect::<anyhow::Result<_>>()?;
        if alerting {
            create_rules(servers[0].addr)?;
        }
        Ok(Self { kind, servers, stored_before: db.count_events()?, db })
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }
}

/// Returns false when an acknowledged event is missing from the database.
fn run(opts: &Options) -> anyhow::Result<bool> {
    ensure!(opts.rounds >= 1 && opts.seconds >= 1, "--rounds and --seconds must be at least 1");
    ensure!(
        opts.threads >= 1 && opts.connections >= opts.threads,
        "--connections must be at least --threads, and --threads at least 1"
    );
    ensure!(
        opts.stores.first().is_some_and(|k| k.stores()),
        "--stores starts with a store that stores (sqlite, postgres or postgres-x2): the goals \
         are judged on it"
    );
    // The databases go to the target folder, on a real disk, so that commits pay for fsync as
    // they would in production; the request pools go to memory so that reading them costs wrk
    // no disk I/O.
    let db_dir = tempfile::Builder::new()
        .prefix("ingest-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .context("creating the database folder")?;
    let shm = Path::new("/dev/shm");
    let pool_dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }
        .context("creating the request pool folder")?;
    let script = pool_dir.path().join("ingest.lua");
    std::fs::write(&script, WRK_SCRIPT).context("writing the wrk script")?;

    // The same logging as `main.rs`, since its per-request span is part of the cost.
    backend::telemetry::init(backend::settings::LogFormat::Text);
    let mut targets = Vec::new();
    for (n, kind) in opts.stores.iter().enumerate() {
        targets.push(Target::start(*kind, opts, db_dir.path(), n)?);
    }
    let bare = start_bare()?;
    print_header(opts, db_dir.path(), &targets);

    let mut rounds: Vec<Vec<Run>> = Vec::new();
    let mut fastest_bare = opts.expect_rps;
    let mut acked_events = vec![0u64; targets.len()];
    let mut round_failures = false;
    for round in 1..=opts.rounds {
        let per_thread = (fastest_bare * opts.seconds as f64 * POOL_MARGIN / opts.threads as f64)
            .ceil() as usize;
        let started = Instant::now();
        let pool = write_pool(pool_dir.path(), opts.threads, per_thread, round as u64)?;
        println!(
            "round {round}: {} requests of {} bytes signed in {:.1}s",
            per_thread * opts.threads,
            pool.record_len,
            started.elapsed().as_secs_f64()
        );
        let mut runs = vec![measure(opts, &[bare.addr], &pool, &script)?];
        for (t, target) in targets.iter_mut().enumerate() {
            let run = measure(opts, &target.addrs(), &pool, &script)?;
            let stored_now = target.db.settled_count()?;
            let stored = stored_now - target.stored_before;
            target.stored_before = stored_now;
            let acked = run.wrk.acknowledged() * EVENTS_PER_BATCH as u64;
            acked_events[t] += acked;
            let sent_bound = run.wrk.issued * EVENTS_PER_BATCH as u64;
            let lost = if target.kind.stores() { acked.saturating_sub(stored) } else { 0 };
            println!(
                "round {round}: {} {} requests in {:.2}s; events acknowledged {acked}, stored \
                 {stored} (at most {sent_bound} sent){}",
                target.kind.label(),
                run.wrk.requests,
                run.seconds(),
                if lost > 0 {
                    format!(", {lost} MISSING")
                } else if !target.kind.stores() {
                    ", as it keeps nothing".to_owned()
                } else {
                    String::new()
                }
            );
            if run.wrk.wrapped > 0 {
                println!("round {round}: the pool ran out, so some requests were replays");
            }
            round_failures |= target.kind.stores() && (lost > 0 || stored > sent_bound);
            runs.push(run);
        }
        fastest_bare = fastest_bare.max(runs[0].rps());
        rounds.push(runs);
        pool.remove()?;
    }

    let metrics =
        http_get(targets[0].servers[0].addr, "/metrics").unwrap_or_else(|e| format!("# {e:#}"));
    for target in targets.iter().filter(|t| t.kind == StoreKind::SqliteRules) {
        let metrics = http_get(target.servers[0].addr, "/metrics")?;
        let (rounds, mean) = round_times(&metrics);
        println!(
            "{}: {rounds} alert rounds of 50 rules over {AGENTS} agents, {:.0} ms each on average",
            target.kind.label(),
            mean * 1000.0
        );
    }
    let mut all_stored = !round_failures;
    let mut stored_totals = Vec::new();
    for (target, acked) in targets.into_iter().zip(&acked_events) {
        for server in target.servers {
            server.stop().context("stopping a backend")?;
        }
        // After the backend's own shutdown every queued commit is done, so this count is final.
        let stored = target.db.count_events()?;
        if target.kind.stores() {
            let bytes = target.db.bytes()?;
            println!(
                "{}: {bytes} bytes on disk, {:.0} per stored event",
                target.kind.label(),
                bytes as f64 / stored.max(1) as f64
            );
        }
        all_stored &= stored >= *acked || !target.kind.stores();
        stored_totals.push((target.kind, stored));
    }
    bare.stop().context("stopping the bare server")?;
    let labels: Vec<&str> = opts.stores.iter().map(|k| k.label()).collect();
    print_results(&labels, &rounds);
    print_commit_groups(&metrics);
    print_goals(&rounds, acked_events[0], stored_totals[0].1, all_stored);
    Ok(all_stored)
}
