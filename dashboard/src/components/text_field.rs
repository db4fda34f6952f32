//! A labelled text input of an editor form.

use dioxus::prelude::*;

#[component]
pub fn TextField(
    label: String,
    value: String,
    oninput: EventHandler<String>,
    #[props(default = "text".to_owned())] kind: String,
    #[props(default)] placeholder: String,
) -> Element {
    rsx! {
        label { class: "field",
            "{label}"
            input {
                r#type: "{kind}",
                value: "{value}",
                placeholder: "{placeholder}",
                autocomplete: "off",
                oninput: move |e| oninput.call(e.value()),
            }
        }
    }
}
