//! The live feed across replicas: each replica LISTENs for the others' commit notices and
//! publishes their rows to its own WebSocket clients.

use super::pool::Pool;
use super::queries;
use super::writer::{CHANNEL, Notice};
use crate::live::Hub;
use crate::storage::StorageError;
use futures_util::StreamExt;
use protocol::{EventRow, Secret};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};

const RETRY_MAX: Duration = Duration::from_secs(10);

/// Follows the other replicas until aborted; `ready` is told once the first LISTEN is in place,
/// so that a replica serves no live client before it hears the others.
#[tracing::instrument(skip_all)]
pub async fn run(
    url: Secret,
    pool: Arc<Pool>,
    hub: Hub,
    origin: Arc<str>,
    ready: oneshot::Sender<()>,
) {
    let mut wait = Duration::from_millis(200);
    let mut ready = Some(ready);
    loop {
        match follow(&url, &pool, &hub, &origin, &mut ready).await {
            Ok(()) => wait = Duration::from_millis(200),
            Err(e) => tracing::warn!(
                error = %e,
                "the feed of other replicas' rows broke; reconnecting (their rows are stored, \
                 but live clients here miss them until then)"
            ),
        }
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
) -> Result<(), StorageError> {
    let (client, mut connection) = tokio_postgres::connect(url.expose(), NoTls).await?;
    // The connection must be polled for the client to work at all; notifications come out of
    // it here, in commit order, with back-pressure through the bounded channel.
    let (tx, mut rx) = mpsc::channel::<String>(1024);
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            if let AsyncMessage::Notification(n) = message?
                && tx.send(n.payload().to_owned()).await.is_err()
            {
                break;
            }
        }
        Ok::<(), tokio_postgres::Error>(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    tracing::info!("following the other replicas' commits");
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
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
