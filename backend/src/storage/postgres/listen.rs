//! The live feed across replicas: each replica LISTENs for the others' commit notices and
//! publishes their rows to its own WebSocket clients.

use super::pool::{self, Pool};
use super::queries;
use super::writer::{CHANNEL, Notice};
use crate::live::Hub;
use crate::storage::StorageError;
use crate::telemetry::chain;
use futures_util::StreamExt;
use protocol::{EventRow, Secret};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};

const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// Notices waiting to be handled; past that they are dropped (and counted) rather than leaving
/// the server's NOTIFY queue, which every replica's commits share, to fill up.
const BACKLOG: usize = 1024;

/// Follows the other replicas until aborted; `ready` is told once the first LISTEN is in place,
/// so that a replica serves no live client before it hears the others.
#[tracing::instrument(skip_all)]
pub(super) async fn run(
    url: Secret,
    pool: Arc<Pool>,
    hub: Hub,
    origin: Arc<str>,
    ready: oneshot::Sender<()>,
) {
    let mut wait = RETRY_MIN;
    let mut ready = Some(ready);
    loop {
        let Err(e) = follow(&url, &pool, &hub, &origin, &mut ready, &mut wait).await;
        tracing::warn!(
            error = %chain(&e),
            "the feed of other replicas' rows broke; reconnecting (their rows are stored, but \
             live clients here miss them until then)"
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

async fn follow(
    url: &Secret,
    pool: &Pool,
    hub: &Hub,
    origin: &str,
    ready: &mut Option<oneshot::Sender<()>>,
    wait: &mut Duration,
) -> Result<Infallible, StorageError> {
    let (client, mut connection) = pool::config(url)?.connect(NoTls).await?;
    // The connection must be polled for the client to work at all; notifications come out of
    // it here, in commit order, and are never held up by the handling below.
    let (tx, mut rx) = mpsc::channel::<String>(BACKLOG);
    let overflow = hub.clone();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let mut dropped = 0u64;
        while let Some(message) = messages.next().await {
            let AsyncMessage::Notification(n) = message? else { continue };
            match tx.try_send(n.payload().to_owned()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped += 1;
                    if dropped % 1000 == 1 {
                        tracing::warn!(
                            dropped,
                            "live clients here are behind the other replicas; their rows are \
                             stored, and the clients are told to refetch them"
                        );
                    }
                    overflow.publish_gap();
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    tracing::info!("following the other replicas' commits");
    *wait = RETRY_MIN;
    match ready.take() {
        Some(ready) => drop(ready.send(())),
        // Back after a break: what the others committed meanwhile was never announced here.
        None => hub.publish_gap(),
    }
    while let Some(payload) = rx.recv().await {
        let Ok(notice) = serde_json::from_str::<Notice>(&payload) else {
            tracing::warn!("ignoring a notice in an unknown format");
            continue;
        };
        if notice.origin() != origin {
            publish(pool, hub, notice).await?;
        }
    }
    match driver.await {
        Ok(Err(e)) => Err(e.into()),
        _ => Err(StorageError::Closed),
    }
}

async fn publish(pool: &Pool, hub: &Hub, notice: Notice) -> Result<(), StorageError> {
    match notice {
        Notice::Clear { agent_id, .. } => hub.publish_clear(agent_id.as_deref()),
        // Rows are fetched only for clients that would see them.
        Notice::Rows { ids, .. } if hub.has_subscribers() => {
            let rows = queries::events_by_id(&*pool.get().await?, &ids).await?;
            for batch in by_agent(&rows) {
                hub.publish_rows(batch);
            }
        }
        Notice::Rows { .. } => {}
    }
    Ok(())
}

/// Consecutive rows of one agent, as the hub publishes them.
fn by_agent(rows: &[EventRow]) -> impl Iterator<Item = &[EventRow]> {
    rows.chunk_by(|a, b| a.agent_id == b.agent_id)
}
