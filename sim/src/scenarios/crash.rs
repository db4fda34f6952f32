//! Crash and corruption, on the paused clock: each agent is killed one to three times at a random
//! write of its queue (half a temporary file, a rename or a removal done or not), and between
//! lives a bad disk truncates or flips bytes in queued files. After the last restart nothing may
//! have panicked, every intact batch that ever reached the queue is stored, and every damaged one
//! sits in `corrupt/`.

use super::{Progress, add_summary, agent_seed, both};
use crate::inbox::Inbox;
use crate::ledger::{Ledger, check_order};
use crate::memfs::MemFs;
use crate::numbered::{Numbered, agent_id};
use crate::{Config, Report};
use agent::queue::outbox::Outbox;
use agent::queue::{CORRUPT_DIR, DiskQueue, Limits};
use agent::retry::Backoff;
use agent::schedule::{Agent, Stats, Summary};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(5);
/// Share of requests that fail, so that queues hold something when the crash comes.
const FLAKY_PERCENT: u8 = 40;
/// The last life runs this long before a final `--once` with a healthy backend empties the queue.
const LAST_LIFE: Duration = Duration::from_secs(15 * 60);
/// A crash that has not come by then means the fault injection is broken.
const CRASH_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// What one agent went through.
struct Outcome {
    id: String,
    fs: MemFs,
    collector: Numbered,
    damaged: BTreeSet<u64>,
    crashes: u32,
    last: Summary,
}

/// The same agent again, as after a restart, on whatever its disk holds.
struct Life {
    id: String,
    seed: u64,
    root: PathBuf,
    fs: MemFs,
    collector: Numbered,
    ledger: Arc<Ledger>,
    stats: Arc<Stats>,
}

impl Life {
    fn agent(&self, flaky_percent: u8) -> Result<Agent<Numbered, Inbox, Backoff, MemFs>, String> {
        let queue = DiskQueue::open(self.fs.clone(), &self.root, Limits::NONE)
            .map_err(|e| format!("{}: the queue did not open after a crash: {e}", self.id))?;
        let up = Arc::new(AtomicBool::new(true));
        Ok(Agent {
            collector: self.collector.clone(),
            transport: Inbox::new(self.ledger.clone(), up, flaky_percent, self.seed),
            policy: Backoff::new(Duration::from_secs(1), Duration::from_secs(60), self.seed),
            outbox: Outbox::new(queue),
            agent_id: self.id.clone(),
            interval: INTERVAL,
            stats: self.stats.clone(),
        })
    }

    async fn live(self) -> Result<Outcome, String> {
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let mut damaged = BTreeSet::new();
        let crashes = rng.u32(1..=3);
        for _ in 0..crashes {
            let agent = self.agent(FLAKY_PERCENT)?;
            self.fs.crash_after(rng.u64(1..150));
            // Dropping the agent's future is the kill: none of its code runs after the crash.
            tokio::select! {
                biased;
                () = self.fs.crashed() => {}
                _ = agent.run(std::future::pending()) => unreachable!("runs until stopped"),
                () = tokio::time::sleep(CRASH_DEADLINE) => {
                    return Err(format!("{}: the armed crash never came", self.id));
                }
            }
            self.fs.reboot();
            for _ in 0..rng.usize(0..=2) {
                damaged.extend(self.fs.damage_one());
            }
        }
        let long = self.agent(FLAKY_PERCENT)?.run(tokio::time::sleep(LAST_LIFE)).await;
        let last = self.agent(0)?.run_once().await;
        Ok(Outcome {
            id: self.id,
            fs: self.fs,
            collector: self.collector,
            damaged,
            crashes,
            last: both(long, last),
        })
    }
}

pub(crate) async fn run(config: &Config) -> Report {
    let ledger = Arc::new(Ledger::default());
    let root = Path::new("/queue");
    let mut lives = Vec::new();
    let mut stats = Vec::new();
    for n in 0..config.agents {
        let seed = agent_seed(config.seed, n);
        let life = Life {
            id: agent_id("crash", n),
            seed,
            root: root.to_owned(),
            fs: MemFs::new(root, seed),
            collector: Numbered::default(),
            ledger: ledger.clone(),
            stats: Arc::new(Stats::default()),
        };
        stats.push(life.stats.clone());
        lives.push((life.id.clone(), tokio::spawn(life.live())));
    }
    let _progress = Progress::start(config.progress, "crash", stats, Duration::from_secs(600));
    let started = tokio::time::Instant::now();
    let mut report = Report::default();
    let mut crashes = 0;
    for (id, life) in lives {
        match life.await {
            Ok(Ok(outcome)) => {
                crashes += outcome.crashes;
                check_agent(&outcome, root, &ledger, &mut report);
            }
            Ok(Err(why)) => report.fail(why),
            Err(e) => report.fail(format!("{id}: the agent panicked: {e}")),
        }
    }
    tracing::info!(crashes, "crash scenario done");
    report.simulated = started.elapsed();
    (report.delivered, report.duplicates) = ledger.totals();
    report
}

fn check_agent(o: &Outcome, root: &Path, ledger: &Ledger, report: &mut Report) {
    add_summary(report, &o.last);
    report.produced += o.collector.produced();
    report.max_queue_bytes = report.max_queue_bytes.max(o.fs.max_queue_bytes());
    let id = &o.id;
    let arrivals = ledger.arrivals(id);
    check_order(id, &arrivals, &mut report.failures);
    let stored: BTreeSet<u64> = arrivals.iter().copied().collect();
    let queued: BTreeSet<u64> = o.fs.queued_readings().into_iter().collect();
    let lost: Vec<u64> =
        queued.iter().filter(|s| !stored.contains(s) && !o.damaged.contains(s)).copied().collect();
    if !lost.is_empty() {
        report.fail(format!("{id}: intact queued readings never stored: {lost:?}"));
    }
    // A reading that never reached the queue died with the process; it must not appear.
    let phantom: Vec<u64> = stored.difference(&queued).copied().collect();
    if !phantom.is_empty() {
        report.fail(format!("{id}: stored readings that were never queued: {phantom:?}"));
    }
    let corrupt = o.fs.count_batches(&root.join(CORRUPT_DIR)) as u64;
    report.corrupt += corrupt;
    report.expect_eq(
        &format!("{id}: files in corrupt/ vs files damaged"),
        corrupt,
        o.damaged.len() as u64,
    );
    report.expect_eq(&format!("{id}: queued after the final run"), o.last.queued, 0);
}
