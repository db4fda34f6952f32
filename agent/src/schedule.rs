//! The agent's loop: a tick collects and queues on the clock; a drainer beside it delivers the
//! queue oldest first, backing off on failures, so a slow backend never delays a reading.

use crate::collect::{Collector, build_batch};
use crate::queue::fs::Fs;
use crate::queue::outbox::{Item, Outbox};
use crate::retry::RetryPolicy;
use crate::send::{Delivery, Transport};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};

/// Running totals, readable while the agent runs (the simulator watches them).
#[derive(Debug, Default)]
pub struct Stats {
    /// Ticks so far, one reading each.
    pub ticks: AtomicU64,
    /// Batches the backend stored.
    pub delivered: AtomicU64,
    /// Batches the backend had stored already, from an attempt whose answer was lost.
    pub duplicates: AtomicU64,
    /// Failed delivery attempts.
    pub retries: AtomicU64,
}

/// What a run did, for the final log line and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Ticks run, one reading each.
    pub ticks: u64,
    /// Batches the backend stored.
    pub delivered: u64,
    /// Batches the backend had stored already, from an attempt whose answer was lost.
    pub duplicates: u64,
    /// Failed delivery attempts.
    pub retries: u64,
    /// Batches the backend refused for their content, moved to `rejected/`.
    pub rejected: u64,
    /// Oldest batches dropped to stay within the queue limit.
    pub dropped: u64,
    /// Damaged queue files moved to `corrupt/`.
    pub corrupt: u64,
    /// Files removed from `rejected/` and `corrupt/` to stay within their limit.
    pub set_aside_dropped: u64,
    /// Batches dropped from the memory fallback: neither on disk nor delivered.
    pub lost: u64,
    /// Batches still queued at the end, on disk or in memory.
    pub queued: u64,
}

/// Everything a running agent is made of; the simulator builds these with fakes.
#[derive(Debug)]
pub struct Agent<C, T, P, F: Fs> {
    /// Takes each tick's readings.
    pub collector: C,
    /// Delivers the batches.
    pub transport: T,
    /// The wait after each failed delivery.
    pub policy: P,
    /// Where batches wait for delivery.
    pub outbox: Outbox<F>,
    /// Stamped on every batch.
    pub agent_id: String,
    /// Time from one tick to the next.
    pub interval: Duration,
    /// Running totals, shared with whoever watches the agent.
    pub stats: Arc<Stats>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Wait for ticks and back-off timers until stopped.
    Forever,
    /// One delivery round, then return: `--once`.
    Once,
}

/// What the tick and the drainer share.
struct Shared<'a, F: Fs> {
    outbox: Mutex<Outbox<F>>,
    stats: &'a Stats,
    agent_id: &'a str,
    wake: Notify,
    /// Set on shutdown, so a long backlog does not hold the exit back.
    stopping: AtomicBool,
}

impl<'a, F: Fs> Shared<'a, F> {
    fn new(outbox: Outbox<F>, stats: &'a Stats, agent_id: &'a str) -> Self {
        Self {
            outbox: Mutex::new(outbox),
            stats,
            agent_id,
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        }
    }

    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox<F>> {
        self.outbox.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn summary(&self) -> Summary {
        let outbox = self.outbox();
        let q = outbox.stats();
        Summary {
            ticks: self.stats.ticks.load(Relaxed),
            delivered: self.stats.delivered.load(Relaxed),
            duplicates: self.stats.duplicates.load(Relaxed),
            retries: self.stats.retries.load(Relaxed),
            rejected: q.rejected,
            dropped: q.dropped,
            corrupt: q.corrupt,
            set_aside_dropped: q.set_aside_dropped,
            lost: outbox.lost,
            queued: outbox.len() as u64,
        }
    }

    #[tracing::instrument(skip_all, fields(agent_id = %self.agent_id))]
    fn tick(&self, collector: &mut impl Collector) {
        let reading = collector.collect();
        let batch = build_batch(self.agent_id, reading, collector.detail());
        match serde_json::to_vec(&batch) {
            Ok(body) => self.outbox().push(body),
            Err(e) => tracing::error!(error = %e, "could not encode a batch (data lost)"),
        }
        self.stats.ticks.fetch_add(1, Relaxed);
        self.wake.notify_one();
    }

    #[tracing::instrument(skip_all, fields(agent_id = %self.agent_id))]
    async fn drain(
        &self,
        transport: &impl Transport,
        policy: &mut impl RetryPolicy,
        mode: Mode,
        stopped: &Notify,
    ) {
        let mut retry_at: Option<Instant> = None;
        loop {
            if mode == Mode::Forever {
                let backoff = async {
                    match retry_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = self.wake.notified() => {
                        // A tick while backing off: ask cheaply whether the backend is back,
                        // and if so resume at once instead of waiting out the back-off.
                        if retry_at.is_some_and(|at| Instant::now() < at)
                            && !transport.probe().await
                        {
                            continue;
                        }
                    }
                    () = backoff => {}
                    () = stopped.notified() => return,
                }
            }
            retry_at = None;
            while !self.stopping.load(Relaxed) {
                let Some(Item { key, body }) = self.outbox().oldest() else { break };
                let failure = match transport.send(&body).await {
                    Delivery::Stored { duplicate } => {
                        self.outbox().ack(key);
                        policy.on_success();
                        let stats = self.stats;
                        let counter = if duplicate { &stats.duplicates } else { &stats.delivered };
                        counter.fetch_add(1, Relaxed);
                        None
                    }
                    Delivery::Rejected(why) => {
                        tracing::error!(reason = %why, "the backend refused a batch; kept in rejected/");
                        self.outbox().reject(key, &why);
                        None
                    }
                    Delivery::Retry(why) => Some(why),
                };
                if let Some(why) = failure {
                    self.stats.retries.fetch_add(1, Relaxed);
                    let wait = policy.on_failure();
                    let queued = self.outbox().len();
                    tracing::warn!(reason = %why, retry_in_ms = wait.as_millis() as u64, queued, "delivery failed; will retry");
                    retry_at = Some(Instant::now() + wait);
                    break;
                }
            }
            if mode == Mode::Once {
                return;
            }
        }
    }
}

impl<C: Collector, T: Transport, P: RetryPolicy, F: Fs> Agent<C, T, P, F> {
    fn split(self) -> (C, T, P, Outbox<F>, String, Duration, Arc<Stats>) {
        (
            self.collector,
            self.transport,
            self.policy,
            self.outbox,
            self.agent_id,
            self.interval,
            self.stats,
        )
    }

    /// Ticks until `stop` resolves, delivering beside it; what could not be sent stays queued.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Summary {
        let (mut collector, transport, mut policy, outbox, agent_id, interval, stats) =
            self.split();
        let shared = Shared::new(outbox, &stats, &agent_id);
        let stopped = Notify::new();
        let ticks = async {
            let mut ticker = tokio::time::interval(interval);
            // A late tick is skipped, not bunched: the cadence stays the configured one.
            ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = ticker.tick() => shared.tick(&mut collector),
                    () = &mut stop => break,
                }
            }
            shared.stopping.store(true, Relaxed);
            stopped.notify_one();
        };
        tokio::join!(ticks, shared.drain(&transport, &mut policy, Mode::Forever, &stopped));
        shared.summary()
    }

    /// One tick and one delivery round (`--once`).
    pub async fn run_once(self) -> Summary {
        let (mut collector, transport, mut policy, outbox, agent_id, _, stats) = self.split();
        let shared = Shared::new(outbox, &stats, &agent_id);
        shared.tick(&mut collector);
        shared.drain(&transport, &mut policy, Mode::Once, &Notify::new()).await;
        shared.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Reading;
    use crate::queue::fs::StdFs;
    use crate::queue::{DiskQueue, Limits};
    use crate::retry::Backoff;
    use protocol::{Event, EventKind, IngestBatch};
    use std::collections::VecDeque;

    /// Readings numbered by `uptime_s`, so the order of arrival can be checked.
    struct Counter(u64);

    impl Collector for Counter {
        fn collect(&mut self) -> Reading {
            self.0 += 1;
            Reading {
                metric: Event { uptime_s: Some(self.0), ..Event::empty(EventKind::Metric) },
                procs: vec![],
                drives: vec![],
            }
        }
    }

    /// Answers from a script, then `Stored`; records what was delivered and when it was tried.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<VecDeque<Delivery>>,
        backend_up: AtomicBool,
        delivered: Mutex<Vec<u64>>,
        attempts: Mutex<Vec<Instant>>,
    }

    impl Transport for Arc<Scripted> {
        async fn send(&self, body: &[u8]) -> Delivery {
            self.attempts.lock().unwrap().push(Instant::now());
            let answer = self.script.lock().unwrap().pop_front();
            let answer = answer.unwrap_or(Delivery::Stored { duplicate: false });
            if matches!(answer, Delivery::Stored { .. }) {
                let batch: IngestBatch = serde_json::from_slice(body).unwrap();
                self.delivered.lock().unwrap().push(batch.events[0].uptime_s.unwrap());
            }
            answer
        }
        async fn probe(&self) -> bool {
            self.backend_up.load(Relaxed)
        }
    }

    fn agent(
        transport: Arc<Scripted>,
        dir: &std::path::Path,
    ) -> Agent<Counter, Arc<Scripted>, Backoff, StdFs> {
        Agent {
            collector: Counter(0),
            transport,
            policy: Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 7),
            outbox: Outbox::new(DiskQueue::open(StdFs, dir, Limits::NONE).unwrap()),
            agent_id: "t".into(),
            interval: Duration::from_secs(5),
            stats: Arc::default(),
        }
    }

    fn retry(n: usize) -> Vec<Delivery> {
        (0..n).map(|_| Delivery::Retry("503".into())).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_and_every_batch_arrives_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let transport = Arc::new(Scripted::default());
        transport.script.lock().unwrap().extend(retry(6));
        let summary = agent(transport.clone(), dir.path())
            .run(tokio::time::sleep(Duration::from_secs(300)))
            .await;
        let delivered = transport.delivered.lock().unwrap().clone();
        assert_eq!(delivered, (1..=delivered.len() as u64).collect::<Vec<_>>());
        assert_eq!(summary.delivered + summary.queued, summary.ticks);
        assert_eq!(summary.retries, 6);
        // Consecutive failed attempts are spaced by a growing back-off, never hammering.
        let attempts = transport.attempts.lock().unwrap().clone();
        let gaps: Vec<Duration> = attempts.windows(2).take(6).map(|w| w[1] - w[0]).collect();
        for (n, gap) in gaps.iter().enumerate() {
            let (low, _) =
                Backoff::bounds(Duration::from_secs(1), Duration::from_secs(60), n as u32);
            assert!(*gap >= low, "attempt {n} came after {gap:?}, before the back-off of {low:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_that_finds_the_backend_back_resumes_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let transport = Arc::new(Scripted::default());
        // Enough failures to push the back-off towards its cap.
        transport.script.lock().unwrap().extend(retry(8));
        let watcher = transport.clone();
        let stop = async move {
            tokio::time::sleep(Duration::from_secs(200)).await;
            watcher.backend_up.store(true, Relaxed);
            tokio::time::sleep(Duration::from_secs(11)).await;
        };
        let summary = agent(transport.clone(), dir.path()).run(stop).await;
        // Within about two ticks of the backend answering, the backlog is gone.
        assert!(summary.queued <= 1, "{summary:?}");
        assert_eq!(summary.delivered + summary.queued, summary.ticks);
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_refused_body_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let transport = Arc::new(Scripted::default());
        transport.script.lock().unwrap().extend([
            Delivery::Rejected("422 invalid".into()),
            Delivery::Retry("401 bad_token".into()),
            Delivery::Retry("401 bad_token".into()),
            Delivery::Retry("401 bad_token".into()),
            Delivery::Retry("401 bad_token".into()),
        ]);
        let summary = agent(transport.clone(), dir.path())
            .run(tokio::time::sleep(Duration::from_secs(60)))
            .await;
        assert_eq!((summary.rejected, summary.retries), (1, 4), "{summary:?}");
        assert_eq!(summary.delivered + summary.rejected + summary.queued, summary.ticks);
        assert_eq!(std::fs::read_dir(dir.path().join("rejected")).unwrap().count(), 2);
    }

    /// Credentials being fixed for minutes: the batch waits, nothing is set aside, and the
    /// readings of those minutes are queued behind it and delivered after it, in order.
    #[tokio::test(start_paused = true)]
    async fn readings_are_queued_while_one_batch_is_retried_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let transport = Arc::new(Scripted::default());
        let refusals = (0..8).map(|_| Delivery::Retry("401 stale_timestamp".into()));
        transport.script.lock().unwrap().extend(refusals);
        // Stopping between ticks, so that the last reading has had its delivery.
        let summary = agent(transport.clone(), dir.path())
            .run(tokio::time::sleep(Duration::from_secs(302)))
            .await;
        let attempts = transport.attempts.lock().unwrap().clone();
        let refused_for = attempts[8] - attempts[0];
        assert!(refused_for >= Duration::from_secs(60), "{refused_for:?}");
        let delivered = transport.delivered.lock().unwrap().clone();
        assert_eq!(delivered, (1..=summary.ticks).collect::<Vec<_>>(), "{summary:?}");
        assert_eq!((summary.rejected, summary.queued, summary.retries), (0, 0, 8));
    }
}
