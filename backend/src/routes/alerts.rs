//! `/api/alerts...`: the alerts and their notifications (reads), and rules, channels and
//! silences (changed with the admin credential, which the routes' guard checks; channels, whose
//! URLs and secrets are credentials themselves, are listed to admins only).

use super::ingest::body_bytes;
use super::{ApiQuery, AppState, agent_filter, page_limit};
use crate::alerts::{self, AlertFilter, Table};
use crate::clock::now_ms;
use crate::error::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use protocol::alerts::{
    Alert, AlertState, Channel, ChannelSpec, Delivery, Rule, RuleSpec, Silence, SilenceSpec,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

const DEFAULT_LIMIT: u32 = 100;

fn parse<T: DeserializeOwned>(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body_bytes(body, state.max_body_bytes)?;
    serde_json::from_slice(&body).map_err(|e| ApiError::Invalid(format!("body: {e}")))
}

fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
    page_limit(limit, DEFAULT_LIMIT, alerts::store::MAX_ALERTS)
}

fn not_found(what: &str, id: i64) -> ApiError {
    ApiError::NotFound(format!("no {what} with id {id}"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertsQuery {
    /// `open` (pending or firing), `pending`, `firing` or `resolved`; every alert when absent.
    state: Option<String>,
    agent_id: Option<String>,
    rule_id: Option<i64>,
    before_id: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/alerts`: newest first; page with `before_id`.
#[utoipa::path(get, path = "/api/alerts", tag = "alerts",
    params(("state" = Option<String>, Query, description = "open, pending, firing or resolved"),
           ("agent_id" = Option<String>, Query), ("rule_id" = Option<i64>, Query),
           ("before_id" = Option<i64>, Query), ("limit" = Option<u32>, Query, description = "1 to 500; 100 when absent")),
    responses((status = 200, description = "Newest first", body = Vec<Alert>)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    let (open, wanted) = match q.state.as_deref().filter(|s| !s.is_empty()) {
        None => (false, None),
        Some("open") => (true, None),
        Some("pending") => (false, Some(AlertState::Pending)),
        Some("firing") => (false, Some(AlertState::Firing)),
        Some("resolved") => (false, Some(AlertState::Resolved)),
        Some(_) => {
            return Err(ApiError::Invalid(
                "state must be open, pending, firing or resolved".into(),
            ));
        }
    };
    let agent_id = agent_filter(q.agent_id)?;
    let filter = AlertFilter {
        open,
        state: wanted,
        agent_id,
        rule_id: q.rule_id,
        before_id: q.before_id,
        limit: limit(q.limit)?,
    };
    Ok(Json(state.alerts.alerts(filter).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesQuery {
    alert_id: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/alerts/notifications`: each notification's way to its channel, newest first.
#[utoipa::path(get, path = "/api/alerts/notifications", tag = "alerts",
    params(("alert_id" = Option<i64>, Query), ("limit" = Option<u32>, Query)),
    responses((status = 200, description = "Newest first", body = Vec<Delivery>)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Vec<Delivery>>, ApiError> {
    let rows = state.alerts.deliveries(q.alert_id, limit(q.limit)?).await?;
    Ok(Json(rows))
}

/// `GET /api/alerts/rules`.
#[utoipa::path(get, path = "/api/alerts/rules", tag = "alerts",
    responses((status = 200, body = Vec<Rule>)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn rules(State(state): State<AppState>) -> Result<Json<Vec<Rule>>, ApiError> {
    let rows = state.alerts.list(Table::Rules).await?;
    Ok(Json(alerts::store::rules_of(rows)))
}

/// A rule's channels must exist when it is written (a channel deleted later is skipped).
async fn checked_rule(
    state: &AppState,
    body: Result<Bytes, BytesRejection>,
) -> Result<RuleSpec, ApiError> {
    let spec: RuleSpec = parse(state, body)?;
    alerts::check_rule(&spec).map_err(ApiError::Invalid)?;
    let channels = alerts::store::channels_of(state.alerts.list(Table::Channels).await?);
    if let Some(missing) = spec.channels.iter().find(|id| !channels.iter().any(|(c, _)| c == *id)) {
        return Err(ApiError::Invalid(format!("channel {missing} does not exist")));
    }
    Ok(spec)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `POST /api/alerts/rules`: 201 with the stored rule.
#[utoipa::path(post, path = "/api/alerts/rules", tag = "alerts", request_body = RuleSpec,
    responses((status = 201, body = Rule), (status = 403, body = protocol::ErrorBody),
              (status = 422, description = "Incomplete or out of limits", body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn create_rule(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Rule>), ApiError> {
    let spec = checked_rule(&state, body).await?;
    let id = state.alerts.insert(Table::Rules, json(&spec)).await?;
    tracing::info!(id, name = %spec.name, "alert rule created");
    Ok((StatusCode::CREATED, Json(Rule { id, spec })))
}

/// `PUT /api/alerts/rules/{id}`: replaces the rule; its open alerts carry on under it.
#[utoipa::path(put, path = "/api/alerts/rules/{id}", tag = "alerts", request_body = RuleSpec,
    params(("id" = i64, Path)),
    responses((status = 200, body = Rule), (status = 404, body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn replace_rule(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Rule>, ApiError> {
    let spec = checked_rule(&state, body).await?;
    if !state.alerts.replace(Table::Rules, id, json(&spec)).await? {
        return Err(not_found("rule", id));
    }
    tracing::info!(id, name = %spec.name, "alert rule replaced");
    Ok(Json(Rule { id, spec }))
}

/// `DELETE /api/{rules,channels,silences}/{id}`, one handler per table.
async fn delete(state: AppState, table: Table, id: i64) -> Result<StatusCode, ApiError> {
    if !state.alerts.delete(table, id).await? {
        return Err(not_found(table.name(), id));
    }
    tracing::info!(id, table = table.name(), "alert setting deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/alerts/rules/{id}`: its open alerts resolve at the next round, silently.
#[utoipa::path(delete, path = "/api/alerts/rules/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    delete(state, Table::Rules, id).await
}

fn public(id: i64, spec: ChannelSpec) -> Channel {
    Channel {
        id,
        name: spec.name,
        kind: spec.kind,
        url: spec.url,
        email: spec.email,
        has_secret: spec.secret.is_some(),
    }
}

/// `GET /api/alerts/channels` (admin): secrets left out.
#[utoipa::path(get, path = "/api/alerts/channels", tag = "alerts",
    responses((status = 200, description = "Secrets left out", body = Vec<Channel>),
              (status = 403, body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn channels(
    State(state): State<AppState>,
) -> Result<Json<Vec<Channel>>, ApiError> {
    let rows = alerts::store::channels_of(state.alerts.list(Table::Channels).await?);
    Ok(Json(rows.into_iter().map(|(id, spec)| public(id, spec)).collect()))
}

/// `POST /api/alerts/channels`: 201 with the stored channel.
#[utoipa::path(post, path = "/api/alerts/channels", tag = "alerts", request_body = ChannelSpec,
    responses((status = 201, body = Channel), (status = 422, body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn create_channel(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Channel>), ApiError> {
    let spec: ChannelSpec = parse(&state, body)?;
    alerts::check_channel(&spec).map_err(ApiError::Invalid)?;
    let id = state.alerts.insert(Table::Channels, json(&spec)).await?;
    tracing::info!(id, name = %spec.name, "alert channel created");
    Ok((StatusCode::CREATED, Json(public(id, spec))))
}

/// `PUT /api/alerts/channels/{id}`: without `secret`, the stored one is kept.
#[utoipa::path(put, path = "/api/alerts/channels/{id}", tag = "alerts", request_body = ChannelSpec,
    params(("id" = i64, Path)),
    responses((status = 200, body = Channel), (status = 404, body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn replace_channel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Channel>, ApiError> {
    let mut spec: ChannelSpec = parse(&state, body)?;
    let store = state.alerts;
    let stored = alerts::store::channels_of(store.list(Table::Channels).await?);
    let Some((_, old)) = stored.into_iter().find(|(c, _)| *c == id) else {
        return Err(not_found("channel", id));
    };
    if spec.secret.is_none() {
        spec.secret = old.secret;
    }
    alerts::check_channel(&spec).map_err(ApiError::Invalid)?;
    if !store.replace(Table::Channels, id, json(&spec)).await? {
        return Err(not_found("channel", id));
    }
    tracing::info!(id, name = %spec.name, "alert channel replaced");
    Ok(Json(public(id, spec)))
}

/// `DELETE /api/alerts/channels/{id}`: notifications still waiting for it are given up.
#[utoipa::path(delete, path = "/api/alerts/channels/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn delete_channel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    delete(state, Table::Channels, id).await
}

/// `GET /api/alerts/silences`: those not ended yet.
#[utoipa::path(get, path = "/api/alerts/silences", tag = "alerts",
    responses((status = 200, description = "Those not ended", body = Vec<Silence>)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn silences(
    State(state): State<AppState>,
) -> Result<Json<Vec<Silence>>, ApiError> {
    let now_s = now_ms() / 1000;
    let rows = alerts::store::silences_of(state.alerts.list(Table::Silences).await?);
    Ok(Json(rows.into_iter().filter(|s| s.spec.ends_at > now_s).collect()))
}

/// `POST /api/alerts/silences`: 201 with the stored silence.
#[utoipa::path(post, path = "/api/alerts/silences", tag = "alerts", request_body = SilenceSpec,
    responses((status = 201, body = Silence), (status = 422, body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn create_silence(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    let spec: SilenceSpec = parse(&state, body)?;
    alerts::check_silence(&spec, now_ms() / 1000).map_err(ApiError::Invalid)?;
    let id = state.alerts.insert(Table::Silences, json(&spec)).await?;
    tracing::info!(id, ends_at = spec.ends_at, "alert silence created");
    Ok((StatusCode::CREATED, Json(Silence { id, spec })))
}

/// `DELETE /api/alerts/silences/{id}`: ends it now.
#[utoipa::path(delete, path = "/api/alerts/silences/{id}", tag = "alerts", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = protocol::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub(crate) async fn delete_silence(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    delete(state, Table::Silences, id).await
}
