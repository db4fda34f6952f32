//! The alert rules: listed to everyone, created, edited and deleted by an admin login.

use super::change_status::{self, Change, ChangeStatus};
use super::rule_form::RuleFormView;
use crate::alert_forms::{RuleForm, condition, scope, wire};
use crate::api::{self, Setting};
use dioxus::prelude::*;
use protocol::alerts::Rule;

#[component]
pub fn RuleEditor(admin: bool) -> Element {
    let mut rules = use_resource(api::rules);
    let mut form = use_signal(|| None::<RuleForm>);
    let mut change = use_signal(|| Change::Idle);
    let save = move |f: RuleForm| match f.spec() {
        Err(why) => change.set(Change::Failed(why)),
        Ok(spec) => change_status::run(
            change,
            "Saving…",
            async move { api::save_rule(f.id, &spec).await },
            move |rule: Rule| {
                form.set(None);
                rules.restart();
                format!("Saved rule “{}”.", rule.spec.name)
            },
        ),
    };
    let remove = move |rule: Rule| {
        change_status::run(change, "Deleting…", api::delete(Setting::Rules, rule.id), move |()| {
            rules.restart();
            format!("Deleted rule “{}”.", rule.spec.name)
        });
    };
    let list = match &*rules.read() {
        Some(Ok(list)) => list.clone(),
        Some(Err(e)) => {
            return rsx! { p { class: "api-error", role: "alert", "Could not load the rules: {e}" } };
        }
        None => return rsx! { p { class: "loading", "Loading the rules…" } },
    };
    rsx! {
        section { class: "editor rules", "aria-labelledby": "rules-title",
            h2 { id: "rules-title", "Rules" }
            if list.is_empty() {
                p { class: "empty", "No rule yet." }
            } else {
                table {
                    thead {
                        tr {
                            th { scope: "col", "Name" }
                            th { scope: "col", "Condition" }
                            th { scope: "col", "Agents" }
                            th { scope: "col", "Severity" }
                            th { scope: "col", "Channels" }
                            th { scope: "col", "Enabled" }
                            if admin {
                                th { scope: "col", "" }
                            }
                        }
                    }
                    tbody {
                        for rule in list {
                            tr { key: "{rule.id}",
                                td { "{rule.spec.name}" }
                                td { "{condition(&rule.spec)}" }
                                td { "{scope(&rule.spec.agents, rule.spec.agent_pattern.as_deref())}" }
                                td { "{wire(rule.spec.severity)}" }
                                td { "{rule.spec.channels.len()}" }
                                td { if rule.spec.enabled { "yes" } else { "no" } }
                                if admin {
                                td { class: "actions",
                                    button {
                                        r#type: "button",
                                        onclick: {
                                            let rule = rule.clone();
                                            move |_| form.set(Some(RuleForm::edit(&rule)))
                                        },
                                        "Edit"
                                    }
                                    button {
                                        r#type: "button",
                                        class: "danger",
                                        onclick: {
                                            let rule = rule.clone();
                                            move |_| remove(rule.clone())
                                        },
                                        "Delete"
                                    }
                                }
                                }
                            }
                        }
                    }
                }
            }
            ChangeStatus { change: change() }
            match form() {
                Some(f) => rsx! {
                    RuleFormView { key: "{f.id:?}", form: f, on_save: save, on_cancel: move |_| form.set(None) }
                },
                None if admin => rsx! {
                    button { r#type: "button", onclick: move |_| form.set(Some(RuleForm::default())), "New rule" }
                },
                None => rsx! {},
            }
        }
    }
}
