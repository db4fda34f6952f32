//! The alert tables in PostgreSQL, shared by every replica. A round runs under a
//! transaction-level advisory lock and reads the open alerts after taking it, so the rounds of
//! several replicas run one after another, each on what the previous committed; a claim takes
//! due notifications with `FOR UPDATE SKIP LOCKED` and leases them, so one replica sends each.

use super::pool::Pool;
use crate::alerts::decide::{Change, Measures, decide};
use crate::alerts::store::{
    ALERT_COLUMNS, AlertFilter, AlertRow, AlertStore, Claimed, DUE_IN_TURN, FINISH_SQL, Finish,
    PRUNE_SQL, Table, claimed, from_word, payload, rules_of, silences_of, word,
};
use crate::storage::{StorageError, StoreFuture};
use protocol::alerts::{Alert, Delivery, NotificationKind};
use std::sync::Arc;
use tokio_postgres::{GenericClient, Row, Transaction};

/// Any constant: the replica holding it runs the round.
const ROUND_LOCK: i64 = 0x7e1e_a1e7;

#[derive(Debug, Clone)]
pub(crate) struct PgAlerts {
    pool: Arc<Pool>,
}

/// Connections of the alert engine and routes: a round holds one, a delivery pass another.
const CONNECTIONS: usize = 2;

impl PgAlerts {
    /// Connects to the database at `url`, migrated first if no replica has done it yet.
    pub(crate) async fn connect(url: &protocol::Secret) -> Result<Self, StorageError> {
        let mut client = super::pool::connect(url).await?;
        super::schema::migrate(&mut client).await?;
        Ok(Self { pool: Arc::new(Pool::new(url.clone(), CONNECTIONS)) })
    }
}

fn alert_row(r: &Row) -> AlertRow {
    AlertRow {
        id: r.get(0),
        rule_id: r.get(1),
        rule_name: r.get(2),
        agent_id: r.get(3),
        severity: r.get(4),
        state: r.get(5),
        value: r.get(6),
        threshold: r.get(7),
        started_ms: r.get(8),
        fired_ms: r.get(9),
        resolved_ms: r.get(10),
        summary: r.get(11),
        notified_ms: r.get(12),
        clear_since_ms: r.get(13),
    }
}

async fn list(
    client: &impl GenericClient,
    table: Table,
) -> Result<Vec<(i64, String)>, tokio_postgres::Error> {
    let sql = format!("SELECT id, body FROM {} ORDER BY id", table.name());
    Ok(client.query(&sql, &[]).await?.iter().map(|r| (r.get(0), r.get(1))).collect())
}

async fn write(
    tx: &Transaction<'_>,
    change: Change,
    now_ms: i64,
) -> Result<Alert, tokio_postgres::Error> {
    let a = &change.alert;
    let (severity, state) = (word(a.severity), word(a.state));
    let (started, fired, resolved) =
        (a.started_at * 1000, a.fired_at.map(|s| s * 1000), a.resolved_at.map(|s| s * 1000));
    let id: i64 = if a.id == 0 {
        tx.query_one(
            "INSERT INTO alerts (seq, rule_id, rule_name, agent_id, severity, state, value,
                 threshold, started_ms, fired_ms, resolved_ms, summary, notified_ms,
                 clear_since_ms)
             VALUES (nextval('alert_seq'), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                 $13)
             RETURNING id",
            &[
                &a.rule_id,
                &a.rule_name,
                &a.agent_id,
                &severity,
                &state,
                &a.value,
                &a.threshold,
                &started,
                &fired,
                &resolved,
                &a.summary,
                &change.notified_ms,
                &change.clear_since_ms,
            ],
        )
        .await?
        .get(0)
    } else {
        tx.execute(
            "UPDATE alerts SET seq = nextval('alert_seq'), rule_name = $2, severity = $3,
                 state = $4, value = $5, threshold = $6, fired_ms = $7, resolved_ms = $8,
                 summary = $9, notified_ms = $10, clear_since_ms = $11
             WHERE id = $1",
            &[
                &a.id,
                &a.rule_name,
                &severity,
                &state,
                &a.value,
                &a.threshold,
                &fired,
                &resolved,
                &a.summary,
                &change.notified_ms,
                &change.clear_since_ms,
            ],
        )
        .await?;
        a.id
    };
    let mut alert = change.alert;
    alert.id = id;
    if let Some((kind, channels)) = change.notify {
        let body = payload(kind, alert.clone());
        tx.execute(
            "INSERT INTO alert_outbox (alert_id, channel_id, kind, payload, created_ms, next_ms)
             SELECT $1, id, $2, $3, $4, $4 FROM alert_channels WHERE id = ANY($5) ORDER BY id",
            &[&id, &word(kind), &body, &now_ms, &channels],
        )
        .await?;
    }
    Ok(alert)
}

async fn round(
    pool: &Pool,
    now_ms: i64,
    measures: &Measures,
) -> Result<Option<Vec<Alert>>, StorageError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let locked: bool =
        tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&ROUND_LOCK]).await?.get(0);
    if !locked {
        return Ok(None);
    }
    let rules = rules_of(list(&tx, Table::Rules).await?);
    let silences = silences_of(list(&tx, Table::Silences).await?);
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE state <> 'resolved' ORDER BY id");
    let open = tx.query(&sql, &[]).await?.iter().map(|r| alert_row(r).open()).collect();
    let mut changed = Vec::new();
    for change in decide(now_ms, &rules, &silences, open, measures) {
        changed.push(write(&tx, change, now_ms).await?);
    }
    tx.commit().await?;
    Ok(Some(changed))
}

fn delivery(r: &Row) -> Delivery {
    let kind: String = r.get(3);
    let attempts: i32 = r.get(5);
    Delivery {
        id: r.get(0),
        alert_id: r.get(1),
        channel_id: r.get(2),
        kind: from_word(&kind).unwrap_or(NotificationKind::Firing),
        idempotency_key: crate::alerts::store::idempotency_key(r.get(0)),
        created_at: r.get::<_, i64>(4) / 1000,
        attempts: u32::try_from(attempts).unwrap_or_default(),
        delivered_at: r.get::<_, Option<i64>>(6).map(|ms| ms / 1000),
        failed_at: r.get::<_, Option<i64>>(7).map(|ms| ms / 1000),
        last_error: r.get(8),
    }
}

impl AlertStore for PgAlerts {
    fn list(&self, table: Table) -> StoreFuture<'_, Vec<(i64, String)>> {
        Box::pin(async move { Ok(list(&*self.pool.get().await?, table).await?) })
    }

    fn insert(&self, table: Table, body: String) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let sql = format!("INSERT INTO {} (body) VALUES ($1) RETURNING id", table.name());
            Ok(self.pool.get().await?.query_one(&sql, &[&body]).await?.get(0))
        })
    }

    fn replace(&self, table: Table, id: i64, body: String) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let sql = format!("UPDATE {} SET body = $1 WHERE id = $2", table.name());
            Ok(self.pool.get().await?.execute(&sql, &[&body, &id]).await? == 1)
        })
    }

    fn delete(&self, table: Table, id: i64) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let sql = format!("DELETE FROM {} WHERE id = $1", table.name());
            Ok(self.pool.get().await?.execute(&sql, &[&id]).await? == 1)
        })
    }

    fn alerts(&self, f: AlertFilter) -> StoreFuture<'_, Vec<Alert>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {ALERT_COLUMNS} FROM alerts
                 WHERE (NOT $1 OR state <> 'resolved') AND ($2::text IS NULL OR state = $2)
                   AND ($3::text IS NULL OR agent_id = $3) AND ($4::bigint IS NULL OR rule_id = $4)
                   AND ($5::bigint IS NULL OR id < $5)
                 ORDER BY id DESC LIMIT $6"
            );
            let state = f.state.map(word);
            let limit = i64::from(f.limit);
            let rows = self
                .pool
                .get()
                .await?
                .query(&sql, &[&f.open, &state, &f.agent_id, &f.rule_id, &f.before_id, &limit])
                .await?;
            Ok(rows.iter().map(|r| alert_row(r).alert()).collect())
        })
    }

    fn changed_since(&self, seq: i64) -> StoreFuture<'_, (Vec<Alert>, i64)> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {ALERT_COLUMNS}, seq FROM alerts WHERE seq > $1 ORDER BY seq LIMIT 1000"
            );
            let rows = self.pool.get().await?.query(&sql, &[&seq]).await?;
            let last = rows.last().map_or(seq, |r| r.get(14));
            Ok((rows.iter().map(|r| alert_row(r).alert()).collect(), last))
        })
    }

    fn latest_seq(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let row = client.query_one("SELECT coalesce(max(seq), 0) FROM alerts", &[]).await?;
            Ok(row.get(0))
        })
    }

    fn round(&self, now_ms: i64, measures: Measures) -> StoreFuture<'_, Option<Vec<Alert>>> {
        Box::pin(async move { round(&self.pool, now_ms, &measures).await })
    }

    fn claim(&self, now_ms: i64, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Claimed>> {
        Box::pin(async move {
            let rows = self
                .pool
                .get()
                .await?
                .query(
                    &format!(
                        "WITH due AS (
                         SELECT o.id FROM alert_outbox o WHERE o.next_ms <= $1 AND {DUE_IN_TURN}
                         ORDER BY o.id LIMIT $3 FOR UPDATE SKIP LOCKED)
                     UPDATE alert_outbox o SET next_ms = $1 + $2, attempts = o.attempts + 1
                     FROM due WHERE o.id = due.id
                     RETURNING o.id, o.payload,
                         (SELECT body FROM alert_channels c WHERE c.id = o.channel_id),
                         o.attempts, o.created_ms"
                    ),
                    &[&now_ms, &lease_ms, &i64::from(limit)],
                )
                .await?;
            let mut out = rows
                .iter()
                .map(|r| {
                    let attempts = u32::try_from(r.get::<_, i32>(3)).unwrap_or_default();
                    claimed(r.get(0), r.get(1), r.get(2), attempts, r.get(4))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.sort_by_key(|c| c.id);
            Ok(out)
        })
    }

    fn finish(&self, id: i64, now_ms: i64, finish: Finish) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let (delivered, failed, next, error) = finish.columns(now_ms);
            let client = self.pool.get().await?;
            client.execute(FINISH_SQL, &[&id, &delivered, &failed, &next, &error]).await?;
            Ok(())
        })
    }

    fn prune(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let mut deleted = 0;
            for sql in PRUNE_SQL {
                deleted += tx.execute(sql, &[&before_ms]).await?;
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }

    fn deliveries(&self, alert_id: Option<i64>, limit: u32) -> StoreFuture<'_, Vec<Delivery>> {
        Box::pin(async move {
            let rows = self
                .pool
                .get()
                .await?
                .query(
                    "SELECT id, alert_id, channel_id, kind, created_ms, attempts, delivered_ms,
                         failed_ms, last_error
                     FROM alert_outbox WHERE $1::bigint IS NULL OR alert_id = $1
                     ORDER BY id DESC LIMIT $2",
                    &[&alert_id, &i64::from(limit)],
                )
                .await?;
            Ok(rows.iter().map(delivery).collect())
        })
    }
}
