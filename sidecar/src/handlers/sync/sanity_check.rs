//! `POST /sync/sanityCheck2`: compare counts; a mismatch discards the whole sync.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::normal_sync::wire::SanityCheckRequest;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn sanity_check(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let user = state.users.user(user.id);
    // Cheap first: without the matching sync, the body is never read.
    user.ensure_session(&header.session_key).await?;
    let request: SanityCheckRequest = read_json(body, state.settings.limits.json_body()).await?;
    let answer = user.sanity_check(&header.session_key, request).await?;
    SyncResponse::json(&answer).await
}
