//! Every failure becomes a JSON body `{"detail": ..., "code": ...}` with a fitting status.

use crate::metrics::Refusal;
use crate::security::{AuthFailure, Refused};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::{ErrorBody, codes};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The security checks' own refusals: 401, 403, or 429 for a full replay guard.
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{0}")]
    Invalid(String),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    NotFound(String),
    /// The cause is logged at the edge; clients learn only that storage is down, never the
    /// database's own text.
    #[error("storage is unavailable; retry in a few seconds")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("the request body did not arrive within {0} s")]
    TimedOut(u64),
    /// A bug on our side; the cause is logged, the client learns only that it happened.
    #[error("the server failed to answer this request; it has been logged")]
    Internal,
}

/// Another replica's replay refusal is the same 401 as this replica's own; anything else the
/// storage says is a 503 naming it.
impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        match e {
            crate::storage::StorageError::Replay => ApiError::Refused(Refused::Unauthorized {
                reason: AuthFailure::Replay,
                detail: crate::security::REPLAY.into(),
            }),
            crate::storage::StorageError::ReadPanicked => ApiError::Internal,
            e => ApiError::Storage(Box::new(e)),
        }
    }
}

impl ApiError {
    /// What `/metrics` counts this as, if it is a refusal of ingest (storage failures are not).
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        match self {
            ApiError::Refused(Refused::Unauthorized { reason, .. }) => Some(Refusal::Auth(*reason)),
            ApiError::Refused(Refused::Busy(_)) => Some(Refusal::Busy),
            ApiError::Invalid(_) => Some(Refusal::Invalid),
            ApiError::TooLarge(_) => Some(Refusal::TooLarge),
            _ => None,
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::Refused(Refused::Unauthorized { .. } | Refused::LoginRequired(_)) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Refused(Refused::Forbidden { .. }) => StatusCode::FORBIDDEN,
            ApiError::Refused(Refused::Busy(_) | Refused::Throttled { .. }) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Refused(refused) => refused.code(),
            ApiError::Invalid(_) => codes::INVALID,
            ApiError::TooLarge(_) => codes::TOO_LARGE,
            ApiError::NotFound(_) => codes::NOT_FOUND,
            ApiError::Storage(_) => codes::STORAGE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => codes::METHOD_NOT_ALLOWED,
            ApiError::Internal => codes::INTERNAL,
            ApiError::TimedOut(_) => codes::TIMEOUT,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Logged once, here, with the cause; a 503 loses nothing (agents keep the batch). A
        // 500 is logged where the bug was caught, with what only that place knows.
        if let ApiError::Storage(_) = &self {
            tracing::warn!(error = %crate::telemetry::chain(&self), "answered 503");
        }
        let mut response = (
            self.status(),
            Json(ErrorBody { detail: self.to_string(), code: self.code().to_owned() }),
        )
            .into_response();
        let retry_after = match self {
            // Agents back off on these; tell them roughly when to come back.
            ApiError::Refused(Refused::Busy(_)) | ApiError::Storage(_) => Some(1),
            ApiError::Refused(Refused::Throttled { retry_after_s }) => Some(retry_after_s),
            _ => None,
        };
        if let Some(s) = retry_after {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from(s));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StorageError;

    #[tokio::test]
    async fn a_storage_failure_tells_the_client_nothing_of_the_database() {
        let e = ApiError::from(StorageError::Commit(rusqlite::Error::InvalidPath(
            "/srv/secret/t.db".into(),
        )));
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept for the log");
        assert!(crate::telemetry::chain(&e).contains("/srv/secret"));
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), 4096).await;
        let text = String::from_utf8(body.unwrap().to_vec()).unwrap();
        assert!(!text.contains("secret") && text.contains("storage_unavailable"), "{text}");
    }
}
