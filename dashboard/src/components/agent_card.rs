//! One agent in the fleet: state, firing alerts, figures and sparklines; greyed when offline.

use super::app::Route;
use super::sparkline::Sparkline;
use crate::chart::Point;
use crate::format;
use crate::store::AgentState;
use dioxus::prelude::*;

/// Readings shown in a card's sparklines: the last ten minutes at a five-second interval.
const SPARK_POINTS: usize = 120;

#[component]
pub fn AgentCard(agent: AgentState, firing: usize, now_ms: f64) -> Element {
    let s = &agent.summary;
    let online = agent.online(now_ms);
    let (state_class, state_text) =
        if online { ("online", "online") } else { ("offline", "offline") };
    let timeline = agent.timeline();
    let recent = &timeline[timeline.len().saturating_sub(SPARK_POINTS)..];
    let cpu: Vec<Point> = recent.iter().map(|p| (p.t_ms, p.cpu)).collect();
    let mem: Vec<Point> = recent
        .iter()
        .map(|p| (p.t_ms, p.mem_used.zip(p.mem_total).map(|(u, t)| u / t.max(1.0))))
        .collect();
    let cpu_text = format::percent(s.cpu);
    let mem_text = format::percent(agent.mem_fraction());
    let mem_detail = match (s.mem_free, s.mem_total) {
        (Some(free), Some(total)) => format!(
            "{} of {}",
            format::bytes(total.saturating_sub(free) as f64),
            format::bytes(total as f64)
        ),
        _ => String::new(),
    };
    let ago = format::ago(agent.seen_ago_s(now_ms));
    let id = s.agent_id.clone();
    rsx! {
        article { class: "card {state_class}", "aria-label": "{id}, {state_text}",
            header {
                h3 { Link { to: Route::AgentView { id: id.clone() }, "{id}" } }
                if firing > 0 {
                    span { class: "badge firing", title: "firing alerts", "{firing} firing" }
                }
                span { class: "badge {state_class}", "{state_text}" }
            }
            p { class: "meta", "{s.platform} · last seen {ago}" }
            dl { class: "figures",
                div {
                    dt { "CPU" }
                    dd { class: "cpu", "{cpu_text}" }
                    Sparkline { label: "CPU, last readings", points: cpu, y_max: 1.0, class: "cpu" }
                }
                div {
                    dt { "Memory" }
                    dd { class: "mem", title: "{mem_detail}", "{mem_text}" }
                    Sparkline { label: "Memory used, last readings", points: mem, y_max: 1.0, class: "mem" }
                }
            }
        }
    }
}
