//! The one error type of the HTTP layer, mapped once to a status code.
//!
//! Every lower error arrives here through a `From` impl below: the domain errors of the sync,
//! the import, the media store and the per-user service get their status in exactly one
//! place, and errors of SQLite, the database and the file system become 500s.
//!
//! Policy: the client acts on status codes only (docs/sync-protocol.md#errors), so the body is a
//! short human-readable sentence for operators and curl users. Details of internal errors are
//! logged with the request, never sent. 400 means "your data is wrong" and makes the Anki client
//! ask for Check Database, so our own bugs must surface as 500 instead.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::import::ImportError;
use crate::media::download_zip::DownloadError;
use crate::media::upload_zip::UploadError;
use crate::normal_sync::SyncOpError;
use crate::user_data::UserDataError;

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
    /// The user's data cannot be worked on right now (a sync holds it); the answer carries
    /// `Retry-After: retry_after` seconds.
    #[error("{message}")]
    Unavailable { message: String, retry_after: u64 },
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
            Self::Busy(_) | Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

crate::internal_from::internal_from!(ApiError: std::io::Error, rusqlite::Error, sqlx::Error, serde_json::Error);

/// The client's sync data is wrong (400, and Anki offers Check Database), or ours broke (500).
impl From<SyncOpError> for ApiError {
    fn from(err: SyncOpError) -> Self {
        match err {
            SyncOpError::Invalid(message) => Self::BadRequest(message),
            SyncOpError::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<ImportError> for ApiError {
    fn from(err: ImportError) -> Self {
        match err {
            ImportError::BadPackage(message) => Self::BadRequest(format!("bad package: {message}")),
            ImportError::Internal(err) => Self::Internal(err),
        }
    }
}

impl From<DownloadError> for ApiError {
    fn from(err: DownloadError) -> Self {
        match err {
            err @ DownloadError::TooMany => Self::BadRequest(err.to_string()),
            // The client asked for a file the server does not have.
            err @ DownloadError::Missing(_) => Self::Conflict(err.to_string()),
            DownloadError::Other(err) => Self::Internal(err),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(err: UploadError) -> Self {
        match err {
            UploadError::Invalid(message) => Self::BadRequest(message),
            UploadError::Io(err) => Self::Internal(err.into()),
        }
    }
}

impl From<UserDataError> for ApiError {
    fn from(err: UserDataError) -> Self {
        match err {
            err @ UserDataError::NoSession => Self::Conflict(err.to_string()),
            err @ UserDataError::KeyReused => Self::Conflict(err.to_string()),
            UserDataError::Syncing { retry_after } => Self::Unavailable {
                message: UserDataError::Syncing { retry_after }.to_string(),
                retry_after: retry_after.as_secs(),
            },
            UserDataError::TooLarge(message) => Self::PayloadTooLarge(message),
            UserDataError::Sync(err) => err.into(),
            UserDataError::Import(err) => err.into(),
            UserDataError::MediaDownload(err) => err.into(),
            UserDataError::MediaUpload(err) => err.into(),
            UserDataError::Internal(err) => Self::Internal(err),
        }
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
        let retry_after = match &self {
            Self::Unavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut response = (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            )],
            format!("{message}\n"),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
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

    #[test]
    fn unavailable_says_when_to_retry() {
        let response = ApiError::Unavailable {
            message: "busy".into(),
            retry_after: 5,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "5");
    }
}
