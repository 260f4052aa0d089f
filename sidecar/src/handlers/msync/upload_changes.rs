//! `POST /msync/uploadChanges`: apply a zip of added, changed and deleted files.

use axum::body::Body;
use axum::extract::State;

use super::wrapped;
use crate::auth::AuthedUser;
use crate::error::{ApiError, ApiResult};
use crate::media::upload_zip::{UploadError, read_upload};
use crate::media::{MediaDb, apply_upload};
use crate::state::AppState;
use crate::transport::SyncResponse;
use crate::transport::body::{SpoolError, read_to_file};

pub async fn upload_changes(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let files = state.data.user(user.id);
    {
        let files = files.clone();
        tokio::task::spawn_blocking(move || MediaDb::open(&files).map(|_| ())).await??;
    }
    let zip = match read_to_file(body, state.settings.limits.media_body(), files.dir()).await {
        Ok(zip) => zip,
        Err(SpoolError::TooLarge) => {
            return Err(ApiError::PayloadTooLarge("media upload too large".into()));
        }
        Err(SpoolError::Api(err)) => return Err(err),
    };
    let max_total = state.settings.limits.media_max_bytes();
    let staging = files.clone();
    let entries =
        tokio::task::spawn_blocking(move || read_upload(zip.path(), staging.dir(), max_total))
            .await?
            .map_err(|err| match err {
                UploadError::Invalid(message) => {
                    tracing::info!(user_id = user.id, reason = %message, "media upload refused");
                    ApiError::BadRequest(message)
                }
                UploadError::Io(err) => ApiError::Internal(err.into()),
            })?;

    let slot = state.registry.lock(user.id).await;
    let (processed, usn) =
        tokio::task::spawn_blocking(move || apply_upload(&files, entries)).await??;
    drop(slot);
    wrapped([processed as i64, usn]).await
}
