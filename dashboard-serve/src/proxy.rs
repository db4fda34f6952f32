//! `/api/*` forwarded to the backend as it is: method, path, query, headers and body.

use crate::Upstream;
use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;

/// The backend refuses bodies past its own limit long before this.
const MAX_BODY: usize = 8 << 20;

/// Headers that describe one hop, not the message, and are not forwarded.
fn hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
    )
}

fn copy_headers(from: &HeaderMap) -> HeaderMap {
    from.iter().filter(|(k, _)| !hop_by_hop(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn unreachable(why: impl std::fmt::Display) -> Response {
    tracing::warn!(%why, "backend unreachable");
    let body = serde_json::json!({
        "detail": format!("the dashboard server cannot reach the backend: {why}"),
        "code": "backend_unreachable",
    });
    (StatusCode::BAD_GATEWAY, Json(body)).into_response()
}

pub(crate) async fn forward(
    State(up): State<Upstream>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let sent = up
        .http
        .request(parts.method, format!("{}{path}", up.base))
        .headers(copy_headers(&parts.headers))
        // The backend must know the request is not its own host's: it accepts development
        // credentials only from loopback clients that no proxy forwarded.
        .header("x-forwarded-for", peer.ip().to_string())
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => return unreachable(e),
    };
    let (status, headers) = (answer.status(), copy_headers(answer.headers()));
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_headers_are_dropped_and_others_kept() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive".parse().unwrap());
        h.insert(header::HOST, "127.0.0.1:1337".parse().unwrap());
        h.insert("x-api-token", "t".parse().unwrap());
        let out = copy_headers(&h);
        assert_eq!(out.len(), 1);
        assert_eq!(out["x-api-token"], "t");
    }
}
