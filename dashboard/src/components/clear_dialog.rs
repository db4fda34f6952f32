//! Confirming a clear of one agent's or all events, with the API token.

use crate::api::{self, ApiError};
use dioxus::prelude::*;

const TOKEN_KEY: &str = "api_token";

/// `API_TOKEN` from the build, else what the user typed earlier in this browser session.
fn saved_token() -> String {
    if let Some(t) = option_env!("API_TOKEN") {
        return t.to_owned();
    }
    session_storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten()).unwrap_or_default()
}

fn session_storage() -> Option<web_sys::Storage> {
    // Server-side rendering in tests has no browser to ask.
    if cfg!(target_arch = "wasm32") {
        web_sys::window()?.session_storage().ok().flatten()
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Idle,
    Busy,
    Done(usize),
    Failed(String),
}

#[component]
pub fn ClearDialog(agent_id: Option<String>, on_close: EventHandler<()>) -> Element {
    let mut token = use_signal(saved_token);
    let mut outcome = use_signal(|| Outcome::Idle);
    let what = match &agent_id {
        Some(a) => format!("every event of {a}"),
        None => "every event of every agent".to_owned(),
    };
    let confirm = {
        let agent_id = agent_id.clone();
        move |_| {
            let agent_id = agent_id.clone();
            let t = token.peek().clone();
            outcome.set(Outcome::Busy);
            spawn(async move {
                let result = api::clear(agent_id, &t).await;
                outcome.set(match result {
                    Ok(r) => {
                        if let Some(s) = session_storage() {
                            let _ = s.set_item(TOKEN_KEY, &t);
                        }
                        Outcome::Done(r.cleared)
                    }
                    Err(ApiError::WrongToken) => Outcome::Failed("wrong token".to_owned()),
                    Err(e) => Outcome::Failed(e.to_string()),
                });
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
                label { class: "field",
                    "API token"
                    input {
                        r#type: "password",
                        autocomplete: "off",
                        value: "{token}",
                        oninput: move |e| token.set(e.value()),
                        // Keyboard users land in the dialog, not behind it.
                        onmounted: move |e| async move {
                            let _ = e.set_focus(true).await;
                        },
                    }
                }
                match outcome() {
                    Outcome::Idle => rsx! {},
                    Outcome::Busy => rsx! { p { role: "status", "Clearing…" } },
                    Outcome::Done(n) => rsx! { p { class: "ok", role: "status", "Cleared {n} events." } },
                    Outcome::Failed(why) => rsx! { p { class: "api-error", role: "alert", "{why}" } },
                }
                div { class: "actions",
                    button { r#type: "button", onclick: move |_| on_close.call(()), "Close" }
                    button {
                        r#type: "button",
                        class: "danger",
                        disabled: outcome() == Outcome::Busy,
                        onclick: confirm,
                        "Clear"
                    }
                }
            }
        }
    }
}
