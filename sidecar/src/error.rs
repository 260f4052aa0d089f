//! The one error type of the HTTP layer, mapped once to a status code.
//!
//! Policy: the client acts on status codes only (protocol §1.7), so the body is a short
//! human-readable sentence for operators and curl users. Details of internal errors are logged
//! with the request, never sent. 400 means "your data is wrong" and makes the Anki client ask
//! for Check Database, so our own bugs must surface as 500 instead.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed header, body, JSON, or an operation the collection refuses.
    #[error("{0}")]
    BadRequest(String),
    /// Unknown, revoked or stale host key, or a failed login.
    #[error("{0}")]
    Forbidden(String),
    /// A stateful sync call without the matching active session.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    NotFound(String),
    /// Anki shows "your Anki version is too old" for this status.
    #[error("{0}")]
    ClientTooOld(String),
    /// A request body that did not arrive in time (slow or stalled sender).
    #[error("{0}")]
    RequestTimeout(String),
    /// The shared memory for request bodies is taken; the client may retry.
    #[error("{0}")]
    Busy(String),
    /// Storage is not reachable or something broke on our side.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(anyhow::anyhow!("{message}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::ClientTooOld(_) => StatusCode::NOT_IMPLEMENTED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(err) => {
                tracing::error!(error = %format!("{err:#}"), "internal error");
                "internal server error".to_string()
            }
            other => {
                // Messages can quote client input (serde quotes a wrong-typed string whole).
                let reason = truncated(&other.to_string(), MAX_MESSAGE_CHARS);
                tracing::info!(status = status.as_u16(), reason = %reason, "request refused");
                reason
            }
        };
        (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("{message}\n"),
        )
            .into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Longest refusal message sent or logged, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn truncated(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut() {
        assert_eq!(truncated("abc", 3), "abc");
        assert_eq!(truncated("abcd", 3), "abc…");
        assert_eq!(truncated("ééé", 2), "éé…");
        let err = ApiError::bad_request("x".repeat(1_000_000));
        let response = err.into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
}
