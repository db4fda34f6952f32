//! The login: the session `POST /api/session` made, kept in this tab's `sessionStorage` so a
//! reload stays logged in while closing the tab forgets it (`localStorage` would outlive the
//! browser session), and whether the login form must show.

use dioxus::prelude::*;
use serde::{Deserialize, Serialize};

const SESSION_KEY: &str = "session";
/// The admin token typed for a change, kept for the rest of this browser session.
const ADMIN_TOKEN_KEY: &str = "admin_token";

/// `POST /api/session`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub session: String,
    /// `read` or `admin`.
    pub role: String,
    pub expires_at: String,
}

impl Session {
    pub(crate) fn is_admin(&self) -> bool {
        self.role == "admin"
    }
}

/// Whether this tab is logged in as admin, so changes need no typed token.
pub(crate) fn admin_login() -> bool {
    SESSION.read().as_ref().is_some_and(Session::is_admin)
}

/// What the user typed earlier in this browser session.
pub(crate) fn saved_admin_token() -> String {
    tab_storage().and_then(|s| s.get_item(ADMIN_TOKEN_KEY).ok().flatten()).unwrap_or_default()
}

/// Kept once a change with it succeeded, so the next change does not ask again.
pub(crate) fn remember_admin_token(token: &str) {
    if let Some(storage) = tab_storage() {
        let _ = storage.set_item(ADMIN_TOKEN_KEY, token);
    }
}

/// Why the login form shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prompt {
    /// Reads need a credential and this tab has none.
    LogIn,
    /// The stored session was refused: expired, or the token it came from was changed.
    SessionEnded,
}

pub(crate) static SESSION: GlobalSignal<Option<Session>> = Signal::global(saved);
/// Set by the first read answered 401; the views stay hidden until a login clears it.
pub(crate) static PROMPT: GlobalSignal<Option<Prompt>> = Signal::global(|| None);

/// This tab's `sessionStorage`.
pub(crate) fn tab_storage() -> Option<web_sys::Storage> {
    // Server-side rendering in tests has no browser to ask.
    if cfg!(target_arch = "wasm32") {
        web_sys::window()?.session_storage().ok().flatten()
    } else {
        None
    }
}

fn saved() -> Option<Session> {
    let json = tab_storage()?.get_item(SESSION_KEY).ok()??;
    serde_json::from_str(&json).ok()
}

/// The `Authorization` value for REST calls, when logged in.
pub(crate) fn bearer() -> Option<String> {
    SESSION.peek().as_ref().map(|s| format!("Bearer {}", s.session))
}

/// The credential for the WebSocket URL, where browsers cannot set headers.
pub(crate) fn access_token() -> Option<String> {
    SESSION.peek().as_ref().map(|s| s.session.clone())
}

pub(crate) fn log_in(session: Session) {
    if let (Some(storage), Ok(json)) = (tab_storage(), serde_json::to_string(&session)) {
        let _ = storage.set_item(SESSION_KEY, &json);
    }
    *SESSION.write() = Some(session);
    *PROMPT.write() = None;
}

/// A read was answered 401: forgets the session it carried, if any, and asks for a login.
pub(crate) fn login_required() {
    if PROMPT.peek().is_some() {
        // Reads in flight fail together; the first one decided why.
        return;
    }
    let ended = SESSION.peek().is_some();
    if let Some(storage) = tab_storage() {
        let _ = storage.remove_item(SESSION_KEY);
    }
    *SESSION.write() = None;
    *PROMPT.write() = Some(if ended { Prompt::SessionEnded } else { Prompt::LogIn });
}

/// Forgets everything this tab stored (the session and a typed admin token) and reloads, which
/// also drops the open WebSocket and the fleet held in memory.
pub(crate) fn log_out() {
    if let Some(storage) = tab_storage() {
        let _ = storage.clear();
    }
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}
