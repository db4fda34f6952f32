//! The alerts page: open alerts, the history paged by id, and the settings behind them.

use super::admin_only::AdminOnly;
use super::alert_table::AlertTable;
use super::channel_editor::ChannelEditor;
use super::rule_editor::RuleEditor;
use super::silence_editor::SilenceEditor;
use crate::api;
use crate::auth;
use crate::state::Live;
use dioxus::prelude::*;

const PAGE: u32 = 50;

#[component]
pub fn AlertsView() -> Element {
    let live = use_context::<Live>();
    let mut exhausted = use_signal(|| false);
    // Where the next page starts: the history also holds older alerts that changed live, so
    // its oldest id would skip the ones between.
    let mut oldest = use_signal(|| None::<i64>);
    let mut error = use_signal(|| None::<String>);
    let mut store = live.store;
    // Pages go into the store's history, where live notices keep them current.
    let load = move |before_id: Option<i64>| {
        spawn(async move {
            match api::alerts(false, before_id, PAGE).await {
                Ok(page) => {
                    exhausted.set(page.len() < PAGE as usize);
                    if let Some(last) = page.last() {
                        oldest.set(Some(last.id));
                    }
                    store.write().alerts.extend(page);
                    error.set(None);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    use_hook(|| load(None));
    let now = (live.now_ms)();
    let held = store.read();
    let open = held.alerts.open(None);
    let history = held.alerts.history();
    let admin = auth::admin_login();
    rsx! {
        section { class: "alerts-page", "aria-labelledby": "alerts-title",
            div { class: "toolbar",
                h1 { id: "alerts-title", "Alerts" }
            }
            if let Some(e) = error() {
                p { class: "api-error", role: "alert", "{e}; showing what arrived live" }
            }
            h2 { "Open" }
            AlertTable { alerts: open, now_ms: now, offset_min: live.offset_min, empty: "No alert is open." }
            h2 { "History" }
            AlertTable { alerts: history, now_ms: now, offset_min: live.offset_min, empty: "No alert yet." }
            if !exhausted() {
                if let Some(before) = oldest() {
                    button { r#type: "button", class: "more", onclick: move |_| load(Some(before)), "Older alerts" }
                }
            }
            section { class: "settings", "aria-labelledby": "settings-title",
                h2 { id: "settings-title", "Settings" }
                if !admin {
                    AdminOnly { note: "Rules and silences are listed to everyone; changing them, and the channels, is for admins." }
                }
                RuleEditor { admin }
                if admin {
                    ChannelEditor {}
                } else {
                    section { class: "editor channels", "aria-labelledby": "channels-title",
                        h2 { id: "channels-title", "Channels" }
                        p { class: "note", "Channels are listed to admins only: their addresses and secrets are credentials themselves." }
                    }
                }
                SilenceEditor { admin }
            }
        }
    }
}
