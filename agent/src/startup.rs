//! Wiring the real parts from settings, and running until Ctrl+C or SIGTERM.

use crate::collect::SystemCollector;
use crate::data_dir::adopt_old_queue;
use crate::queue::DiskQueue;
use crate::queue::fs::StdFs;
use crate::queue::outbox::Outbox;
use crate::retry::Backoff;
use crate::schedule::{Agent, Stats, Summary};
use crate::send::HttpTransport;
use crate::settings::Settings;
use crate::watch::Watch;
use anyhow::Context;
use std::future::Future;

pub(crate) type RealAgent = Agent<SystemCollector, HttpTransport, Backoff, StdFs>;

/// The agent on the real collector, sender and disk queue, ready to run.
pub fn build(settings: &Settings) -> anyhow::Result<RealAgent> {
    if let Some(old) = &settings.old_queue_path {
        match adopt_old_queue(old, &settings.queue_path) {
            Ok(Some(from)) => tracing::info!(
                from = %from.display(),
                to = %settings.queue_path.display(),
                "moved the queue of an earlier version to its new place"
            ),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                error = %e,
                old = %old.display(),
                "could not move an earlier version's queue; set QUEUE_PATH to it to send its batches"
            ),
        }
    }
    let queue = DiskQueue::open(StdFs, &settings.queue_path, settings.queue_limits)
        .context("opening the queue (set QUEUE_PATH to a writable folder)")?;
    if !queue.is_empty() {
        tracing::info!(batches = queue.len(), "resuming with batches queued by an earlier run");
    }
    crate::tls::warn_if_clear_text(&settings.api_url);
    Ok(Agent {
        collector: SystemCollector::new(settings.top_processes)
            .context("reading system information")?
            .watching(Watch::from_settings(settings)),
        transport: HttpTransport::trusting(
            &settings.trust,
            &settings.api_url,
            settings.api_token.expose(),
            settings.hmac_secret.expose(),
            settings.request_timeout,
        )
        .context("creating the HTTP client")?,
        policy: Backoff::default(),
        outbox: Outbox::new(queue),
        agent_id: settings.agent_id.clone(),
        interval: settings.interval,
        stats: std::sync::Arc::new(Stats::default()),
    })
}

/// The final `agent stopped` log line, with every count of the summary.
pub fn log_summary(summary: &Summary) {
    tracing::info!(
        ticks = summary.ticks,
        delivered = summary.delivered,
        duplicates = summary.duplicates,
        retries = summary.retries,
        rejected = summary.rejected,
        dropped = summary.dropped,
        corrupt = summary.corrupt,
        set_aside_dropped = summary.set_aside_dropped,
        lost = summary.lost,
        queued = summary.queued,
        "agent stopped"
    );
}

/// Runs the agent until `stop` resolves.
pub async fn run(settings: &Settings, stop: impl Future<Output = ()>) -> anyhow::Result<Summary> {
    tracing::info!(
        agent_id = %settings.agent_id,
        api_url = %settings.api_url,
        interval_s = settings.interval.as_secs(),
        queue = %settings.queue_path.display(),
        "agent starting"
    );
    if settings.api_token.expose() == protocol::DEV_API_TOKEN {
        tracing::warn!(
            "API_TOKEN is the development default; the backend accepts it only over loopback"
        );
    }
    let summary = build(settings)?.run(stop).await;
    log_summary(&summary);
    Ok(summary)
}
