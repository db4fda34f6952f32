//! The scenarios, and what they share: seeds per agent, progress lines, totals, and the check of
//! the real backend's database.

pub(crate) mod alerts;
pub(crate) mod crash;
pub(crate) mod fake;
pub(crate) mod fleet;
pub(crate) mod lost_ack;
pub(crate) mod outage;
pub(crate) mod queue_limit;
pub(crate) mod refusal;

use crate::Report;
use crate::ledger::check_exactly;
use agent::schedule::{Stats, Summary};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const TOKEN: &str = "sim-token";
const SECRET: &str = "sim-secret";

/// A seed of its own for each agent, so that agents do not back off in step.
fn agent_seed(seed: u64, n: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(n as u64 + 1)
}

/// Prints the fleet's running totals every `every` (of the scenario's clock) until dropped.
struct Progress(Option<tokio::task::JoinHandle<()>>);

impl Progress {
    fn start(enabled: bool, name: &'static str, stats: Vec<Arc<Stats>>, every: Duration) -> Self {
        if !enabled {
            return Self(None);
        }
        let begun = tokio::time::Instant::now();
        Self(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let sum = |f: fn(&Stats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
                eprintln!(
                    "[{name}] t={:>5.0}s produced={} delivered={} duplicates={} retries={}",
                    begun.elapsed().as_secs_f64(),
                    sum(|s| s.ticks.load(Relaxed)),
                    sum(|s| s.delivered.load(Relaxed)),
                    sum(|s| s.duplicates.load(Relaxed)),
                    sum(|s| s.retries.load(Relaxed)),
                );
            }
        })))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Awaits every agent's first life. A panic is a broken invariant, not a setup error: it is
/// reported, and that agent counts as having done nothing (so its readings show up as missing).
async fn join_lives(
    lives: Vec<tokio::task::JoinHandle<Summary>>,
    report: &mut Report,
) -> Vec<Summary> {
    let mut summaries = Vec::with_capacity(lives.len());
    for (n, life) in lives.into_iter().enumerate() {
        summaries.push(life.await.unwrap_or_else(|e| {
            report.fail(format!("agent {n} panicked: {e}"));
            Summary::default()
        }));
    }
    summaries
}

/// Adds one agent's lives to the report's agent-side counts.
fn add_summary(report: &mut Report, s: &Summary) {
    report.dropped += s.dropped;
    report.rejected += s.rejected;
    report.queued += s.queued;
    report.retries += s.retries;
}

/// One agent's two lives (a long run, then the final `--once` that empties its queue) on the
/// same `Stats`: those counters are already running totals, the queue's start anew per life.
fn both(a: Summary, b: Summary) -> Summary {
    Summary {
        rejected: a.rejected + b.rejected,
        dropped: a.dropped + b.dropped,
        corrupt: a.corrupt + b.corrupt,
        set_aside_dropped: a.set_aside_dropped + b.set_aside_dropped,
        lost: a.lost + b.lost,
        ..b
    }
}

/// Files ending in `suffix` in a real folder.
fn count_files(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
            .count()
    })
}

/// The bytes of `.batch` files in a real queue folder.
fn queue_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".batch"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

/// Samples the fakes' queue folders while they run, for the largest queue seen.
struct QueueWatch {
    max: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl QueueWatch {
    fn start(dirs: Vec<PathBuf>) -> Self {
        let max = Arc::new(AtomicU64::new(0));
        let seen = max.clone();
        let task = tokio::spawn(async move {
            loop {
                let largest = dirs.iter().map(|d| queue_bytes(d)).max().unwrap_or(0);
                seen.fetch_max(largest, Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { max, task }
    }

    fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }
}

impl Drop for QueueWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The real backend's database must hold each produced reading exactly once:
/// `produced` maps each agent id to how many readings its collector made.
fn check_database(db: &Path, produced: &HashMap<String, u64>, report: &mut Report) {
    let rows = (|| -> rusqlite::Result<HashMap<String, Vec<u64>>> {
        let conn = rusqlite::Connection::open(db)?;
        let mut stmt = conn.prepare(
            "SELECT agent_id, uptime_s FROM events WHERE event_type = 'metric' ORDER BY id",
        )?;
        let mut rows: HashMap<String, Vec<u64>> = HashMap::new();
        let mut query = stmt.query([])?;
        while let Some(row) = query.next()? {
            rows.entry(row.get(0)?).or_default().push(row.get(1)?);
        }
        Ok(rows)
    })();
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return report.fail(format!("reading the database: {e}")),
    };
    for agent_id in rows.keys().filter(|id| !produced.contains_key(*id)) {
        report.fail(format!("{agent_id}: stored but never produced"));
    }
    for (agent_id, &count) in produced {
        let stored = rows.get(agent_id).map_or(&[][..], Vec::as_slice);
        let expected: BTreeSet<u64> = (1..=count).collect();
        check_exactly(agent_id, stored, &expected, &mut report.failures);
    }
    report.delivered = rows.values().map(|r| r.len() as u64).sum();
}

/// Fake agents on the real sender, each running for `run_for`, watched for progress and queue
/// size: how the scenarios against a real HTTP server start their fleet.
struct HttpFleet {
    fakes: Vec<fake::Fake>,
    lives: Vec<tokio::task::JoinHandle<agent::schedule::Summary>>,
    progress: Progress,
    watch: QueueWatch,
}

fn launch_http_fleet(
    config: &crate::Config,
    name: &'static str,
    dir: &std::path::Path,
    url: &str,
    tuning: fake::Tuning,
    run_for: Duration,
) -> Result<HttpFleet, crate::SimError> {
    let mut fakes = Vec::new();
    let mut lives = Vec::new();
    for n in 0..config.agents {
        let fake = fake::Fake::new(name, n, config.seed, dir, url, TOKEN, tuning)?;
        let agent = fake.agent(fake.http.clone())?;
        lives.push(tokio::spawn(agent.run(tokio::time::sleep(run_for))));
        fakes.push(fake);
    }
    let stats = fakes.iter().map(|f| f.stats.clone()).collect();
    let progress = Progress::start(config.progress, name, stats, Duration::from_secs(1));
    let watch = QueueWatch::start(fakes.iter().map(|f| f.dir.clone()).collect());
    Ok(HttpFleet { fakes, lives, progress, watch })
}
