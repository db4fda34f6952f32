//! Each core's load, and swap or page file and commit, from the agent's newest batch that
//! carried them.

use crate::format;
use dioxus::prelude::*;
use protocol::Host;

#[component]
pub fn HostDetail(host: Option<Host>) -> Element {
    let Some(h) = host else { return rsx! {} };
    let pair = |used: Option<u64>, total: Option<u64>| match (used, total) {
        (Some(u), Some(t)) if t > 0 => Some(format!(
            "{} of {} ({})",
            format::bytes(u as f64),
            format::bytes(t as f64),
            format::percent(Some(u as f64 / t as f64))
        )),
        _ => None,
    };
    // Linux calls it swap, Windows a page file; the commit limit exists on Windows only.
    let swap_label = if h.commit_limit.is_some() { "Page file" } else { "Swap" };
    let swap = pair(h.swap_used, h.swap_total);
    let commit = pair(h.commit_used, h.commit_limit);
    rsx! {
        section { class: "host", "aria-labelledby": "cores-title",
            if !h.cores.is_empty() {
                h2 { id: "cores-title", "Cores ({h.cores.len()})" }
                ol { class: "cores",
                    for (i, c) in h.cores.iter().enumerate() {
                        li {
                            key: "{i}",
                            title: "core {i}: {format::percent(Some(*c))}",
                            "aria-label": "core {i}: {format::percent(Some(*c))}",
                            span { class: "core-bar", style: "height: {(c * 100.0).round()}%" }
                        }
                    }
                }
            }
            if swap.is_some() || commit.is_some() {
                dl { class: "figures",
                    if let Some(s) = swap { div { dt { "{swap_label}" } dd { "{s}" } } }
                    if let Some(c) = commit { div { dt { "Committed" } dd { "{c}" } } }
                }
            }
        }
    }
}
