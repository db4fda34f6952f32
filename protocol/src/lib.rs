//! The contract between agents, the backend, the load tester, the simulator and the dashboard.
//!
//! Nothing here does I/O, so the crate builds for `wasm32-unknown-unknown` as well.

#![warn(missing_docs)]

pub mod alerts;
pub mod codes;
mod host;
pub mod live_auth;
pub mod liveness;
pub mod rows;
pub mod secret;
pub mod signing;
mod timestamp;
pub mod validate;
pub mod wire;

pub use host::{Host, Notice, NoticeKind, NoticeLevel, Service, ServiceState, StartMode};
pub use rows::{
    AgentSummary, ClearMessage, ClearRequest, ClearResponse, ErrorBody, EventRow, IngestResponse,
    LiveMessage, NoticeRow, ProcessHistory, ProcessesResponse, Series, ServicesResponse,
};
pub use secret::Secret;
pub use signing::{SignatureError, sign, verify};
pub use validate::{Limits, ValidationError};
pub use wire::{AgentInfo, Drive, Event, EventKind, IngestBatch};

/// Header on the backend's answers to ingest and `/healthz` saying which optional parts of a
/// batch it takes: an agent leaves out what an older backend would refuse (its batches are
/// `deny_unknown_fields`), and sends everything once the backend says it may.
pub const HEADER_INGEST_LEVEL: &str = "x-telemetry-ingest";
/// 2: a batch may carry `agent` ([`AgentInfo`]); 3: also `drives` ([`Drive`]); 4: also
/// `host` ([`Host`]), `services` ([`Service`]) and `notices` ([`Notice`]). A backend without
/// the header is level 1.
pub const INGEST_LEVEL: u8 = 4;
/// The optional parts of a batch, each with the level from which a backend takes it.
pub const LEVELLED_FIELDS: [(&str, u8); 5] =
    [("agent", 2), ("drives", 3), ("host", 4), ("services", 4), ("notices", 4)];

/// Header carrying the shared API token.
pub const HEADER_TOKEN: &str = "x-api-token";
/// Header carrying the unix-seconds timestamp that is part of the signed message.
pub const HEADER_SIGNATURE_TS: &str = "x-signature-ts";
/// Header carrying the lowercase hex HMAC-SHA256 of `ts + "." + body`.
pub const HEADER_SIGNATURE: &str = "x-signature";

/// The seed's development credentials, shared by the backend and the agent so that both work
/// together out of the box. The backend accepts them only over loopback.
pub const DEV_API_TOKEN: &str = "token";
/// The development signing secret that goes with [`DEV_API_TOKEN`], accepted over loopback only
/// as well.
pub const DEV_HMAC_SECRET: &str = "hmac-secret";
