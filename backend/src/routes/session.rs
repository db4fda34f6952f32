//! `POST /api/session`: the dashboard's login, a read or admin token exchanged for a session;
//! `GET /api/session`: whether reads need one, and what the request's credential allows.

use super::AppState;
use crate::clock::{format_ms, now_ms};
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// A `READ_TOKEN` or `ADMIN_TOKEN` value.
    token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LoginResponse {
    /// Send as `Authorization: Bearer <session>`, or `access_token=<session>` on `/ws`.
    session: String,
    /// `read` or `admin`.
    role: &'static str,
    expires_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionStatus {
    /// Reads need no credential (loopback without `READ_TOKEN`).
    reads_open: bool,
}

#[utoipa::path(
    post, path = "/api/session", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, description = "A session for the token's role", body = LoginResponse),
        (status = 401, description = "login_required: not a read or admin token", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Json<LoginResponse>, ApiError> {
    let Json(request) =
        body.map_err(|e| ApiError::Invalid(format!("body must be {{\"token\": ...}}: {e}")))?;
    let session = state.security.access.login(&request.token, now_ms() / 1000)?;
    tracing::info!(role = session.role.name(), "dashboard login");
    Ok(Json(LoginResponse {
        session: session.token,
        role: session.role.name(),
        expires_at: format_ms(session.expires_s.saturating_mul(1000)),
    }))
}

#[utoipa::path(
    get, path = "/api/session", tag = "session",
    responses((status = 200, description = "Whether reads need a login", body = SessionStatus))
)]
pub(crate) async fn status(State(state): State<AppState>) -> Json<SessionStatus> {
    Json(SessionStatus { reads_open: state.security.access.reads_open() })
}
