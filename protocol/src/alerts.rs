//! Alert rules, notification channels, silences and the alerts they raise: what
//! `/api/alerts/...` takes and answers, and what `/ws?alerts=1` pushes.
//!
//! Times are unix seconds. CPU figures in rules are percent (0..100) of the machine or, for a
//! process, of one machine's CPU, as the dashboard shows them; the stored readings are 0..1.

use serde::{Deserialize, Serialize};

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The machine's CPU, percent.
    Cpu,
    /// Memory in use, percent of the total.
    MemUsedPct,
    /// Free space on the system disk, percent of its size.
    DiskFreePct,
    /// Received over every interface, bytes per second.
    NetRxBps,
    /// Sent over every interface, bytes per second.
    NetTxBps,
    /// The CPU of the processes called `process`, percent.
    ProcCpu,
    /// The resident memory of the processes called `process`, bytes.
    ProcRss,
    /// No reading of a process called `process` in the window while the agent reports.
    ProcMissing,
    /// The agent has not been heard from within three of its own learnt intervals.
    Offline,
    /// The watched service called `service` is not running, by the newest list the agent sent.
    ServiceDown,
    /// Event Log or journal entries of level error that happened in the window, a count.
    LogErrors,
}

impl Metric {
    /// Whether the rule names a process.
    pub fn needs_process(self) -> bool {
        matches!(self, Metric::ProcCpu | Metric::ProcRss | Metric::ProcMissing)
    }

    /// Whether the rule names a service.
    pub fn needs_service(self) -> bool {
        self == Metric::ServiceDown
    }

    /// Whether the rule compares a figure with a threshold (the others are true or false).
    pub fn has_threshold(self) -> bool {
        !matches!(self, Metric::ProcMissing | Metric::Offline | Metric::ServiceDown)
    }

    /// Whether the window's maximum is kept for this figure (the tiers keep CPU maxima only).
    pub fn has_max(self) -> bool {
        matches!(self, Metric::Cpu | Metric::ProcCpu)
    }
}

/// How the readings of the window are combined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// The mean of every reading in the window.
    #[default]
    Avg,
    /// The highest reading in the window (CPU figures only).
    Max,
}

/// Which side of the threshold is a breach.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Above the threshold.
    #[default]
    Above,
    /// Below the threshold.
    Below,
}

/// How urgent an alert is; carried into every notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Someone should look.
    #[default]
    Warning,
    /// Someone should act now.
    Critical,
}

fn default_window_s() -> u32 {
    300
}

fn default_resolve_after_s() -> u32 {
    60
}

fn yes() -> bool {
    true
}

/// A rule as it is created or replaced (`POST /api/alerts/rules`, `PUT .../{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown in alerts and notifications.
    pub name: String,
    /// What is watched.
    pub metric: Metric,
    /// The process name, for the `proc_*` metrics (as the agent reports it, e.g. `sqlservr.exe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// The service's key name, for `service_down` (as the agent lists it: `Spooler`,
    /// `nginx.service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Which side of `threshold` is a breach.
    #[serde(default)]
    pub comparison: Comparison,
    /// Required for every metric but `proc_missing`, `offline` and `service_down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The readings of this many seconds are combined (60 to 86,400; 300 when absent).
    #[serde(default = "default_window_s")]
    pub window_s: u32,
    /// How they are combined.
    #[serde(default)]
    pub aggregate: Aggregate,
    /// The breach must last this long before the alert fires (pending until then; 0: at once).
    #[serde(default)]
    pub for_s: u32,
    /// Only these agents; empty: every agent (narrowed by `agent_pattern`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Only agents whose id matches, `*` standing for any run of characters (`web-*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_pattern: Option<String>,
    /// Carried into alerts and notifications.
    #[serde(default)]
    pub severity: Severity,
    /// A firing alert resolves once its breach has been over for this long (0 to 86,400; 60
    /// when absent), so that a figure hovering at the threshold does not fire and clear round
    /// after round.
    #[serde(default = "default_resolve_after_s")]
    pub resolve_after_s: u32,
    /// While it keeps firing, notify again this often (at least 60 s); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_s: Option<u32>,
    /// Channel ids notified when an alert fires, repeats and resolves.
    #[serde(default)]
    pub channels: Vec<i64>,
    /// A disabled rule raises nothing, and its open alerts resolve.
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    /// Given by the backend.
    pub id: i64,
    /// The rule as last written.
    #[serde(flatten)]
    pub spec: RuleSpec,
}

/// Where a channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A JSON [`Notification`] POSTed to `url`, signed like our own ingest when `secret` is set.
    Webhook,
    /// A Slack incoming webhook (`{"text": ...}`); Mattermost and Rocket.Chat take it too.
    Slack,
    /// A Discord webhook (`{"content": ...}`).
    Discord,
    /// A Microsoft Teams incoming webhook or workflow (`{"text": ...}`).
    Teams,
    /// An ntfy topic URL (`https://ntfy.sh/<topic>`): the text as the body, title and priority
    /// as headers; `secret` is sent as a bearer token when set.
    Ntfy,
    /// E-mail over SMTP.
    Email,
}

/// How an e-mail channel reaches its server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network (port 25).
    None,
}

/// The SMTP side of an e-mail channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EmailSpec {
    /// The server's host name (checked against its certificate).
    pub host: String,
    /// 587 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// How the connection is secured.
    #[serde(default)]
    pub security: SmtpSecurity,
    /// Log in with this user and the channel's `secret` as password; no login when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A CA certificate (PEM) to trust besides the public roots, for a mail server with a
    /// certificate of a private CA; the host name is still checked against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The sender address.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
}

/// A channel as it is created or replaced. `secret` is write-only: answers say only whether
/// one is set, and a replacement without one keeps the stored one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// Shown in the dashboard and the delivery list.
    pub name: String,
    /// Where it delivers.
    pub kind: ChannelKind,
    /// The receiver's URL, for every kind but `email` (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Webhook signing key, ntfy token or SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// For `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSpec>,
}

/// A stored channel, its secret left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Channel {
    /// Given by the backend.
    pub id: i64,
    /// Shown in the dashboard.
    pub name: String,
    /// Where it delivers.
    pub kind: ChannelKind,
    /// The receiver's URL (a chat webhook's URL is itself a credential: admins only).
    pub url: Option<String>,
    /// For `email`.
    pub email: Option<EmailSpec>,
    /// Whether a secret is stored.
    pub has_secret: bool,
}

/// A silence as it is created: alerts it covers fire and resolve as usual, but notify nobody
/// until it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// Only this rule's alerts; every rule's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<i64>,
    /// Only agents whose id matches (`*` for any run of characters); every agent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_pattern: Option<String>,
    /// When it ends, unix seconds (in the future, at most a year ahead).
    pub ends_at: i64,
    /// Why, for the next operator.
    #[serde(default)]
    pub comment: String,
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Silence {
    /// Given by the backend.
    pub id: i64,
    /// As created.
    #[serde(flatten)]
    pub spec: SilenceSpec,
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Breached, but not yet for the rule's `for_s`.
    Pending,
    /// Breached for long enough: notified.
    Firing,
    /// Over (the breach ended, or the rule was disabled or deleted).
    Resolved,
}

/// One alert: one rule on one agent, from its first breach until it resolves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    /// Grows with creation.
    pub id: i64,
    /// The rule that raised it.
    pub rule_id: i64,
    /// The rule's name when the alert last changed.
    pub rule_name: String,
    /// The agent it concerns.
    pub agent_id: String,
    /// The rule's severity.
    pub severity: Severity,
    /// Where it is in its life.
    pub state: AlertState,
    /// The figure at the latest evaluation that changed it (seconds unheard for `offline`).
    pub value: Option<f64>,
    /// The rule's threshold at the time.
    pub threshold: Option<f64>,
    /// When the breach was first seen.
    pub started_at: i64,
    /// When it fired.
    pub fired_at: Option<i64>,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// A human sentence: what, where, how much.
    pub summary: String,
}

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// The alert fired.
    Firing,
    /// It is still firing (the rule's `repeat_s`).
    Repeat,
    /// It is over.
    Resolved,
}

/// The JSON a `webhook` channel receives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    /// The same for every attempt at this notification: a receiver that sees it twice (a
    /// retry after a lost answer) can drop the second.
    pub idempotency_key: String,
    /// What it announces.
    pub kind: NotificationKind,
    /// The alert as it was when the notification was decided.
    pub alert: Alert,
    /// One line for a human.
    pub text: String,
}

/// One notification on its way to one channel, for `GET /api/alerts/notifications`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// Grows with creation.
    pub id: i64,
    /// The alert announced.
    pub alert_id: i64,
    /// The channel it goes to.
    pub channel_id: i64,
    /// What it announces.
    pub kind: NotificationKind,
    /// Sent to the receiver, which may use it to drop a repeat.
    pub idempotency_key: String,
    /// When it was decided.
    pub created_at: i64,
    /// Attempts so far.
    pub attempts: u32,
    /// When the receiver accepted it.
    pub delivered_at: Option<i64>,
    /// Set when it was given up (after a day of failures, or its channel was deleted).
    pub failed_at: Option<i64>,
    /// The last failure, for the operator.
    pub last_error: Option<String>,
}

/// Pushed on `/ws?alerts=1` whenever an alert changes: `{"type": "alert", "alert": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertMessage {
    #[serde(rename = "type")]
    pub(crate) kind: AlertMessageKind,
    /// The alert as it is now.
    pub alert: Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub(crate) enum AlertMessageKind {
    Alert,
}

impl AlertMessage {
    /// The notice of an alert's change.
    pub fn new(alert: Alert) -> Self {
        Self { kind: AlertMessageKind::Alert, alert }
    }
}

/// Whether `id` matches `pattern`, where `*` stands for any run of characters (none too) and
/// every other character for itself.
pub fn matches_pattern(pattern: &str, id: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = id.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn patterns_match_as_globs_of_stars() {
        assert!(matches_pattern("web-*", "web-01"));
        assert!(matches_pattern("*", ""));
        assert!(matches_pattern("a*b*c", "abc"));
        assert!(matches_pattern("a*b*c", "a-b-b-c"));
        assert!(!matches_pattern("a*b*c", "a-c-b"));
        assert!(!matches_pattern("web", "web-01"));
        assert!(!matches_pattern("*aa", "a"));
        assert!(matches_pattern("db-*-east", "db-1-east"));
    }

    proptest! {
        #[test]
        fn a_pattern_without_stars_is_equality(p in "[a-c]{0,4}", id in "[a-c]{0,4}") {
            prop_assert_eq!(matches_pattern(&p, &id), p == id);
        }

        #[test]
        fn a_star_anywhere_matches_what_it_replaced(
            pre in "[a-c]{0,3}", mid in "[a-c*]{0,3}", post in "[a-c]{0,3}",
        ) {
            let id = format!("{pre}{}{post}", mid.replace('*', ""));
            let pattern = format!("{pre}*{post}");
            prop_assert!(matches_pattern(&pattern, &id));
        }
    }

    #[test]
    fn a_rule_reads_with_its_defaults() {
        let spec: RuleSpec =
            serde_json::from_str(r#"{"name": "hot", "metric": "cpu", "threshold": 90}"#).unwrap();
        assert_eq!(spec.window_s, 300);
        assert_eq!((spec.aggregate, spec.comparison), (Aggregate::Avg, Comparison::Above));
        assert!(spec.enabled && spec.channels.is_empty());
        let unknown = r#"{"name": "hot", "metric": "cpu", "threshold": 90, "windw_s": 60}"#;
        assert!(serde_json::from_str::<RuleSpec>(unknown).is_err(), "a typo is refused");
    }
}
