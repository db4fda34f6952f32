//! The app-wide context every view reads: the store, the connection and a ticking clock.

use crate::live::ConnState;
use crate::store::Store;
use dioxus::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Live {
    pub store: Signal<Store>,
    pub conn: Signal<ConnState>,
    /// Why the last REST call failed, shown until one succeeds.
    pub api_error: Signal<Option<String>>,
    /// The browser clock in milliseconds, advanced every second so "ago" times tick.
    pub now_ms: Signal<f64>,
    /// Minutes east of UTC, for local times.
    pub offset_min: i32,
}

impl Live {
    /// Creates the signals in the current scope.
    pub(crate) fn new(store: Store, now_ms: f64, offset_min: i32) -> Self {
        Self {
            store: Signal::new(store),
            conn: Signal::new(ConnState::Connecting),
            api_error: Signal::new(None),
            now_ms: Signal::new(now_ms),
            offset_min,
        }
    }
}
