//! A store that answers every batch as stored and keeps nothing (`--stores null`). Set beside
//! the real stores it shows what the request path costs before any storage: HTTP, token,
//! signature, replay guard, JSON, validation, and the hand-off to a writer thread and back,
//! which is what a real store's writer does too.

use backend::live::Hub;
use backend::metrics::Metrics;
use backend::storage::jobs::{Applied, Job, take_group};
use backend::storage::{
    EventFilter, IngestOutcome, NoticeFilter, Pruned, Range, StorageError, Store, StoreFuture,
};
use protocol::{
    AgentSummary, EventRow, NoticeLevel, NoticeRow, ProcessHistory, ProcessesResponse, Series,
    ServicesResponse,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::mpsc;

#[derive(Debug)]
pub(crate) struct NullStore {
    jobs: mpsc::Sender<Job>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl NullStore {
    pub(crate) fn start(hub: Hub, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let (jobs, mut rx) = mpsc::channel(4096);
        let writer = std::thread::Builder::new().name("null-writer".into()).spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let (group, stop) = take_group(first, || rx.try_recv().ok());
                for job in group {
                    let applied = match &job {
                        Job::Ingest { batch, .. } => Applied::Ingest(
                            IngestOutcome { stored: batch.events.len(), duplicate: false },
                            Vec::new(),
                        ),
                        Job::Clear { .. } => Applied::Count(0),
                        Job::Prune { .. } => Applied::Pruned(Pruned::default()),
                        Job::Ping { .. } | Job::Shutdown => Applied::Unit,
                    };
                    job.release(applied, &hub, &metrics);
                }
                if stop {
                    break;
                }
            }
        })?;
        Ok(Self { jobs, writer: Mutex::new(Some(writer)) })
    }
}

/// The bench only ingests; a read would be a mistake in it.
fn not_kept<T: Send + 'static>() -> StoreFuture<'static, T> {
    Box::pin(async { Err(StorageError::Closed) })
}

impl Store for NullStore {
    fn jobs(&self) -> &mpsc::Sender<Job> {
        &self.jobs
    }
    fn ping_read(&self) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    fn events(&self, _: EventFilter) -> StoreFuture<'_, Vec<EventRow>> {
        not_kept()
    }
    fn agents(&self, _: i64, _: Option<String>) -> StoreFuture<'_, Vec<AgentSummary>> {
        not_kept()
    }
    fn agent_exists(&self, _: String) -> StoreFuture<'_, bool> {
        not_kept()
    }
    fn series(&self, _: String, _: Range) -> StoreFuture<'_, Series> {
        not_kept()
    }
    fn latest_processes(&self, _: String) -> StoreFuture<'_, ProcessesResponse> {
        not_kept()
    }
    fn process_history(&self, _: String, _: String, _: Range) -> StoreFuture<'_, ProcessHistory> {
        not_kept()
    }
    fn services(&self, _: String) -> StoreFuture<'_, ServicesResponse> {
        not_kept()
    }
    fn notices(&self, _: NoticeFilter) -> StoreFuture<'_, Vec<NoticeRow>> {
        not_kept()
    }
    fn count_log_notices(&self, _: String, _: NoticeLevel, _: i64) -> StoreFuture<'_, u64> {
        not_kept()
    }
    fn close(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let _ = self.jobs.send(Job::Shutdown).await;
            let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(writer) = writer {
                let _ = tokio::task::spawn_blocking(move || writer.join()).await;
            }
        })
    }
}
