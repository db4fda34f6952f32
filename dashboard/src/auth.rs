//! The login: the session `POST /api/session` made, kept in this tab's `sessionStorage` so a
//! reload stays logged in while closing the tab forgets it (`localStorage` would outlive the
//! browser session), and whether the login form must show. A token is never kept, not even the
//! admin's: an admin logs in once like a reader, and the admin session is the credential of
//! every change.

use dioxus::prelude::*;
use serde::{Deserialize, Serialize};

const SESSION_KEY: &str = "session";

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

/// Whether this tab is logged in as admin: the pages then offer changes.
pub(crate) fn admin_login() -> bool {
    SESSION.read().as_ref().is_some_and(Session::is_admin)
}

/// Why the login form shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prompt {
    /// Reads need a credential and this tab has none.
    LogIn,
    /// The stored session was refused: expired, logged out everywhere, or the token it came
    /// from was changed.
    SessionEnded,
    /// The user asked to log in as admin, to make changes; they may go back instead.
    Admin,
}

impl Prompt {
    /// Whether the views may be gone back to without a login: where reads are open they work
    /// without one (and where they are not, the next read asks again).
    pub(crate) fn can_skip(self) -> bool {
        self != Prompt::LogIn
    }
}

pub(crate) static SESSION: GlobalSignal<Option<Session>> = Signal::global(saved);
/// Set by the first read answered 401, or by the user asking to log in as admin; the views stay
/// hidden until a login (or, for an admin login, going back) clears it.
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

/// The session itself, when logged in: sent as `Authorization: Bearer` on REST calls, and as a
/// subprotocol of the WebSocket, where browsers cannot set headers.
pub(crate) fn session_token() -> Option<String> {
    SESSION.peek().as_ref().map(|s| s.session.clone())
}

pub(crate) fn log_in(session: Session) {
    if let (Some(storage), Ok(json)) = (tab_storage(), serde_json::to_string(&session)) {
        let _ = storage.set_item(SESSION_KEY, &json);
    }
    *SESSION.write() = Some(session);
    *PROMPT.write() = None;
}

/// Shows the login form for an admin login.
pub(crate) fn ask_for_admin() {
    *PROMPT.write() = Some(Prompt::Admin);
}

/// Back to the views from a login the user did not finish.
pub(crate) fn skip_login() {
    if PROMPT.peek().is_some_and(Prompt::can_skip) {
        *PROMPT.write() = None;
    }
}

/// The session was refused (a read answered 401, a change 403 although this tab holds an admin
/// session, or the live feed closed for it): forgets it, if any, and asks for a login.
pub(crate) fn login_required() {
    if matches!(*PROMPT.peek(), Some(Prompt::LogIn | Prompt::SessionEnded)) {
        // Requests in flight fail together; the first one decided why.
        return;
    }
    let ended = SESSION.peek().is_some();
    if let Some(storage) = tab_storage() {
        let _ = storage.remove_item(SESSION_KEY);
    }
    *SESSION.write() = None;
    *PROMPT.write() = Some(if ended { Prompt::SessionEnded } else { Prompt::LogIn });
}

/// Forgets everything this tab stored and reloads, which also drops the open WebSocket and the
/// fleet held in memory. The backend is told first (see `api::end_session`).
pub(crate) fn forget() {
    if let Some(storage) = tab_storage() {
        let _ = storage.clear();
    }
    if let Some(window) = web_sys::window() {
        let _ = window.location().reload();
    }
}
