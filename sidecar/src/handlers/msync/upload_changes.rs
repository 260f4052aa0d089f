//! `POST /msync/uploadChanges`: apply a zip of added, changed and deleted files.

use axum::body::Body;
use axum::extract::State;

use super::wrapped;
use crate::error::ApiResult;
use crate::handlers::ContinuingLogged;
use crate::state::AppState;
use crate::transport::SyncResponse;

pub async fn upload_changes(
    State(state): State<AppState>,
    call: ContinuingLogged,
    body: Body,
) -> ApiResult<SyncResponse> {
    call.user.prepare_media().await?;
    let received = call
        .receive(body, state.settings.limits.media_body())
        .await?;
    let (processed, usn) = call
        .user
        .media_upload(received, &call.client, call.started)
        .await?;
    wrapped([processed as i64, usn]).await
}
