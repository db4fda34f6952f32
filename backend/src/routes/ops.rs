//! Health, readiness, metrics, the OpenAPI document and JSON answers for unknown routes.

use super::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use utoipa::OpenApi;

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Telemetry backend",
        description = "HMAC-signed telemetry ingest, stored in SQLite, pushed live on /ws."
    ),
    paths(
        super::ingest::ingest,
        super::events::list,
        super::events::clear,
        super::agents::list,
        super::agents::series,
        super::agents::processes,
        super::machine::services,
        super::machine::notices,
        super::session::log_in,
        super::session::status,
        super::session::log_out,
        super::session::revoke,
        super::alerts::list,
        super::alerts::deliveries,
        super::alerts::rules,
        super::alerts::create_rule,
        super::alerts::replace_rule,
        super::alerts::delete_rule,
        super::alerts::channels,
        super::alerts::create_channel,
        super::alerts::replace_channel,
        super::alerts::delete_channel,
        super::alerts::silences,
        super::alerts::create_silence,
        super::alerts::delete_silence,
    ),
    components(schemas(protocol::Event))
)]
pub(crate) struct ApiDoc;

pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready when a write transaction can be taken within two seconds.
pub(crate) async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    // Both halves: a store that commits but cannot serve a read is not ready either.
    let both = async { futures_util::try_join!(state.storage.ping(), state.storage.ping_read()) };
    match tokio::time::timeout(Duration::from_secs(2), both).await {
        Ok(Ok(_)) => Ok(Json(json!({"status": "ready"}))),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ApiError::Storage("the database did not answer within 2 s".into())),
    }
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.replay_entries.store(state.security.replay.len() as u64, Relaxed);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}

pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}
