//! The routes, the root component that wires the live feed, and the page shell.

use super::agent_view::AgentView;
use super::alerts_view::AlertsView;
use super::conn_indicator::ConnIndicator;
use super::events::Events;
use super::fleet::Fleet;
use super::login::Login;
use crate::auth;
use crate::live::Inbox;
use crate::state::Live;
use crate::store::Store;
use dioxus::core::Task;
use dioxus::prelude::*;

#[derive(Debug, Clone, PartialEq, Routable)]
#[rustfmt::skip]
pub(crate) enum Route {
    #[layout(Shell)]
        #[route("/")]
        Fleet {},
        #[route("/agents/:id")]
        AgentView { id: String },
        #[route("/events")]
        Events {},
        #[route("/alerts")]
        AlertsView {},
}

/// The root: creates the shared state, starts the live feed and the clock, and routes.
#[component]
pub fn App() -> Element {
    let live = use_context_provider(|| {
        let offset_min = -(js_sys::Date::new_0().get_timezone_offset() as i32);
        Live::new(Store::default(), js_sys::Date::now(), offset_min)
    });
    let inbox = use_hook(Inbox::default);
    let mut feed = use_signal(|| None::<Task>);
    // The feed runs while no login is asked for, and starts over with the session after one; a
    // socket opened with a session that has since been refused is dropped with its task.
    use_effect({
        let inbox = inbox.clone();
        move || {
            let logged_out = auth::PROMPT.read().is_some();
            if let Some(task) = feed.take() {
                task.cancel();
            }
            if !logged_out {
                feed.set(Some(spawn(crate::api::live_loop(live, inbox.clone()))));
            }
        }
    });
    use_hook(|| {
        spawn(crate::api::flush_loop(live, inbox));
        let mut now = live.now_ms;
        spawn(async move {
            loop {
                gloo_timers::future::TimeoutFuture::new(1000).await;
                now.set(js_sys::Date::now());
            }
        });
    });
    rsx! { Router::<Route> {} }
}

/// Logs out on the backend too, so that a copy of the session no longer works, then forgets it.
fn log_out() {
    spawn(async {
        if let Some(session) = auth::session_token() {
            // Forgotten here whatever the backend says: it may be unreachable.
            let _ = crate::api::end_session(&session).await;
        }
        auth::forget();
    });
}

/// Ends every session, this one too; `failed` shows why when the backend refused.
fn log_out_everywhere(mut failed: Signal<Option<String>>) {
    spawn(async move {
        match crate::api::revoke_sessions().await {
            Ok(()) => auth::forget(),
            Err(e) => failed.set(Some(format!("Could not log out everywhere: {e}"))),
        }
    });
}

/// Header with navigation, the connection indicator, the login buttons and the theme switch,
/// then the view, or the login form while one is asked for.
#[component]
pub fn Shell() -> Element {
    let mut light = use_signal(|| false);
    let revoke_failed = use_signal(|| None::<String>);
    let prompt = auth::PROMPT();
    let theme = if light() { "light" } else { "dark" };
    let session = auth::SESSION.read().clone();
    let admin = session.as_ref().is_some_and(auth::Session::is_admin);
    rsx! {
        div { class: "app", "data-theme": theme,
            header { class: "top",
                a { class: "skip", href: "#content", "Skip to content" }
                span { class: "brand", "Fleet telemetry" }
                nav { "aria-label": "Views",
                    Link { to: Route::Fleet {}, active_class: "active", "Fleet" }
                    Link { to: Route::Events {}, active_class: "active", "Events" }
                    Link { to: Route::AlertsView {}, active_class: "active", "Alerts" }
                }
                if prompt.is_none() {
                    ConnIndicator {}
                }
                if !admin && prompt.is_none() {
                    button { class: "admin-login", r#type: "button", onclick: |_| auth::ask_for_admin(), "Log in as admin" }
                }
                if admin {
                    button {
                        class: "revoke",
                        r#type: "button",
                        title: "Ends every session of every browser, this one too",
                        onclick: move |_| log_out_everywhere(revoke_failed),
                        "Log out everywhere"
                    }
                }
                if session.is_some() {
                    button { class: "logout", r#type: "button", onclick: |_| log_out(), "Log out" }
                }
                button {
                    class: "theme",
                    r#type: "button",
                    "aria-pressed": "{light}",
                    onclick: move |_| light.toggle(),
                    if light() { "Dark theme" } else { "Light theme" }
                }
            }
            main { id: "content",
                if let Some(why) = revoke_failed() {
                    p { class: "api-error", role: "alert", "{why}" }
                }
                match prompt {
                    Some(p) => rsx! { Login { prompt: p } },
                    None => rsx! { Outlet::<Route> {} },
                }
            }
        }
    }
}
