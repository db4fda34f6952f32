//! `POST /api/ingest`: authenticate, parse, validate, commit, answer.

use super::AppState;
use crate::clock::now_ms;
use crate::error::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use protocol::{IngestBatch, IngestResponse};
use std::net::SocketAddr;

/// Body limit rejections become 413; anything else about reading the body is a 400-class error.
pub(crate) fn body_bytes(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(limit)
        } else {
            ApiError::Invalid(format!("could not read the request body: {}", r.body_text()))
        }
    })
}

#[utoipa::path(
    post, path = "/api/ingest", tag = "ingest",
    request_body = IngestBatch,
    params(
        ("X-Api-Token" = String, Header, description = "The shared API token"),
        ("X-Signature-Ts" = String, Header, description = "Unix seconds, within HMAC_DRIFT of the server"),
        ("X-Signature" = String, Header, description = "hex HMAC-SHA256(HMAC_SECRET, ts + \".\" + body)"),
    ),
    responses(
        (status = 200, description = "Stored, or a duplicate of a stored batch_id", body = IngestResponse),
        (status = 401, description = "bad_token, bad_signature, stale_timestamp or replay", body = protocol::ErrorBody),
        (status = 413, description = "Body larger than MAX_BODY_BYTES", body = protocol::ErrorBody),
        (status = 422, description = "Not a valid batch", body = protocol::ErrorBody),
        (status = 429, description = "Replay guard full; retry later", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(peer = %peer))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestResponse>, ApiError> {
    let result = accept(&state, peer, &headers, body).await;
    if let Err(e) = &result {
        count_refusal(&state, e);
    }
    result
}

/// Counts a refused ingest in `/metrics` and says why at debug level, whichever check refused
/// it (the token is checked before the body is read, in the route's guard).
pub(crate) fn count_refusal(state: &AppState, e: &ApiError) {
    if let Some(why) = e.refusal() {
        state.metrics.refused(why);
    }
    tracing::debug!(status = %e.status(), code = e.code(), reason = %e, "ingest refused");
}

async fn accept(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IngestResponse>, ApiError> {
    let body = body_bytes(body, state.max_body_bytes)?;
    let verified = state.security.verify_signature(headers, peer, &body, now_ms())?;
    let batch: IngestBatch = serde_json::from_slice(&body)
        .map_err(|e| ApiError::Invalid(format!("body is not a valid batch: {e}")))?;
    let ts_ms = batch.validate().map_err(|e| ApiError::Invalid(e.to_string()))?;
    let outcome = state.storage.ingest(batch, ts_ms, verified).await?;
    Ok(Json(IngestResponse { stored: outcome.stored, duplicate: outcome.duplicate }))
}
