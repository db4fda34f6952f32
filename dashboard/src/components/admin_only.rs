//! Where a reader sees what only an admin may do: a calm note, and the way to log in as admin.

use crate::auth;
use dioxus::prelude::*;

#[component]
pub fn AdminOnly(note: &'static str) -> Element {
    rsx! {
        p { class: "note",
            "{note} "
            button { r#type: "button", class: "link", onclick: |_| auth::ask_for_admin(), "Log in as admin" }
        }
    }
}
