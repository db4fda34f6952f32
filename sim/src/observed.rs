//! A transport wrapper that notes when each delivery attempt started and ended and whether it
//! stored the batch, so the back-off can be checked from the outside.

use agent::send::{Delivery, Transport};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    pub start: Instant,
    pub end: Instant,
    pub stored: bool,
}

#[derive(Debug)]
pub(crate) struct Observed<T> {
    pub inner: T,
    pub attempts: Arc<Mutex<Vec<Attempt>>>,
}

impl<T: Transport> Transport for Observed<T> {
    async fn send(&self, body: &[u8]) -> Delivery {
        let start = Instant::now();
        let answer = self.inner.send(body).await;
        let stored = matches!(answer, Delivery::Stored { .. });
        let attempt = Attempt { start, end: Instant::now(), stored };
        self.attempts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(attempt);
        answer
    }

    async fn probe(&self) -> bool {
        self.inner.probe().await
    }
}
