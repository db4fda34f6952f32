//! The HTTP surface: the seed's API, the dashboard's extra reads, the live feed and operations.

pub(crate) mod agents;
pub(crate) mod alerts;
mod dashboard;
pub(crate) mod events;
mod guard;
pub(crate) mod ingest;
pub(crate) mod machine;
pub(crate) mod ops;
pub(crate) mod session;
pub(crate) mod ws;

use crate::error::ApiError;
use crate::live::Hub;
use crate::metrics::Metrics;
use crate::security::Security;
use crate::security::sessions::Sessions;
use crate::storage::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::QueryRejection;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{delete, get, post, put};
use std::sync::Arc;
use tokio::sync::watch;
use tower_http::cors::{AllowOrigin, CorsLayer};

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub security: Arc<Security>,
    /// Which sessions ended before their expiry.
    pub sessions: Arc<Sessions>,
    pub storage: Arc<dyn Store>,
    pub alerts: Arc<dyn crate::alerts::AlertStore>,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub body_timeout: std::time::Duration,
    /// One permit per WebSocket client allowed at once.
    pub ws_slots: Arc<tokio::sync::Semaphore>,
    pub ws_max_message_bytes: usize,
    /// Flips to true when the server is shutting down, so WebSocket clients are closed.
    pub shutdown: watch::Receiver<bool>,
}

/// Query strings parsed by serde, with failures answered as JSON 422s.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct ApiQuery<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::Invalid(r.body_text())
    }
}

/// An agent id named in a read or a clear must be one an agent could have sent: anything else
/// matches nothing, and PostgreSQL refuses some of it (a NUL byte) outright.
pub(crate) fn check_agent_id(agent_id: &str) -> Result<(), ApiError> {
    protocol::validate::check_agent_id(agent_id).map_err(|e| ApiError::Invalid(e.to_string()))
}

/// An optional agent filter, checked. An empty `agent_id=` is what a form with no agent chosen
/// sends: no filter.
pub(crate) fn agent_filter(agent_id: Option<String>) -> Result<Option<String>, ApiError> {
    let agent_id = agent_id.filter(|a| !a.is_empty());
    agent_id.as_deref().map(check_agent_id).transpose()?;
    Ok(agent_id)
}

/// A page's size: `default` when absent, otherwise 1 to `max`.
pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::Invalid(format!("limit must be from 1 to {max}")));
    }
    Ok(limit)
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        // A wildcard is allowed only because no route uses cookies or other credentials.
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            axum::http::header::CONTENT_TYPE,
            axum::http::header::AUTHORIZATION,
            HeaderName::from_static(protocol::HEADER_TOKEN),
            HeaderName::from_static(protocol::HEADER_SIGNATURE),
            HeaderName::from_static(protocol::HEADER_SIGNATURE_TS),
        ])
}

/// A bug in a handler answers this request with a 500 and leaves the connection and the
/// server as they were.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> axum::response::Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "a request handler panicked");
    axum::response::IntoResponse::into_response(ApiError::Internal)
}

async fn say_level(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        HeaderName::from_static(protocol::HEADER_INGEST_LEVEL),
        HeaderValue::from(u16::from(protocol::INGEST_LEVEL)),
    );
    response
}

/// The API on its own listener, or with `dashboard` (a built dashboard's folder) the same API
/// with the dashboard's files behind every other path: one set of guards for both doors.
pub(crate) fn router(
    state: AppState,
    cors_origins: &[String],
    dashboard: Option<&std::path::Path>,
) -> Router {
    use axum::middleware::{from_fn, from_fn_with_state, map_response};
    let reads = Router::new()
        .route("/api/events", get(events::list))
        .route("/api/agents", get(agents::list))
        .route("/api/agents/{agent_id}/series", get(agents::series))
        .route("/api/agents/{agent_id}/processes", get(agents::processes))
        .route("/api/agents/{agent_id}/services", get(machine::services))
        .route("/api/agents/{agent_id}/notices", get(machine::notices))
        .route("/api/alerts", get(alerts::list))
        .route("/api/alerts/notifications", get(alerts::deliveries))
        .route("/api/alerts/rules", get(alerts::rules))
        .route("/api/alerts/silences", get(alerts::silences))
        .route("/api/session", delete(session::log_out))
        .route_layer(from_fn_with_state(state.clone(), guard::require_read));
    // Checked for a credential in its URL before anything else, whatever the reads need.
    let live = Router::new()
        .route("/ws", get(ws::upgrade))
        .route_layer(from_fn_with_state(state.clone(), guard::require_read))
        .route_layer(from_fn(ws::no_credential_in_url));
    // Each change: its credential, then its body (see `guard`).
    let changes = Router::new()
        .route("/api/events/clear", post(events::clear))
        .route("/api/alerts/rules", post(alerts::create_rule))
        .route("/api/alerts/rules/{id}", put(alerts::replace_rule).delete(alerts::delete_rule))
        .route("/api/alerts/channels", get(alerts::channels).post(alerts::create_channel))
        .route(
            "/api/alerts/channels/{id}",
            put(alerts::replace_channel).delete(alerts::delete_channel),
        )
        .route("/api/alerts/silences", post(alerts::create_silence))
        .route("/api/alerts/silences/{id}", delete(alerts::delete_silence))
        .route("/api/session/revoke", post(session::revoke))
        .route_layer(from_fn_with_state(state.clone(), guard::read_body_in_time))
        .route_layer(from_fn_with_state(state.clone(), guard::require_admin));
    let login = Router::new()
        .route("/api/session", post(session::log_in))
        .route_layer(from_fn_with_state(state.clone(), guard::read_body_in_time))
        .route_layer(from_fn_with_state(state.clone(), guard::throttle_logins));
    // Agents learn from these two what a batch may carry (see `protocol::HEADER_INGEST_LEVEL`),
    // refusals included.
    let levelled = Router::new()
        .route("/api/ingest", post(ingest::ingest))
        .route_layer(from_fn_with_state(state.clone(), guard::read_body_in_time))
        .route_layer(from_fn_with_state(state.clone(), guard::require_api_token))
        .route("/healthz", get(ops::healthz))
        .route_layer(map_response(say_level));
    let api = Router::new()
        .merge(reads)
        .merge(live)
        .merge(changes)
        .merge(login)
        .merge(levelled)
        .route("/api/session", get(session::status))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .method_not_allowed_fallback(ops::method_not_allowed);
    let api = match dashboard {
        Some(dist) => api.merge(dashboard::files(dist)),
        None => api.fallback(ops::not_found),
    };
    api.layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(from_fn_with_state(state.clone(), guard::check_host))
        .layer(cors(cors_origins))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .with_state(state)
}
