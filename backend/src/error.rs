//! Every failure becomes a JSON body `{"detail": ..., "code": ...}` with a fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::{ErrorBody, codes};

/// Why an ingest or clear request was refused as unauthorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    BadToken,
    BadSignature,
    StaleTimestamp,
    Replay,
}

impl AuthFailure {
    pub fn code(self) -> &'static str {
        match self {
            AuthFailure::BadToken => codes::BAD_TOKEN,
            AuthFailure::BadSignature => codes::BAD_SIGNATURE,
            AuthFailure::StaleTimestamp => codes::STALE_TIMESTAMP,
            AuthFailure::Replay => codes::REPLAY,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Unauthorized { reason: AuthFailure, detail: String },
    #[error("{0}")]
    LoginRequired(String),
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{0}")]
    Invalid(String),
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Busy(String),
    #[error("storage is unavailable: {0}")]
    Storage(String),
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
            crate::storage::StorageError::Replay => {
                ApiError::unauthorized(AuthFailure::Replay, crate::security::REPLAY)
            }
            crate::storage::StorageError::ReadPanicked => ApiError::Internal,
            e => ApiError::Storage(e.to_string()),
        }
    }
}

impl ApiError {
    pub fn unauthorized(reason: AuthFailure, detail: impl Into<String>) -> Self {
        ApiError::Unauthorized { reason, detail: detail.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::LoginRequired(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized { reason, .. } => reason.code(),
            ApiError::LoginRequired(_) => codes::LOGIN_REQUIRED,
            ApiError::Forbidden { code, .. } => code,
            ApiError::Invalid(_) => codes::INVALID,
            ApiError::TooLarge(_) => codes::TOO_LARGE,
            ApiError::NotFound(_) => codes::NOT_FOUND,
            ApiError::Busy(_) => codes::BUSY,
            ApiError::Storage(_) => codes::STORAGE_UNAVAILABLE,
            ApiError::MethodNotAllowed(_) => codes::METHOD_NOT_ALLOWED,
            ApiError::Internal => codes::INTERNAL,
            ApiError::TimedOut(_) => codes::TIMEOUT,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status(),
            Json(ErrorBody { detail: self.to_string(), code: self.code().to_owned() }),
        )
            .into_response();
        if matches!(self, ApiError::Busy(_) | ApiError::Storage(_)) {
            // Agents back off on these; tell them roughly when to come back.
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
