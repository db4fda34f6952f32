//! The alert engine's three loops: rounds of evaluation, delivery of notifications, and the
//! live feed of alert changes to this replica's WebSocket clients (read from the table, so
//! clients see the changes whichever replica made them).

use super::deliver::{self, Policy};
use super::measure::measure;
use super::store::{AlertStore, Table, rules_of};
use crate::clock::now_ms;
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::storage::{StorageError, Store};
use crate::telemetry::chain;
use protocol::alerts::AlertState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Alert changes of one round logged one by one; past this, a count.
const LOGGED_CHANGES: usize = 20;
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// How often this replica looks for alert changes to push live.
const FEED_EVERY: Duration = Duration::from_secs(1);

/// What the engine runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineSettings {
    /// Time between rounds; `None` turns evaluation off (deliveries and the feed still run).
    pub(crate) every: Option<Duration>,
    pub(crate) retry_max: Duration,
    pub(crate) give_up: Duration,
    /// How long resolved alerts and sent notifications are kept; `None`: for ever.
    pub(crate) keep: Option<Duration>,
}

/// The running loops; dropped with the application.
#[derive(Debug)]
pub(crate) struct Engine {
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    pub(crate) fn start(
        settings: EngineSettings,
        storage: Arc<dyn Store>,
        alerts: Arc<dyn AlertStore>,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let policy = Policy { retry_max: settings.retry_max, give_up: settings.give_up };
        let mut tasks = vec![
            tokio::spawn(deliver::run(alerts.clone(), policy, wake.clone(), metrics.clone())),
            tokio::spawn(feed(alerts.clone(), hub)),
        ];
        if let Some(keep) = settings.keep {
            tasks.push(tokio::spawn(prune(alerts.clone(), keep)));
        }
        if let Some(every) = settings.every {
            tasks.push(tokio::spawn(evaluate(storage, alerts, every, wake, metrics)));
        }
        Self { tasks }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// One round: measures outside any transaction (reads only), then decides and writes under the
/// store's round lock. Returns how many alerts changed.
pub(crate) async fn round(
    storage: &dyn Store,
    alerts: &dyn AlertStore,
    now_ms: i64,
) -> Result<usize, StorageError> {
    let rules = rules_of(alerts.list(Table::Rules).await?);
    let measures = measure(storage, &rules, now_ms).await?;
    let Some(changed) = alerts.round(now_ms, measures).await? else { return Ok(0) };
    // A storm (a switch taking a site offline) is told in a few lines, not thousands.
    for a in changed.iter().take(LOGGED_CHANGES) {
        match a.state {
            AlertState::Firing if a.fired_at == Some(now_ms / 1000) => {
                tracing::warn!(alert = a.id, agent_id = %a.agent_id, "alert firing: {}", a.summary);
            }
            AlertState::Resolved => {
                tracing::info!(alert = a.id, agent_id = %a.agent_id, "alert resolved: {}", a.summary);
            }
            _ => {}
        }
    }
    if changed.len() > LOGGED_CHANGES {
        let firing = changed.iter().filter(|a| a.state == AlertState::Firing).count();
        tracing::warn!(
            changed = changed.len(),
            firing,
            "many alerts changed in one round; GET /api/alerts lists them"
        );
    }
    Ok(changed.len())
}

#[tracing::instrument(skip_all)]
async fn evaluate(
    storage: Arc<dyn Store>,
    alerts: Arc<dyn AlertStore>,
    every: Duration,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        let outcome = round(&*storage, &*alerts, now_ms()).await;
        metrics.alert_round_seconds.observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(0) => {}
            Ok(_) => wake.notify_one(),
            Err(e) => tracing::warn!(error = %chain(&e), "an alert round failed; will retry"),
        }
    }
}

/// Every few minutes: a table of alerts grows by thousands in a storm and would otherwise
/// never shrink.
#[tracing::instrument(skip_all)]
async fn prune(alerts: Arc<dyn AlertStore>, keep: Duration) {
    let keep_ms = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        match alerts.prune(now_ms().saturating_sub(keep_ms)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old alerts and notifications removed"),
            Err(e) => tracing::warn!(error = %chain(&e), "cannot remove old alerts; will retry"),
        }
    }
}

#[tracing::instrument(skip_all)]
async fn feed(alerts: Arc<dyn AlertStore>, hub: Hub) {
    let mut seq = loop {
        match alerts.latest_seq().await {
            Ok(seq) => break seq,
            Err(e) => tracing::warn!(error = %chain(&e), "cannot read the alerts; will retry"),
        }
        tokio::time::sleep(FEED_EVERY).await;
    };
    loop {
        tokio::time::sleep(FEED_EVERY).await;
        if !hub.has_subscribers() {
            // Nobody to tell; a client that connects later reads the list first.
            if let Ok(latest) = alerts.latest_seq().await {
                seq = latest;
            }
            continue;
        }
        match alerts.changed_since(seq).await {
            Ok((changed, last)) => {
                changed.iter().for_each(|a| hub.publish_alert(a));
                seq = last;
            }
            Err(e) => tracing::warn!(error = %chain(&e), "cannot read alert changes; will retry"),
        }
    }
}
