//! The parts of a batch beyond the seed's events that describe the machine as a whole (ingest
//! level 4, see [`crate::INGEST_LEVEL`]): per-core CPU and swap or commit, the state of watched
//! services, and notices (service changes, Event Log or journal entries).

use serde::{Deserialize, Serialize};

/// Figures of the whole machine that do not fit the seed's flat event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Busy share of each logical core since the previous reading, 0..1, in the system's order;
    /// at most 1,024.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cores: Vec<f64>,
    /// Swap (Linux, macOS) or page file (Windows) in use, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_used: Option<u64>,
    /// Size of the swap or page file, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_total: Option<u64>,
    /// Windows only: memory committed (the commit charge), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_used: Option<u64>,
    /// Windows only: the commit limit (memory plus page files), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_limit: Option<u64>,
}

/// What a watched service is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// Running (Windows `SERVICE_RUNNING`; systemd `active`).
    Running,
    /// Stopped (Windows `SERVICE_STOPPED`; systemd `inactive`).
    Stopped,
    /// On its way up (start or continue pending; systemd `activating`).
    Starting,
    /// On its way down (stop pending; systemd `deactivating`).
    Stopping,
    /// Paused or pausing (Windows only).
    Paused,
    /// Stopped by a failure (systemd `failed`).
    Failed,
}

impl ServiceState {
    /// The word used on the wire and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Running => "running",
            ServiceState::Stopped => "stopped",
            ServiceState::Starting => "starting",
            ServiceState::Stopping => "stopping",
            ServiceState::Paused => "paused",
            ServiceState::Failed => "failed",
        }
    }
}

/// How a service is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    /// With the system (Windows boot, system or automatic start; systemd `enabled`).
    Auto,
    /// On demand (Windows manual start; systemd `static`, `disabled` but started by hand...).
    Manual,
    /// Never (Windows disabled; systemd `masked`).
    Disabled,
}

/// One watched service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Its key name (`Spooler`, `nginx.service`): 1-256 printable characters.
    pub name: String,
    /// Its display name, 1-256 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What it is doing.
    pub state: ServiceState,
    /// How it is started, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartMode>,
}

/// Where a notice comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A watched service changed state; `source` is its name.
    Service,
    /// An entry of a system log (the Windows Event Log, the systemd journal); `source` is the
    /// log and the provider, `System/Service Control Manager`.
    Log,
}

/// How bad a notice is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoticeLevel {
    /// For the record (a service started).
    Info,
    /// Worth a look.
    Warning,
    /// Something failed (Event Log critical and error entries are both errors).
    Error,
}

impl NoticeLevel {
    /// The word used on the wire and in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeLevel::Info => "info",
            NoticeLevel::Warning => "warning",
            NoticeLevel::Error => "error",
        }
    }
}

impl NoticeKind {
    /// The word used on the wire and in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Service => "service",
            NoticeKind::Log => "log",
        }
    }
}

/// Something that happened on the machine, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Notice {
    /// When it happened, an ISO 8601 time (the system's, which may be before the batch's).
    pub ts: String,
    /// Where it comes from.
    pub kind: NoticeKind,
    /// How bad it is.
    pub level: NoticeLevel,
    /// The service, or the log and provider: 1-256 printable characters.
    pub source: String,
    /// The Event Log's event id, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// What happened, at most 2,048 characters (line breaks and tabs allowed).
    pub message: String,
}
