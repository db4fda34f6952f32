//! The alert tables in SQLite, on a connection of their own ([`super::side`]): alert writes are
//! a few rows every round or API call.

use super::side::SideConnection;
use crate::alerts::decide::{Change, Measures, decide};
use crate::alerts::store::{
    ALERT_COLUMNS, AlertFilter, AlertRow, AlertStore, Claimed, DUE_IN_TURN, FINISH_SQL, Finish,
    PRUNE_SQL, Table, claimed, from_word, payload, rules_of, silences_of, word,
};
use crate::settings::Synchronous;
use crate::storage::{StorageError, StoreFuture};
use protocol::alerts::{Alert, Delivery};
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::path::Path;

#[derive(Debug, Clone)]
pub(crate) struct SqliteAlerts {
    conn: SideConnection,
}

impl SqliteAlerts {
    pub(crate) fn open(path: &Path, sync: Synchronous) -> Result<Self, StorageError> {
        Ok(Self { conn: SideConnection::open(path, sync)? })
    }
}

fn alert_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        rule_id: r.get(1)?,
        rule_name: r.get(2)?,
        agent_id: r.get(3)?,
        severity: r.get(4)?,
        state: r.get(5)?,
        value: r.get(6)?,
        threshold: r.get(7)?,
        started_ms: r.get(8)?,
        fired_ms: r.get(9)?,
        resolved_ms: r.get(10)?,
        summary: r.get(11)?,
        notified_ms: r.get(12)?,
        clear_since_ms: r.get(13)?,
    })
}

fn list(conn: &Connection, table: Table) -> rusqlite::Result<Vec<(i64, String)>> {
    let sql = format!("SELECT id, body FROM {} ORDER BY id", table.name());
    conn.prepare_cached(&sql)?.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
}

/// Writes one change and its notifications (to the channels that still exist).
fn write(tx: &Connection, change: Change, now_ms: i64) -> rusqlite::Result<Alert> {
    let seq: i64 =
        tx.query_row("SELECT coalesce(max(seq), 0) + 1 FROM alerts", [], |r| r.get(0))?;
    let a = &change.alert;
    let values = params![
        seq,
        a.rule_id,
        a.rule_name,
        a.agent_id,
        word(a.severity),
        word(a.state),
        a.value,
        a.threshold,
        a.started_at * 1000,
        a.fired_at.map(|s| s * 1000),
        a.resolved_at.map(|s| s * 1000),
        a.summary,
        change.notified_ms,
        a.id,
        change.clear_since_ms,
    ];
    let id = if a.id == 0 {
        tx.prepare_cached(
            "INSERT INTO alerts (seq, rule_id, rule_name, agent_id, severity, state, value,
                 threshold, started_ms, fired_ms, resolved_ms, summary, notified_ms,
                 clear_since_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15)
             RETURNING id",
        )?
        .query_row(values, |r| r.get(0))?
    } else {
        tx.prepare_cached(
            "UPDATE alerts SET seq = ?1, rule_name = ?3, severity = ?5, state = ?6, value = ?7,
                 threshold = ?8, fired_ms = ?10, resolved_ms = ?11, summary = ?12,
                 notified_ms = ?13, clear_since_ms = ?15
             WHERE id = ?14 AND rule_id = ?2 AND agent_id = ?4 AND started_ms = ?9",
        )?
        .execute(values)?;
        a.id
    };
    let mut alert = change.alert;
    alert.id = id;
    if let Some((kind, channels)) = change.notify {
        let body = payload(kind, alert.clone());
        let mut insert = tx.prepare_cached(
            "INSERT INTO alert_outbox (alert_id, channel_id, kind, payload, created_ms, next_ms)
             SELECT ?1, id, ?2, ?3, ?4, ?4 FROM alert_channels WHERE id = ?5",
        )?;
        for channel in channels {
            insert.execute(params![id, word(kind), body, now_ms, channel])?;
        }
    }
    Ok(alert)
}

/// The round's changes as decided on what `conn` reads now.
fn decided(conn: &Connection, now_ms: i64, measures: &Measures) -> rusqlite::Result<Vec<Change>> {
    let rules = rules_of(list(conn, Table::Rules)?);
    let silences = silences_of(list(conn, Table::Silences)?);
    let open = conn
        .prepare_cached(&format!(
            "SELECT {ALERT_COLUMNS} FROM alerts WHERE state <> 'resolved' ORDER BY id"
        ))?
        .query_map([], alert_row)?
        .map(|r| r.map(AlertRow::open))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(decide(now_ms, &rules, &silences, open, measures))
}

fn round(conn: &mut Connection, now_ms: i64, measures: &Measures) -> rusqlite::Result<Vec<Alert>> {
    // Most rounds change nothing: they are decided on a read first, so that they never take
    // the write lock from ingest's group commits. Alert rows are written only through this
    // connection, so a round that does change something decides again under the lock.
    let quiet = {
        let tx = conn.transaction()?;
        decided(&tx, now_ms, measures)?.is_empty()
    };
    if quiet {
        return Ok(Vec::new());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let changed = decided(&tx, now_ms, measures)?
        .into_iter()
        .map(|change| write(&tx, change, now_ms))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    tx.commit()?;
    Ok(changed)
}

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let kind: String = r.get(3)?;
    Ok(Delivery {
        id: r.get(0)?,
        alert_id: r.get(1)?,
        channel_id: r.get(2)?,
        kind: from_word(&kind).unwrap_or(protocol::alerts::NotificationKind::Firing),
        idempotency_key: crate::alerts::store::idempotency_key(r.get(0)?),
        created_at: r.get::<_, i64>(4)? / 1000,
        attempts: r.get(5)?,
        delivered_at: r.get::<_, Option<i64>>(6)?.map(|ms| ms / 1000),
        failed_at: r.get::<_, Option<i64>>(7)?.map(|ms| ms / 1000),
        last_error: r.get(8)?,
    })
}

impl AlertStore for SqliteAlerts {
    fn list(&self, table: Table) -> StoreFuture<'_, Vec<(i64, String)>> {
        self.conn.run(move |conn| Ok(list(conn, table)?))
    }

    fn insert(&self, table: Table, body: String) -> StoreFuture<'_, i64> {
        self.conn.run(move |conn| {
            let sql = format!("INSERT INTO {} (body) VALUES (?1) RETURNING id", table.name());
            Ok(conn.query_row(&sql, [body], |r| r.get(0))?)
        })
    }

    fn replace(&self, table: Table, id: i64, body: String) -> StoreFuture<'_, bool> {
        self.conn.run(move |conn| {
            let sql = format!("UPDATE {} SET body = ?1 WHERE id = ?2", table.name());
            Ok(conn.execute(&sql, params![body, id])? == 1)
        })
    }

    fn delete(&self, table: Table, id: i64) -> StoreFuture<'_, bool> {
        self.conn.run(move |conn| {
            let sql = format!("DELETE FROM {} WHERE id = ?1", table.name());
            Ok(conn.execute(&sql, [id])? == 1)
        })
    }

    fn alerts(&self, f: AlertFilter) -> StoreFuture<'_, Vec<Alert>> {
        self.conn.run(move |conn| {
            let sql = format!(
                "SELECT {ALERT_COLUMNS} FROM alerts
                 WHERE (?1 = 0 OR state <> 'resolved') AND (?2 IS NULL OR state = ?2)
                   AND (?3 IS NULL OR agent_id = ?3) AND (?4 IS NULL OR rule_id = ?4)
                   AND (?5 IS NULL OR id < ?5)
                 ORDER BY id DESC LIMIT ?6"
            );
            let state = f.state.map(word);
            let p = params![f.open, state, f.agent_id, f.rule_id, f.before_id, f.limit];
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(p, alert_row)?;
            Ok(rows.map(|r| r.map(AlertRow::alert)).collect::<rusqlite::Result<_>>()?)
        })
    }

    fn changed_since(&self, seq: i64) -> StoreFuture<'_, (Vec<Alert>, i64)> {
        self.conn.run(move |conn| {
            let sql = format!(
                "SELECT {ALERT_COLUMNS}, seq FROM alerts WHERE seq > ?1 ORDER BY seq LIMIT 1000"
            );
            let mut last = seq;
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query([seq])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                last = r.get(14)?;
                out.push(alert_row(r)?.alert());
            }
            Ok((out, last))
        })
    }

    fn latest_seq(&self) -> StoreFuture<'_, i64> {
        self.conn.run(|conn| {
            Ok(conn.query_row("SELECT coalesce(max(seq), 0) FROM alerts", [], |r| r.get(0))?)
        })
    }

    fn round(&self, now_ms: i64, measures: Measures) -> StoreFuture<'_, Option<Vec<Alert>>> {
        self.conn.run(move |conn| Ok(Some(round(conn, now_ms, &measures)?)))
    }

    fn claim(&self, now_ms: i64, lease_ms: i64, limit: u32) -> StoreFuture<'_, Vec<Claimed>> {
        self.conn.run(move |conn| {
            // Looked for without the write lock first, as for rounds: this runs every second.
            let due: Option<i64> = conn
                .prepare_cached(
                    "SELECT id FROM alert_outbox
                     WHERE delivered_ms IS NULL AND failed_ms IS NULL AND next_ms <= ?1 LIMIT 1",
                )?
                .query_row([now_ms], |r| r.get(0))
                .optional()?;
            if due.is_none() {
                return Ok(Vec::new());
            }
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let rows: Vec<(i64, String, Option<String>, u32, i64)> = tx
                .prepare_cached(&format!(
                    "UPDATE alert_outbox SET next_ms = ?1 + ?2, attempts = attempts + 1
                     WHERE id IN (SELECT o.id FROM alert_outbox o
                                  WHERE o.next_ms <= ?1 AND {DUE_IN_TURN} ORDER BY o.id LIMIT ?3)
                     RETURNING id, payload,
                         (SELECT body FROM alert_channels c WHERE c.id = channel_id),
                         attempts, created_ms"
                ))?
                .query_map(params![now_ms, lease_ms, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            tx.commit()?;
            let mut out: Vec<Claimed> = rows
                .iter()
                .map(|(id, p, c, n, at)| claimed(*id, p, c.as_deref(), *n, *at))
                .collect::<Result<_, _>>()?;
            out.sort_by_key(|c| c.id);
            Ok(out)
        })
    }

    fn finish(&self, id: i64, now_ms: i64, finish: Finish) -> StoreFuture<'_, ()> {
        self.conn.run(move |conn| {
            let (delivered, failed, next, error) = finish.columns(now_ms);
            // `?N` is SQLite's numbered parameter; `$N` would be a named one, numbered by appearance.
            let sql = FINISH_SQL.replace('$', "?");
            conn.execute(&sql, params![id, delivered, failed, next, error])?;
            Ok(())
        })
    }

    fn prune(&self, before_ms: i64) -> StoreFuture<'_, u64> {
        self.conn.run(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut deleted = 0;
            for sql in PRUNE_SQL {
                deleted += tx.execute(&sql.replace('$', "?"), [before_ms])? as u64;
            }
            tx.commit()?;
            Ok(deleted)
        })
    }

    fn deliveries(&self, alert_id: Option<i64>, limit: u32) -> StoreFuture<'_, Vec<Delivery>> {
        self.conn.run(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT id, alert_id, channel_id, kind, created_ms, attempts, delivered_ms,
                         failed_ms, last_error
                     FROM alert_outbox WHERE ?1 IS NULL OR alert_id = ?1
                     ORDER BY id DESC LIMIT ?2",
                )?
                .query_map(params![alert_id, limit], delivery)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pruning_keeps_open_alerts_and_notifications_still_on_their_way() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteAlerts::open(&dir.path().join("t.db"), Synchronous::Normal).unwrap();
        let fill = store.conn.run(move |conn| {
            let alert = |id: i64, state: &str, resolved: Option<i64>| {
                conn.execute(
                    "INSERT INTO alerts (id, seq, rule_id, rule_name, agent_id, severity, state,
                         started_ms, resolved_ms, summary)
                     VALUES (?1, ?1, 1, 'r', 'a' || ?1, 'warning', ?2, 0, ?3, '')",
                    params![id, state, resolved],
                )
                .unwrap();
            };
            alert(1, "resolved", Some(100)); // old, all sent: goes
            alert(2, "resolved", Some(100)); // old, a notification still waiting: stays
            alert(3, "firing", None); // open: stays
            alert(4, "resolved", Some(5000)); // recent: stays
            let outbox = |alert: i64, created: i64, delivered: Option<i64>| {
                conn.execute(
                    "INSERT INTO alert_outbox (alert_id, channel_id, kind, payload, created_ms,
                         next_ms, delivered_ms)
                     VALUES (?1, 1, 'firing', '{}', ?2, ?2, ?3)",
                    params![alert, created, delivered],
                )
                .unwrap();
            };
            outbox(1, 50, Some(60));
            outbox(2, 50, None);
            outbox(3, 50, Some(60)); // sent long ago for an alert still firing: goes
            Ok(())
        });
        fill.await.unwrap();
        assert_eq!(store.prune(1000).await.unwrap(), 3);
        let ids = |sql: &'static str| {
            store.conn.run(move |conn| {
                let mut stmt = conn.prepare(sql)?;
                Ok(stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<Vec<i64>>>()?)
            })
        };
        assert_eq!(ids("SELECT id FROM alerts ORDER BY id").await.unwrap(), [2, 3, 4]);
        assert_eq!(ids("SELECT alert_id FROM alert_outbox").await.unwrap(), [2]);
    }
}
