//! Notification channels: listed, created, edited and deleted by an admin login only, since
//! their URLs and secrets are credentials themselves (readers see a note instead).

use super::change_status::{self, Change, ChangeStatus};
use super::choice::Choice;
use super::text_field::TextField;
use crate::alert_forms::{ChannelForm, KINDS, SECURITIES, from_wire, names, wire};
use crate::api::{self, Setting};
use dioxus::prelude::*;
use protocol::alerts::{Channel, ChannelKind};

#[component]
pub fn ChannelEditor() -> Element {
    let mut channels = use_resource(api::channels);
    let mut form = use_signal(|| None::<ChannelForm>);
    let mut change = use_signal(|| Change::Idle);
    let edit = move |apply: fn(&mut ChannelForm, String)| {
        move |x: String| {
            if let Some(f) = form.write().as_mut() {
                apply(f, x);
            }
        }
    };
    let mut save = move || {
        let Some(f) = form.peek().clone() else { return };
        match f.spec() {
            Err(why) => change.set(Change::Failed(why)),
            Ok(spec) => change_status::run(
                change,
                "Saving…",
                async move { api::save_channel(f.id, &spec).await },
                move |c: Channel| {
                    form.set(None);
                    channels.restart();
                    format!("Saved channel “{}” (id {}).", c.name, c.id)
                },
            ),
        }
    };
    let remove = move |c: Channel| {
        change_status::run(change, "Deleting…", api::delete(Setting::Channels, c.id), move |()| {
            channels.restart();
            format!("Deleted channel “{}”.", c.name)
        });
    };
    let listed = channels.read().clone();
    rsx! {
        section { class: "editor channels", "aria-labelledby": "channels-title",
            h2 { id: "channels-title", "Channels" }
            match listed {
                None => rsx! { p { class: "loading", "Loading…" } },
                Some(Err(e)) => rsx! { p { class: "api-error", role: "alert", "Could not load the channels: {e}" } },
                Some(Ok(list)) if list.is_empty() => rsx! { p { class: "empty", "No channel yet." } },
                Some(Ok(list)) => rsx! {
                    table {
                        thead {
                            tr {
                                th { scope: "col", "Id" }
                                th { scope: "col", "Name" }
                                th { scope: "col", "Kind" }
                                th { scope: "col", "Where" }
                                th { scope: "col", "Secret" }
                                th { scope: "col", "" }
                            }
                        }
                        tbody {
                            for c in list {
                                tr { key: "{c.id}",
                                    td { "{c.id}" }
                                    td { "{c.name}" }
                                    td { "{wire(c.kind)}" }
                                    td { class: "summary",
                                        match &c.email {
                                            Some(e) => e.to.join(", "),
                                            None => c.url.clone().unwrap_or_default(),
                                        }
                                    }
                                    td { if c.has_secret { "set" } else { "none" } }
                                    td { class: "actions",
                                        button {
                                            r#type: "button",
                                            onclick: {
                                                let c = c.clone();
                                                move |_| form.set(Some(ChannelForm::edit(&c)))
                                            },
                                            "Edit"
                                        }
                                        button {
                                            r#type: "button",
                                            class: "danger",
                                            onclick: {
                                                let c = c.clone();
                                                move |_| remove(c.clone())
                                            },
                                            "Delete"
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            }
            ChangeStatus { change: change() }
            match form() {
                None => rsx! {
                    div { class: "actions",
                        button { r#type: "button", onclick: move |_| channels.restart(), "Reload channels" }
                        button { r#type: "button", onclick: move |_| form.set(Some(ChannelForm::default())), "New channel" }
                    }
                },
                Some(v) => rsx! {
                    form {
                        class: "editor-form",
                        "aria-label": "Channel",
                        onsubmit: move |e| {
                            e.prevent_default();
                            save();
                        },
                        h3 { if let Some(id) = v.id { "Edit channel {id}" } else { "New channel" } }
                        TextField { label: "Name", value: v.name.clone(), oninput: edit(|f, x| f.name = x) }
                        Choice {
                            label: "Kind",
                            options: names(&KINDS),
                            chosen: wire(v.kind),
                            onchange: edit(|f, x| f.kind = from_wire(&x, f.kind)),
                        }
                        if v.kind == ChannelKind::Email {
                            TextField { label: "SMTP host", value: v.host.clone(), oninput: edit(|f, x| f.host = x) }
                            TextField { label: "Port", value: v.port.clone(), placeholder: "587", oninput: edit(|f, x| f.port = x) }
                            Choice {
                                label: "Security",
                                options: names(&SECURITIES),
                                chosen: wire(v.security),
                                onchange: edit(|f, x| f.security = from_wire(&x, f.security)),
                            }
                            TextField { label: "User", value: v.username.clone(), oninput: edit(|f, x| f.username = x) }
                            TextField { label: "From", value: v.from.clone(), oninput: edit(|f, x| f.from = x) }
                            TextField { label: "To", value: v.to.clone(), placeholder: "a@example.com, b@example.com", oninput: edit(|f, x| f.to = x) }
                            label { class: "field",
                                "CA certificate (PEM, for a private CA)"
                                textarea {
                                    value: "{v.ca_pem}",
                                    placeholder: "-----BEGIN CERTIFICATE-----",
                                    oninput: {
                                        let mut set = edit(|f, x| f.ca_pem = x);
                                        move |e: FormEvent| set(e.value())
                                    },
                                }
                            }
                        } else {
                            TextField { label: "URL", value: v.url.clone(), kind: "url", oninput: edit(|f, x| f.url = x) }
                        }
                        TextField {
                            label: "Secret",
                            value: v.secret.clone(),
                            kind: "password",
                            placeholder: if v.has_secret { "stored; leave empty to keep it" } else { "none" },
                            oninput: edit(|f, x| f.secret = x),
                        }
                        div { class: "actions",
                            button { r#type: "button", onclick: move |_| form.set(None), "Cancel" }
                            button { r#type: "submit", "Save channel" }
                        }
                    }
                },
            }
        }
    }
}
