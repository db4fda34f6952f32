//! Sends what the outbox holds: claims due notifications, sends them side by side, and records
//! each outcome. A failed attempt waits twice as long as the one before (up to a limit), so a
//! receiver that is down gets its notifications, in order of creation, soon after it is back.

use super::send::Sender;
use super::store::{AlertStore, Claimed, Finish};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::telemetry::chain;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Notifications claimed at a time.
const CLAIM: u32 = 16;
/// A claim holds a notification this long: longer than an attempt (10 s), so a sender that
/// dies mid-attempt hands it back to whoever claims next.
const LEASE_MS: i64 = 60_000;
/// The first retry's wait.
const FIRST_RETRY_MS: i64 = 2_000;

/// How long to wait after `attempts` failures.
pub(crate) fn backoff_ms(attempts: u32, max_ms: i64) -> i64 {
    let doublings = attempts.saturating_sub(1).min(30);
    FIRST_RETRY_MS.saturating_mul(1 << doublings).min(max_ms)
}

/// What the sender runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) retry_max: Duration,
    pub(crate) give_up: Duration,
}

async fn attempt(sender: &Sender, policy: Policy, c: &Claimed) -> Finish {
    let Some(channel) = &c.channel else {
        return Finish::Failed { error: "the channel was deleted".into() };
    };
    let Err(e) = sender.send(channel, &c.notification).await else { return Finish::Delivered };
    let now = now_ms();
    let age = Duration::from_millis(u64::try_from(now - c.created_ms).unwrap_or_default());
    if e.permanent || age >= policy.give_up {
        // Lost: nobody will hear of this change of the alert through this channel.
        tracing::error!(
            notification = c.id,
            channel = %channel.name,
            attempts = c.attempts,
            error = %e,
            "a notification was given up; fix the channel and check the alert list"
        );
        return Finish::Failed { error: e.message };
    }
    let max_ms = i64::try_from(policy.retry_max.as_millis()).unwrap_or(i64::MAX);
    let at_ms = now + backoff_ms(c.attempts, max_ms);
    tracing::warn!(
        notification = c.id,
        channel = %channel.name,
        attempts = c.attempts,
        error = %e,
        retry_in_ms = at_ms - now,
        "a notification failed; will retry"
    );
    Finish::Retry { at_ms, error: e.message }
}

/// Sends forever: whenever `wake` is notified (a round wrote notifications), and every second
/// for retries and for other replicas' notifications.
#[tracing::instrument(skip_all)]
pub(crate) async fn run(
    store: Arc<dyn AlertStore>,
    policy: Policy,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
) {
    let sender = Sender::new();
    loop {
        let claimed = match store.claim(now_ms(), LEASE_MS, CLAIM).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %chain(&e), "cannot read the notification outbox; will retry");
                Vec::new()
            }
        };
        let full = claimed.len() == CLAIM as usize;
        let outcomes =
            futures_util::future::join_all(claimed.iter().map(|c| attempt(&sender, policy, c)))
                .await;
        for (c, finish) in claimed.iter().zip(outcomes) {
            let outcome = match finish {
                Finish::Delivered => 0,
                Finish::Retry { .. } => 1,
                Finish::Failed { .. } => 2,
            };
            metrics.notifications[outcome].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = store.finish(c.id, now_ms(), finish).await {
                // The lease ends and the notification is sent again, with the same key.
                tracing::warn!(error = %chain(&e), notification = c.id, "cannot record a delivery");
            }
        }
        if !full {
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_limit() {
        let waits: Vec<i64> = (1..=6).map(|n| backoff_ms(n, 20_000)).collect();
        assert_eq!(waits, [2_000, 4_000, 8_000, 16_000, 20_000, 20_000]);
        assert_eq!(backoff_ms(u32::MAX, i64::MAX), 2_000 << 30);
    }
}
