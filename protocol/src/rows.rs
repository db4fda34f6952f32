//! What the backend answers and pushes: the shapes the dashboard and tests read.

use serde::{Deserialize, Serialize};

/// One stored event, as `GET /api/events` returns it and `/ws` pushes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventRow {
    pub id: i64,
    pub agent_id: String,
    pub ts: String,
    pub platform: String,
    /// `metric`, `proc`, or another type as sent, lower-cased.
    pub event_type: String,
    pub cpu: Option<f64>,
    pub mem_free: Option<u64>,
    pub pid: Option<u32>,
    pub proc_name: Option<String>,
    pub rss: Option<u64>,
    pub ingested_at: String,
    pub mem_total: Option<u64>,
    pub disk_free: Option<u64>,
    pub disk_total: Option<u64>,
    pub net_rx_bps: Option<f64>,
    pub net_tx_bps: Option<f64>,
    pub uptime_s: Option<u64>,
}

/// `{"stored": N}`, with `duplicate: true` when the batch id was already stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestResponse {
    pub stored: usize,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Body of `POST /api/events/clear`; no agent clears everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    #[serde(default)]
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClearResponse {
    pub cleared: usize,
}

/// Pushed on `/ws` after a clear: `{"type": "clear", "agent_id": "host-01" | null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClearMessage {
    #[serde(rename = "type")]
    pub kind: ClearKind,
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ClearKind {
    Clear,
}

impl ClearMessage {
    pub fn new(agent_id: Option<String>) -> Self {
        Self { kind: ClearKind::Clear, agent_id }
    }
}

/// Anything `/ws` sends: a stored row, or a clear notice (rows have no `type` key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LiveMessage {
    Clear(ClearMessage),
    Row(Box<EventRow>),
}

/// Every error the API answers: a human reason and, for refusals, a stable code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub detail: String,
    pub code: String,
}

/// One agent in `GET /api/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSummary {
    pub agent_id: String,
    pub platform: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Seconds since the backend last heard from the agent.
    pub last_seen_ago_s: f64,
    /// Typical seconds between the agent's batches, learnt from their timestamps.
    pub interval_s: f64,
    /// Heard from within three of its own intervals.
    pub online: bool,
    /// Time of the latest metric reading (the agent's clock).
    pub metric_ts: Option<String>,
    pub cpu: Option<f64>,
    pub mem_free: Option<u64>,
    pub mem_total: Option<u64>,
    pub disk_free: Option<u64>,
    pub disk_total: Option<u64>,
    pub net_rx_bps: Option<f64>,
    pub net_tx_bps: Option<f64>,
    pub uptime_s: Option<u64>,
}

/// Time-bucketed metrics as columns: entry `i` of every array belongs to bucket `t[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Series {
    pub agent_id: String,
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub to: i64,
    /// Bucket width in seconds.
    pub step: i64,
    /// Start of each non-empty bucket, unix seconds.
    pub t: Vec<i64>,
    pub cpu_avg: Vec<Option<f64>>,
    pub cpu_max: Vec<Option<f64>>,
    pub mem_used: Vec<Option<f64>>,
    pub mem_total: Vec<Option<f64>>,
    pub disk_used: Vec<Option<f64>>,
    pub disk_total: Vec<Option<f64>>,
    pub net_rx_bps: Vec<Option<f64>>,
    pub net_tx_bps: Vec<Option<f64>>,
}

/// The latest top processes of one agent, all from its most recent batch that had any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessesResponse {
    pub agent_id: String,
    pub ts: Option<String>,
    pub processes: Vec<EventRow>,
}

/// One process name's cpu and rss over a range, bucketed like [`Series`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessHistory {
    pub agent_id: String,
    pub name: String,
    pub from: i64,
    pub to: i64,
    pub step: i64,
    pub t: Vec<i64>,
    pub cpu_avg: Vec<Option<f64>>,
    pub cpu_max: Vec<Option<f64>>,
    pub rss_avg: Vec<Option<f64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_messages_are_told_apart_by_shape() {
        let clear: LiveMessage =
            serde_json::from_str(r#"{"type":"clear","agent_id":null}"#).unwrap();
        assert_eq!(clear, LiveMessage::Clear(ClearMessage::new(None)));
        let row = r#"{"id":1,"agent_id":"a","ts":"t","platform":"linux","event_type":"metric",
            "cpu":0.5,"mem_free":1,"pid":null,"proc_name":null,"rss":null,"ingested_at":"t",
            "mem_total":null,"disk_free":null,"disk_total":null,"net_rx_bps":null,
            "net_tx_bps":null,"uptime_s":null}"#;
        assert!(matches!(serde_json::from_str(row).unwrap(), LiveMessage::Row(_)));
    }

    #[test]
    fn ingest_response_omits_duplicate_unless_set() {
        let fresh = IngestResponse { stored: 2, duplicate: false };
        assert_eq!(serde_json::to_string(&fresh).unwrap(), r#"{"stored":2}"#);
        let dup = IngestResponse { stored: 0, duplicate: true };
        assert_eq!(serde_json::to_string(&dup).unwrap(), r#"{"stored":0,"duplicate":true}"#);
    }
}
