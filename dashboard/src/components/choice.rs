//! A labelled select of an editor form, over values named as on the wire.

use dioxus::prelude::*;

#[component]
pub fn Choice(
    label: String,
    options: Vec<String>,
    chosen: String,
    onchange: EventHandler<String>,
) -> Element {
    rsx! {
        label { class: "field",
            "{label}"
            select { onchange: move |e| onchange.call(e.value()),
                for o in options {
                    option { value: "{o}", selected: o == chosen, "{o}" }
                }
            }
        }
    }
}
