//! `POST /sync/upload`: a full upload replaces the user's collection (protocol §5.1).
//!
//! Answers are sentences with HTTP 200, as the client shows them to the user verbatim.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::sync_log::ClientTag;
use crate::transport::SyncResponse;
use crate::transport::body::{SpoolError, read_to_file};
use crate::user_data::Received;

pub async fn upload(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    client: ClientTag,
    body: Body,
) -> ApiResult<SyncResponse> {
    let started = std::time::Instant::now();
    let user = state.users.user(user.id);
    user.prepare_folder().await?;
    // Receiving the body can take minutes; the user's lock is taken only afterwards.
    let limits = state.settings.limits.full_upload_body();
    let received = match read_to_file(body, limits, user.folder()).await {
        Ok(file) => Received::File(file),
        Err(SpoolError::TooLarge) => Received::TooLarge,
        Err(SpoolError::Api(err)) => return Err(err),
    };
    let answer = user.full_upload(received, &client, started).await?;
    SyncResponse::bytes(answer.into()).await
}
