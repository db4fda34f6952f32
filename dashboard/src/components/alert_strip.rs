//! The open alerts above the fleet: how many fire and wait, and the most severe few.

use super::app::Route;
use crate::alert_forms::wire;
use crate::format;
use dioxus::prelude::*;
use protocol::alerts::Alert;

/// Open alerts named in the strip; the alerts page lists them all.
const SHOWN: usize = 5;

#[component]
pub fn AlertStrip(open: Vec<Alert>, firing: usize, pending: usize, now_ms: f64) -> Element {
    if open.is_empty() {
        return rsx! {};
    }
    let more = open.len().saturating_sub(SHOWN);
    rsx! {
        section { class: "alert-strip", "aria-label": "Open alerts",
            p {
                Link { to: Route::AlertsView {}, class: "firing-count", "{firing} firing" }
                " · {pending} pending"
            }
            ul {
                for a in open.into_iter().take(SHOWN) {
                    li { key: "{a.id}", class: "{wire(a.state)}",
                        span { class: "severity {wire(a.severity)}", "{wire(a.severity)}" }
                        " "
                        Link { to: Route::AgentView { id: a.agent_id.clone() }, "{a.agent_id}" }
                        " {a.summary} · started {format::ago(now_ms / 1000.0 - a.started_at as f64)}"
                    }
                }
                if more > 0 {
                    li { Link { to: Route::AlertsView {}, "and {more} more" } }
                }
            }
        }
    }
}
