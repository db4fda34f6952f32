//! What an agent sends to `POST /api/ingest`.
//!
//! The seed's API took every event field as optional and any event type, so its clients (the
//! C# agent, `load_emitter.py`, users' scripts) send proc events without `rss` or types in other
//! letter cases. An event is therefore one flat record whose figures may each be absent, as the
//! seed's table has them; only the fields that no version ever had are refused.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One signed batch of readings from one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IngestBatch {
    /// 1-128 printable characters, no leading or trailing blanks.
    pub agent_id: String,
    /// An ISO 8601 time such as `2025-11-12T12:00:00+00:00` or `2025-11-12T12:00:00.1234567Z`;
    /// without an offset it is taken as UTC. Stored and returned as sent.
    pub ts: String,
    /// Stored lower-cased (`Windows` is `windows`).
    #[serde(deserialize_with = "lower_case")]
    pub platform: String,
    /// Chosen by the agent (a UUID) so that a retried batch is stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// 1-1000 readings.
    pub events: Vec<Event>,
    /// The sending agent itself; absent from the seed's clients, and left out by agents for a
    /// backend that does not say it takes it (see [`crate::INGEST_LEVEL`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentInfo>,
    /// Every fixed drive of the machine at the batch's time (level 3, see
    /// [`crate::INGEST_LEVEL`]); `disk_free` and `disk_total` stay the system drive's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drives: Option<Vec<Drive>>,
    /// Per-core CPU, swap and commit (level 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<crate::Host>,
    /// Every watched service and its state (level 4). Agents send the list when a state changes
    /// and now and then besides; the backend keeps the newest by the batch's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<crate::Service>>,
    /// What happened since the previous batch: service changes, Event Log or journal entries
    /// (level 4), each stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notices: Option<Vec<crate::Notice>>,
}

/// One fixed drive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Drive {
    /// Where it is mounted: `C:\`, `/`, `/data`; 1-260 printable characters.
    pub mount: String,
    /// Free space, bytes.
    pub free: u64,
    /// Size, bytes.
    pub total: u64,
    /// Read since the previous reading, bytes per second; finite, zero or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bps: Option<f64>,
    /// Written since the previous reading, bytes per second; finite, zero or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bps: Option<f64>,
}

/// The sending agent: which build, and how long it has run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AgentInfo {
    /// Its version, 1-32 printable characters (`0.1.0`).
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
}

fn lower_case<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|s| s.to_lowercase())
}

/// What an event is. `metric` (the whole machine) and `proc` (one process) feed the agent's
/// figures, series and process lists; any other type is stored and returned as it came.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The whole machine's figures.
    Metric,
    /// One process: `pid`, `name`, `cpu`, `rss`.
    Proc,
    /// Lower-cased, never `metric` or `proc`.
    Other(String),
}

impl EventKind {
    /// Case-insensitive, as the seed compared types.
    pub fn parse(name: &str) -> Self {
        let lower = name.to_lowercase();
        match lower.as_str() {
            "metric" => EventKind::Metric,
            "proc" => EventKind::Proc,
            _ => EventKind::Other(lower),
        }
    }

    /// The lower-case name, as stored and returned.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Metric => "metric",
            EventKind::Proc => "proc",
            EventKind::Other(name) => name,
        }
    }
}

impl Serialize for EventKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.is_empty() {
            return Err(serde::de::Error::custom("type must not be empty"));
        }
        Ok(EventKind::parse(&name))
    }
}

/// A reading. For a `metric`, `cpu` is a fraction 0..1 of all cores together; for a `proc`, a
/// fraction 0..1 of the whole machine, not of one core. Every figure may be absent: absent is
/// unknown, never zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// `metric`, `proc` or any other non-empty name, in any letter case; stored lower-cased.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "metric", min_length = 1, max_length = 32))]
    pub kind: EventKind,
    /// Share of the machine's CPU, 0..1: all of it for a `metric`, the process's for a `proc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Available memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_free: Option<u64>,
    /// Total memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_total: Option<u64>,
    /// Free space on the system disk, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free: Option<u64>,
    /// Size of the system disk, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_total: Option<u64>,
    /// Received over every network interface since the previous reading, bytes per second;
    /// finite, zero or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_rx_bps: Option<f64>,
    /// Sent over every network interface since the previous reading, bytes per second;
    /// finite, zero or more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_tx_bps: Option<f64>,
    /// Seconds since the machine booted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<u64>,
    /// Process id, for a `proc`: 0 to 2^32-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Process name, for a `proc`: 1-260 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The process's resident memory, for a `proc`, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss: Option<u64>,
}

impl Event {
    /// An event of this kind with no figures, to fill in with struct update syntax.
    pub fn empty(kind: EventKind) -> Self {
        Event {
            kind,
            cpu: None,
            mem_free: None,
            mem_total: None,
            disk_free: None,
            disk_total: None,
            net_rx_bps: None,
            net_tx_bps: None,
            uptime_s: None,
            pid: None,
            name: None,
            rss: None,
        }
    }

    /// A process reading with every figure known, as our own agent sends it.
    pub fn process(pid: u32, name: impl Into<String>, cpu: f64, rss: u64) -> Self {
        Event {
            pid: Some(pid),
            name: Some(name.into()),
            cpu: Some(cpu),
            rss: Some(rss),
            ..Event::empty(EventKind::Proc)
        }
    }

    /// The type as stored: `metric`, `proc` or the other name, lower-cased.
    pub fn type_name(&self) -> &str {
        self.kind.as_str()
    }

    /// A reading of the whole machine.
    pub fn is_metric(&self) -> bool {
        self.kind == EventKind::Metric
    }

    /// A reading of one process.
    pub fn is_proc(&self) -> bool {
        self.kind == EventKind::Proc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiled in, so the test binary does not depend on where the sources are.
    macro_rules! parse {
        ($name:literal) => {
            serde_json::from_str::<IngestBatch>(include_str!(concat!(
                "../testdata/payloads/",
                $name
            )))
            .unwrap()
        };
    }

    #[test]
    fn seed_example_parses() {
        let batch = parse!("seed_example.json");
        assert_eq!(batch.events.len(), 2);
        assert_eq!(batch.events[0].type_name(), "metric");
        assert_eq!(batch.events[1], Event::process(1234, "example.exe", 0.08, 67108864));
    }

    #[test]
    fn the_seeds_partial_and_odd_shapes_parse() {
        let b = parse!("seed_proc_without_rss.json");
        assert!(b.events.iter().all(|e| e.is_proc() && e.rss.is_none() && e.name.is_some()));
        let b = parse!("seed_metric_without_mem_free.json");
        assert!(b.events[0].is_metric() && b.events[0].mem_free.is_none());
        assert!(b.events[0].cpu.is_some());
        let b = parse!("seed_upper_case_type.json");
        assert_eq!(b.platform, "windows");
        assert!(b.events[0].is_metric() && b.events[1].is_proc());
        let b = parse!("seed_unknown_type.json");
        assert_eq!(b.events[0].kind, EventKind::Other("heartbeat".into()));
        assert_eq!(b.events[1].kind, EventKind::Other("gpu".into()));
        assert_eq!(b.events[1].cpu, Some(0.5));
        let b = parse!("seed_dotnet_timestamp.json");
        assert_eq!(b.ts, "2025-11-12T12:00:00.1234567Z");
    }

    #[test]
    fn types_keep_no_case_and_an_empty_one_is_refused() {
        let kinds: Vec<EventKind> =
            serde_json::from_str(r#"["METRIC","Proc","HeartBeat"]"#).unwrap();
        assert_eq!(
            kinds,
            [EventKind::Metric, EventKind::Proc, EventKind::Other("heartbeat".into())]
        );
        assert_eq!(serde_json::to_string(&kinds).unwrap(), r#"["metric","proc","heartbeat"]"#);
        assert!(serde_json::from_str::<EventKind>(r#""""#).is_err());
        assert!(serde_json::from_str::<EventKind>("1").is_err());
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        for body in [
            r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[],"x":1}"#,
            r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{"type":"metric","cpu":0.1,"mem_free":1,"gpu":2}]}"#,
            r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{"type":"proc","pid":1,"name":"x","cpu":0.1,"rss":1,"user":"root"}]}"#,
            r#"{"agent_id":"a","ts":"2025-11-12T12:00:00Z","platform":"linux","events":[{"cpu":0.1}]}"#,
        ] {
            assert!(serde_json::from_str::<IngestBatch>(body).is_err(), "{body}");
        }
    }

    #[test]
    fn serialized_batch_round_trips_and_omits_what_is_absent() {
        let batch = parse!("full_metrics.json");
        let again: IngestBatch =
            serde_json::from_str(&serde_json::to_string(&batch).unwrap()).unwrap();
        assert_eq!(batch, again);
        let json = serde_json::to_string(&Event::empty(EventKind::Proc)).unwrap();
        assert_eq!(json, r#"{"type":"proc"}"#);
    }
}
