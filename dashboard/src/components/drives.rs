//! Every fixed drive of an agent, from its newest batch that listed them.

use crate::format;
use dioxus::prelude::*;
use protocol::Drive;

#[component]
pub fn Drives(drives: Vec<Drive>) -> Element {
    if drives.is_empty() {
        return rsx! {};
    }
    rsx! {
        table { class: "drives",
            thead {
                tr {
                    th { "Drive" }
                    th { "Used" }
                    th { "Free" }
                    th { "Size" }
                    th { "Read" }
                    th { "Write" }
                }
            }
            tbody {
                for d in drives {
                    tr { key: "{d.mount}",
                        td { "{d.mount}" }
                        td { "{format::percent(format::used_fraction(Some(d.free), Some(d.total)))}" }
                        td { "{format::bytes(d.free as f64)}" }
                        td { "{format::bytes(d.total as f64)}" }
                        td { "{format::rate(d.read_bps)}" }
                        td { "{format::rate(d.write_bps)}" }
                    }
                }
            }
        }
    }
}
