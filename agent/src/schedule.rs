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

/// After this many refusals for credentials in a row, the oldest batch is set aside in
/// `rejected/` so that a misconfigured agent does not retry one batch forever.
pub const MAX_UNAUTHORIZED: u32 = 3;

/// Running totals, readable while the agent runs (the simulator watches them).
#[derive(Debug, Default)]
pub struct Stats {
    pub ticks: AtomicU64,
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    pub retries: AtomicU64,
    pub probes: AtomicU64,
}

/// What a run did, for the final log line and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub ticks: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub retries: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub corrupt: u64,
    pub lost: u64,
    pub queued: u64,
}

/// Everything a running agent is made of; the simulator builds these with fakes.
#[derive(Debug)]
pub struct Agent<C, T, P, F: Fs> {
    pub collector: C,
    pub transport: T,
    pub policy: P,
    pub outbox: Outbox<F>,
    pub agent_id: String,
    pub interval: Duration,
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

impl<F: Fs> Shared<'_, F> {
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
            lost: outbox.lost,
            queued: outbox.len() as u64,
        }
    }

    #[tracing::instrument(skip_all, fields(agent_id = %self.agent_id))]
    fn tick(&self, collector: &mut impl Collector) {
        let batch = build_batch(self.agent_id, collector.collect());
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
        let mut unauthorized = 0;
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
                        if retry_at.is_some_and(|at| Instant::now() < at) {
                            self.stats.probes.fetch_add(1, Relaxed);
                            if !transport.probe().await {
                                continue;
                            }
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
                        unauthorized = 0;
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
                    Delivery::Unauthorized(why) if unauthorized + 1 >= MAX_UNAUTHORIZED => {
                        tracing::error!(reason = %why, "refused for its credentials {MAX_UNAUTHORIZED} times in a row; kept in rejected/ (check API_TOKEN, HMAC_SECRET and the clock)");
                        self.outbox().reject(key, &why);
                        unauthorized = 0;
                        None
                    }
                    Delivery::Unauthorized(why) => {
                        unauthorized += 1;
                        Some(why)
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
        let shared = Shared {
            outbox: Mutex::new(outbox),
            stats: &stats,
            agent_id: &agent_id,
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        };
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
        let shared = Shared {
            outbox: Mutex::new(outbox),
            stats: &stats,
            agent_id: &agent_id,
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        };
        shared.tick(&mut collector);
        shared.drain(&transport, &mut policy, Mode::Once, &Notify::new()).await;
        shared.summary()
    }
}
