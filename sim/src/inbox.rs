//! A backend in memory, for scenarios on the paused clock (a real socket would make the paused
//! clock jump past every timeout): it stores by `batch_id` like the real one, can be switched
//! off, and can fail a share of requests at random.

use crate::ledger::Ledger;
use crate::numbered::Stamp;
use agent::send::{Delivery, Transport};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub(crate) struct Inbox {
    pub ledger: Arc<Ledger>,
    /// Shared by the fleet: the one backend is up or down for all.
    pub up: Arc<AtomicBool>,
    /// Percent of requests answered 503 while up.
    flaky_percent: u8,
    rng: Mutex<fastrand::Rng>,
}

impl Inbox {
    pub(crate) fn new(
        ledger: Arc<Ledger>,
        up: Arc<AtomicBool>,
        flaky_percent: u8,
        seed: u64,
    ) -> Self {
        Self { ledger, up, flaky_percent, rng: Mutex::new(fastrand::Rng::with_seed(seed)) }
    }

    fn flakes(&self) -> bool {
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        rng.u8(..100) < self.flaky_percent
    }
}

impl Transport for Inbox {
    async fn send(&self, body: &[u8]) -> Delivery {
        // A request takes a moment: an agent killed "now" must not finish one in the same poll.
        tokio::task::yield_now().await;
        if !self.up.load(Relaxed) || self.flakes() {
            return Delivery::Retry("503 Service Unavailable".into());
        }
        match Stamp::of(body) {
            Ok(stamp) => Delivery::Stored { duplicate: self.ledger.receive(stamp) },
            Err(why) => Delivery::Rejected(format!("422 invalid: {why}")),
        }
    }

    async fn probe(&self) -> bool {
        self.up.load(Relaxed)
    }
}
