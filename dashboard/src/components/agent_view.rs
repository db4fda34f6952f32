//! One agent: open alerts, latest figures, charts over a chosen range, top processes and clearing.

use super::alert_table::AlertTable;
use super::clear_dialog::ClearDialog;
use super::drives::Drives;
use super::host::HostDetail;
use super::line_chart::{Line, LineChart, Unit};
use super::machine_log::MachineLog;
use super::processes::Processes;
use crate::api;
use crate::auth;
use crate::columns::{Columns, Range};
use crate::format;
use crate::state::Live;
use crate::store::AgentState;
use dioxus::prelude::*;
use protocol::Series;

#[component]
pub fn AgentView(id: String) -> Element {
    let live = use_context::<Live>();
    let mut range = use_signal(|| Range::Live);
    let mut clearing = use_signal(|| false);
    let series = use_resource(use_reactive!(|id| {
        let span = range().span_ms();
        async move {
            let to = (*live.now_ms.peek() / 1000.0).ceil() as i64 + 1;
            api::series(&id, to - span / 1000, to).await
        }
    }));
    // Its drives and host figures come with no live row: its own row is fetched again with
    // each batch of it, once it is known.
    let newest_row_id = live.store.read().agents.get(&id).map(AgentState::newest_row_id);
    use_resource(use_reactive!(|id, newest_row_id| async move {
        if newest_row_id.is_some() {
            api::refresh_agents(live, Some(&id)).await;
        }
    }));
    let store = live.store.read();
    let Some(agent) = store.agents.get(&id) else {
        return rsx! {
            section { class: "agent",
                h1 { "{id}" }
                p { class: "loading", if store.loaded { "No agent named “{id}” has reported." } else { "Loading…" } }
            }
        };
    };
    let fetched = series.read();
    let (series, error) = match &*fetched {
        Some(Ok(s)) => (Some(s.clone()), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };
    rsx! {
        section { class: "agent", "aria-labelledby": "agent-title",
            div { class: "toolbar",
                h1 { id: "agent-title", "{id}" }
                div { class: "ranges", role: "group", "aria-label": "Time range",
                    for r in Range::ALL {
                        button {
                            r#type: "button",
                            class: if range() == r { "range active" } else { "range" },
                            "aria-pressed": "{range() == r}",
                            onclick: move |_| range.set(r),
                            "{r.label()}"
                        }
                    }
                }
                if auth::admin_login() {
                    button { r#type: "button", class: "danger", onclick: move |_| clearing.set(true),
                        "Clear this agent's events"
                    }
                }
            }
            if let Some(e) = error {
                p { class: "api-error", role: "alert", "Could not load the chart: {e}" }
            }
            h2 { "Open alerts" }
            AlertTable {
                alerts: store.alerts.open(Some(&id)),
                now_ms: (live.now_ms)(),
                offset_min: live.offset_min,
                empty: "No open alert.",
            }
            AgentCharts {
                agent: agent.clone(),
                series,
                range: range(),
                now_ms: (live.now_ms)(),
                offset_min: live.offset_min,
            }
            Processes { agent: agent.clone(), range: range() }
            MachineLog {
                id: id.clone(),
                newest_row_id: agent.newest_row_id(),
                offset_min: live.offset_min,
            }
            if clearing() {
                ClearDialog { agent_id: Some(id.clone()), on_close: move |_| clearing.set(false) }
            }
        }
    }
}

/// Figures and the four charts; pure, so it renders the same in tests.
#[component]
pub fn AgentCharts(
    agent: AgentState,
    series: Option<Series>,
    range: Range,
    now_ms: f64,
    offset_min: i32,
) -> Element {
    let s = &agent.summary;
    let timeline = if range == Range::Live { agent.timeline() } else { Vec::new() };
    let columns = Columns::build(series.as_ref(), &timeline);
    let (t0, t1) = match (&series, range) {
        (Some(s), r) if r != Range::Live => (s.from * 1000, s.to * 1000),
        _ => (now_ms as i64 - range.span_ms(), now_ms as i64),
    };
    let step_ms = series.as_ref().map_or(0, |s| s.step * 1000);
    let max_gap_ms = (3 * step_ms).max((3000.0 * agent.interval_s()) as i64);
    let state = if agent.online(now_ms) { "online" } else { "offline" };
    let ago = format::ago(agent.seen_ago_s(now_ms));
    let uptime = s.uptime_s.map(format::duration).unwrap_or_else(|| "–".to_owned());
    // Agents before the version was sent say nothing; the line then says nothing either.
    let build = match (&s.agent_version, s.agent_uptime_s) {
        (Some(v), Some(up)) => format!(" · agent {v}, running {}", format::duration(up)),
        _ => String::new(),
    };
    let line = |label: &str, class: &str, points: &Vec<_>| Line {
        label: label.to_owned(),
        class: class.to_owned(),
        points: points.clone(),
    };
    rsx! {
        p { class: "meta",
            span { class: "badge {state}", "{state}" }
            " {s.platform} · last seen {ago} · every {agent.interval_s():.0} s · up {uptime}{build}"
        }
        dl { class: "figures wide",
            div { dt { "CPU" } dd { "{format::percent(s.cpu)}" } }
            div { dt { "Memory used" } dd { "{format::percent(agent.mem_fraction())}" } }
            div { dt { "Network in" } dd { "{format::rate(s.net_rx_bps)}" } }
            div { dt { "Network out" } dd { "{format::rate(s.net_tx_bps)}" } }
        }
        Drives { drives: s.drives.clone() }
        HostDetail { host: s.host.clone() }
        div { class: "charts",
            LineChart {
                title: "CPU",
                lines: vec![line("avg", "cpu", &columns.cpu_avg), line("max", "cpu-max", &columns.cpu_max)],
                t0, t1, y_max: 1.0, unit: Unit::Percent, max_gap_ms, offset_min,
            }
            LineChart {
                title: "Memory used",
                lines: vec![line("used", "mem", &columns.mem_used)],
                t0, t1, y_max: columns.mem_axis, unit: Unit::Bytes, max_gap_ms, offset_min,
            }
            LineChart {
                title: "Disk used",
                lines: vec![line("used", "disk", &columns.disk_used)],
                t0, t1, y_max: columns.disk_axis, unit: Unit::Bytes, max_gap_ms, offset_min,
            }
            LineChart {
                title: "Network",
                lines: vec![line("in", "rx", &columns.net_rx), line("out", "tx", &columns.net_tx)],
                t0, t1, y_max: columns.net_axis, unit: Unit::Rate, max_gap_ms, offset_min,
            }
        }
    }
}
