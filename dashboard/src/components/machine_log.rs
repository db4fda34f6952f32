//! What an agent says about its machine besides figures: the services it watches and its
//! notices (service changes, system log entries such as the Event Log's). Fetched again as its
//! batches come.

use crate::api;
use crate::format;
use dioxus::prelude::*;
use futures_util::future::try_join;
use protocol::{NoticeLevel, NoticeRow, Service, ServiceState};

/// Fetches both lists for `id`, together, whenever a batch of it arrives (`newest_row_id`
/// changes).
#[component]
pub fn MachineLog(id: String, newest_row_id: i64, offset_min: i32) -> Element {
    let fetched = use_resource(use_reactive!(|id, newest_row_id| async move {
        let _ = newest_row_id;
        let (services, notices) = try_join(api::services(&id), api::notices(&id)).await?;
        Ok::<_, api::ApiError>((services.services, notices))
    }));
    match &*fetched.read() {
        None => rsx! {},
        Some(Err(e)) => {
            rsx! { p { class: "api-error", role: "alert", "Could not load services and notices: {e}" } }
        }
        Some(Ok((services, notices))) => rsx! {
            ServiceTable { services: services.clone() }
            NoticeList { notices: notices.clone(), offset_min }
        },
    }
}

/// Services that are not running first, then by name; pure for tests.
#[component]
pub fn ServiceTable(services: Vec<Service>) -> Element {
    if services.is_empty() {
        return rsx! {};
    }
    let mut services = services;
    services.sort_by(|a, b| {
        (a.state == ServiceState::Running, &a.name)
            .cmp(&(b.state == ServiceState::Running, &b.name))
    });
    let down = services.iter().filter(|s| s.state != ServiceState::Running).count();
    rsx! {
        section { class: "services", "aria-labelledby": "services-title",
            h2 { id: "services-title", "Services ({services.len()} watched, {down} not running)" }
            table {
                thead {
                    tr {
                        th { scope: "col", "Service" }
                        th { scope: "col", "State" }
                        th { scope: "col", "Start" }
                    }
                }
                tbody {
                    for s in services {
                        tr { key: "{s.name}",
                            td { title: "{s.name}", {s.display_name.clone().unwrap_or_else(|| s.name.clone())} }
                            td { span { class: "badge state-{s.state.as_str()}", "{s.state.as_str()}" } }
                            td { {s.start.map_or("–", start_word)} }
                        }
                    }
                }
            }
        }
    }
}

fn start_word(mode: protocol::StartMode) -> &'static str {
    match mode {
        protocol::StartMode::Auto => "automatic",
        protocol::StartMode::Manual => "manual",
        protocol::StartMode::Disabled => "disabled",
    }
}

/// Newest first, as the API answers; pure for tests.
#[component]
pub fn NoticeList(notices: Vec<NoticeRow>, offset_min: i32) -> Element {
    rsx! {
        section { class: "notices", "aria-labelledby": "notices-title",
            h2 { id: "notices-title", "Notices" }
            if notices.is_empty() {
                p { class: "empty", "No service change or log entry yet." }
            } else {
                table {
                    thead {
                        tr {
                            th { scope: "col", "Time" }
                            th { scope: "col", "Level" }
                            th { scope: "col", "Source" }
                            th { scope: "col", "Message" }
                        }
                    }
                    tbody {
                        for n in notices {
                            tr { key: "{n.id}",
                                td { {format::local_ts(&n.ts, offset_min)} }
                                td { span { class: "severity {level_class(n.level)}", "{n.level.as_str()}" } }
                                td { {source(&n)} }
                                td { class: "message", "{n.message}" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A level as the severity it reads like, styled as alert severities are.
fn level_class(level: NoticeLevel) -> &'static str {
    match level {
        NoticeLevel::Error => "critical",
        NoticeLevel::Warning => "warning",
        NoticeLevel::Info => "info",
    }
}

fn source(n: &NoticeRow) -> String {
    match n.code {
        Some(code) => format!("{} ({code})", n.source),
        None => n.source.clone(),
    }
}
