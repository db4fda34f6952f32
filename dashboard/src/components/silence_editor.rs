//! Silences not ended yet: listed to everyone, created and ended by an admin login.

use super::change_status::{self, Change, ChangeStatus};
use super::text_field::TextField;
use crate::alert_forms::{SilenceForm, scope};
use crate::api::{self, Setting};
use crate::format;
use crate::state::Live;
use dioxus::prelude::*;
use protocol::alerts::Silence;

#[component]
pub fn SilenceEditor(admin: bool) -> Element {
    let live = use_context::<Live>();
    let mut silences = use_resource(api::silences);
    let mut form = use_signal(SilenceForm::default);
    let change = use_signal(|| Change::Idle);
    let mut failed = change;
    let create = move |e: FormEvent| {
        e.prevent_default();
        let now_s = (*live.now_ms.peek() / 1000.0) as i64;
        match form.peek().spec(now_s) {
            Err(why) => failed.set(Change::Failed(why)),
            Ok(spec) => change_status::run(
                change,
                "Saving…",
                async move { api::create_silence(&spec).await },
                move |s: Silence| {
                    silences.restart();
                    form.set(SilenceForm::default());
                    format!("Silence {} created.", s.id)
                },
            ),
        }
    };
    let end = move |id: i64| {
        change_status::run(change, "Ending…", api::delete(Setting::Silences, id), move |()| {
            silences.restart();
            format!("Silence {id} ended.")
        });
    };
    let list = match &*silences.read() {
        Some(Ok(list)) => list.clone(),
        Some(Err(e)) => {
            return rsx! { p { class: "api-error", role: "alert", "Could not load the silences: {e}" } };
        }
        None => return rsx! { p { class: "loading", "Loading the silences…" } },
    };
    let v = form();
    rsx! {
        section { class: "editor silences", "aria-labelledby": "silences-title",
            h2 { id: "silences-title", "Silences" }
            if list.is_empty() {
                p { class: "empty", "Nothing is silenced." }
            } else {
              ul {
                for s in list {
                    li { key: "{s.id}",
                        "Rule {s.spec.rule_id.map_or(\"any\".to_owned(), |r| r.to_string())} on "
                        "{scope(&[], s.spec.agent_pattern.as_deref())} until "
                        "{format::date_time(s.spec.ends_at * 1000, live.offset_min)}"
                        if !s.spec.comment.is_empty() { " · {s.spec.comment}" }
                        if admin {
                            " "
                            button { r#type: "button", onclick: move |_| end(s.id), "End now" }
                        }
                    }
                }
              }
            }
            ChangeStatus { change: change() }
            if admin {
                form { class: "editor-form", "aria-label": "New silence", onsubmit: create,
                    TextField { label: "Rule id", value: v.rule_id, placeholder: "any", oninput: move |x| form.write().rule_id = x }
                    TextField { label: "Agent pattern", value: v.agent_pattern, placeholder: "every agent", oninput: move |x| form.write().agent_pattern = x }
                    TextField { label: "Hours", value: v.hours, oninput: move |x| form.write().hours = x }
                    TextField { label: "Comment", value: v.comment, oninput: move |x| form.write().comment = x }
                    button { r#type: "submit", "Silence" }
                }
            }
        }
    }
}
