//! `POST /msync/uploadChanges`: apply a zip of added, changed and deleted files.

use axum::body::Body;
use axum::extract::State;

use super::wrapped;
use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::sync_log::ClientTag;
use crate::transport::SyncResponse;
use crate::transport::body::{SpoolError, read_to_file};
use crate::user_data::Received;

pub async fn upload_changes(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    client: ClientTag,
    body: Body,
) -> ApiResult<SyncResponse> {
    let started = std::time::Instant::now();
    let user = state.users.user(user.id);
    user.prepare_media().await?;
    let limits = state.settings.limits.media_body();
    let received = match read_to_file(body, limits, user.folder()).await {
        Ok(zip) => Received::File(zip),
        Err(SpoolError::TooLarge) => Received::TooLarge,
        Err(SpoolError::Api(err)) => return Err(err),
    };
    let (processed, usn) = user.media_upload(received, &client, started).await?;
    wrapped([processed as i64, usn]).await
}
