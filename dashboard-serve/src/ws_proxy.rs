//! `/ws` relayed to the backend's `/ws` with the same query, frame by frame, both ways.

use crate::Upstream;
use crate::proxy::unreachable;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as Up;
use tokio_tungstenite::tungstenite::protocol::CloseFrame as UpClose;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Backend = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn upgrade(
    State(up): State<Upstream>,
    RawQuery(query): RawQuery,
    client: WebSocketUpgrade,
) -> Response {
    let ws_base = up.base.replacen("http", "ws", 1);
    let url = match query {
        Some(q) => format!("{ws_base}/ws?{q}"),
        None => format!("{ws_base}/ws"),
    };
    // Connect before accepting, so a down backend fails the browser's handshake (502) and the
    // page's reconnect back-off takes over.
    match connect_async(url.as_str()).await {
        Ok((backend, _)) => client.on_upgrade(move |socket| relay(socket, backend)),
        Err(e) => unreachable(e),
    }
}

fn to_backend(m: ws::Message) -> Up {
    match m {
        ws::Message::Text(t) => Up::text(t.as_str()),
        ws::Message::Binary(b) => Up::Binary(b),
        ws::Message::Ping(b) => Up::Ping(b),
        ws::Message::Pong(b) => Up::Pong(b),
        ws::Message::Close(c) => {
            Up::Close(c.map(|c| UpClose { code: c.code.into(), reason: c.reason.as_str().into() }))
        }
    }
}

fn to_client(m: Up) -> Option<ws::Message> {
    Some(match m {
        Up::Text(t) => ws::Message::Text(t.as_str().into()),
        Up::Binary(b) => ws::Message::Binary(b),
        Up::Ping(b) => ws::Message::Ping(b),
        Up::Pong(b) => ws::Message::Pong(b),
        Up::Close(c) => ws::Message::Close(
            c.map(|c| ws::CloseFrame { code: c.code.into(), reason: c.reason.as_str().into() }),
        ),
        Up::Frame(_) => return None,
    })
}

async fn relay(client: WebSocket, backend: Backend) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut backend_tx, mut backend_rx) = backend.split();
    let down = async {
        while let Some(Ok(m)) = backend_rx.next().await {
            let Some(m) = to_client(m) else { continue };
            if client_tx.send(m).await.is_err() {
                break;
            }
        }
        // The backend went away (restart, shutdown): close the page's socket so it reconnects.
        let _ = client_tx.close().await;
    };
    let up = async {
        while let Some(Ok(m)) = client_rx.next().await {
            if backend_tx.send(to_backend(m)).await.is_err() {
                break;
            }
        }
        let _ = backend_tx.close().await;
    };
    // Whichever side ends first ends the relay.
    tokio::select! {
        () = down => {}
        () = up => {}
    }
}
