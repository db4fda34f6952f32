//! `GET /ws[?agent_id=]`: every stored row and clear notice, live.

use super::{ApiQuery, AppState};
use crate::error::ApiError;
use crate::live::LiveFrame;
use crate::security::Refused;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use serde::Deserialize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
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
    /// A read token or session, for browsers (checked before the upgrade).
    #[serde(rename = "access_token")]
    _access_token: Option<String>,
}

#[tracing::instrument(skip_all)]
pub(crate) async fn upgrade(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiQuery(query): ApiQuery<WsQuery>,
) -> Response {
    if let Err(e) = state.security.access.check_origin(&headers) {
        return ApiError::from(e).into_response();
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
    ws.max_message_size(state.ws_max_message_bytes)
        .max_frame_size(state.ws_max_message_bytes)
        .on_upgrade(move |socket| async move {
            let _slot = slot;
            client(socket, filter, alerts, state).await;
        })
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
}

#[tracing::instrument(skip_all, fields(agent_id = filter.as_deref().unwrap_or("*")))]
async fn client(mut socket: WebSocket, filter: Option<String>, alerts: bool, state: AppState) {
    state.metrics.ws_clients.fetch_add(1, Relaxed);
    let _connected = Connected(&state);
    // Subscribed before the first await on the socket, so no row committed from now on is missed.
    let mut feed = state.hub.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
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
