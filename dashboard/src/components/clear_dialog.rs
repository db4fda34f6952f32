//! Confirming a clear of one agent's or all events, with the admin token or an admin login.

use crate::api;
use crate::auth::{self, Session};
use dioxus::prelude::*;

const TOKEN_KEY: &str = "admin_token";

/// What the user typed earlier in this browser session.
fn saved_token() -> String {
    auth::tab_storage().and_then(|s| s.get_item(TOKEN_KEY).ok().flatten()).unwrap_or_default()
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
    let admin_login = auth::SESSION.read().as_ref().is_some_and(Session::is_admin);
    // Keyboard users land in the dialog, not behind it.
    let focus = |e: MountedEvent| async move {
        let _ = e.set_focus(true).await;
    };
    let what = match &agent_id {
        Some(a) => format!("every event of {a}"),
        None => "every event of every agent".to_owned(),
    };
    let confirm = {
        let agent_id = agent_id.clone();
        move |_| {
            let agent_id = agent_id.clone();
            let typed = (!admin_login).then(|| token.peek().clone());
            outcome.set(Outcome::Busy);
            spawn(async move {
                let result = api::clear(agent_id, typed.as_deref()).await;
                outcome.set(match result {
                    Ok(r) => {
                        if let (Some(s), Some(t)) = (auth::tab_storage(), &typed) {
                            let _ = s.set_item(TOKEN_KEY, t);
                        }
                        Outcome::Done(r.cleared)
                    }
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
                if admin_login {
                    p { "You are logged in as admin; no token is needed." }
                } else {
                    label { class: "field",
                        "Admin token (ADMIN_TOKEN)"
                        input {
                            r#type: "password",
                            autocomplete: "off",
                            value: "{token}",
                            oninput: move |e| token.set(e.value()),
                            onmounted: focus,
                        }
                    }
                }
                match outcome() {
                    Outcome::Idle => rsx! {},
                    Outcome::Busy => rsx! { p { role: "status", "Clearing…" } },
                    Outcome::Done(n) => rsx! { p { class: "ok", role: "status", "Cleared {n} events." } },
                    Outcome::Failed(why) => rsx! { p { class: "api-error", role: "alert", "{why}" } },
                }
                div { class: "actions",
                    button {
                        r#type: "button",
                        onclick: move |_| on_close.call(()),
                        // Without a token field, focus starts here.
                        onmounted: move |e| async move {
                            if admin_login {
                                focus(e).await;
                            }
                        },
                        "Close"
                    }
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
