//! `POST /api/session`: the dashboard's login, a read or admin token exchanged for a session;
//! `GET /api/session`: whether reads need one; `DELETE /api/session`: the session sent ends (a
//! log-out); `POST /api/session/revoke` (admin): every session ends.

use super::AppState;
use crate::clock::{format_ms, now_ms};
use crate::error::ApiError;
use crate::security::access::Claims;
use crate::security::{Refused, client_ip, is_local};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// A `READ_TOKEN` or `ADMIN_TOKEN` value.
    token: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct LoginResponse {
    /// Send as `Authorization: Bearer <session>`; a browser opening `/ws` offers it as the
    /// subprotocol `base64url.bearer.telemetry.<base64url of the session>` beside `telemetry.v1`.
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
        (status = 429, description = "login_throttled: too many wrong credentials from this address; see Retry-After", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn log_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Json<LoginResponse>, ApiError> {
    let Json(request) =
        body.map_err(|e| ApiError::Invalid(format!("body must be {{\"token\": ...}}: {e}")))?;
    // Read afresh: a session stamped with an epoch another replica has moved past would end
    // at this replica's next refresh.
    let epoch = state.sessions.refresh().await?.epoch();
    let now = now_ms();
    let local = is_local(peer, &headers);
    let session = match state.security.access.login(&request.token, local, now / 1000, epoch) {
        Ok(session) => session,
        Err(refused) => {
            state.security.logins.fail(client_ip(peer, &headers), now);
            return Err(refused.into());
        }
    };
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

#[utoipa::path(
    delete, path = "/api/session", tag = "session",
    params(("Authorization" = String, Header, description = "Bearer <session>: the session to end")),
    responses(
        (status = 204, description = "The session has ended, on every replica"),
        (status = 401, description = "login_required: no valid session", body = protocol::ErrorBody),
        (status = 422, description = "The credential sent is a token, not a session", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn log_out(
    State(state): State<AppState>,
    session: Option<Extension<Claims>>,
) -> Result<StatusCode, ApiError> {
    let Some(Extension(claims)) = session else {
        return Err(ApiError::Invalid(
            "send the session to end as Authorization: Bearer <session> (a token does not end)"
                .into(),
        ));
    };
    if !state.sessions.end(&claims).await? {
        return Err(Refused::Busy(
            "too many sessions were logged out recently; an admin can end them all with \
             POST /api/session/revoke"
                .into(),
        )
        .into());
    }
    tracing::info!(role = claims.role.name(), "dashboard logout");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/api/session/revoke", tag = "session",
    params(("X-Api-Token" = String, Header, description = "ADMIN_TOKEN (or it, or an admin session, as Authorization: Bearer)")),
    responses(
        (status = 204, description = "Every session has ended, on every replica; log in again"),
        (status = 403, description = "forbidden: not the admin credential", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn revoke(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    let epoch = state.sessions.revoke().await?;
    tracing::info!(epoch, "every session revoked");
    Ok(StatusCode::NO_CONTENT)
}
