//! The tables and verdicts the bench prints.

use super::*;

pub(crate) fn print_header(opts: &Options, db: &Path, targets: &[Target]) {
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
    let stores: Vec<&str> = targets.iter().map(|t| t.kind.label()).collect();
    println!(
        "load: {} connections, {} wrk threads, {} rounds of {}s per server, alternating bare \
         then {}",
        opts.connections,
        opts.threads,
        opts.rounds,
        opts.seconds,
        stores.join(", ")
    );
    let synchronous = std::env::var("SQLITE_SYNCHRONOUS").unwrap_or_else(|_| "full".into());
    println!(
        "requests: 1 metric + {PROCS_PER_BATCH} proc events, {BODY_BYTES}-byte body, each \
         signed once; SQLite on {} with synchronous={synchronous}; PostgreSQL as configured \
         on its server (same machine)",
        filesystem_of(db)
    );
}

/// The type of the file system holding `path`, from the longest matching mount point.
pub(crate) fn filesystem_of(path: &Path) -> String {
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

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// One line of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figures {
    pub(crate) rps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) errors: f64,
    pub(crate) cores: f64,
    pub(crate) writer: f64,
    pub(crate) cpu_us_per_request: f64,
    pub(crate) busy: f64,
}

impl Figures {
    pub(crate) fn of(r: &Run) -> Self {
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
    pub(crate) fn median(runs: &[Figures]) -> Self {
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

    pub(crate) fn row(&self, label: &str, target: &str) -> String {
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

/// `rounds[i][0]` is round i's bare run, `rounds[i][1 + t]` that of store `t`.
pub(crate) fn print_results(labels: &[&str], rounds: &[Vec<Run>]) {
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
    let names: Vec<&str> = std::iter::once("bare").chain(labels.iter().copied()).collect();
    for (i, runs) in rounds.iter().enumerate() {
        let n = (i + 1).to_string();
        for (name, run) in names.iter().zip(runs) {
            println!("{}", Figures::of(run).row(&n, name));
        }
        for (t, label) in labels.iter().enumerate() {
            println!(
                "{n:<7} {:<8} {:>9.2}",
                format!("/{label}"),
                runs[t + 1].rps() / runs[0].rps()
            );
        }
    }
    for (t, name) in names.iter().enumerate() {
        let figures: Vec<Figures> = rounds.iter().map(|r| Figures::of(&r[t])).collect();
        println!("{}", Figures::median(&figures).row("median", name));
    }
    for (t, label) in labels.iter().enumerate() {
        println!("{:<7} {:<8} {:>9.2}", "median", format!("/{label}"), median_ratio(rounds, t + 1));
    }
    println!(
        "cores: CPU time of the bench process (all servers in it, not the PostgreSQL server) per \
         second; writer: the same for the SQLite writer thread; cpu us/r: cores per request; \
         busy: all cores, wrk and PostgreSQL included; /x: x's req/s over bare's in the round"
    );
    println!();
    // A store that keeps nothing carries no agents.
    let null = StoreKind::Null.label();
    for (t, label) in labels.iter().enumerate().filter(|(_, l)| **l != null) {
        let rps = median(rounds.iter().map(|r| r[t + 1].rps()).collect());
        println!(
            "{label}: median {rps:.0} batches/s, about {:.0} agents at a 5 s interval",
            rps * 5.0
        );
    }
}

/// The median of each round's store/bare ratio: both sides of a round share its noise.
pub(crate) fn median_ratio(rounds: &[Vec<Run>], target: usize) -> f64 {
    median(rounds.iter().map(|r| r[target].rps() / r[0].rps()).collect())
}

/// Group commit sizes from the backend's own histogram, bucket by bucket.
pub(crate) fn print_commit_groups(metrics: &str) {
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

/// The goals, for the first store.
pub(crate) fn print_goals(rounds: &[Vec<Run>], acked_events: u64, stored: u64, all_stored: bool) {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let ratio = median_ratio(rounds, 1);
    let p99 = median(rounds.iter().map(|r| r[1].wrk.p99_us as f64 / 1000.0).collect());
    let worst_p99 = rounds.iter().map(|r| r[1].wrk.p99_us).max().unwrap_or(0) as f64 / 1000.0;
    let failed: u64 = rounds.iter().flat_map(|r| &r[1..]).map(|b| b.wrk.failed()).sum();
    let sent: u64 = rounds.iter().flat_map(|r| &r[1..]).map(|b| b.wrk.requests).sum();
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
