//! What the alert engine and routes need of a database; SQLite and PostgreSQL implement it next
//! to their event stores (`storage::sqlite::alerts`, `storage::postgres::alerts`).

use super::decide::{Measures, Open};
use crate::storage::{StorageError, StoreFuture};
use protocol::alerts::{
    Alert, AlertState, ChannelSpec, Delivery, Notification, NotificationKind, Rule, RuleSpec,
    Severity, Silence, SilenceSpec,
};

/// The tables kept as the API's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Rules,
    Channels,
    Silences,
}

impl Table {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Rules => "alert_rules",
            Table::Channels => "alert_channels",
            Table::Silences => "alert_silences",
        }
    }
}

/// Filters of `GET /api/alerts`.
#[derive(Debug, Clone, Default)]
pub(crate) struct AlertFilter {
    /// Only pending and firing alerts.
    pub(crate) open: bool,
    pub(crate) state: Option<AlertState>,
    pub(crate) agent_id: Option<String>,
    pub(crate) rule_id: Option<i64>,
    pub(crate) before_id: Option<i64>,
    pub(crate) limit: u32,
}

/// A notification claimed for sending: nobody else sends it until the claim's lease ends.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: i64,
    /// `None` once the channel was deleted.
    pub(crate) channel: Option<ChannelSpec>,
    pub(crate) notification: Notification,
    /// Including this one.
    pub(crate) attempts: u32,
    pub(crate) created_ms: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Finish {
    Delivered,
    Retry { at_ms: i64, error: String },
    Failed { error: String },
}

/// The outbox columns an outcome sets: delivered_ms, failed_ms, next_ms (kept when `None`),
/// last_error.
pub(crate) type Outcome = (Option<i64>, Option<i64>, Option<i64>, Option<String>);

/// Due outbox rows (as `o`) that are next in line: a notification waits for the earlier ones of
/// its alert to the same channel, so that a receiver never hears an all-clear before the firing
/// it clears, even when the firing needed retries.
pub(crate) const DUE_IN_TURN: &str = "o.delivered_ms IS NULL AND o.failed_ms IS NULL
    AND NOT EXISTS (SELECT 1 FROM alert_outbox p
                    WHERE p.alert_id = o.alert_id AND p.channel_id = o.channel_id AND p.id < o.id
                      AND p.delivered_ms IS NULL AND p.failed_ms IS NULL)";

/// What [`AlertStore::prune`] runs, `$1` its time (written so for both stores).
pub(crate) const PRUNE_SQL: [&str; 2] = [
    "DELETE FROM alert_outbox
     WHERE created_ms < $1 AND (delivered_ms IS NOT NULL OR failed_ms IS NOT NULL)",
    "DELETE FROM alerts
     WHERE state = 'resolved' AND resolved_ms < $1
       AND NOT EXISTS (SELECT 1 FROM alert_outbox o WHERE o.alert_id = alerts.id)",
];

/// The SQL both stores run with an [`Outcome`] (`$1` the row's id).
pub(crate) const FINISH_SQL: &str = "UPDATE alert_outbox SET delivered_ms = $2, failed_ms = $3,
    next_ms = coalesce($4, next_ms), last_error = $5 WHERE id = $1";

impl Finish {
    pub(crate) fn columns(self, now_ms: i64) -> Outcome {
        match self {
            Finish::Delivered => (Some(now_ms), None, None, None),
            Finish::Retry { at_ms, error } => (None, None, Some(at_ms), Some(error)),
            Finish::Failed { error } => (None, Some(now_ms), None, Some(error)),
        }
    }
}

/// What the alert engine and routes need of a database.
pub(crate) trait AlertStore: Send + Sync + std::fmt::Debug {
    /// Every row of a JSON table, by id.
    fn list(&self, table: Table) -> StoreFuture<'_, Vec<(i64, String)>>;
    /// Adds a row; resolves to its id.
    fn insert(&self, table: Table, body: String) -> StoreFuture<'_, i64>;
    /// Replaces a row; false if there is none with that id.
    fn replace(&self, table: Table, id: i64, body: String) -> StoreFuture<'_, bool>;
    /// Deletes a row; false if there is none with that id.
    fn delete(&self, table: Table, id: i64) -> StoreFuture<'_, bool>;
    /// Newest first.
    fn alerts(&self, filter: AlertFilter) -> StoreFuture<'_, Vec<Alert>>;
    /// Alerts changed after `seq`, oldest change first, with the last change's seq.
    fn changed_since(&self, seq: i64) -> StoreFuture<'_, (Vec<Alert>, i64)>;
    /// The seq of the newest change: where a replica's live feed of alerts starts.
    fn latest_seq(&self) -> StoreFuture<'_, i64>;
    /// One round: reads the rules, silences and open alerts, [`super::decide::decide`]s and
    /// writes the changes and their notifications, in one transaction. `None` when another
    /// replica's round holds the lock (it will decide the same things).
    fn round(&self, now_ms: i64, measures: Measures) -> StoreFuture<'_, Option<Vec<Alert>>>;
    /// Claims up to `limit` due notifications until `now_ms + lease_ms`, oldest first.
    fn claim(&self, now_ms: i64, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Claimed>>;
    /// Records how an attempt ended.
    fn finish(&self, id: i64, now_ms: i64, finish: Finish) -> StoreFuture<'_, ()>;
    /// Deletes notifications decided before `before_ms` that are done with, and alerts resolved
    /// before it that have no notification left; resolves to the number of rows deleted.
    fn prune(&self, before_ms: i64) -> StoreFuture<'_, u64>;
    /// Notifications newest first, of one alert or all.
    fn deliveries(&self, alert_id: Option<i64>, limit: u32) -> StoreFuture<'_, Vec<Delivery>>;
}

/// The rules of a table's rows; a row changed by hand into something unreadable is skipped
/// (and said), rather than stopping every other rule.
pub(crate) fn rules_of(rows: Vec<(i64, String)>) -> Vec<Rule> {
    parsed(rows, |id, spec: RuleSpec| Rule { id, spec })
}

/// The silences of a table's rows, as [`rules_of`].
pub(crate) fn silences_of(rows: Vec<(i64, String)>) -> Vec<Silence> {
    parsed(rows, |id, spec: SilenceSpec| Silence { id, spec })
}

/// The channels of a table's rows, secrets included, as [`rules_of`].
pub(crate) fn channels_of(rows: Vec<(i64, String)>) -> Vec<(i64, ChannelSpec)> {
    parsed(rows, |id, spec: ChannelSpec| (id, spec))
}

fn parsed<S: serde::de::DeserializeOwned, T>(
    rows: Vec<(i64, String)>,
    make: impl Fn(i64, S) -> T,
) -> Vec<T> {
    rows.into_iter()
        .filter_map(|(id, body)| match serde_json::from_str(&body) {
            Ok(spec) => Some(make(id, spec)),
            Err(e) => {
                // Where, not serde's words: they quote the value, which may be a channel's
                // secret or URL.
                let (line, column, kind) = (e.line(), e.column(), e.classify());
                tracing::warn!(
                    id,
                    line,
                    column,
                    ?kind,
                    "an alert setting row cannot be read; skipped"
                );
                None
            }
        })
        .collect()
}

/// The columns of `alerts` in the order [`AlertRow`] reads them.
pub(crate) const ALERT_COLUMNS: &str = "id, rule_id, rule_name, agent_id, severity, state, value,
    threshold, started_ms, fired_ms, resolved_ms, summary, notified_ms, clear_since_ms";

/// An alert's columns as both stores read them.
#[derive(Debug)]
pub(crate) struct AlertRow {
    pub(crate) id: i64,
    pub(crate) rule_id: i64,
    pub(crate) rule_name: String,
    pub(crate) agent_id: String,
    pub(crate) severity: String,
    pub(crate) state: String,
    pub(crate) value: Option<f64>,
    pub(crate) threshold: Option<f64>,
    pub(crate) started_ms: i64,
    pub(crate) fired_ms: Option<i64>,
    pub(crate) resolved_ms: Option<i64>,
    pub(crate) summary: String,
    pub(crate) notified_ms: Option<i64>,
    pub(crate) clear_since_ms: Option<i64>,
}

/// A name of one of our enums as its JSON has it.
pub(crate) fn word<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// One of our enums from the name [`word`] gave it.
pub(crate) fn from_word<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

impl AlertRow {
    pub(crate) fn open(self) -> Open {
        let (notified_ms, clear_since_ms) = (self.notified_ms, self.clear_since_ms);
        Open { alert: self.alert(), notified_ms, clear_since_ms }
    }

    pub(crate) fn alert(self) -> Alert {
        Alert {
            id: self.id,
            rule_id: self.rule_id,
            rule_name: self.rule_name,
            agent_id: self.agent_id,
            severity: from_word(&self.severity).unwrap_or(Severity::Warning),
            state: from_word(&self.state).unwrap_or(AlertState::Resolved),
            value: self.value,
            threshold: self.threshold,
            started_at: self.started_ms / 1000,
            fired_at: self.fired_ms.map(|ms| ms / 1000),
            resolved_at: self.resolved_ms.map(|ms| ms / 1000),
            summary: self.summary,
        }
    }
}

/// The text of a notification.
pub(crate) fn text(kind: NotificationKind, alert: &Alert) -> String {
    let head = match kind {
        NotificationKind::Firing => "FIRING",
        NotificationKind::Repeat => "STILL FIRING",
        NotificationKind::Resolved => "RESOLVED",
    };
    format!("[{head}] [{}] {}", word(alert.severity), alert.summary)
}

/// The outbox payload of one change's notification: the alert as decided, its key filled at
/// claim time from the row's id.
pub(crate) fn payload(kind: NotificationKind, alert: Alert) -> String {
    let notification =
        Notification { idempotency_key: String::new(), kind, text: text(kind, &alert), alert };
    serde_json::to_string(&notification).unwrap_or_default()
}

/// The idempotency key of an outbox row: the same at every attempt.
pub(crate) fn idempotency_key(outbox_id: i64) -> String {
    format!("telemetry-alert-notification-{outbox_id}")
}

/// The claimed notification, from its row.
pub(crate) fn claimed(
    id: i64,
    payload: &str,
    channel: Option<&str>,
    attempts: u32,
    created_ms: i64,
) -> Result<Claimed, StorageError> {
    let mut notification: Notification =
        serde_json::from_str(payload).map_err(StorageError::Damaged)?;
    notification.idempotency_key = idempotency_key(id);
    let channel = channel.and_then(|body| serde_json::from_str(body).ok());
    Ok(Claimed { id, channel, notification, attempts, created_ms })
}

/// What a filter's `limit` may be.
pub(crate) const MAX_ALERTS: u32 = 500;
