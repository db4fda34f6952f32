//! The only part that talks to the network: REST calls and the live WebSocket loop.

use crate::auth::{self, Session};
use crate::live::{Backoff, ConnState, GapFill, Inbox};
use crate::state::Live;
use dioxus::prelude::*;
use futures_util::StreamExt;
use gloo_net::http::{Method, Request, RequestBuilder, Response};
use gloo_net::websocket::{Message, State as WsState, WebSocketError, futures::WebSocket};
use gloo_timers::future::TimeoutFuture;
use protocol::alerts::{Alert, Channel, ChannelSpec, Rule, RuleSpec, Silence, SilenceSpec};
use protocol::{
    AgentSummary, ClearRequest, ClearResponse, ErrorBody, EventRow, LiveMessage, NoticeRow,
    ProcessHistory, ProcessesResponse, Series, ServicesResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Rows per gap-fill page (the API's maximum) and pages per reconnect.
const GAP_PAGE: usize = 500;
const GAP_PAGES: u32 = 20;
/// With several backend replicas a row can commit a moment after one with a higher id, so a
/// reconnect looks back this many ids below the newest it saw; the store keeps each row once.
const GAP_OVERLAP_IDS: i64 = 2_000;
/// How often buffered live messages are applied: one render per tick however many arrive.
const FLUSH_MS: u32 = 250;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("cannot reach the API at {0}")]
    Unreachable(String),
    /// Reads need a login (`401 login_required`); for `POST /api/session`, a wrong token.
    #[error("login required")]
    LoginRequired,
    /// A change was refused (`403 forbidden`).
    #[error("not allowed: changes need an admin login")]
    Forbidden,
    #[error("{0}")]
    Refused(String),
    #[error("unexpected answer: {0}")]
    Decode(String),
}

/// The API's origin: `API_BASE_URL` at build time, else the page's own (the server proxies).
pub(crate) fn base_url() -> String {
    match option_env!("API_BASE_URL") {
        Some(url) if !url.is_empty() => url.trim_end_matches('/').to_owned(),
        _ => web_sys::window().and_then(|w| w.location().origin().ok()).unwrap_or_default(),
    }
}

/// `ws://` or `wss://` for the same origin as `base`, asking for alert notices too. Never a
/// credential: URLs end up in proxies' access logs (see [`ws_protocols`]).
pub(crate) fn ws_url(base: &str) -> String {
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/ws?alerts=1")
}

/// The subprotocols the page offers: the feed's own, and the login session if any, which is
/// how a page sends a credential on a WebSocket (see [`protocol::live_auth`]).
pub(crate) fn ws_protocols(session: Option<&str>) -> Vec<String> {
    let own = protocol::live_auth::PROTOCOL.to_owned();
    std::iter::once(own).chain(session.map(protocol::live_auth::bearer)).collect()
}

/// Percent-encodes a path segment or query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What a refusal means, from its status and `code`.
fn refusal(status: u16, body: Option<ErrorBody>) -> ApiError {
    match body {
        Some(b) if status == 401 && b.code == protocol::codes::LOGIN_REQUIRED => {
            ApiError::LoginRequired
        }
        Some(b) if status == 403 && b.code == protocol::codes::FORBIDDEN => ApiError::Forbidden,
        Some(b) => ApiError::Refused(b.detail),
        None => ApiError::Refused(format!("HTTP {status}")),
    }
}

async fn read<T: DeserializeOwned>(response: Response) -> Result<T, ApiError> {
    if !response.ok() {
        let status = response.status();
        return Err(refusal(status, response.json::<ErrorBody>().await.ok()));
    }
    response.json::<T>().await.map_err(|e| ApiError::Decode(e.to_string()))
}

/// Every call carries the login session when there is one; where reads are open it is unused.
fn with_session(request: RequestBuilder) -> RequestBuilder {
    match auth::session_token() {
        Some(session) => request.header("authorization", &format!("Bearer {session}")),
        None => request,
    }
}

/// A read; a `401` from any of them brings up the login form.
async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    let base = base_url();
    let response = with_session(Request::get(&format!("{base}{path}")))
        .send()
        .await
        .map_err(|_| ApiError::Unreachable(base))?;
    let result = read(response).await;
    if matches!(result, Err(ApiError::LoginRequired)) {
        auth::login_required();
    }
    result
}

/// The fleet, or with `only` that one agent's row.
pub(crate) async fn agents(only: Option<&str>) -> Result<Vec<AgentSummary>, ApiError> {
    match only {
        Some(id) => get(&format!("/api/agents?agent_id={}", encode(id))).await,
        None => get("/api/agents").await,
    }
}

pub(crate) async fn series(agent: &str, from_s: i64, to_s: i64) -> Result<Series, ApiError> {
    get(&format!("/api/agents/{}/series?from={from_s}&to={to_s}", encode(agent))).await
}

pub(crate) async fn processes(agent: &str) -> Result<ProcessesResponse, ApiError> {
    get(&format!("/api/agents/{}/processes", encode(agent))).await
}

pub(crate) async fn services(agent: &str) -> Result<ServicesResponse, ApiError> {
    get(&format!("/api/agents/{}/services", encode(agent))).await
}

/// The newest notices, a page of them.
pub(crate) async fn notices(agent: &str) -> Result<Vec<NoticeRow>, ApiError> {
    get(&format!("/api/agents/{}/notices?limit=50", encode(agent))).await
}

pub(crate) async fn process_history(
    agent: &str,
    name: &str,
    from_s: i64,
    to_s: i64,
) -> Result<ProcessHistory, ApiError> {
    let (agent, name) = (encode(agent), encode(name));
    get(&format!("/api/agents/{agent}/processes?name={name}&from={from_s}&to={to_s}")).await
}

/// One page of the event log, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EventQuery {
    pub agent_id: Option<String>,
    pub event_type: Option<String>,
    pub before_id: Option<i64>,
    pub limit: usize,
}

impl EventQuery {
    pub(crate) fn path(&self) -> String {
        let mut path = format!("/api/events?limit={}", self.limit);
        if let Some(a) = &self.agent_id {
            path.push_str(&format!("&agent_id={}", encode(a)));
        }
        if let Some(t) = &self.event_type {
            path.push_str(&format!("&type={}", encode(t)));
        }
        if let Some(id) = self.before_id {
            path.push_str(&format!("&before_id={id}"));
        }
        path
    }
}

pub(crate) async fn events(query: &EventQuery) -> Result<Vec<EventRow>, ApiError> {
    get(&query.path()).await
}

async fn send<T: DeserializeOwned>(
    request: RequestBuilder,
    body: Option<&impl Serialize>,
) -> Result<T, ApiError> {
    let response = match body {
        Some(b) => request.json(b).map_err(|e| ApiError::Decode(e.to_string()))?.send().await,
        None => request.send().await,
    };
    read(response.map_err(|_| ApiError::Unreachable(base_url()))?).await
}

async fn post<B: Serialize, T: DeserializeOwned>(
    request: RequestBuilder,
    body: &B,
) -> Result<T, ApiError> {
    send(request, Some(body)).await
}

/// A call with the login session, which for a change must be an admin's.
fn call(method: Method, path: &str) -> RequestBuilder {
    with_session(RequestBuilder::new(&format!("{}{path}", base_url())).method(method))
}

pub(crate) async fn clear(agent_id: Option<String>) -> Result<ClearResponse, ApiError> {
    post(call(Method::POST, "/api/events/clear"), &ClearRequest { agent_id }).await
}

/// One page of alerts, newest first (only the pending and firing ones when `open`);
/// `before_id` pages back.
pub(crate) async fn alerts(
    open: bool,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<Alert>, ApiError> {
    let mut path = format!("/api/alerts?limit={limit}");
    if open {
        path.push_str("&state=open");
    }
    if let Some(id) = before_id {
        path.push_str(&format!("&before_id={id}"));
    }
    get(&path).await
}

pub(crate) async fn rules() -> Result<Vec<Rule>, ApiError> {
    get("/api/alerts/rules").await
}

pub(crate) async fn silences() -> Result<Vec<Silence>, ApiError> {
    get("/api/alerts/silences").await
}

/// Channel URLs are credentials, so even the list needs an admin login.
pub(crate) async fn channels() -> Result<Vec<Channel>, ApiError> {
    send(call(Method::GET, "/api/alerts/channels"), None::<&()>).await
}

/// The alert settings the admin changes, by their API path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Setting {
    Rules,
    Channels,
    Silences,
}

impl Setting {
    fn path(self, id: Option<i64>) -> String {
        let table = match self {
            Self::Rules => "rules",
            Self::Channels => "channels",
            Self::Silences => "silences",
        };
        match id {
            Some(id) => format!("/api/alerts/{table}/{id}"),
            None => format!("/api/alerts/{table}"),
        }
    }
}

/// Creates a setting, or replaces the one with `id`.
async fn save<B: Serialize, T: DeserializeOwned>(
    setting: Setting,
    id: Option<i64>,
    spec: &B,
) -> Result<T, ApiError> {
    let method = if id.is_some() { Method::PUT } else { Method::POST };
    send(call(method, &setting.path(id)), Some(spec)).await
}

pub(crate) async fn save_rule(id: Option<i64>, spec: &RuleSpec) -> Result<Rule, ApiError> {
    save(Setting::Rules, id, spec).await
}

pub(crate) async fn save_channel(id: Option<i64>, spec: &ChannelSpec) -> Result<Channel, ApiError> {
    save(Setting::Channels, id, spec).await
}

pub(crate) async fn create_silence(spec: &SilenceSpec) -> Result<Silence, ApiError> {
    save(Setting::Silences, None, spec).await
}

/// A call answered `204` without a body.
async fn no_content(request: RequestBuilder) -> Result<(), ApiError> {
    let response = request.send().await.map_err(|_| ApiError::Unreachable(base_url()))?;
    if response.ok() {
        return Ok(());
    }
    let status = response.status();
    Err(refusal(status, response.json::<ErrorBody>().await.ok()))
}

/// Deletes a setting (ends a silence now).
pub(crate) async fn delete(setting: Setting, id: i64) -> Result<(), ApiError> {
    no_content(call(Method::DELETE, &setting.path(Some(id)))).await
}

/// Exchanges a read or admin token for a session; a wrong one is [`ApiError::LoginRequired`].
pub(crate) async fn login(token: &str) -> Result<Session, ApiError> {
    let request = Request::post(&format!("{}/api/session", base_url()));
    post(request, &serde_json::json!({ "token": token })).await
}

/// Ends `session` on the backend (a log-out), so that a copy of it no longer works either.
pub(crate) async fn end_session(session: &str) -> Result<(), ApiError> {
    let request = Request::delete(&format!("{}/api/session", base_url()));
    no_content(request.header("authorization", &format!("Bearer {session}"))).await
}

/// Ends every session, this one included (admin).
pub(crate) async fn revoke_sessions() -> Result<(), ApiError> {
    no_content(call(Method::POST, "/api/session/revoke")).await
}

/// Refetches the fleet, or with `only` that one agent's row (its drives and host figures come
/// with no live row), recording whether the API answered.
pub(crate) async fn refresh_agents(live: Live, only: Option<&str>) {
    let mut live = live;
    match agents(only).await {
        Ok(list) => {
            let now = js_sys::Date::now();
            live.store.write().set_agents(list, now);
            live.api_error.set(None);
        }
        Err(e) => live.api_error.set(Some(e.to_string())),
    }
}

/// Open alerts over the API's largest page.
const OPEN_ALERTS: u32 = 500;

/// Refetches the open alerts: what resolved while the socket was down is dropped.
async fn refresh_open_alerts(live: Live) -> Result<(), ApiError> {
    let mut live = live;
    let asked_at = live.store.peek().alerts.changes();
    let list = alerts(true, None, OPEN_ALERTS).await?;
    live.store.write().alerts.set_open(list, asked_at);
    Ok(())
}

/// Fetches every row after `after_id`, newest pages first, as live messages.
async fn gap_fill(after_id: i64) -> Result<Vec<LiveMessage>, ApiError> {
    // The first load takes one page of recent history; a reconnect walks back to what it saw.
    let mut gap = if after_id == 0 {
        GapFill::new(0, 1)
    } else {
        GapFill::new((after_id - GAP_OVERLAP_IDS).max(0), GAP_PAGES)
    };
    while let Some(before_id) = gap.next_request() {
        let query = EventQuery { before_id, limit: GAP_PAGE, ..EventQuery::default() };
        gap.take_page(events(&query).await?, GAP_PAGE);
    }
    Ok(gap.into_messages())
}

/// Applies buffered messages every [`FLUSH_MS`], so a burst costs one render.
pub(crate) async fn flush_loop(live: Live, inbox: Inbox) {
    let mut live = live;
    loop {
        TimeoutFuture::new(FLUSH_MS).await;
        let messages = inbox.take();
        if messages.is_empty() {
            continue;
        }
        let applied = live.store.write().apply(messages);
        if applied.new_agents {
            spawn(refresh_agents(live, None));
        }
    }
}

/// Keeps one WebSocket open, reconnecting with back-off and filling the gap; returns when the
/// backend wants a login (the app starts it again after one).
pub(crate) async fn live_loop(live: Live, inbox: Inbox) {
    let mut live = live;
    let url = ws_url(&base_url());
    let protocols = ws_protocols(auth::session_token().as_deref());
    let mut backoff = Backoff::default();
    loop {
        live.conn.set(ConnState::Connecting);
        let mut opened = false;
        if let Ok(socket) = WebSocket::open_with_protocols(&url, &protocols) {
            while matches!(socket.state(), WsState::Connecting) {
                TimeoutFuture::new(50).await;
            }
            opened = matches!(socket.state(), WsState::Open);
            if opened {
                let (_, mut stream) = socket.split();
                // Opened first, then fetched: anything stored in between arrives on both paths
                // and the store keeps it once.
                refresh_agents(live, None).await;
                let after = live.store.peek().max_id;
                let caught_up = match refresh_open_alerts(live).await {
                    Ok(()) => gap_fill(after).await,
                    Err(e) => Err(e),
                };
                match caught_up {
                    Ok(missed) => {
                        inbox.extend(missed);
                        live.conn.set(ConnState::Live);
                        backoff.reset();
                        while let Some(message) = stream.next().await {
                            match message {
                                Ok(Message::Text(text)) => {
                                    if let Ok(msg) = serde_json::from_str::<LiveMessage>(&text) {
                                        inbox.push(msg);
                                    }
                                }
                                Ok(Message::Bytes(_)) => {}
                                Err(WebSocketError::ConnectionClose(close))
                                    if close.code == protocol::live_auth::CLOSE_SESSION_ENDED =>
                                {
                                    // Expired, logged out or revoked: no reconnect can help.
                                    auth::login_required();
                                    return;
                                }
                                Err(_) => break,
                            }
                        }
                    }
                    Err(e) => live.api_error.set(Some(e.to_string())),
                }
            }
        }
        // A browser does not say why an upgrade failed: a REST read tells a missing login
        // from an unreachable backend.
        if !opened && agents(None).await != Err(ApiError::LoginRequired) {
            live.api_error.set(Some(ApiError::Unreachable(base_url()).to_string()));
        }
        // The login form is up: the app starts the feed again after the login.
        if auth::PROMPT.peek().is_some() {
            return;
        }
        let delay = backoff.next_delay_ms();
        let retry_at_ms = js_sys::Date::now() + f64::from(delay);
        live.conn.set(ConnState::Reconnecting { attempt: backoff.attempt(), retry_at_ms });
        TimeoutFuture::new(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn websocket_url_follows_the_scheme() {
        assert_eq!(ws_url("http://127.0.0.1:1337"), "ws://127.0.0.1:1337/ws?alerts=1");
        assert_eq!(ws_url("https://tele.example"), "wss://tele.example/ws?alerts=1");
    }

    #[test]
    fn the_session_goes_in_a_subprotocol_never_in_the_websocket_url() {
        let session = "s2.r.0.1800000000.0011.ab";
        let offered = ws_protocols(Some(session));
        assert_eq!(offered[0], protocol::live_auth::PROTOCOL, "the one the server selects");
        assert_eq!(protocol::live_auth::credential(&offered[1]).as_deref(), Some(session));
        assert!(offered.iter().all(|p| !p.contains(session)), "encoded: {offered:?}");
        assert_eq!(ws_protocols(None), [protocol::live_auth::PROTOCOL]);
        let url = ws_url("https://tele.example");
        assert!(!url.contains("access_token") && !url.contains(session), "{url}");
    }

    #[test]
    fn refusals_are_told_apart_by_status_and_code() {
        let body = |code: &str| Some(ErrorBody { detail: "why".into(), code: code.into() });
        assert_eq!(refusal(401, body("login_required")), ApiError::LoginRequired);
        assert_eq!(refusal(403, body("forbidden")), ApiError::Forbidden);
        assert_eq!(refusal(403, body("host_not_allowed")), ApiError::Refused("why".into()));
        assert_eq!(refusal(502, None), ApiError::Refused("HTTP 502".into()));
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(encode("pc 1/ä"), "pc%201%2F%C3%A4");
        let q = EventQuery {
            agent_id: Some("a&b".into()),
            event_type: Some("proc".into()),
            before_id: Some(42),
            limit: 50,
        };
        assert_eq!(q.path(), "/api/events?limit=50&agent_id=a%26b&type=proc&before_id=42");
        assert_eq!(EventQuery { limit: 10, ..Default::default() }.path(), "/api/events?limit=10");
        assert_eq!(Setting::Rules.path(Some(4)), "/api/alerts/rules/4");
        assert_eq!(Setting::Silences.path(None), "/api/alerts/silences");
    }
}
