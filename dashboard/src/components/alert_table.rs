//! Alerts as a table: rule, agent, severity, state, their times and the summary.

use super::app::Route;
use crate::alert_forms::wire;
use crate::format;
use dioxus::prelude::*;
use protocol::alerts::Alert;

/// A unix-seconds time as a local clock time.
fn at(unix_s: Option<i64>, offset_min: i32) -> String {
    unix_s.map(|s| format::date_time(s * 1000, offset_min)).unwrap_or_else(|| "–".to_owned())
}

#[component]
pub fn AlertTable(alerts: Vec<Alert>, now_ms: f64, offset_min: i32, empty: String) -> Element {
    if alerts.is_empty() {
        return rsx! { p { class: "empty", "{empty}" } };
    }
    rsx! {
        table { class: "alerts",
            thead {
                tr {
                    th { scope: "col", "Severity" }
                    th { scope: "col", "State" }
                    th { scope: "col", "Rule" }
                    th { scope: "col", "Agent" }
                    th { scope: "col", "Started" }
                    th { scope: "col", "Fired" }
                    th { scope: "col", "Resolved" }
                    th { scope: "col", "Summary" }
                }
            }
            tbody {
                for a in alerts {
                    tr { key: "{a.id}", class: "{wire(a.state)}",
                        td { span { class: "severity {wire(a.severity)}", "{wire(a.severity)}" } }
                        td { class: "state", "{wire(a.state)}" }
                        td { "{a.rule_name}" }
                        td { Link { to: Route::AgentView { id: a.agent_id.clone() }, "{a.agent_id}" } }
                        td { title: "{at(Some(a.started_at), offset_min)}",
                            "{format::ago(now_ms / 1000.0 - a.started_at as f64)}"
                        }
                        td { "{at(a.fired_at, offset_min)}" }
                        td { "{at(a.resolved_at, offset_min)}" }
                        td { class: "summary", "{a.summary}" }
                    }
                }
            }
        }
    }
}
