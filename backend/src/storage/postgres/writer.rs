//! One PostgreSQL writer task per replica, with SQLite's group commit: the queued requests share
//! one transaction and are answered after it commits. Replicas meet in the database: the replay
//! guard and batch ids are inserts that conflict, and every commit notifies the others of its
//! rows (`NOTIFY`, delivered only if the commit succeeds).

use super::pool;
use crate::clock::{format_ms, now_ms};
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::storage::codec;
use crate::storage::jobs::{Applied, Columns, Job, take_group};
use crate::storage::{Cutoffs, IngestOutcome, PRUNE_CHUNK, Pruned, StorageError};
use crate::telemetry::chain;
use protocol::{IngestBatch, Secret};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_postgres::{Client, Statement, Transaction};

pub(super) const CHANNEL: &str = "telemetry_live";

/// A live entry of another replica makes a request a replay; an expired one is taken over.
const REPLAY_SQL: &str = "INSERT INTO replay_guard(signature, expires_ms) VALUES ($1, $2)
    ON CONFLICT (signature) DO UPDATE SET expires_ms = EXCLUDED.expires_ms
        WHERE replay_guard.expires_ms <= $3
    RETURNING 1";
const BATCH_SQL: &str = "INSERT INTO batches(batch_id, agent_id, received_ms, stored)
    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
/// One row per batch (`storage/codec.rs`); its events' ids are `first_id` onwards, in a block
/// of `event_ids` of its own.
const LOG_SQL: &str = "INSERT INTO batch_log(first_id, ts_ms, ingested_ms, kinds, agent_id, ts,
        platform, events)
    VALUES (nextval('event_ids'), $1, $2, $3, $4, $5, $6, $7::text::json)
    RETURNING first_id";
/// SQLite's agent rules (`storage::learn_interval`): the interval is an EWMA of plausible gaps
/// between the agent's own timestamps; $5..$7 are its bounds and weight.
const AGENT_SQL: &str = "INSERT INTO agents(agent_id, platform, first_seen_ms, last_seen_ms,
        last_ts_ms, agent_version, agent_uptime_s, drives, host)
    VALUES ($1, $2, $3, $3, $4, $8, $9, $10, $11)
    ON CONFLICT (agent_id) DO UPDATE SET
        drives = CASE WHEN $10::text IS NOT NULL AND EXCLUDED.last_ts_ms >= agents.last_ts_ms
            THEN $10 ELSE agents.drives END,
        host = CASE WHEN $11::text IS NOT NULL AND EXCLUDED.last_ts_ms >= agents.last_ts_ms
            THEN $11 ELSE agents.host END,
        agent_version = CASE WHEN $8::text IS NOT NULL AND EXCLUDED.last_ts_ms >= agents.last_ts_ms
            THEN $8 ELSE agents.agent_version END,
        agent_uptime_s = CASE WHEN $8::text IS NOT NULL AND EXCLUDED.last_ts_ms >= agents.last_ts_ms
            THEN $9 ELSE agents.agent_uptime_s END,
        platform = EXCLUDED.platform,
        last_seen_ms = EXCLUDED.last_seen_ms,
        interval_ms = CASE
            WHEN EXCLUDED.last_ts_ms - agents.last_ts_ms BETWEEN $5 AND $6
            THEN COALESCE(
                agents.interval_ms * (1 - $7::float8)
                    + (EXCLUDED.last_ts_ms - agents.last_ts_ms)::float8 * $7::float8,
                (EXCLUDED.last_ts_ms - agents.last_ts_ms)::float8)
            ELSE agents.interval_ms END,
        last_ts_ms = GREATEST(agents.last_ts_ms, EXCLUDED.last_ts_ms)";
/// The latest metric is the newest by the agent's clock.
const METRIC_SQL: &str = "UPDATE agents SET metric_ts = $2, metric_ts_ms = $3, cpu = $4,
        mem_free = $5, mem_total = $6, disk_free = $7, disk_total = $8, net_rx_bps = $9,
        net_tx_bps = $10, uptime_s = $11
    WHERE agent_id = $1 AND (metric_ts_ms IS NULL OR metric_ts_ms <= $3)";
/// NOTIFY payloads must stay under 8000 bytes; this many ids of 19 digits fit with room to spare.
const IDS_PER_NOTICE: usize = 300;

/// What one replica tells the others after a commit.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(super) enum Notice {
    /// Rows stored, for the others' live clients.
    Rows { origin: String, ids: Vec<i64> },
    /// One agent's rows cleared, or everyone's (`agent_id` null).
    Clear { origin: String, agent_id: Option<String> },
}

impl Notice {
    pub(super) fn origin(&self) -> &str {
        match self {
            Notice::Rows { origin, .. } | Notice::Clear { origin, .. } => origin,
        }
    }
}

/// The statements of every commit, prepared once per connection: a statement sent as text costs
/// a round trip to prepare it each time.
#[derive(Debug)]
struct Prepared {
    replay: Statement,
    batch: Statement,
    log: Statement,
    agent: Statement,
    metric: Statement,
    notify: Statement,
    metric_deltas: Statement,
    proc_deltas: Statement,
    services: Statement,
    notice: Statement,
}

impl Prepared {
    async fn on(client: &Client) -> Result<Self, tokio_postgres::Error> {
        use crate::storage::notices::{INSERT_NOTICE, UPSERT_SERVICES};
        let (replay, batch, log, agent, metric, notify, metric_deltas, proc_deltas) = futures_util::try_join!(
            client.prepare(REPLAY_SQL),
            client.prepare(BATCH_SQL),
            client.prepare(LOG_SQL),
            client.prepare(AGENT_SQL),
            client.prepare(METRIC_SQL),
            client.prepare("SELECT pg_notify($1, $2)"),
            client.prepare(super::rollups::METRIC_DELTAS_SQL),
            client.prepare(super::rollups::PROC_DELTAS_SQL),
        )?;
        let (services, notice) = futures_util::try_join!(
            client.prepare(UPSERT_SERVICES),
            client.prepare(INSERT_NOTICE)
        )?;
        Ok(Self {
            replay,
            batch,
            log,
            agent,
            metric,
            notify,
            metric_deltas,
            proc_deltas,
            services,
            notice,
        })
    }
}

#[derive(Debug)]
pub(super) struct Writer {
    url: Secret,
    connection: Option<(Client, Prepared)>,
    origin: Arc<str>,
}

impl Writer {
    /// Starts on `client`, the connection start-up migrated with.
    pub(super) async fn open(
        url: Secret,
        client: Client,
        origin: Arc<str>,
    ) -> Result<Self, StorageError> {
        let prepared = Prepared::on(&client).await?;
        Ok(Self { url, connection: Some((client, prepared)), origin })
    }

    /// The connection, opened again (with its statements) if it broke.
    async fn connection(&mut self) -> Result<&mut (Client, Prepared), StorageError> {
        if self.connection.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            let client = pool::connect(&self.url).await?;
            let prepared = Prepared::on(&client).await?;
            self.connection = Some((client, prepared));
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }
}

pub(super) async fn run(
    mut writer: Writer,
    mut rx: mpsc::Receiver<Job>,
    hub: Hub,
    metrics: Arc<Metrics>,
) {
    loop {
        let Some(first) = rx.recv().await else { break };
        let (jobs, stop) = take_group(first, || rx.try_recv().ok());
        if !jobs.is_empty() {
            commit_group(&mut writer, jobs, &hub, &metrics).await;
        }
        if stop {
            break;
        }
    }
    tracing::info!("storage writer stopped; every acknowledged batch is committed");
}

/// A job's result inside a transaction that goes on: a replay refused here does not roll back
/// the others.
type Outcome = Result<Applied, StorageError>;

/// Why a group did not commit.
#[derive(Debug)]
enum GroupError {
    /// Rolled back: nothing of it is stored, and each job may be tried again.
    RolledBack(StorageError),
    /// The COMMIT was sent but no answer came (a broken connection, or no answer in time): the
    /// group may or may not be stored, so trying again could store it twice.
    Unknown(Option<tokio_postgres::Error>),
}

impl<E: Into<StorageError>> From<E> for GroupError {
    fn from(e: E) -> Self {
        GroupError::RolledBack(e.into())
    }
}

/// Longer than any healthy commit; past it the connection is presumed dead.
const GROUP_TIMEOUT: Duration = Duration::from_secs(30);

async fn commit_group(writer: &mut Writer, jobs: Vec<Job>, hub: &Hub, metrics: &Metrics) {
    let started = Instant::now();
    let count = jobs.len();
    let attempt =
        tokio::time::timeout(GROUP_TIMEOUT, try_group(writer, &jobs, hub.has_subscribers()));
    let result = attempt.await.unwrap_or(Err(GroupError::Unknown(None)));
    match result {
        Ok(outcomes) => {
            metrics.commit_jobs.observe(count as f64);
            metrics.commit_seconds.observe(started.elapsed().as_secs_f64());
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                match outcome {
                    Ok(applied) => job.release(applied, hub, metrics),
                    Err(refused) => job.fail(refused),
                }
            }
        }
        Err(GroupError::Unknown(cause)) => {
            // The agents send again (signed anew); their batch ids make a repeat harmless. Each
            // answer logs the cause, so here only what the answers do not say.
            tracing::warn!(
                requests = count,
                timeout = ?GROUP_TIMEOUT,
                "a commit's outcome is unknown; its connection is dropped"
            );
            writer.connection = None;
            let cause = cause.map(std::sync::Arc::new);
            for job in jobs {
                job.fail(StorageError::OutcomeUnknown(cause.clone()));
            }
        }
        Err(GroupError::RolledBack(e)) if count == 1 => {
            // Logged with its cause where the request is answered.
            if let Some(job) = jobs.into_iter().next() {
                job.fail(e);
            }
        }
        Err(GroupError::RolledBack(e)) => {
            // A deadlock with another replica or one bad request: each job again, alone.
            tracing::warn!(error = %chain(&e), requests = count, "group commit failed; retrying one by one");
            for job in jobs {
                Box::pin(commit_group(writer, vec![job], hub, metrics)).await;
            }
        }
    }
}

async fn try_group(
    writer: &mut Writer,
    jobs: &[Job],
    want_rows: bool,
) -> Result<Vec<Outcome>, GroupError> {
    let origin = writer.origin.clone();
    let (client, st) = writer.connection().await?;
    let tx = client.transaction().await?;
    let now = now_ms();
    let mut outcomes = Vec::with_capacity(jobs.len());
    let mut stored: Vec<(&IngestBatch, i64)> = Vec::new();
    let mut announced: Vec<i64> = Vec::new();
    let mut rest = jobs;
    while let Some(job) = rest.first() {
        // Consecutive ingests are sent together: the server runs their statements in the order
        // sent, one transaction, but no request waits for another's round trips.
        let run = rest.iter().take_while(|j| matches!(j, Job::Ingest { .. })).count();
        if run > 0 {
            let (ingests, after) = rest.split_at(run);
            let results = futures_util::future::try_join_all(ingests.iter().map(|job| {
                let Job::Ingest { batch, ts_ms, verified, .. } = job else {
                    unreachable!("only ingests were taken")
                };
                ingest(&tx, st, batch, *ts_ms, verified, now, want_rows)
            }))
            .await?;
            for (job, result) in ingests.iter().zip(results) {
                if let (Job::Ingest { batch, ts_ms, .. }, Ok((Applied::Ingest(o, _), ids))) =
                    (job, &result)
                    && !o.duplicate
                {
                    stored.push((batch, *ts_ms));
                    announced.extend(ids);
                }
                outcomes.push(result.map(|(applied, _)| applied));
            }
            rest = after;
            continue;
        }
        let outcome = match job {
            Job::Clear { agent_id, .. } => {
                // Rows of this commit that the clear removes must not be announced after it.
                announce(&tx, st, &origin, &mut announced).await?;
                let n = clear(&tx, agent_id.as_deref()).await?;
                // The agent rows the clear deleted must not come back from batches before it.
                stored.retain(|(b, _)| agent_id.as_ref().is_some_and(|a| &b.agent_id != a));
                let cleared =
                    Notice::Clear { origin: origin.to_string(), agent_id: agent_id.clone() };
                notify(&tx, st, &cleared).await?;
                Ok(Applied::Count(n))
            }
            Job::Prune { cutoffs, .. } => Ok(Applied::Pruned(prune(&tx, *cutoffs, now).await?)),
            Job::Ingest { .. } | Job::Ping { .. } | Job::Shutdown => Ok(Applied::Unit),
        };
        outcomes.push(outcome);
        rest = &rest[1..];
    }
    // In one order on every replica, so that two commits touching the same agents cannot wait
    // for each other; a stable sort keeps one agent's batches in arrival order, which is the
    // order they are sent in.
    stored.sort_by(|a, b| a.0.agent_id.cmp(&b.0.agent_id));
    // Sent together, like the ingests: the agent rows and the deltas are different tables.
    let agents = futures_util::future::try_join_all(
        stored.iter().map(|(batch, ts_ms)| update_agent(&tx, st, batch, *ts_ms, now)),
    );
    let deltas = super::rollups::append(&tx, [&st.metric_deltas, &st.proc_deltas], &stored);
    futures_util::future::try_join(agents, deltas).await?;
    announce(&tx, st, &origin, &mut announced).await?;
    tx.commit().await.map_err(|e| GroupError::Unknown(Some(e)))?;
    Ok(outcomes)
}

async fn notify(tx: &Transaction<'_>, st: &Prepared, notice: &Notice) -> Result<(), StorageError> {
    let payload = serde_json::to_string(notice).map_err(StorageError::Notice)?;
    tx.execute(&st.notify, &[&CHANNEL, &payload]).await?;
    Ok(())
}

/// Tells the other replicas of the rows stored so far in this transaction (delivered only if it
/// commits), in notices small enough for NOTIFY.
async fn announce(
    tx: &Transaction<'_>,
    st: &Prepared,
    origin: &str,
    ids: &mut Vec<i64>,
) -> Result<(), StorageError> {
    for chunk in std::mem::take(ids).chunks(IDS_PER_NOTICE) {
        notify(tx, st, &Notice::Rows { origin: origin.to_owned(), ids: chunk.to_vec() }).await?;
    }
    Ok(())
}

/// The outer error aborts the transaction; the inner one refuses this request alone.
async fn ingest(
    tx: &Transaction<'_>,
    st: &Prepared,
    batch: &IngestBatch,
    ts_ms: i64,
    verified: &crate::security::Verified,
    now: i64,
    want_rows: bool,
) -> Result<Result<(Applied, Vec<i64>), StorageError>, StorageError> {
    let fresh = tx
        .query_opt(&st.replay, &[&&verified.signature[..], &verified.expires_ms, &now])
        .await?
        .is_some();
    if !fresh {
        return Ok(Err(StorageError::Replay));
    }
    let events = batch.events.len();
    if let Some(batch_id) = &batch.batch_id {
        let inserted = tx
            .execute(
                &st.batch,
                &[batch_id, &batch.agent_id, &now, &i32::try_from(events).unwrap_or(i32::MAX)],
            )
            .await?;
        if inserted == 0 {
            let outcome = IngestOutcome { stored: 0, duplicate: true };
            return Ok(Ok((Applied::Ingest(outcome, Vec::new()), Vec::new())));
        }
    }
    let json = codec::encode(&batch.events).map_err(StorageError::Encode)?;
    let kinds = i16::try_from(codec::kinds(&batch.events)).unwrap_or(i16::MAX);
    let first_id: i64 = tx
        .query_one(
            &st.log,
            &[&ts_ms, &now, &kinds, &batch.agent_id, &batch.ts, &batch.platform, &json],
        )
        .await?
        .get(0);
    let ids: Vec<i64> = (first_id..).take(events).collect();
    let live = if want_rows {
        let ingested_at = format_ms(now);
        let cols = batch.events.iter().map(Columns::of);
        cols.zip(&ids).map(|(c, id)| c.to_row(batch, *id, &ingested_at)).collect()
    } else {
        Vec::new()
    };
    let outcome = IngestOutcome { stored: events, duplicate: false };
    Ok(Ok((Applied::Ingest(outcome, live), ids)))
}

/// The same rules as SQLite's agent state: the interval is an EWMA of plausible gaps between
/// the agent's own timestamps, and the latest metric is the newest by the agent's clock.
async fn update_agent(
    tx: &Transaction<'_>,
    st: &Prepared,
    batch: &IngestBatch,
    ts_ms: i64,
    now: i64,
) -> Result<(), StorageError> {
    let (min_gap, max_gap) = crate::storage::PLAUSIBLE_GAP_MS.into_inner();
    let weight = crate::storage::GAP_WEIGHT;
    tx.execute(
        &st.agent,
        &[
            &batch.agent_id,
            &batch.platform,
            &now,
            &ts_ms,
            &min_gap,
            &max_gap,
            &weight,
            &batch.agent.as_ref().map(|a| a.version.as_str()),
            &batch.agent.as_ref().map(|a| a.uptime_s as i64),
            &batch.drives.as_ref().and_then(|d| serde_json::to_string(d).ok()),
            &batch.host.as_ref().and_then(|h| serde_json::to_string(h).ok()),
        ],
    )
    .await?;
    record_machine(tx, st, batch, ts_ms, now).await?;
    let newest = batch.events.iter().rev().find(|e| e.is_metric());
    if let Some(event) = newest {
        let c = Columns::of(event);
        tx.execute(
            &st.metric,
            &[
                &batch.agent_id,
                &batch.ts,
                &ts_ms,
                &c.cpu,
                &c.mem_free,
                &c.mem_total,
                &c.disk_free,
                &c.disk_total,
                &c.net_rx_bps,
                &c.net_tx_bps,
                &c.uptime_s,
            ],
        )
        .await?;
    }
    Ok(())
}

/// The batch's services and notices (see [`crate::storage::notices`]).
async fn record_machine(
    tx: &Transaction<'_>,
    st: &Prepared,
    batch: &IngestBatch,
    batch_ms: i64,
    now: i64,
) -> Result<(), StorageError> {
    use crate::storage::notices;
    if let Some(json) = notices::services_json(batch) {
        tx.execute(&st.services, &[&batch.agent_id, &batch.ts, &batch_ms, &json]).await?;
    }
    for (ts, ts_ms, kind, level, source, code, message) in notices::notice_params(batch) {
        tx.execute(
            &st.notice,
            &[&batch.agent_id, &ts, &ts_ms, &now, &kind, &level, &source, &code, &message],
        )
        .await?;
    }
    Ok(())
}

async fn clear(tx: &Transaction<'_>, agent_id: Option<&str>) -> Result<usize, StorageError> {
    // Counted from the log's JSON: a clear is rare, and the count is the events'.
    let n: i64 = match agent_id {
        Some(agent) => {
            let n = tx
                .query_one(
                    "WITH d AS (DELETE FROM batch_log WHERE agent_id = $1
                                RETURNING json_array_length(events) AS n)
                     SELECT coalesce(sum(n), 0)::int8 FROM d",
                    &[&agent],
                )
                .await?
                .get(0);
            tx.execute("DELETE FROM agents WHERE agent_id = $1", &[&agent]).await?;
            for sql in crate::storage::notices::CLEAR_AGENT {
                tx.execute(sql, &[&agent]).await?;
            }
            n
        }
        None => {
            let n = tx
                .query_one(
                    "WITH d AS (DELETE FROM batch_log RETURNING json_array_length(events) AS n)
                     SELECT coalesce(sum(n), 0)::int8 FROM d",
                    &[],
                )
                .await?
                .get(0);
            tx.execute("DELETE FROM agents", &[]).await?;
            for sql in crate::storage::notices::CLEAR_ALL {
                tx.execute(sql, &[]).await?;
            }
            n
        }
    };
    super::rollups::clear(tx, agent_id).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// One retention step: each kind of row a chunk at most, so that the ingests queued behind it
/// never wait on a large delete (a minute's expired signatures in one statement were 180,000
/// rows at 3,000 requests/s). Rows another replica is deleting at the same time are skipped,
/// not waited for.
async fn prune(tx: &Transaction<'_>, cutoffs: Cutoffs, now: i64) -> Result<Pruned, StorageError> {
    let chunk = PRUNE_CHUNK as i64;
    let signatures = tx
        .execute(
            "DELETE FROM replay_guard WHERE signature IN
                (SELECT signature FROM replay_guard WHERE expires_ms <= $1
                 ORDER BY expires_ms LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&now, &chunk],
        )
        .await?;
    let mut deleted = super::rollups::prune(tx, cutoffs.tiers).await?;
    deleted.push(signatures);
    let Some(before) = cutoffs.raw else { return Ok(Pruned::of(0, &deleted)) };
    let ids = tx
        .execute(
            "DELETE FROM batches WHERE (batch_id, agent_id) IN
                (SELECT batch_id, agent_id FROM batches WHERE received_ms < $1
                 ORDER BY received_ms LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&before, &chunk],
        )
        .await?;
    let log = tx
        .query_one(
            // Ids grow with ingest time: only the first chunk is looked at, as in SQLite, instead
            // of the whole table for old rows (ingested_ms has no index).
            "WITH d AS (DELETE FROM batch_log WHERE first_id IN
                    (SELECT first_id FROM batch_log ORDER BY first_id LIMIT $2
                     FOR UPDATE SKIP LOCKED)
                    AND ingested_ms < $1
                RETURNING json_array_length(events) AS n)
             SELECT count(*), coalesce(sum(n), 0)::int8 FROM d",
            &[&before, &chunk],
        )
        .await?;
    let (batches, events): (i64, i64) = (log.get(0), log.get(1));
    let notices = tx.execute(crate::storage::notices::PRUNE_NOTICES_PG, &[&before, &chunk]).await?;
    let n = usize::try_from(events).unwrap_or(usize::MAX);
    deleted.extend([ids, u64::try_from(batches).unwrap_or(0), notices]);
    Ok(Pruned::of(n, &deleted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_stay_under_the_notify_limit() {
        let origin = uuid::Uuid::new_v4().to_string();
        let all = Notice::Clear { origin: origin.clone(), agent_id: None };
        let one = Notice::Clear { origin: origin.clone(), agent_id: Some("host".into()) };
        let rows = Notice::Rows { origin, ids: vec![i64::MAX; IDS_PER_NOTICE] };
        for notice in [all, one, rows] {
            let json = serde_json::to_string(&notice).unwrap();
            assert!(json.len() < 8000, "{} bytes", json.len());
            assert_eq!(serde_json::from_str::<Notice>(&json).unwrap(), notice);
        }
    }
}
