//! The admin credential for a change: the `ADMIN_TOKEN` field, or a note that the admin login
//! is used instead.

use crate::auth;
use dioxus::prelude::*;

/// The typed token, or `None` when the admin login session is the credential.
pub(crate) fn credential(token: Signal<String>) -> Option<String> {
    (!auth::admin_login()).then(|| token.peek().clone())
}

/// After a change succeeded with `typed`, later changes in this tab start with it.
pub(crate) fn accepted(typed: Option<&str>) {
    if let Some(t) = typed {
        auth::remember_admin_token(t);
    }
}

#[component]
pub fn AdminToken(token: Signal<String>, autofocus: bool) -> Element {
    if auth::admin_login() {
        return rsx! { p { "You are logged in as admin; no token is needed." } };
    }
    rsx! {
        label { class: "field",
            "Admin token (ADMIN_TOKEN)"
            input {
                r#type: "password",
                autocomplete: "off",
                value: "{token}",
                oninput: move |e| token.set(e.value()),
                // Keyboard users land in a dialog, not behind it.
                onmounted: move |e: MountedEvent| async move {
                    if autofocus {
                        let _ = e.set_focus(true).await;
                    }
                },
            }
        }
    }
}
