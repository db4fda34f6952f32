//! The live hub: each stored row is serialized once and fanned out to every WebSocket client.
//!
//! A broadcast ring buffer gives each client its own bounded backlog: publishing never waits,
//! and a client that falls more than the buffer behind learns it (`Lagged`) and is closed.
//! One ring entry holds one committed batch (up to 1000 rows), so a large batch cannot by
//! itself push a client that keeps up out of the ring.

use axum::extract::ws::Utf8Bytes;
use protocol::{ClearMessage, EventRow};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Messages ready to send (one per row, or one clear notice), with the agent they concern
/// (`None`: every agent).
#[derive(Debug, Clone)]
pub(crate) struct LiveFrame {
    pub(crate) agent_id: Option<Arc<str>>,
    pub(crate) messages: Arc<[Utf8Bytes]>,
    /// Rows were stored that this feed could not carry (another replica's, while the feed from
    /// it was down): clients must refetch.
    pub(crate) gap: bool,
    /// An alert's change, for the clients that asked for alerts only: the seed's clients know
    /// rows and clear notices, nothing else.
    pub(crate) alert: bool,
}

impl LiveFrame {
    /// Whether a client following `filter` (or everything) should get this frame.
    pub(crate) fn concerns(&self, filter: Option<&str>) -> bool {
        match (filter, &self.agent_id) {
            (None, _) | (_, None) => true,
            (Some(want), Some(agent)) => want == &**agent,
        }
    }
}

/// The sending side of the live feed; clones share one ring buffer.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<LiveFrame>,
}

impl Hub {
    /// A hub whose clients may each fall `per_client_buffer` batches behind (at least 1) before
    /// they are told they lagged.
    pub fn new(per_client_buffer: usize) -> Self {
        Self { tx: broadcast::channel(per_client_buffer).0 }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<LiveFrame> {
        self.tx.subscribe()
    }

    /// Lets the writer skip building rows when nobody listens.
    pub(crate) fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Publishes the rows of one batch, which all belong to one agent.
    pub(crate) fn publish_rows(&self, rows: &[EventRow]) {
        let Some(first) = rows.first() else { return };
        let messages: Arc<[Utf8Bytes]> = rows
            .iter()
            .filter_map(|row| serde_json::to_string(row).ok())
            .map(Utf8Bytes::from)
            .collect();
        // An error only means nobody is subscribed right now.
        let _ = self.tx.send(LiveFrame {
            agent_id: Some(Arc::from(first.agent_id.as_str())),
            messages,
            gap: false,
            alert: false,
        });
    }

    pub(crate) fn publish_clear(&self, agent_id: Option<&str>) {
        let msg = ClearMessage::new(agent_id.map(str::to_owned));
        if let Ok(json) = serde_json::to_string(&msg) {
            let _ = self.tx.send(LiveFrame {
                agent_id: agent_id.map(Arc::from),
                messages: Arc::new([Utf8Bytes::from(json)]),
                gap: false,
                alert: false,
            });
        }
    }

    /// Publishes an alert's change.
    pub(crate) fn publish_alert(&self, alert: &protocol::alerts::Alert) {
        let msg = protocol::alerts::AlertMessage::new(alert.clone());
        if let Ok(json) = serde_json::to_string(&msg) {
            let _ = self.tx.send(LiveFrame {
                agent_id: Some(Arc::from(alert.agent_id.as_str())),
                messages: Arc::new([Utf8Bytes::from(json)]),
                gap: false,
                alert: true,
            });
        }
    }

    /// Tells every client that rows went by unseen, so that each closes and refetches.
    pub(crate) fn publish_gap(&self) {
        let _ = self.tx.send(LiveFrame {
            agent_id: None,
            messages: Arc::new([]),
            gap: true,
            alert: false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_let_clear_all_through_to_everyone() {
        let messages: Arc<[Utf8Bytes]> = Arc::new([Utf8Bytes::from("{}")]);
        let everyone =
            LiveFrame { agent_id: None, messages: messages.clone(), gap: false, alert: false };
        let one = LiveFrame { agent_id: Some(Arc::from("a")), messages, gap: false, alert: false };
        assert!(everyone.concerns(Some("b")));
        assert!(one.concerns(None));
        assert!(one.concerns(Some("a")));
        assert!(!one.concerns(Some("b")));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_is_told_so() {
        let hub = Hub::new(2);
        let mut rx = hub.subscribe();
        for _ in 0..3 {
            hub.publish_clear(None);
        }
        assert!(matches!(rx.recv().await, Err(broadcast::error::RecvError::Lagged(1))));
    }
}
