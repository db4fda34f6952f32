//! `GET /api/events` and `POST /api/events/clear`, as the seed defined them.

use super::ingest::body_bytes;
use super::{ApiQuery, AppState, agent_filter, page_limit};
use crate::error::ApiError;
use crate::storage::EventFilter;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use protocol::validate::is_printable_id;
use protocol::{ClearRequest, ClearResponse, EventKind, EventRow, Limits};
use serde::Deserialize;

pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Only this agent's events.
    agent_id: Option<String>,
    /// 1 to 500; 50 when absent.
    limit: Option<u32>,
    /// Only events with a smaller id: pass the last id of a page to get the next one.
    before_id: Option<i64>,
    /// Only events of this type (`metric`, `proc` or any other stored type; any letter case).
    #[serde(rename = "type")]
    event_type: Option<String>,
}

impl EventsQuery {
    fn into_filter(self) -> Result<EventFilter, ApiError> {
        let limit = page_limit(self.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let event_type = self.event_type.filter(|t| !t.is_empty());
        if event_type.as_deref().is_some_and(|t| !is_printable_id(t, Limits::MAX_EVENT_TYPE_CHARS))
        {
            return Err(ApiError::Invalid("type must be 1-32 printable characters".into()));
        }
        // Stored lower-cased, as ingest normalises it.
        let event_type = event_type.map(|t| EventKind::parse(&t).as_str().to_owned());
        let agent_id = agent_filter(self.agent_id)?;
        Ok(EventFilter { agent_id, event_type, before_id: self.before_id, limit })
    }
}

#[utoipa::path(
    get, path = "/api/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, description = "Newest first", body = Vec<EventRow>),
        (status = 422, description = "Bad filter", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<Vec<EventRow>>, ApiError> {
    let filter = query.into_filter()?;
    let rows = state.storage.events(filter).await?;
    Ok(Json(rows))
}

#[utoipa::path(
    post, path = "/api/events/clear", tag = "events",
    request_body(content = ClearRequest, description = "Omit agent_id (or send no body) to clear everything"),
    params(("X-Api-Token" = String, Header, description = "ADMIN_TOKEN (or send it, or an admin session, as Authorization: Bearer)")),
    responses(
        (status = 200, description = "Events deleted", body = ClearResponse),
        (status = 403, description = "forbidden: not the admin token", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn clear(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ClearResponse>, ApiError> {
    let body = body_bytes(body, state.max_body_bytes)?;
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        ClearRequest::default()
    } else {
        serde_json::from_slice::<ClearRequest>(&body).map_err(|e| {
            ApiError::Invalid(format!("body must be {{\"agent_id\": ...}} or empty: {e}"))
        })?
    };
    let agent_id = agent_filter(request.agent_id)?;
    let cleared = state.storage.clear(agent_id.clone()).await?;
    tracing::info!(agent_id = agent_id.as_deref().unwrap_or("<all>"), cleared, "events cleared");
    Ok(Json(ClearResponse { cleared }))
}
