//! What an agent says about its machine beyond the figures: its watched services and its
//! notices (service changes, Event Log and journal entries).

use super::agents::require_agent;
use super::events::{DEFAULT_LIMIT, MAX_LIMIT};
use super::{ApiQuery, AppState, page_limit};
use crate::error::ApiError;
use crate::storage::NoticeFilter;
use axum::Json;
use axum::extract::{Path, State};
use protocol::{NoticeKind, NoticeLevel, NoticeRow, ServicesResponse};
use serde::Deserialize;

#[utoipa::path(
    get, path = "/api/agents/{agent_id}/services", tag = "agents",
    responses(
        (status = 200, description = "The newest list of watched services the agent sent", body = ServicesResponse),
        (status = 404, description = "Unknown agent", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id = %agent_id))]
pub(crate) async fn services(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> Result<Json<ServicesResponse>, ApiError> {
    require_agent(&state, &agent_id).await?;
    Ok(Json(state.storage.services(agent_id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoticesQuery {
    /// Only `service` changes or `log` entries.
    #[param(value_type = Option<String>)]
    kind: Option<NoticeKind>,
    /// Only `info`, `warning` or `error` ones.
    #[param(value_type = Option<String>)]
    level: Option<NoticeLevel>,
    /// 1 to 500; 50 when absent.
    limit: Option<u32>,
    /// Only notices with a smaller id: pass the last id of a page to get the next one.
    before_id: Option<i64>,
}

#[utoipa::path(
    get, path = "/api/agents/{agent_id}/notices", tag = "agents", params(NoticesQuery),
    responses(
        (status = 200, description = "Newest first", body = Vec<NoticeRow>),
        (status = 404, description = "Unknown agent", body = protocol::ErrorBody),
        (status = 422, description = "Bad filter", body = protocol::ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(agent_id = %agent_id))]
pub(crate) async fn notices(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    ApiQuery(query): ApiQuery<NoticesQuery>,
) -> Result<Json<Vec<NoticeRow>>, ApiError> {
    let limit = page_limit(query.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
    require_agent(&state, &agent_id).await?;
    let filter = NoticeFilter {
        agent_id,
        kind: query.kind,
        level: query.level,
        before_id: query.before_id,
        limit,
    };
    Ok(Json(state.storage.notices(filter).await?))
}
