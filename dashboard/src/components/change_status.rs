//! How a change made with the admin login went: running, done, or the API's reason.

use crate::api::ApiError;
use crate::auth;
use dioxus::prelude::*;
use std::future::Future;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    Idle,
    Busy(&'static str),
    Done(String),
    Failed(String),
}

/// Runs `call`, showing `busy` and then how it went in `change`; `then` gets the answer and
/// says what was done.
pub(crate) fn run<T, Fut>(
    mut change: Signal<Change>,
    busy: &'static str,
    call: Fut,
    then: impl FnOnce(T) -> String + 'static,
) where
    Fut: Future<Output = Result<T, ApiError>> + 'static,
{
    change.set(Change::Busy(busy));
    spawn(async move {
        change.set(match call.await {
            Ok(value) => Change::Done(then(value)),
            Err(ApiError::Forbidden) if auth::admin_login() => {
                // The admin session was refused: it expired or was ended.
                auth::login_required();
                Change::Idle
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
