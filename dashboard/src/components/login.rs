//! The login form, shown instead of the views while reads need a credential this tab lacks, or
//! when the user asks to log in as admin. The token typed is exchanged for a session and then
//! dropped: only the session is kept.

use crate::api::{self, ApiError};
use crate::auth::{self, Prompt};
use dioxus::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Idle,
    Busy,
    Failed(String),
}

#[component]
pub fn Login(prompt: Prompt) -> Element {
    let mut token = use_signal(String::new);
    let mut outcome = use_signal(|| Outcome::Idle);
    let admin = prompt == Prompt::Admin;
    let submit = move |e: FormEvent| {
        // The app handles the login itself; a submitted form would reload the page.
        e.prevent_default();
        let t = token.peek().clone();
        outcome.set(Outcome::Busy);
        spawn(async move {
            outcome.set(match api::login(&t).await {
                Ok(session) if admin && !session.is_admin() => {
                    // Not kept: it would not make the changes asked for.
                    let _ = api::end_session(&session.session).await;
                    Outcome::Failed(
                        "That is the read token: changes need the admin token (ADMIN_TOKEN)."
                            .to_owned(),
                    )
                }
                Ok(session) => {
                    auth::log_in(session);
                    Outcome::Idle
                }
                Err(ApiError::LoginRequired) if admin => Outcome::Failed(
                    "Wrong token: that is not the backend's admin token.".to_owned(),
                ),
                Err(ApiError::LoginRequired) => Outcome::Failed(
                    "Wrong token: that is neither the backend's read token nor its admin token."
                        .to_owned(),
                ),
                Err(e) => Outcome::Failed(e.to_string()),
            });
        });
    };
    let (title, label) = if admin {
        ("Log in as admin", "Admin token (ADMIN_TOKEN)")
    } else {
        ("Log in", "Read or admin token")
    };
    rsx! {
        section { class: "login", "aria-labelledby": "login-title",
            h2 { id: "login-title", "{title}" }
            if prompt == Prompt::SessionEnded {
                p { role: "status", "Your session has ended; log in again." }
            }
            if admin {
                p { "Clearing events and changing alert rules, channels and silences need the admin token. This tab keeps only the session it is exchanged for." }
            } else {
                p { "This backend shows the fleet only to those with its read token (or its admin token)." }
            }
            form { onsubmit: submit,
                label { class: "field",
                    "{label}"
                    input {
                        r#type: "password",
                        autocomplete: "current-password",
                        required: true,
                        value: "{token}",
                        oninput: move |e| token.set(e.value()),
                        onmounted: move |e| async move {
                            let _ = e.set_focus(true).await;
                        },
                    }
                }
                match outcome() {
                    Outcome::Idle => rsx! {},
                    Outcome::Busy => rsx! { p { role: "status", "Logging in…" } },
                    Outcome::Failed(why) => rsx! { p { class: "api-error", role: "alert", "{why}" } },
                }
                div { class: "actions",
                    if prompt.can_skip() {
                        button { r#type: "button", onclick: |_| auth::skip_login(), "Cancel" }
                    }
                    button { r#type: "submit", disabled: outcome() == Outcome::Busy, "Log in" }
                }
            }
        }
    }
}
