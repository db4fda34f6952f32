//! The fields of one rule, new or edited.

use super::choice::Choice;
use super::text_field::TextField;
use crate::alert_forms::{METRICS, RuleForm, SEVERITIES, from_wire, names, wire};
use dioxus::prelude::*;
use protocol::alerts::{Aggregate, Comparison};

#[component]
pub fn RuleFormView(
    form: RuleForm,
    on_save: EventHandler<RuleForm>,
    on_cancel: EventHandler<()>,
) -> Element {
    // Starts from the given rule; the parent mounts a new form for another one.
    let mut f = use_signal(|| form.clone());
    let v = f();
    let title = match v.id {
        Some(id) => format!("Edit rule {id}"),
        None => "New rule".to_owned(),
    };
    rsx! {
        form {
            class: "editor-form",
            "aria-label": "{title}",
            onsubmit: move |e| {
                e.prevent_default();
                on_save.call(f.peek().clone());
            },
            h3 { "{title}" }
            TextField { label: "Name", value: v.name, oninput: move |x| f.write().name = x }
            Choice {
                label: "Metric",
                options: names(&METRICS),
                chosen: wire(v.metric),
                onchange: move |x: String| f.write().metric = from_wire(&x, v.metric),
            }
            if v.metric.needs_process() {
                TextField {
                    label: "Process",
                    value: v.process,
                    placeholder: "sqlservr.exe",
                    oninput: move |x| f.write().process = x,
                }
            }
            if v.metric.needs_service() {
                TextField {
                    label: "Service",
                    value: v.service,
                    placeholder: "Spooler",
                    oninput: move |x| f.write().service = x,
                }
            }
            if v.metric.has_threshold() {
                Choice {
                    label: "Breach when",
                    options: names(&[Comparison::Above, Comparison::Below]),
                    chosen: wire(v.comparison),
                    onchange: move |x: String| f.write().comparison = from_wire(&x, v.comparison),
                }
                TextField { label: "Threshold", value: v.threshold, oninput: move |x| f.write().threshold = x }
                Choice {
                    label: "Aggregate",
                    options: names(&[Aggregate::Avg, Aggregate::Max]),
                    chosen: wire(v.aggregate),
                    onchange: move |x: String| f.write().aggregate = from_wire(&x, v.aggregate),
                }
            }
            TextField { label: "Window (s)", value: v.window_s, oninput: move |x| f.write().window_s = x }
            TextField { label: "For (s)", value: v.for_s, oninput: move |x| f.write().for_s = x }
            TextField {
                label: "Resolve after (s)",
                value: v.resolve_after_s,
                oninput: move |x| f.write().resolve_after_s = x,
            }
            TextField {
                label: "Agents",
                value: v.agents,
                placeholder: "pc-1, pc-2 (empty: every agent)",
                oninput: move |x| f.write().agents = x,
            }
            TextField {
                label: "Agent pattern",
                value: v.agent_pattern,
                placeholder: "web-*",
                oninput: move |x| f.write().agent_pattern = x,
            }
            Choice {
                label: "Severity",
                options: names(&SEVERITIES),
                chosen: wire(v.severity),
                onchange: move |x: String| f.write().severity = from_wire(&x, v.severity),
            }
            TextField {
                label: "Repeat (s)",
                value: v.repeat_s,
                placeholder: "never",
                oninput: move |x| f.write().repeat_s = x,
            }
            TextField {
                label: "Channel ids",
                value: v.channels,
                placeholder: "1, 2",
                oninput: move |x| f.write().channels = x,
            }
            label { class: "field",
                input {
                    r#type: "checkbox",
                    checked: v.enabled,
                    onchange: move |e| f.write().enabled = e.checked(),
                }
                "Enabled"
            }
            div { class: "actions",
                button { r#type: "button", onclick: move |_| on_cancel.call(()), "Cancel" }
                button { r#type: "submit", "Save rule" }
            }
        }
    }
}
