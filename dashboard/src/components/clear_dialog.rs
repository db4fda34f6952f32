//! Confirming a clear of one agent's or all events; only an admin login opens it.

use super::change_status::{self, Change, ChangeStatus};
use crate::api;
use dioxus::prelude::*;

#[component]
pub fn ClearDialog(agent_id: Option<String>, on_close: EventHandler<()>) -> Element {
    let outcome = use_signal(|| Change::Idle);
    let what = match &agent_id {
        Some(a) => format!("every event of {a}"),
        None => "every event of every agent".to_owned(),
    };
    let confirm = {
        let agent_id = agent_id.clone();
        move |_| {
            let agent_id = agent_id.clone();
            change_status::run(outcome, "Clearing…", api::clear(agent_id), |r| {
                format!("Cleared {} events.", r.cleared)
            });
        }
    };
    rsx! {
        div { class: "backdrop",
            div {
                class: "dialog",
                role: "dialog",
                "aria-modal": "true",
                "aria-labelledby": "clear-title",
                onkeydown: move |e| if e.key() == Key::Escape { on_close.call(()) },
                h2 { id: "clear-title", "Clear events?" }
                p { "This deletes {what}. It cannot be undone." }
                ChangeStatus { change: outcome() }
                div { class: "actions",
                    button {
                        r#type: "button",
                        onclick: move |_| on_close.call(()),
                        // Keyboard users land in the dialog, not behind it.
                        onmounted: move |e: MountedEvent| async move {
                            let _ = e.set_focus(true).await;
                        },
                        "Close"
                    }
                    button {
                        r#type: "button",
                        class: "danger",
                        disabled: matches!(outcome(), Change::Busy(_)),
                        onclick: confirm,
                        "Clear"
                    }
                }
            }
        }
    }
}
