//! Every agent as a card, with online/offline counts, the open alerts, a filter and a sort order.

use super::agent_card::AgentCard;
use super::alert_strip::AlertStrip;
use crate::state::Live;
use crate::store::AgentState;
use dioxus::prelude::*;
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortBy {
    Name,
    Cpu,
    Memory,
    Status,
}

impl SortBy {
    fn parse(s: &str) -> Self {
        match s {
            "cpu" => Self::Cpu,
            "memory" => Self::Memory,
            "status" => Self::Status,
            _ => Self::Name,
        }
    }
}

/// The agents whose name or platform contains `filter`, in the chosen order.
pub(crate) fn arrange<'a>(
    agents: impl Iterator<Item = &'a AgentState>,
    filter: &str,
    sort: SortBy,
    now_ms: f64,
) -> Vec<&'a AgentState> {
    let needle = filter.trim().to_lowercase();
    let mut list: Vec<&AgentState> = agents
        .filter(|a| {
            needle.is_empty()
                || a.summary.agent_id.to_lowercase().contains(&needle)
                || a.summary.platform.to_lowercase().contains(&needle)
        })
        .collect();
    let desc = |x: Option<f64>, y: Option<f64>| y.partial_cmp(&x).unwrap_or(Ordering::Equal);
    list.sort_by(|a, b| {
        let by = match sort {
            SortBy::Name => Ordering::Equal,
            SortBy::Cpu => desc(a.summary.cpu, b.summary.cpu),
            SortBy::Memory => desc(a.mem_fraction(), b.mem_fraction()),
            // Offline first: those are the ones to look at.
            SortBy::Status => a.online(now_ms).cmp(&b.online(now_ms)),
        };
        by.then_with(|| a.summary.agent_id.cmp(&b.summary.agent_id))
    });
    list
}

#[component]
pub fn Fleet() -> Element {
    let live = use_context::<Live>();
    let mut filter = use_signal(String::new);
    let mut sort = use_signal(|| SortBy::Name);
    let now = (live.now_ms)();
    let store = live.store.read();
    let (online, offline) = store.counts(now);
    let cards = arrange(store.agents.values(), &filter.read(), sort(), now);
    let (firing, pending) = store.alerts.counts();
    rsx! {
        section { class: "fleet", "aria-labelledby": "fleet-title",
            div { class: "toolbar",
                h1 { id: "fleet-title", "Fleet" }
                p { class: "counts",
                    span { class: "online", "{online} online" }
                    " · "
                    span { class: "offline", "{offline} offline" }
                }
                label { class: "field",
                    "Filter"
                    input {
                        r#type: "search",
                        placeholder: "name or platform",
                        value: "{filter}",
                        oninput: move |e| filter.set(e.value()),
                    }
                }
                label { class: "field",
                    "Sort by"
                    select { onchange: move |e| sort.set(SortBy::parse(&e.value())),
                        option { value: "name", "name" }
                        option { value: "cpu", "CPU" }
                        option { value: "memory", "memory" }
                        option { value: "status", "offline first" }
                    }
                }
            }
            AlertStrip { open: store.alerts.open(None), firing, pending, now_ms: now }
            if store.agents.is_empty() && store.loaded {
                div { class: "empty",
                    h2 { "No agent has reported yet" }
                    p { "Start an agent on a PC and point it at this backend, for example:" }
                    pre { "API_URL=http://<backend>:8000 API_TOKEN=<token> HMAC_SECRET=<secret> agent" }
                    p { "It appears here within one interval, without reloading." }
                }
            } else if store.agents.is_empty() {
                p { class: "loading",
                    if live.api_error.read().is_some() { "Waiting for the API…" } else { "Loading the fleet…" }
                }
            } else if cards.is_empty() {
                p { class: "empty", "No agent matches “{filter}”." }
            }
            div { class: "cards",
                for agent in cards {
                    AgentCard {
                        key: "{agent.summary.agent_id}",
                        agent: agent.clone(),
                        firing: store.alerts.firing_on(&agent.summary.agent_id),
                        now_ms: now,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{NOW_MS, summary};
    use crate::store::Store;

    #[test]
    fn filter_and_sort_orders() {
        let mut store = Store::default();
        store.set_agents(
            vec![
                summary("b-pc", 1.0, 0.9),
                summary("a-pc", 100.0, 0.1),
                summary("c-srv", 1.0, 0.5),
            ],
            NOW_MS,
        );
        let names = |sort, filter| -> Vec<String> {
            arrange(store.agents.values(), filter, sort, NOW_MS)
                .iter()
                .map(|a| a.summary.agent_id.clone())
                .collect()
        };
        assert_eq!(names(SortBy::Name, ""), ["a-pc", "b-pc", "c-srv"]);
        assert_eq!(names(SortBy::Cpu, ""), ["b-pc", "c-srv", "a-pc"]);
        assert_eq!(names(SortBy::Status, ""), ["a-pc", "b-pc", "c-srv"]);
        assert_eq!(names(SortBy::Name, " PC"), ["a-pc", "b-pc"]);
        assert_eq!(names(SortBy::Name, "windows").len(), 3);
    }
}
