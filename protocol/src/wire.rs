//! What an agent sends to `POST /api/ingest`.

use serde::{Deserialize, Serialize};

/// One signed batch of readings from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    pub agent_id: String,
    /// RFC 3339 time of the reading, for example `2025-11-12T12:00:00+00:00`.
    pub ts: String,
    pub platform: String,
    /// Chosen by the agent (a UUID) so that a retried batch is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    pub events: Vec<Event>,
}

/// A reading: either the whole machine or one process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    Metric(MetricEvent),
    Proc(ProcEvent),
}

impl Event {
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Metric(_) => "metric",
            Event::Proc(_) => "proc",
        }
    }
}

/// Whole-machine figures. `cpu` is a fraction 0..1 of all cores together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MetricEvent {
    pub cpu: f64,
    pub mem_free: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_rx_bps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_tx_bps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
}

/// One process; `cpu` is a fraction 0..1 of the whole machine, not of one core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProcEvent {
    pub pid: u32,
    pub name: String,
    pub cpu: f64,
    pub rss: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_parses() {
        let batch: IngestBatch =
            serde_json::from_str(include_str!("../testdata/payloads/seed_example.json")).unwrap();
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.events[0].type_name(), "metric");
        assert_eq!(batch.events[1].type_name(), "proc");
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        for body in [
            r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[],"x":1}"#,
            r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{"type":"metric","cpu":0.1,"mem_free":1,"gpu":2}]}"#,
            r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{"type":"proc","pid":1,"name":"x","cpu":0.1,"rss":1,"user":"root"}]}"#,
            r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{"type":"disk"}]}"#,
        ] {
            assert!(serde_json::from_str::<IngestBatch>(body).is_err(), "{body}");
        }
    }

    #[test]
    fn serialized_batch_round_trips() {
        let batch: IngestBatch =
            serde_json::from_str(include_str!("../testdata/payloads/full_metrics.json")).unwrap();
        let again: IngestBatch =
            serde_json::from_str(&serde_json::to_string(&batch).unwrap()).unwrap();
        assert_eq!(batch, again);
    }
}
