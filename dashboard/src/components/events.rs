//! The event log: newest first, filtered by agent and type, paged by id, updated live.

use super::clear_dialog::ClearDialog;
use crate::api::{self, EventQuery};
use crate::auth;
use crate::format;
use crate::state::Live;
use dioxus::prelude::*;
use protocol::EventRow;
use std::collections::BTreeMap;

const PAGE: usize = 50;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Filter {
    pub agent_id: Option<String>,
    pub event_type: Option<String>,
}

impl Filter {
    fn matches(&self, row: &EventRow) -> bool {
        self.agent_id.as_ref().is_none_or(|a| *a == row.agent_id)
            && self.event_type.as_ref().is_none_or(|t| *t == row.event_type)
    }
}

/// Fetched pages plus live rows newer than the oldest fetched one, newest first, each id once.
///
/// Paging asks for rows before the oldest id shown, so rows arriving meanwhile never shift a
/// page: nothing is skipped or repeated.
pub(crate) fn merge<'a>(
    pages: &'a BTreeMap<i64, EventRow>,
    live: &'a BTreeMap<i64, EventRow>,
    filter: &Filter,
) -> Vec<&'a EventRow> {
    let oldest = pages.keys().next().copied().unwrap_or(i64::MIN);
    let mut rows: BTreeMap<i64, &EventRow> = pages.iter().map(|(id, r)| (*id, r)).collect();
    for (id, row) in live.range(oldest..) {
        if filter.matches(row) {
            rows.entry(*id).or_insert(row);
        }
    }
    rows.into_values().rev().collect()
}

#[component]
pub fn Events() -> Element {
    let live = use_context::<Live>();
    let mut filter = use_signal(Filter::default);
    let mut pages = use_signal(BTreeMap::<i64, EventRow>::new);
    let mut exhausted = use_signal(|| false);
    let mut error = use_signal(|| None::<String>);
    let mut clearing = use_signal(|| false);
    let clears = use_memo(move || live.store.read().clears);
    let load = move |before_id: Option<i64>| {
        let f = filter.peek().clone();
        let query = EventQuery {
            agent_id: f.agent_id.clone(),
            event_type: f.event_type.clone(),
            before_id,
            limit: PAGE,
        };
        spawn(async move {
            let result = api::events(&query).await;
            // An answer for a filter that has since changed is dropped.
            if *filter.peek() != f {
                return;
            }
            match result {
                Ok(rows) => {
                    exhausted.set(rows.len() < PAGE);
                    let mut p = pages.write();
                    if before_id.is_none() {
                        p.clear();
                    }
                    p.extend(rows.into_iter().map(|r| (r.id, r)));
                    error.set(None);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    use_effect(move || {
        let _ = (filter.read(), clears());
        load(None);
    });
    let f = filter.read().clone();
    let store = live.store.read();
    let rows: Vec<EventRow> =
        merge(&pages.read(), &store.events, &f).into_iter().cloned().collect();
    let agents: Vec<String> = store.agents.keys().cloned().collect();
    let oldest = pages.read().keys().next().copied();
    rsx! {
        section { class: "events", "aria-labelledby": "events-title",
            div { class: "toolbar",
                h1 { id: "events-title", "Events" }
                label { class: "field",
                    "Agent"
                    select {
                        onchange: move |e| {
                            let v = e.value();
                            filter.write().agent_id = (!v.is_empty()).then_some(v);
                        },
                        option { value: "", "all agents" }
                        for a in agents {
                            option { value: "{a}", selected: f.agent_id.as_deref() == Some(a.as_str()), "{a}" }
                        }
                    }
                }
                label { class: "field",
                    "Type"
                    select {
                        onchange: move |e| {
                            let v = e.value();
                            filter.write().event_type = (!v.is_empty()).then_some(v);
                        },
                        option { value: "", "all types" }
                        option { value: "metric", "metric" }
                        option { value: "proc", "proc" }
                    }
                }
                if auth::admin_login() {
                    button { r#type: "button", class: "danger", onclick: move |_| clearing.set(true),
                        if f.agent_id.is_some() { "Clear this agent's events" } else { "Clear all events" }
                    }
                }
            }
            if let Some(e) = error() {
                p { class: "api-error", role: "alert", "{e}; showing what arrived live" }
            }
            EventTable { rows, offset_min: live.offset_min }
            if !exhausted() {
                if let Some(before) = oldest {
                    button { r#type: "button", class: "more", onclick: move |_| load(Some(before)), "Older events" }
                }
            }
            if clearing() {
                ClearDialog { agent_id: f.agent_id.clone(), on_close: move |_| clearing.set(false) }
            }
        }
    }
}

/// The rows as a table; pure for tests.
#[component]
pub fn EventTable(rows: Vec<EventRow>, offset_min: i32) -> Element {
    if rows.is_empty() {
        return rsx! { p { class: "empty", "No events match." } };
    }
    rsx! {
        table { class: "log",
            caption { class: "sr-only", "Events, newest first" }
            thead {
                tr {
                    th { scope: "col", class: "num", "ID" }
                    th { scope: "col", "Time" }
                    th { scope: "col", "Agent" }
                    th { scope: "col", "Type" }
                    th { scope: "col", class: "num", "CPU" }
                    th { scope: "col", "Details" }
                }
            }
            tbody {
                for row in rows {
                    {
                        let when = format::local_ts(&row.ts, offset_min);
                        let details = match row.event_type.as_str() {
                            "proc" => format::process_details(
                                row.proc_name.as_deref(),
                                row.pid,
                                row.rss,
                            ),
                            _ => match (row.mem_free, row.mem_total) {
                                (Some(free), Some(total)) => format!(
                                    "memory {} used of {}",
                                    format::bytes(total.saturating_sub(free) as f64),
                                    format::bytes(total as f64)
                                ),
                                (Some(free), None) => format!("{} free", format::bytes(free as f64)),
                                _ => String::new(),
                            },
                        };
                        rsx! {
                            tr { key: "{row.id}",
                                td { class: "num", "{row.id}" }
                                td { "{when}" }
                                td { "{row.agent_id}" }
                                td { "{row.event_type}" }
                                td { class: "num", "{format::percent(row.cpu)}" }
                                td { "{details}" }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{NOW_MS, metric, process};

    fn map(rows: Vec<EventRow>) -> BTreeMap<i64, EventRow> {
        rows.into_iter().map(|r| (r.id, r)).collect()
    }

    #[test]
    fn live_rows_join_the_head_and_never_repeat() {
        let pages = map((10..=20).map(|i| metric(i, "a", NOW_MS, 0.1)).collect());
        // Live holds rows older than the page (not shown), overlapping ones and new ones.
        let live = map(vec![
            metric(5, "a", NOW_MS, 0.1),
            metric(19, "a", NOW_MS, 0.1),
            metric(21, "a", NOW_MS, 0.1),
            process(22, "a", NOW_MS, 1, "x.exe", 0.1),
            metric(23, "b", NOW_MS, 0.1),
        ]);
        let filter = Filter { agent_id: Some("a".into()), event_type: Some("metric".into()) };
        let ids: Vec<i64> = merge(&pages, &live, &filter).iter().map(|r| r.id).collect();
        assert_eq!(ids, [21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10]);
    }

    #[test]
    fn without_pages_live_rows_show_alone() {
        let live = map(vec![metric(1, "a", NOW_MS, 0.1), metric(2, "b", NOW_MS, 0.1)]);
        let no_pages = BTreeMap::new();
        let all = merge(&no_pages, &live, &Filter::default());
        assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 1]);
    }
}
