//! What the backend answers and pushes: the shapes the dashboard and tests read.

use serde::{Deserialize, Serialize};

/// One stored event, as `GET /api/events` returns it and `/ws` pushes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventRow {
    /// Grows with insertion, over all agents; `before_id` pages by it.
    pub id: i64,
    /// The agent that sent the batch.
    pub agent_id: String,
    /// The batch's time as the agent sent it (its clock).
    pub ts: String,
    /// The batch's platform, lower-cased.
    pub platform: String,
    /// `metric`, `proc`, or another type as sent, lower-cased.
    pub event_type: String,
    /// Share of the machine's CPU, 0..1: all of it for a `metric`, the process's for a `proc`;
    /// `None` when the event had none, like every figure here.
    pub cpu: Option<f64>,
    /// Available memory, bytes.
    pub mem_free: Option<u64>,
    /// Process id, for a `proc`.
    pub pid: Option<u32>,
    /// Process name, for a `proc` (`name` in the batch).
    pub proc_name: Option<String>,
    /// The process's resident memory, bytes.
    pub rss: Option<u64>,
    /// When the backend stored it, by the backend's clock: `2025-11-12T12:00:00.123+00:00`.
    pub ingested_at: String,
    /// Total memory, bytes.
    pub mem_total: Option<u64>,
    /// Free space on the system disk, bytes.
    pub disk_free: Option<u64>,
    /// Size of the system disk, bytes.
    pub disk_total: Option<u64>,
    /// Received over every network interface, bytes per second.
    pub net_rx_bps: Option<f64>,
    /// Sent over every network interface, bytes per second.
    pub net_tx_bps: Option<f64>,
    /// Seconds since the machine booted.
    pub uptime_s: Option<u64>,
}

/// `{"stored": N}`, with `duplicate: true` when the batch id was already stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestResponse {
    /// Events stored from this batch; 0 for a duplicate.
    pub stored: usize,
    /// The batch id was stored before, so this batch added nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// Body of `POST /api/events/clear`; no agent clears everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// The agent whose events to remove; `None` or empty removes every agent's.
    #[serde(default)]
    pub agent_id: Option<String>,
}

/// Answer of `POST /api/events/clear`: `{"cleared": N}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClearResponse {
    /// Events removed.
    pub cleared: usize,
}

/// Pushed on `/ws` after a clear: `{"type": "clear", "agent_id": "host-01" | null}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClearMessage {
    #[serde(rename = "type")]
    pub(crate) kind: ClearKind,
    /// The agent whose events were cleared; `None`: every agent's.
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClearKind {
    Clear,
}

impl ClearMessage {
    /// The notice for a clear of `agent_id`'s events, or of every agent's with `None`.
    pub fn new(agent_id: Option<String>) -> Self {
        Self { kind: ClearKind::Clear, agent_id }
    }
}

/// Anything `/ws` sends: a stored row, a clear notice or an alert (rows have no `type` key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LiveMessage {
    /// Events were cleared: drop the rows it names.
    Clear(ClearMessage),
    /// An alert changed (only for clients that asked with `alerts=1`).
    Alert(Box<crate::alerts::AlertMessage>),
    /// A row just stored.
    Row(Box<EventRow>),
}

/// Every error the API answers: a human reason and, for refusals, a stable code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Why, and what to do, for a human to read.
    pub detail: String,
    /// One of [`crate::codes`], for clients to branch on.
    pub code: String,
}

/// One agent in `GET /api/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentSummary {
    /// The agent's id, as it sends it.
    pub agent_id: String,
    /// From its latest batch, lower-cased.
    pub platform: String,
    /// When its first batch was stored, by the backend's clock:
    /// `2025-11-12T12:00:00.123+00:00`.
    pub first_seen: String,
    /// When its latest batch was stored, by the backend's clock.
    pub last_seen: String,
    /// Seconds since the backend last heard from the agent.
    pub last_seen_ago_s: f64,
    /// Typical seconds between the agent's batches, learnt from their timestamps.
    pub interval_s: f64,
    /// Heard from within three of its own intervals.
    pub online: bool,
    /// Time of the latest metric reading (the agent's clock).
    pub metric_ts: Option<String>,
    /// Of the latest metric, fraction 0..1 of all cores; `None` when it had none or there is
    /// no metric yet, like every figure below.
    pub cpu: Option<f64>,
    /// Of the latest metric: available memory, bytes.
    pub mem_free: Option<u64>,
    /// Of the latest metric: total memory, bytes.
    pub mem_total: Option<u64>,
    /// Of the latest metric: free space on the system disk, bytes.
    pub disk_free: Option<u64>,
    /// Of the latest metric: size of the system disk, bytes.
    pub disk_total: Option<u64>,
    /// Of the latest metric: received, bytes per second.
    pub net_rx_bps: Option<f64>,
    /// Of the latest metric: sent, bytes per second.
    pub net_tx_bps: Option<f64>,
    /// Of the latest metric: seconds since the machine booted.
    pub uptime_s: Option<u64>,
    /// The agent's version, from its newest batch that said it (agents before 0.1 do not).
    #[serde(default)]
    pub agent_version: Option<String>,
    /// Seconds the agent had run at that batch.
    #[serde(default)]
    pub agent_uptime_s: Option<u64>,
    /// Every fixed drive, from its newest batch that listed them; empty when none did.
    #[serde(default)]
    pub drives: Vec<crate::Drive>,
    /// Per-core CPU, swap and commit, from its newest batch that carried them.
    #[serde(default)]
    pub host: Option<crate::Host>,
}

/// `GET /api/agents/{agent_id}/services`: the newest list of watched services an agent sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServicesResponse {
    /// The agent asked for.
    pub agent_id: String,
    /// The time of the batch that carried the list; `None` when it never sent one.
    pub ts: Option<String>,
    /// As the agent listed them.
    pub services: Vec<crate::Service>,
}

/// One stored notice (`GET /api/agents/{agent_id}/notices`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoticeRow {
    /// Grows with each notice stored; pages go by it.
    pub id: i64,
    /// The agent that sent it.
    pub agent_id: String,
    /// When it happened, as the agent sent it.
    pub ts: String,
    /// Where it comes from.
    pub kind: crate::NoticeKind,
    /// How bad it is.
    pub level: crate::NoticeLevel,
    /// The service, or the log and provider.
    pub source: String,
    /// The Event Log's event id, where there is one.
    pub code: Option<u32>,
    /// What happened.
    pub message: String,
}

/// Time-bucketed metrics as columns: entry `i` of every array belongs to bucket `t[i]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Series {
    /// The agent asked for.
    pub agent_id: String,
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub to: i64,
    /// Bucket width in seconds.
    pub step: i64,
    /// Start of each non-empty bucket, unix seconds.
    pub t: Vec<i64>,
    /// Mean cpu, fraction 0..1 of all cores; `None` where no reading in the bucket had the
    /// figure, in every column.
    pub cpu_avg: Vec<Option<f64>>,
    /// Highest cpu, fraction 0..1 of all cores.
    pub cpu_max: Vec<Option<f64>>,
    /// Mean memory in use (total less available), bytes.
    pub mem_used: Vec<Option<f64>>,
    /// Mean total memory, bytes.
    pub mem_total: Vec<Option<f64>>,
    /// Mean space in use on the system disk (total less free), bytes.
    pub disk_used: Vec<Option<f64>>,
    /// Mean size of the system disk, bytes.
    pub disk_total: Vec<Option<f64>>,
    /// Mean received, bytes per second.
    pub net_rx_bps: Vec<Option<f64>>,
    /// Mean sent, bytes per second.
    pub net_tx_bps: Vec<Option<f64>>,
}

/// The latest top processes of one agent, all from its most recent batch that had any.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessesResponse {
    /// The agent asked for.
    pub agent_id: String,
    /// That batch's time as the agent sent it; `None` when it never sent a process.
    pub ts: Option<String>,
    /// The batch's `proc` rows, highest cpu first.
    pub processes: Vec<EventRow>,
}

/// One process name's cpu and rss over a range, bucketed like [`Series`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessHistory {
    /// The agent asked for.
    pub agent_id: String,
    /// The process name asked for; every process of that name counts.
    pub name: String,
    /// Unix seconds, inclusive.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub to: i64,
    /// Bucket width in seconds.
    pub step: i64,
    /// Start of each non-empty bucket, unix seconds.
    pub t: Vec<i64>,
    /// Mean cpu, fraction 0..1 of the whole machine; `None` where no reading had the figure,
    /// in every column.
    pub cpu_avg: Vec<Option<f64>>,
    /// Highest cpu, fraction 0..1 of the whole machine.
    pub cpu_max: Vec<Option<f64>>,
    /// Mean resident memory, bytes.
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
