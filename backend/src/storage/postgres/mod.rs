//! PostgreSQL storage (`DATABASE_URL`), for several backend replicas acting as one: they share
//! the tables, the replay guard and batch ids, and the live feed through LISTEN/NOTIFY.

pub(crate) mod alerts;
mod listen;
mod pool;
pub(crate) mod queries;
mod rollups;
mod schema;
pub(crate) mod sessions;
mod writer;

use super::jobs::Job;
use super::{EventFilter, NoticeFilter, Range, StorageError, Store, StoreFuture};
use crate::live::Hub;
use crate::metrics::Metrics;
use pool::Pool;
use protocol::{
    AgentSummary, EventRow, NoticeLevel, NoticeRow, ProcessHistory, ProcessesResponse, Secret,
    Series, ServicesResponse,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const READERS: usize = 4;
const WRITE_QUEUE: usize = 4096;
const LISTEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Creates an empty database named `name` on the server `admin_url` reaches, and returns the
/// new database's URL. For tests and benchmarks, which want a database each.
pub async fn create_database(admin_url: &str, name: &str) -> Result<String, StorageError> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(StorageError::BadDatabaseName(name.to_owned()));
    }
    let client = pool::connect(&Secret::new(admin_url)).await?;
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

#[derive(Debug)]
pub(crate) struct PgStorage {
    jobs: mpsc::Sender<Job>,
    pool: Arc<Pool>,
    writer: Mutex<Option<JoinHandle<()>>>,
    listener: JoinHandle<()>,
    merges: JoinHandle<()>,
}

impl PgStorage {
    /// Connects, migrates (one replica at a time), and starts the writer, the listener and the
    /// tier merges.
    pub(crate) async fn open(
        url: &Secret,
        hub: Hub,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StorageError> {
        Self::open_with(url, hub, metrics, rollups::MERGE_EVERY).await
    }

    /// [`Self::open`], merging the tiers' deltas every `merge_every`.
    pub(crate) async fn open_with(
        url: &Secret,
        hub: Hub,
        metrics: Arc<Metrics>,
        merge_every: std::time::Duration,
    ) -> Result<Self, StorageError> {
        let mut client = pool::connect(url).await?;
        schema::migrate(&mut client).await?;
        // Tells this replica's own notices apart from the others'.
        let origin: Arc<str> = Arc::from(uuid::Uuid::new_v4().to_string());
        let pool = Arc::new(Pool::new(url.clone(), READERS));
        let (jobs, rx) = mpsc::channel(WRITE_QUEUE);
        let writer = writer::Writer::open(url.clone(), client, origin.clone()).await?;
        let writer = tokio::spawn(writer::run(writer, rx, hub.clone(), metrics));
        let (ready, listening) = oneshot::channel();
        let listener = tokio::spawn(listen::run(url.clone(), pool.clone(), hub, origin, ready));
        let merges = tokio::spawn(rollups::run_merges(url.clone(), merge_every));
        let storage = Self { jobs, pool, writer: Mutex::new(Some(writer)), listener, merges };
        if tokio::time::timeout(LISTEN_TIMEOUT, listening).await.is_err() {
            storage.shut_down().await;
            return Err(StorageError::ListenTimeout(LISTEN_TIMEOUT));
        }
        Ok(storage)
    }

    async fn shut_down(&self) {
        let _ = self.jobs.send(Job::Shutdown).await;
        let handle = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        self.listener.abort();
        self.merges.abort();
    }
}

impl Store for PgStorage {
    fn jobs(&self) -> &mpsc::Sender<Job> {
        &self.jobs
    }

    fn ping_read(&self) -> StoreFuture<'_, ()> {
        Box::pin(
            async move { Ok(self.pool.get().await?.simple_query("SELECT 1").await.map(drop)?) },
        )
    }

    fn events(&self, filter: EventFilter) -> StoreFuture<'_, Vec<EventRow>> {
        Box::pin(async move { queries::events(&*self.pool.get().await?, &filter).await })
    }

    fn agents(&self, now_ms: i64, only: Option<String>) -> StoreFuture<'_, Vec<AgentSummary>> {
        Box::pin(async move {
            Ok(queries::agents(&*self.pool.get().await?, now_ms, only.as_deref()).await?)
        })
    }

    fn agent_exists(&self, agent_id: String) -> StoreFuture<'_, bool> {
        Box::pin(
            async move { Ok(queries::agent_exists(&*self.pool.get().await?, &agent_id).await?) },
        )
    }

    fn series(&self, agent_id: String, range: Range) -> StoreFuture<'_, Series> {
        Box::pin(
            async move { Ok(queries::series(&*self.pool.get().await?, &agent_id, range).await?) },
        )
    }

    fn latest_processes(&self, agent_id: String) -> StoreFuture<'_, ProcessesResponse> {
        Box::pin(async move {
            Ok(queries::latest_processes(&*self.pool.get().await?, &agent_id).await?)
        })
    }

    fn process_history(
        &self,
        agent_id: String,
        name: String,
        range: Range,
    ) -> StoreFuture<'_, ProcessHistory> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            Ok(queries::process_history(&client, &agent_id, &name, range).await?)
        })
    }

    fn services(&self, agent_id: String) -> StoreFuture<'_, ServicesResponse> {
        Box::pin(async move { Ok(queries::services(&*self.pool.get().await?, &agent_id).await?) })
    }

    fn notices(&self, filter: NoticeFilter) -> StoreFuture<'_, Vec<NoticeRow>> {
        Box::pin(async move { Ok(queries::notices(&*self.pool.get().await?, &filter).await?) })
    }

    fn count_log_notices(
        &self,
        agent_id: String,
        level: NoticeLevel,
        since_ms: i64,
    ) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            Ok(queries::count_log_notices(&client, &agent_id, level, since_ms).await?)
        })
    }

    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(self.shut_down())
    }
}
