//! `GET /ws[?agent_id=]`: every stored row and clear notice, live, until the client leaves or
//! the session that let it in ends.

use super::{ApiQuery, AppState};
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::live::LiveFrame;
use crate::security::Refused;
use crate::security::access::Claims;
use crate::security::sessions::Ended as SessionsEnded;
use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use protocol::live_auth;
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::time::timeout;

const PING_EVERY: Duration = Duration::from_secs(20);
/// A client whose socket accepts nothing for this long is treated as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
const CLOSE_GOING_AWAY: u16 = 1001;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WsQuery {
    agent_id: Option<String>,
    /// `alerts=1` (or `true`): alert changes too, as `{"type": "alert", ...}` messages.
    alerts: Option<String>,
}

/// Before anything else: a credential in the URL is refused, whether or not reads need one, so
/// that a script still sending one learns to stop (URLs end up in proxies' access logs).
pub(crate) async fn no_credential_in_url(
    req: Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    let query = req.uri().query().unwrap_or_default();
    if query.split('&').any(|kv| kv.starts_with("access_token=")) {
        return Err(ApiError::Invalid(format!(
            "access_token in the URL is no longer taken (URLs end up in access logs): send \
             Authorization: Bearer <credential>, or from a browser offer the subprotocols {} \
             and {}<base64url of the session>",
            live_auth::PROTOCOL,
            live_auth::BEARER_PREFIX
        )));
    }
    Ok(next.run(req).await)
}

#[tracing::instrument(skip_all)]
pub(crate) async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    session: Option<Extension<Claims>>,
    ApiQuery(query): ApiQuery<WsQuery>,
) -> Response {
    if let Err(e) = state.security.access.check_origin(&headers) {
        return ApiError::from(e).into_response();
    }
    let offered: Vec<&str> = ws.requested_protocols().filter_map(|p| p.to_str().ok()).collect();
    let sends_bearer = offered.iter().any(|p| p.starts_with(live_auth::BEARER_PREFIX));
    if sends_bearer && !offered.contains(&live_auth::PROTOCOL) {
        // A browser fails a handshake whose answer selects none of the offered subprotocols,
        // and echoing the credential's own would put it in the answer.
        let why = format!("offer the subprotocol {} beside the bearer one", live_auth::PROTOCOL);
        return ApiError::Invalid(why).into_response();
    }
    let filter = query.agent_id.filter(|a| !a.is_empty());
    let alerts = match query.alerts.as_deref() {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(_) => return ApiError::Invalid("alerts must be 1 or 0".into()).into_response(),
    };
    let Ok(slot) = state.ws_slots.clone().try_acquire_owned() else {
        let busy = Refused::Busy("too many live clients (WS_MAX_CLIENTS); retry later".into());
        return ApiError::from(busy).into_response();
    };
    // Where reads are open the socket needs no session, so none is watched.
    let watched = session
        .filter(|_| !state.security.access.reads_open())
        .map(|Extension(claims)| (claims, state.sessions.watch()));
    ws.protocols([live_auth::PROTOCOL])
        .max_message_size(state.ws_max_message_bytes)
        .max_frame_size(state.ws_max_message_bytes)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            client(socket, filter, alerts, watched, state).await;
        })
}

/// Resolves with the reason once the watched session expires or ends; never without one.
async fn session_ends(watched: Option<(Claims, watch::Receiver<SessionsEnded>)>) -> &'static str {
    let Some((claims, mut ended)) = watched else { return std::future::pending().await };
    let left_ms = claims.good_until_ms() - now_ms();
    let mut expiry = std::pin::pin!(tokio::time::sleep(Duration::from_millis(
        u64::try_from(left_ms).unwrap_or(0)
    )));
    loop {
        // Also what changed between the check that let the client in and the subscription.
        if ended.borrow_and_update().ends(&claims) {
            return "the session was ended (logged out or revoked); log in again";
        }
        tokio::select! {
            () = &mut expiry => return "the session expired; log in again",
            changed = ended.changed() => {
                if changed.is_err() {
                    // The server is going away; its shutdown closes the socket.
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Decrements the client gauge however the connection ends.
struct Connected<'a>(&'a AppState);

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.metrics.ws_clients.fetch_sub(1, Relaxed);
    }
}

enum Ended {
    ClientLeft,
    TooSlow,
    /// The feed itself missed rows (see [`LiveFrame::gap`]).
    Gap,
    ShuttingDown,
    SessionOver(&'static str),
}

#[tracing::instrument(skip_all, fields(agent_id = filter.as_deref().unwrap_or("*")))]
async fn client(
    mut socket: WebSocket,
    filter: Option<String>,
    alerts: bool,
    watched: Option<(Claims, watch::Receiver<SessionsEnded>)>,
    state: AppState,
) {
    state.metrics.ws_clients.fetch_add(1, Relaxed);
    let _connected = Connected(&state);
    // Subscribed before the first await on the socket, so no row committed from now on is missed.
    let mut feed = state.hub.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut session_over = std::pin::pin!(session_ends(watched));
    let ended = loop {
        tokio::select! {
            frame = feed.recv() => match frame {
                Ok(frame) => {
                    if frame.gap {
                        break Ended::Gap;
                    }
                    if !frame.concerns(filter.as_deref()) || (frame.alert && !alerts) {
                        continue;
                    }
                    if let Err(ended) = send(&mut socket, frame).await {
                        break ended;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "closing a WebSocket client that fell behind");
                    break Ended::TooSlow;
                }
                Err(RecvError::Closed) => break Ended::ShuttingDown,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Ended::ClientLeft,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if timeout(SEND_TIMEOUT, socket.send(Message::Ping(Default::default()))).await.is_err() {
                    break Ended::TooSlow;
                }
            }
            _ = shutdown.changed() => break Ended::ShuttingDown,
            why = &mut session_over => break Ended::SessionOver(why),
        }
    };
    let (code, reason) = match ended {
        Ended::ClientLeft => return,
        Ended::TooSlow => {
            state.metrics.ws_slow_closed.fetch_add(1, Relaxed);
            (CLOSE_TRY_AGAIN_LATER, "client fell behind the live feed; reconnect and refetch")
        }
        Ended::Gap => (CLOSE_TRY_AGAIN_LATER, "the live feed missed rows; reconnect and refetch"),
        Ended::ShuttingDown => (CLOSE_GOING_AWAY, "server shutting down"),
        Ended::SessionOver(why) => (live_auth::CLOSE_SESSION_ENDED, why),
    };
    let close = Message::Close(Some(CloseFrame { code, reason: reason.into() }));
    // A client that reads nothing may never take the close frame; do not wait on it for long.
    let _ = timeout(Duration::from_secs(1), socket.send(close)).await;
}

/// Queues every message of the frame and flushes once: one write for a whole batch.
async fn send(socket: &mut WebSocket, frame: LiveFrame) -> Result<(), Ended> {
    let write = async {
        for message in frame.messages.iter() {
            socket.feed(Message::Text(message.clone())).await?;
        }
        socket.flush().await
    };
    match timeout(SEND_TIMEOUT, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Ended::ClientLeft),
        Err(_) => Err(Ended::TooSlow),
    }
}
