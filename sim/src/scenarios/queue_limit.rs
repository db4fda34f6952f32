//! Long outage past the queue limit, on the paused clock: the backend is gone for 30 simulated
//! minutes while every agent keeps ticking. Each queue must stay within its limit by dropping its
//! oldest batches, report exactly how many, and deliver the rest in order once the backend is
//! back: produced = delivered + dropped + queued.

use super::{Progress, add_summary, agent_seed};
use crate::inbox::Inbox;
use crate::ledger::{Ledger, check_order};
use crate::memfs::MemFs;
use crate::numbered::{Numbered, agent_id};
use crate::{Config, Report};
use agent::queue::outbox::Outbox;
use agent::queue::{DiskQueue, Limits};
use agent::retry::Backoff;
use agent::schedule::{Agent, Stats, Summary};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

const INTERVAL: Duration = Duration::from_secs(5);
const BEFORE: Duration = Duration::from_secs(120);
pub(crate) const OUTAGE: Duration = Duration::from_secs(30 * 60);
const AFTER: Duration = Duration::from_secs(5 * 60);
/// About a hundred batches: a 30-minute outage at one batch per 5 s overflows it threefold.
pub(crate) const QUEUE_MAX_BYTES: u64 = 32 * 1024;
/// A push may exceed the limit by the one batch it adds before the oldest go.
const ONE_BATCH_SLACK: u64 = 1024;

pub(crate) async fn run(config: &Config) -> Report {
    let ledger = Arc::new(Ledger::default());
    let up = Arc::new(AtomicBool::new(true));
    let root = Path::new("/queue");
    let mut lives = Vec::new();
    let mut stats = Vec::new();
    for n in 0..config.agents {
        let seed = agent_seed(config.seed, n);
        let fs = MemFs::new(root, seed);
        let queue =
            DiskQueue::open(fs.clone(), root, Limits { queued: QUEUE_MAX_BYTES, ..Limits::NONE })
                .expect("memory never fails");
        let collector = Numbered::default();
        let agent = Agent {
            collector: collector.clone(),
            transport: Inbox::new(ledger.clone(), up.clone(), 0, seed),
            policy: Backoff::new(Duration::from_secs(1), Duration::from_secs(60), seed),
            outbox: Outbox::new(queue),
            agent_id: agent_id("queue-limit", n),
            interval: INTERVAL,
            stats: Arc::new(Stats::default()),
        };
        stats.push(agent.stats.clone());
        let id = agent.agent_id.clone();
        let life = tokio::spawn(agent.run(tokio::time::sleep(BEFORE + OUTAGE + AFTER)));
        lives.push((id, fs, collector, life));
    }
    let _progress =
        Progress::start(config.progress, "queue-limit", stats, Duration::from_secs(300));
    tokio::time::sleep(BEFORE).await;
    up.store(false, Relaxed);
    tokio::time::sleep(OUTAGE).await;
    up.store(true, Relaxed);

    let mut report = Report { simulated: BEFORE + OUTAGE + AFTER, ..Report::default() };
    for (id, fs, collector, life) in lives {
        match life.await {
            Ok(summary) => check_agent(&id, &fs, &collector, &summary, &ledger, &mut report),
            Err(e) => report.fail(format!("{id}: the agent panicked: {e}")),
        }
    }
    (report.delivered, report.duplicates) = ledger.totals();
    report
}

fn check_agent(
    id: &str,
    fs: &MemFs,
    collector: &Numbered,
    summary: &Summary,
    ledger: &Ledger,
    report: &mut Report,
) {
    add_summary(report, summary);
    let produced = collector.produced();
    report.produced += produced;
    report.max_queue_bytes = report.max_queue_bytes.max(fs.max_queue_bytes());
    let arrivals = ledger.arrivals(id);
    check_order(id, &arrivals, &mut report.failures);
    let delivered = arrivals.len() as u64;
    report.expect_eq(
        &format!("{id}: agent counted delivered vs stored"),
        summary.delivered,
        delivered,
    );
    report.expect_eq(
        &format!("{id}: produced vs delivered + dropped + queued"),
        produced,
        delivered + summary.dropped + summary.queued,
    );
    if summary.dropped == 0 {
        report.fail(format!("{id}: the outage never filled the queue, so nothing was tested"));
    }
    if fs.max_queue_bytes() > QUEUE_MAX_BYTES + ONE_BATCH_SLACK {
        report.fail(format!("{id}: the queue grew to {} bytes", fs.max_queue_bytes()));
    }
    // What never arrived: the newest few still queued, and before them the dropped ones, which
    // must be the oldest of the outage, a single run of consecutive readings.
    let stored: BTreeSet<u64> = arrivals.into_iter().collect();
    let missing: Vec<u64> = (1..=produced).filter(|s| !stored.contains(s)).collect();
    let dropped = &missing[..missing.len().saturating_sub(summary.queued as usize)];
    if let (Some(first), Some(last)) = (dropped.first(), dropped.last())
        && last - first + 1 != dropped.len() as u64
    {
        report.fail(format!("{id}: dropped readings {first}..={last} are not the oldest run"));
    }
}
