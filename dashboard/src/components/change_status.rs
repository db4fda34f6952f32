//! How a change made with the admin credential went: running, done, or the API's reason.

use super::admin_token;
use crate::api::ApiError;
use dioxus::prelude::*;
use std::future::Future;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    Idle,
    Busy(&'static str),
    Done(String),
    Failed(String),
}

/// Runs `call` with the admin credential from `token`, showing `busy` and then how it went in
/// `change`; `then` gets the answer and says what was done.
pub(crate) fn run<T, Fut>(
    token: Signal<String>,
    mut change: Signal<Change>,
    busy: &'static str,
    call: impl FnOnce(Option<String>) -> Fut,
    then: impl FnOnce(T) -> String + 'static,
) where
    Fut: Future<Output = Result<T, ApiError>> + 'static,
{
    let typed = admin_token::credential(token);
    change.set(Change::Busy(busy));
    let answer = call(typed.clone());
    spawn(async move {
        change.set(match answer.await {
            Ok(value) => {
                admin_token::accepted(typed.as_deref());
                Change::Done(then(value))
            }
            Err(e) => Change::Failed(e.to_string()),
        });
    });
}

#[component]
pub fn ChangeStatus(change: Change) -> Element {
    match change {
        Change::Idle => rsx! {},
        Change::Busy(what) => rsx! { p { role: "status", "{what}" } },
        Change::Done(what) => rsx! { p { class: "ok", role: "status", "{what}" } },
        Change::Failed(why) => rsx! { p { class: "api-error", role: "alert", "{why}" } },
    }
}
