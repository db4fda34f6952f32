//! The latest top processes of an agent, live; choosing one charts its history.

use super::line_chart::{Line, LineChart, Unit};
use crate::api;
use crate::chart::nice_max;
use crate::columns::Range;
use crate::format;
use crate::state::Live;
use crate::store::AgentState;
use dioxus::prelude::*;
use protocol::EventRow;

#[component]
pub fn Processes(agent: AgentState, range: Range) -> Element {
    let live = use_context::<Live>();
    let mut chosen = use_signal(|| None::<String>);
    let id = agent.summary.agent_id.clone();
    // Seeds the table before the first live batch with processes arrives.
    let fetched = use_resource(use_reactive!(|id| async move { api::processes(&id).await }));
    let rows: Vec<EventRow> = if agent.processes.is_empty() {
        match &*fetched.read() {
            Some(Ok(p)) => p.processes.clone(),
            _ => Vec::new(),
        }
    } else {
        agent.processes.values().cloned().collect()
    };
    rsx! {
        ProcessTable { rows, chosen: chosen(), on_choose: move |name| chosen.set(Some(name)) }
        if let Some(name) = chosen() {
            ProcessChart { agent_id: id, name, range, offset_min: live.offset_min }
        }
    }
}

/// Rows by CPU, highest first; pure for tests.
#[component]
pub fn ProcessTable(
    rows: Vec<EventRow>,
    chosen: Option<String>,
    on_choose: EventHandler<String>,
) -> Element {
    let mut rows = rows;
    rows.sort_by(|a, b| b.cpu.partial_cmp(&a.cpu).unwrap_or(std::cmp::Ordering::Equal));
    rsx! {
        section { class: "processes", "aria-labelledby": "proc-title",
            h2 { id: "proc-title", "Top processes" }
            if rows.is_empty() {
                p { class: "empty", "This agent has not sent any processes yet." }
            } else {
                table {
                    thead {
                        tr {
                            th { scope: "col", "Process" }
                            th { scope: "col", "PID" }
                            th { scope: "col", class: "num", "CPU" }
                            th { scope: "col", class: "num", "Memory" }
                        }
                    }
                    tbody {
                        for row in rows {
                            {
                                let name = row.proc_name.clone().unwrap_or_default();
                                let selected = chosen.as_deref() == Some(name.as_str());
                                let rss = row.rss.map_or_else(|| "–".to_owned(), |r| format::bytes(r as f64));
                                rsx! {
                                    tr { key: "{row.id}", class: if selected { "selected" },
                                        td {
                                            button {
                                                r#type: "button",
                                                class: "link",
                                                title: "Chart this process",
                                                onclick: {
                                                    let name = name.clone();
                                                    move |_| on_choose.call(name.clone())
                                                },
                                                "{name}"
                                            }
                                        }
                                        td { {row.pid.map_or_else(|| "–".to_owned(), |p| p.to_string())} }
                                        td { class: "num", "{format::percent(row.cpu)}" }
                                        td { class: "num", "{rss}" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One process's CPU and memory over the chosen range (live shows the last 15 minutes).
#[component]
fn ProcessChart(agent_id: String, name: String, range: Range, offset_min: i32) -> Element {
    let history = use_resource(use_reactive!(|agent_id, name, range| async move {
        let to = (js_sys::Date::now() / 1000.0).ceil() as i64 + 1;
        api::process_history(&agent_id, &name, to - range.span_ms() / 1000, to).await
    }));
    let answer = history.read();
    let Some(result) = answer.as_ref() else {
        return rsx! { p { class: "loading", "Loading {name}…" } };
    };
    match result {
        Err(e) => rsx! { p { class: "api-error", role: "alert", "Could not load {name}: {e}" } },
        Ok(h) => {
            let ms = |i: usize| h.t[i] * 1000;
            let cpu = (0..h.t.len()).map(|i| (ms(i), h.cpu_avg[i])).collect();
            let rss: Vec<_> = (0..h.t.len()).map(|i| (ms(i), h.rss_avg[i])).collect();
            let rss_top =
                nice_max(rss.iter().filter_map(|p: &(i64, Option<f64>)| p.1).fold(0.0, f64::max));
            let (t0, t1, gap) = (h.from * 1000, h.to * 1000, h.step * 3000);
            rsx! {
                div { class: "charts",
                    LineChart {
                        title: "{name} CPU",
                        lines: vec![Line { label: "avg".into(), class: "cpu".into(), points: cpu }],
                        t0, t1, y_max: 1.0, unit: Unit::Percent, max_gap_ms: gap.max(15_000), offset_min,
                    }
                    LineChart {
                        title: "{name} memory",
                        lines: vec![Line { label: "rss".into(), class: "mem".into(), points: rss }],
                        t0, t1, y_max: rss_top, unit: Unit::Bytes, max_gap_ms: gap.max(15_000), offset_min,
                    }
                }
            }
        }
    }
}
