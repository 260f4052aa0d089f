//! `POST /sync/upload`: a full upload replaces the user's collection
//! (docs/sync-protocol.md#full-upload).
//!
//! Answers are sentences with HTTP 200, as the client shows them to the user verbatim.

use axum::body::Body;
use axum::extract::State;

use crate::error::ApiResult;
use crate::handlers::LoggedCall;
use crate::state::AppState;
use crate::transport::SyncResponse;

pub async fn upload(
    State(state): State<AppState>,
    call: LoggedCall,
    body: Body,
) -> ApiResult<SyncResponse> {
    // Receiving the body can take minutes; the user's lock is taken only afterwards.
    let received = call
        .receive(body, state.settings.limits.full_upload_body())
        .await?;
    let answer = call
        .user
        .full_upload(received, &call.client, call.started)
        .await?;
    SyncResponse::bytes(answer.into()).await
}
