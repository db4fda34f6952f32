//! The login form, shown instead of the views while reads need a credential this tab lacks.

use crate::api::{self, ApiError};
use crate::auth;
use dioxus::prelude::*;

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Idle,
    Busy,
    Failed(String),
}

/// `ended`: a stored session was refused, so the user learns why they see the form again.
#[component]
pub fn Login(ended: bool) -> Element {
    let mut token = use_signal(String::new);
    let mut outcome = use_signal(|| Outcome::Idle);
    let submit = move |e: FormEvent| {
        // The app handles the login itself; a submitted form would reload the page.
        e.prevent_default();
        let t = token.peek().clone();
        outcome.set(Outcome::Busy);
        spawn(async move {
            match api::login(&t).await {
                Ok(session) => auth::log_in(session),
                Err(ApiError::LoginRequired) => outcome.set(Outcome::Failed(
                    "Wrong token: that is not the backend's read token.".to_owned(),
                )),
                Err(e) => outcome.set(Outcome::Failed(e.to_string())),
            }
        });
    };
    rsx! {
        section { class: "login", "aria-labelledby": "login-title",
            h2 { id: "login-title", "Log in" }
            if ended {
                p { role: "status", "Your session has ended; log in again." }
            }
            p { "This backend shows the fleet only to those with its read token." }
            form { onsubmit: submit,
                label { class: "field",
                    "Read token (READ_TOKEN)"
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
                    button { r#type: "submit", disabled: outcome() == Outcome::Busy, "Log in" }
                }
            }
        }
    }
}
