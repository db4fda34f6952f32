//! Whether the live feed is connected, and when the next try is if not.

use crate::live::ConnState;
use crate::state::Live;
use dioxus::prelude::*;

#[component]
pub fn ConnIndicator() -> Element {
    let live = use_context::<Live>();
    let now = (live.now_ms)();
    let (class, text) = match &*live.conn.read() {
        ConnState::Live => ("live", "Live".to_owned()),
        ConnState::Connecting => ("connecting", "Connecting…".to_owned()),
        ConnState::Reconnecting { attempt, retry_at_ms } => {
            let secs = ((retry_at_ms - now) / 1000.0).ceil().max(0.0);
            ("down", format!("Disconnected, retry {attempt} in {secs} s"))
        }
    };
    rsx! {
        span { class: "conn {class}", role: "status", "aria-live": "polite",
            span { class: "dot", "aria-hidden": "true" }
            "{text}"
        }
        if let Some(err) = live.api_error.read().as_ref() {
            span { class: "api-error", role: "alert", "{err}; retrying" }
        }
    }
}
