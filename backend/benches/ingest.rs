//! Signed ingest next to a bare axum server, side by side in one run.
//!
//! The bare server only reads the body and answers fixed JSON: what this machine and this load
//! generator can do at most. Both servers live in this process and `wrk` drives them in
//! alternating rounds with the same pre-signed requests. Each request is sent once, so the
//! backend does all its work (token, signature, replay guard, batch dedup, group commit) every
//! time. After each backend round the database is counted against the acknowledged requests.
//!
//! `cargo bench -p backend --bench ingest [-- --rounds 3 --seconds 10 --connections 64]`
//! (flags also read from `BENCH_ROUNDS`, `BENCH_SECONDS`, `BENCH_CONNECTIONS`, `BENCH_THREADS`).
//! Needs `wrk` (`apt-get install wrk`).

use anyhow::{Context, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use backend::settings::{Args, Settings, Synchronous};
use backend::startup::Application;
use clap::Parser;
use protocol::{Event, IngestBatch, MetricEvent, ProcEvent};
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

/// Returns false when an acknowledged event is missing from the database.
fn run(opts: &Options) -> anyhow::Result<bool> {
    ensure!(opts.rounds >= 1 && opts.seconds >= 1, "--rounds and --seconds must be at least 1");
    ensure!(
        opts.threads >= 1 && opts.connections >= opts.threads,
        "--connections must be at least --threads, and --threads at least 1"
    );
    // The database goes to the target folder, on a real disk, so that commits pay for fsync as
    // they would in production; the request pools go to memory so that reading them costs wrk
    // no disk I/O.
    let db_dir = tempfile::Builder::new()
        .prefix("ingest-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .context("creating the database folder")?;
    let shm = Path::new("/dev/shm");
    let pool_dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }
        .context("creating the request pool folder")?;
    let db = db_dir.path().join("telemetry.db");
    let script = pool_dir.path().join("ingest.lua");
    std::fs::write(&script, WRK_SCRIPT).context("writing the wrk script")?;

    let (backend, synchronous) = start_backend(&db)?;
    let bare = start_bare()?;
    print_header(opts, &db, synchronous);

    let mut rounds = Vec::new();
    let mut fastest_bare = opts.expect_rps;
    let (mut acked_events, mut round_failures) = (0u64, false);
    let mut stored_before = count_events(&db)?;
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
        let bare_run = measure(opts, bare.addr, &pool, &script)?;
        let backend_run = measure(opts, backend.addr, &pool, &script)?;
        let stored_now = settled_count(&db)?;
        let stored = stored_now - stored_before;
        stored_before = stored_now;
        let acked = backend_run.wrk.acknowledged() * EVENTS_PER_BATCH as u64;
        acked_events += acked;
        let sent_bound = backend_run.wrk.issued * EVENTS_PER_BATCH as u64;
        let lost = acked.saturating_sub(stored);
        println!(
            "round {round}: bare {} requests in {:.2}s, backend {} in {:.2}s; events \
             acknowledged {acked}, stored {stored} (at most {sent_bound} sent){}",
            bare_run.wrk.requests,
            bare_run.seconds(),
            backend_run.wrk.requests,
            backend_run.seconds(),
            if lost > 0 { format!(", {lost} MISSING") } else { String::new() }
        );
        if backend_run.wrk.wrapped > 0 {
            println!("round {round}: the backend's pool ran out, so some requests were replays");
        }
        round_failures |= lost > 0 || stored > sent_bound;
        fastest_bare = fastest_bare.max(bare_run.rps());
        rounds.push((bare_run, backend_run));
        pool.remove()?;
    }

    let metrics = http_get(backend.addr, "/metrics").unwrap_or_else(|e| format!("# {e:#}"));
    backend.stop().context("stopping the backend")?;
    bare.stop().context("stopping the bare server")?;
    // After the backend's own shutdown every queued commit is done, so this count is final.
    let stored_total = count_events(&db)?;
    print_results(&rounds);
    print_commit_groups(&metrics);
    let all_stored = stored_total >= acked_events && !round_failures;
    print_goals(&rounds, acked_events, stored_total, all_stored);
    Ok(all_stored)
}

// ---------------------------------------------------------------------------------------------
// Servers

#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    thread: JoinHandle<anyhow::Result<()>>,
}

impl Server {
    fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.thread.join().map_err(|_| anyhow::anyhow!("the server thread panicked"))?
    }
}

/// Each server gets a runtime shaped like the backend's `#[tokio::main]`: one worker per core.
fn runtime(name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().thread_name(name).build()
}

fn start_backend(db: &Path) -> anyhow::Result<(Server, Synchronous)> {
    let db = db.to_str().context("the database path is not UTF-8")?;
    // A long drift keeps the pre-signed requests valid for the whole run; the replay TTL stays
    // at twice the drift as the backend asks, and the guard is large enough never to say busy.
    let args = Args::try_parse_from([
        "backend",
        "--host=127.0.0.1",
        "--port=0",
        &format!("--db-path={db}"),
        "--hmac-drift=3600",
        "--hmac-replay-ttl=7200",
        "--replay-cache-max=50000000",
    ])?;
    // The pools are signed with these secrets, whatever the caller's environment holds.
    let settings = Settings::resolve(args, |key| match key {
        "API_TOKEN" => Some(API_TOKEN.into()),
        "HMAC_SECRET" => Some(HMAC_SECRET.into()),
        _ => std::env::var(key).ok(),
    })?;
    let synchronous = settings.synchronous;
    // The same logging as `main.rs`, since its per-request span is part of the cost.
    backend::telemetry::init(settings.log_format);
    let rt = runtime("backend")?;
    let app = rt.block_on(Application::build(settings))?;
    let addr = app.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("backend-serve".into()).spawn(move || {
        rt.block_on(Box::pin(app.run_until(async move {
            let _ = stopped.await;
        })))
    })?;
    Ok((Server { addr, stop, thread }, synchronous))
}

fn start_bare() -> anyhow::Result<Server> {
    let rt = runtime("bare")?;
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    let router = Router::new().route("/api/ingest", post(bare_ingest));
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new().name("bare-serve".into()).spawn(move || {
        rt.block_on(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .context("serving the bare server")
        })
    })?;
    Ok(Server { addr, stop, thread })
}

/// The body is read in full, as the backend must, and then ignored.
async fn bare_ingest(_body: Bytes) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], r#"{"stored":2}"#)
}

// ---------------------------------------------------------------------------------------------
// Request pools

/// One file per wrk thread of complete HTTP requests, each `record_len` bytes.
#[derive(Debug)]
struct Pool {
    prefix: String,
    files: Vec<PathBuf>,
    record_len: usize,
}

impl Pool {
    fn remove(self) -> std::io::Result<()> {
        self.files.iter().try_for_each(std::fs::remove_file)
    }
}

fn write_pool(dir: &Path, threads: usize, per_thread: usize, round: u64) -> anyhow::Result<Pool> {
    let prefix = dir.join("pool-").to_str().context("the pool path is not UTF-8")?.to_owned();
    let files: Vec<PathBuf> =
        (0..threads).map(|t| PathBuf::from(format!("{prefix}{t}.bin"))).collect();
    let sig_ts = (backend::clock::now_ms() / 1000).to_string();
    let lens = std::thread::scope(|s| {
        let workers: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(t, path)| {
                let sig_ts = &sig_ts;
                s.spawn(move || write_pool_file(path, per_thread, sig_ts, round << 16 | t as u64))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().map_err(|_| anyhow::anyhow!("a pool writer panicked"))?)
            .collect::<anyhow::Result<Vec<usize>>>()
    })?;
    let record_len = lens[0];
    ensure!(lens.iter().all(|l| *l == record_len), "pool files have different record sizes");
    Ok(Pool { prefix, files, record_len })
}

/// Writes `count` requests and returns their common length.
fn write_pool_file(path: &Path, count: usize, sig_ts: &str, seed: u64) -> anyhow::Result<usize> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rng = Rng(seed);
    let mut record = Vec::with_capacity(2 * BODY_BYTES);
    let mut record_len = None;
    let first_ms = backend::clock::now_ms();
    for i in 0..count {
        let agent = rng.below(AGENTS as u64);
        let batch = batch(&mut rng, agent, first_ms + i as i64);
        let mut body = serde_json::to_vec(&batch)?;
        ensure!(body.len() <= BODY_BYTES, "a body of {} bytes exceeds BODY_BYTES", body.len());
        body.resize(BODY_BYTES, b' ');
        let signature = protocol::sign(HMAC_SECRET.as_bytes(), sig_ts, &body);
        record.clear();
        write!(
            record,
            "POST /api/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {BODY_BYTES}\r\nX-Api-Token: {API_TOKEN}\r\n\
             X-Signature-Ts: {sig_ts}\r\nX-Signature: {signature}\r\n\r\n"
        )?;
        record.extend_from_slice(&body);
        ensure!(*record_len.get_or_insert(record.len()) == record.len(), "uneven request sizes");
        out.write_all(&record)?;
    }
    out.flush()?;
    Ok(record_len.unwrap_or(0))
}

const PROCESS_NAMES: [&str; 10] = [
    "chrome.exe",
    "svchost.exe",
    "explorer.exe",
    "MsMpEng.exe",
    "Teams.exe",
    "OUTLOOK.EXE",
    "Code.exe",
    "dwm.exe",
    "SearchHost.exe",
    "RuntimeBroker.exe",
];

/// A batch like an agent's: one machine reading and its top processes, with a fresh batch id.
fn batch(rng: &mut Rng, agent: u64, ts_ms: i64) -> IngestBatch {
    let metric = Event::Metric(MetricEvent {
        cpu: rng.fraction(),
        mem_free: 1_000_000_000 + rng.below(15_000_000_000),
        mem_total: Some(17_179_869_184),
        disk_free: Some(10_000_000_000 + rng.below(400_000_000_000)),
        disk_total: Some(512_110_190_592),
        net_rx_bps: Some(rng.below(100_000_000) as f64 / 10.0),
        net_tx_bps: Some(rng.below(100_000_000) as f64 / 10.0),
        uptime_s: Some(rng.below(10_000_000)),
    });
    let procs = (0..PROCS_PER_BATCH).map(|_| {
        Event::Proc(ProcEvent {
            pid: 4 + rng.below(60_000) as u32,
            name: PROCESS_NAMES[rng.below(PROCESS_NAMES.len() as u64) as usize].to_owned(),
            cpu: rng.fraction() / 4.0,
            rss: 1_000_000 + rng.below(2_000_000_000),
        })
    });
    IngestBatch {
        agent_id: format!("bench-host-{agent:04}"),
        ts: backend::clock::format_ms(ts_ms),
        platform: "windows".into(),
        // Time-ordered like the agent's own.
        batch_id: Some(uuid::Uuid::now_v7().to_string()),
        events: std::iter::once(metric).chain(procs).collect(),
    }
}

/// splitmix64: enough to vary the readings, no dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Agents round fractions to four digits.
    fn fraction(&mut self) -> f64 {
        self.below(10_001) as f64 / 10_000.0
    }
}

// ---------------------------------------------------------------------------------------------
// Load generation

/// Each wrk thread streams its own file of requests, all of one length. `init` only opens the
/// file: wrk starts its first thread while it still runs `init` for the others, so loading
/// there would give that thread a head start. A request is never sent twice unless a file runs
/// out, which `wrapped` reports.
const WRK_SCRIPT: &str = r#"
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  size = tonumber(args[2])
  file = assert(io.open(args[1] .. id .. ".bin", "rb"))
  file:setvbuf("full", 1048576)
  records = file:seek("end") / size
  file:seek("set", 0)
  left, issued, wrapped = records, 0, 0
end

function request()
  if left == 0 then
    file:seek("set", 0)
    left = records
    wrapped = wrapped + 1
  end
  left = left - 1
  issued = issued + 1
  return file:read(size)
end

function done(summary, latency, requests)
  local issued, wrapped = 0, 0
  for _, t in ipairs(threads) do
    issued = issued + t:get("issued")
    wrapped = wrapped + t:get("wrapped")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,"issued":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, issued, wrapped))
end
"#;

/// What the script's `done` prints; times in microseconds.
#[derive(Debug, Clone, Deserialize)]
struct WrkSummary {
    requests: u64,
    duration_us: u64,
    connect: u64,
    read: u64,
    write: u64,
    /// Responses with a status of 400 or more.
    status: u64,
    timeout: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// Requests taken from the pool, sent or about to be; the first one only checks the script.
    issued: u64,
    wrapped: u64,
}

impl WrkSummary {
    fn failed(&self) -> u64 {
        self.connect + self.read + self.write + self.status + self.timeout
    }

    fn acknowledged(&self) -> u64 {
        self.requests - self.status
    }
}

#[derive(Debug, Clone)]
struct Run {
    wrk: WrkSummary,
    /// CPU time of this process (both servers, the writer thread) per second of the run.
    server_cores: f64,
    /// The same for the backend's SQLite writer thread alone.
    writer_cores: f64,
    /// Share of all cores that were busy, wrk included.
    machine_busy: f64,
}

impl Run {
    fn seconds(&self) -> f64 {
        self.wrk.duration_us as f64 / 1e6
    }

    fn rps(&self) -> f64 {
        self.wrk.requests as f64 / self.seconds().max(1e-6)
    }

    fn cpu_us_per_request(&self) -> f64 {
        self.server_cores * 1e6 / self.rps().max(1.0)
    }
}

fn measure(opts: &Options, addr: SocketAddr, pool: &Pool, script: &Path) -> anyhow::Result<Run> {
    let before = CpuSample::now()?;
    let output = Command::new("wrk")
        .arg(format!("--threads={}", opts.threads))
        .arg(format!("--connections={}", opts.connections))
        .arg(format!("--duration={}s", opts.seconds))
        .arg("--script")
        .arg(script)
        .arg(format!("http://{addr}/api/ingest"))
        .arg("--")
        .arg(&pool.prefix)
        .arg(pool.record_len.to_string())
        .output()
        .context("running wrk")?;
    let after = CpuSample::now()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH "))
        .with_context(|| format!("wrk printed no summary:\n{stdout}"))?;
    let wrk: WrkSummary = serde_json::from_str(line).context("reading wrk's summary")?;
    let ticks = |f: fn(&CpuSample) -> u64| f(&after).saturating_sub(f(&before)) as f64;
    let seconds = wrk.duration_us as f64 / 1e6;
    Ok(Run {
        server_cores: ticks(|c| c.process) / TICKS_PER_SECOND / seconds,
        writer_cores: ticks(|c| c.writer) / TICKS_PER_SECOND / seconds,
        machine_busy: ticks(|c| c.busy) / ticks(|c| c.total).max(1.0),
        wrk,
    })
}

/// `/proc` counts CPU time in USER_HZ, which Linux fixes at 100 for user space.
const TICKS_PER_SECOND: f64 = 100.0;

#[derive(Debug)]
struct CpuSample {
    process: u64,
    writer: u64,
    busy: u64,
    total: u64,
}

impl CpuSample {
    fn now() -> anyhow::Result<Self> {
        let process = cpu_ticks(&std::fs::read_to_string("/proc/self/stat")?);
        // The writer thread alone: near one core means the single writer is the limit.
        let mut writer = 0;
        for task in std::fs::read_dir("/proc/self/task")?.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            if stat.contains("(sqlite-writer)") {
                writer += cpu_ticks(&stat);
            }
        }
        let machine = std::fs::read_to_string("/proc/stat")?;
        let cpu: Vec<u64> = machine
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let total: u64 = cpu.iter().sum();
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        Ok(Self { process, writer, busy: total - idle, total })
    }
}

/// utime + stime from a `/proc/.../stat` line; fields are counted after the command name, which
/// may hold spaces.
fn cpu_ticks(stat: &str) -> u64 {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

// ---------------------------------------------------------------------------------------------
// Checks

fn count_events(db: &Path) -> anyhow::Result<u64> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let n: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Requests still in flight when wrk stopped may commit a moment later: wait until the count
/// holds still.
fn settled_count(db: &Path) -> anyhow::Result<u64> {
    let mut last = count_events(db)?;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = count_events(db)?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(text.split_once("\r\n\r\n").map_or(text.clone(), |(_, body)| body.to_owned()))
}

// ---------------------------------------------------------------------------------------------
// Report

fn print_header(opts: &Options, db: &Path, synchronous: Synchronous) {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|m| m.trim_start_matches([' ', '\t', ':'])))
        .unwrap_or("unknown")
        .to_owned();
    let wrk = Command::new("wrk")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_owned())
        .unwrap_or_default();
    println!(
        "machine: {} cores ({cpu}), kernel {}, {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        read("/proc/sys/kernel/osrelease").trim(),
        wrk.split(" Copyright").next().unwrap_or(&wrk)
    );
    println!(
        "load: {} connections, {} wrk threads, {} rounds of {}s per server, alternating bare \
         then backend",
        opts.connections, opts.threads, opts.rounds, opts.seconds
    );
    println!(
        "requests: 1 metric + {PROCS_PER_BATCH} proc events, {BODY_BYTES}-byte body, each \
         signed once; database on {} with synchronous={synchronous:?}",
        filesystem_of(db)
    );
}

/// The type of the file system holding `path`, from the longest matching mount point.
fn filesystem_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point).then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "unknown".into(), |(_, kind)| kind)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// One line of the table.
#[derive(Debug, Clone, Copy)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: f64,
    cores: f64,
    writer: f64,
    cpu_us_per_request: f64,
    busy: f64,
}

impl Figures {
    fn of(r: &Run) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            rps: r.rps(),
            p50_ms: ms(r.wrk.p50_us),
            p99_ms: ms(r.wrk.p99_us),
            max_ms: ms(r.wrk.max_us),
            errors: r.wrk.failed() as f64,
            cores: r.server_cores,
            writer: r.writer_cores,
            cpu_us_per_request: r.cpu_us_per_request(),
            busy: r.machine_busy,
        }
    }

    /// Each column's median on its own.
    fn median(runs: &[Figures]) -> Self {
        let m = |f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
        Self {
            rps: m(|f| f.rps),
            p50_ms: m(|f| f.p50_ms),
            p99_ms: m(|f| f.p99_ms),
            max_ms: m(|f| f.max_ms),
            errors: m(|f| f.errors),
            cores: m(|f| f.cores),
            writer: m(|f| f.writer),
            cpu_us_per_request: m(|f| f.cpu_us_per_request),
            busy: m(|f| f.busy),
        }
    }

    fn row(&self, label: &str, target: &str) -> String {
        format!(
            "{label:<7} {target:<8} {:>9.0} {:>8.2} {:>8.2} {:>8.1} {:>7.0} \
             {:>6.2} {:>6.2} {:>9.1} {:>5.0}%",
            self.rps,
            self.p50_ms,
            self.p99_ms,
            self.max_ms,
            self.errors,
            self.cores,
            self.writer,
            self.cpu_us_per_request,
            self.busy * 100.0
        )
    }
}

fn print_results(rounds: &[(Run, Run)]) {
    println!();
    println!(
        "{:<7} {:<8} {:>9} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>9} {:>6}",
        "round",
        "target",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "cores",
        "writer",
        "cpu us/r",
        "busy"
    );
    let bare: Vec<Figures> = rounds.iter().map(|(b, _)| Figures::of(b)).collect();
    let backend: Vec<Figures> = rounds.iter().map(|(_, b)| Figures::of(b)).collect();
    for (i, (bare, backend)) in bare.iter().zip(&backend).enumerate() {
        let n = (i + 1).to_string();
        println!("{}", bare.row(&n, "bare"));
        println!("{}", backend.row(&n, "backend"));
        println!("{n:<7} {:<8} {:>9.2}", "ratio", backend.rps / bare.rps);
    }
    println!("{}", Figures::median(&bare).row("median", "bare"));
    println!("{}", Figures::median(&backend).row("median", "backend"));
    println!("{:<7} {:<8} {:>9.2}", "median", "ratio", median_ratio(rounds));
    println!(
        "cores: CPU time of the bench process (both servers) per second; writer: the same for \
         the backend's SQLite writer thread; cpu us/r: cores per request; busy: all cores, wrk \
         included"
    );
}

/// The median of each round's backend/bare ratio: both sides of a round share its noise.
fn median_ratio(rounds: &[(Run, Run)]) -> f64 {
    median(rounds.iter().map(|(bare, backend)| backend.rps() / bare.rps()).collect())
}

/// Group commit sizes from the backend's own histogram, bucket by bucket.
fn print_commit_groups(metrics: &str) {
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let mut line = String::new();
    let mut previous = 0.0;
    for l in metrics.lines() {
        let Some(rest) = l.strip_prefix("telemetry_commit_requests_bucket{le=\"") else { continue };
        let Some((bound, count)) = rest.split_once("\"} ") else { continue };
        let cumulative: f64 = count.trim().parse().unwrap_or(0.0);
        let _ = write!(line, " <={bound}: {}", cumulative - previous);
        previous = cumulative;
    }
    let groups = value("telemetry_commit_requests_count");
    println!();
    println!(
        "backend commits: {groups} groups, {:.1} requests per group on average, {:.2} ms per \
         commit on average",
        value("telemetry_commit_requests_sum") / groups,
        value("telemetry_commit_seconds_sum") / groups * 1000.0
    );
    println!("requests per group:{line}");
    let refused: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("telemetry_requests_refused_total{") && !l.ends_with(" 0"))
        .collect();
    if !refused.is_empty() {
        println!("refused: {}", refused.join(", "));
    }
}

fn print_goals(rounds: &[(Run, Run)], acked_events: u64, stored: u64, all_stored: bool) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let ratio = median_ratio(rounds);
    let p99 = median(rounds.iter().map(|(_, b)| b.wrk.p99_us as f64 / 1000.0).collect());
    let worst_p99 = rounds.iter().map(|(_, b)| b.wrk.p99_us).max().unwrap_or(0) as f64 / 1000.0;
    let failed: u64 = rounds.iter().map(|(_, b)| b.wrk.failed()).sum();
    let sent: u64 = rounds.iter().map(|(_, b)| b.wrk.requests).sum();
    println!();
    println!(
        "goal throughput >= {GOAL_RATIO} of bare: {ratio:.2} {}",
        verdict(ratio >= GOAL_RATIO)
    );
    println!(
        "goal backend p99 <= {GOAL_P99_MS} ms: median {p99:.2} ms, worst round \
         {worst_p99:.2} ms {}",
        verdict(p99 <= GOAL_P99_MS)
    );
    println!("goal no failed request: {failed} of {sent} {}", verdict(failed == 0));
    println!(
        "goal every acknowledged event stored: {acked_events} acknowledged, {stored} stored {}",
        verdict(all_stored)
    );
}
