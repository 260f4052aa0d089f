//! `POST /sync/upload`: a full upload replaces the user's collection
//! (docs/sync-protocol.md#full-upload).
//!
//! Answers are sentences with HTTP 200, as the client shows them to the user verbatim.

use axum::body::Body;
use axum::extract::State;

use crate::error::ApiResult;
use crate::handlers::LoggedCall;
use crate::handlers::receive_file;
use crate::state::AppState;
use crate::transport::SyncResponse;

pub async fn upload(
    State(state): State<AppState>,
    call: LoggedCall,
    body: Body,
) -> ApiResult<SyncResponse> {
    call.user.prepare_folder().await?;
    // Receiving the body can take minutes; the user's lock is taken only afterwards.
    let limits = state.settings.limits.full_upload_body();
    let received = receive_file(body, limits, call.user.folder()).await?;
    let answer = call
        .user
        .full_upload(received, &call.client, call.started)
        .await?;
    SyncResponse::bytes(answer.into()).await
}
